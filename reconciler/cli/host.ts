// `mlink host add|list|remove`: the machines of a cluster, for the humans who run it.
// `add` shows and pins a host's SSH key (or checks the one given), makes it ready for its
// roles over SSH (hosts/provision.ts) and commits hosts/NAME.yaml as the person running
// it; `list` shows each host's health and what runs there; `remove` commits the removal.
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { SchemaError, validateHost, type HostManifest } from '../../schemas/index.js';
import { clusterHosts, controlKeyFile, REMOTE_EDGE_WEB_PORT } from '../hosts/cluster.js';
import { checkText, poolHealth, runningText, stateText } from '../hosts/health.js';
import { hostManifest, renderHostFile, sameHost } from '../hosts/host-file.js';
import { provisionHost, type HostRole } from '../hosts/provision.js';
import { HostKeyMismatchError, SshHost } from '../hosts/ssh-host.js';
import { checkFingerprint, loadControlKey, probeHostKey } from '../hosts/ssh-keys.js';
import { DNS_LABEL, hostPath } from '../layout.js';
import { observeVolumes } from '../observe/live.js';
import { readClusterConfig } from '../source/desired.js';
import { MAIN, StateStore } from '../state/store.js';
import { dataDir } from '../util/paths.js';
import { drain, undrain } from './host-drain.js';
import { humanIdentity } from './identity.js';
import { table } from './status.js';

const HELP = `usage: mlink host add NAME ADDRESS [--roles build,runtime] [--user root] [--port 22]
                      [--host-key SHA256:...] [--cpu N --memory-mb N] [--label k=v ...]
                      [--registry HOST:PORT] [--yes]
       mlink host list [--json]
       mlink host remove NAME [--yes]
       mlink host drain NAME [--timeout SECONDS]
       mlink host undrain NAME
       (each takes --repo DIR; add, remove, drain and undrain take --author "Name <email>")

add     connects over SSH, shows the host key and pins it (or checks --host-key), installs
        what is missing (Debian's docker.io, iptables, iproute2; this machine's runsc; on
        runtime hosts an edge, Traefik on port 80 of the host), then commits hosts/NAME.yaml.
        Running it again changes nothing that is in place and makes no commit.
        --registry: the cluster's image registry as the host reaches it (plain HTTP);
        default: mlink.yaml's spec.registry.address.
        --yes: pin the key shown without asking (asked only on a terminal).
list    every host: address, roles, pinned key, SSH, Docker and edge answering (with
        latency), capacity, and what ml.ink runs there; exits 1 when one is not answering
remove  commits the removal of hosts/NAME.yaml; refused while database data is on it.
        The reconciler moves its apps to the other runtime hosts.
drain   commits schedulable: false in hosts/NAME.yaml: the reconciler moves every app off
        the host with zero downtime (new replicas healthy elsewhere, routes switch, then
        the old ones drain and go); waits until none runs there (default 600 s), printing
        progress. Refused, naming them, when an app fits on no other host, and for the
        last runtime host. Databases stay with their data.
undrain commits the drain's undoing: new work may be placed on the host again.
`;

const out = (s: string): void => { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); };

class UsageError extends Error {}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new UsageError(what);
  return v;
}

function int(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} ${v}: expected a whole number from ${min} to ${max}`);
  return n;
}

function roles(v: string | undefined): HostRole[] | undefined {
  if (v === undefined) return undefined;
  const list = v.split(',').map((r) => r.trim()).filter(Boolean);
  for (const r of list) if (r !== 'build' && r !== 'runtime') throw new UsageError(`--roles: ${JSON.stringify(r)} is not a role; give build, runtime or build,runtime`);
  if (!list.length) throw new UsageError('--roles: give build, runtime or build,runtime');
  return [...new Set(list)] as HostRole[];
}

function labels(v: string[] | undefined): Record<string, string> | undefined {
  if (!v?.length) return undefined;
  const outl: Record<string, string> = {};
  for (const kv of v) {
    const at = kv.indexOf('=');
    if (at < 1) throw new UsageError(`--label ${JSON.stringify(kv)}: give it as key=value, e.g. --label zone=fra1`);
    outl[kv.slice(0, at)] = kv.slice(at + 1);
  }
  return outl;
}

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

async function readHostFile(store: StateStore, name: string): Promise<HostManifest | undefined> {
  const text = await (await store.view(MAIN)).readText(hostPath(name));
  return text === null ? undefined : validateHost(hostPath(name), parse(text));
}

async function openRepo(repo: string | undefined): Promise<{ store: StateStore; cluster: string; declared: string[]; registry?: string }> {
  const store = StateStore.open(repo ?? dataDir().stateRepo);
  const config = await readClusterConfig(await store.view(MAIN));
  return { store, cluster: config.metadata.name, declared: config.spec.hosts.map((h) => h.name), ...(config.spec.registry ? { registry: config.spec.registry.address } : {}) };
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: {
        roles: { type: 'string' }, user: { type: 'string' }, port: { type: 'string' }, 'host-key': { type: 'string' },
        cpu: { type: 'string' }, 'memory-mb': { type: 'string' }, label: { type: 'string', multiple: true },
        registry: { type: 'string' }, yes: { type: 'boolean' }, timeout: { type: 'string' },
        repo: { type: 'string' }, author: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    process.stderr.write(`mlink host: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  const [action, ...args] = positionals;
  if (v.help || !action) { (v.help ? process.stdout : process.stderr).write(HELP); return v.help ? 0 : 2; }
  try {
    switch (action) {
      case 'add': return await add(need(args[0], 'name the host: mlink host add NAME ADDRESS'), need(args[1], 'give the address: mlink host add NAME ADDRESS'), v);
      case 'list': return await list(v);
      case 'remove': return await remove(need(args[0], 'name the host: mlink host remove NAME'), v);
      case 'drain': case 'undrain': {
        const name = need(args[0], `name the host: mlink host ${action} NAME`);
        const { store } = await openRepo(v.repo as string | undefined);
        const opts = { store, author: v.author as string | undefined, timeoutS: int('timeout', v.timeout as string | undefined, 1, 86400), out };
        return await (action === 'drain' ? drain(name, opts) : undrain(name, opts));
      }
      default: throw new UsageError(`unknown action ${JSON.stringify(action)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`mlink host ${action}: ${e.message}\n\n${HELP}`); return 2; }
    process.stderr.write(`mlink host ${action}: ${(e as Error).message}\n`);
    return 1;
  }
}

type Values = Record<string, string | boolean | string[] | undefined>;

async function add(name: string, address: string, v: Values): Promise<number> {
  const t0 = Date.now();
  if (!DNS_LABEL.test(name)) throw new UsageError(`NAME ${JSON.stringify(name)} must be a DNS label (a-z, 0-9 and '-', starting with a letter)`);
  const given = {
    roles: roles(v.roles as string | undefined),
    user: v.user as string | undefined,
    port: int('port', v.port as string | undefined, 1, 65535),
    hostKey: v['host-key'] === undefined ? undefined : checkFingerprint(v['host-key'] as string, '--host-key'),
    labels: labels(v.label as string[] | undefined),
  };
  const cpu = v.cpu === undefined ? undefined : Number(v.cpu);
  const memoryMb = int('memory-mb', v['memory-mb'] as string | undefined, 64, 16777216);
  if ((cpu === undefined) !== (memoryMb === undefined)) throw new UsageError('--cpu and --memory-mb go together: placement counts both');
  if (cpu !== undefined && !(cpu >= 0.1 && cpu <= 4096)) throw new UsageError(`--cpu ${String(v.cpu)}: expected cores from 0.1 to 4096`);
  const givenRegistry = v.registry as string | undefined;
  if (givenRegistry !== undefined && !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^[0-9.]+\/\d{1,2}$/.test(givenRegistry)) throw new UsageError(`--registry ${JSON.stringify(givenRegistry)}: give the registry as HOST:PORT (or a CIDR) as the host reaches it`);

  const { store, declared, registry: clusterRegistry } = await openRepo(v.repo as string | undefined);
  // Builds push there and runtime hosts pull from there (hosts/registry-relay.ts serves it).
  const registry = givenRegistry ?? clusterRegistry;
  if (!registry) out('note: mlink.yaml names no spec.registry.address, so this host cannot push or pull built images yet; set it to an address of the control plane this host reaches, then run host add again');
  if (declared.includes(name)) throw new Error(`host ${name} is declared in mlink.yaml's spec.hosts; pick another name, or edit mlink.yaml`);
  const existing = await readHostFile(store, name);
  const input = { name, address, ...given, ...(cpu !== undefined ? { capacity: { cpu, memoryMb: memoryMb! } } : {}) };
  const port = given.port ?? existing?.spec.ssh.port ?? 22;
  const user = given.user ?? existing?.spec.ssh.user ?? 'root';
  // Every field is checked before anything is sent to the host (the key is a placeholder here).
  hostManifest({ ...input, hostKey: given.hostKey ?? existing?.spec.ssh.hostKey ?? `SHA256:${'A'.repeat(43)}` }, existing);

  // The key: the one given, else the one pinned already, else the one the host shows now.
  const seen = await probeHostKey(address, port);
  out(`host key of ${address}:${port}: ${seen}`);
  const expected = given.hostKey ?? existing?.spec.ssh.hostKey;
  if (expected && expected !== seen) {
    const source = given.hostKey ? '--host-key says' : `${hostPath(name)} pins`;
    process.stderr.write(`mlink host add: host ${name} (${address}:${port}): SSH host key mismatch: ${source} ${expected}, the server showed ${seen}; refused, nothing was run there.\n`
      + 'If the host was reinstalled, check the key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it with --host-key.\n');
    return 1;
  }
  if (!expected) {
    out(`pinning ${seen}: compare it with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on the host's console`);
    if (process.stdin.isTTY && !v.yes && !/^y(es)?$/i.test(await ask(`Is ${seen} the key of ${name}? [y/N] `))) {
      process.stderr.write('mlink host add: not pinned; nothing was run there\n');
      return 1;
    }
  }

  const key = await loadControlKey(controlKeyFile());
  if (key.created) out(`made the control plane's SSH key ${controlKeyFile()} (${key.fingerprint})`);
  const host = new SshHost({ name, address, port, user, privateKey: key.privateKey, hostKey: seen });
  try {
    const reached = await host.run({ argv: ['true'] }).then(() => undefined, (e: Error) => e);
    if (reached instanceof HostKeyMismatchError) { process.stderr.write(`mlink host add: ${reached.message}\n`); return 1; }
    if (reached) {
      if (/authentication methods failed/i.test(reached.message)) {
        process.stderr.write(`mlink host add: host ${name}: ${user}@${address}:${port} does not accept the control plane's key (${key.fingerprint}).\n`
          + `Add this line to ~${user}/.ssh/authorized_keys on the host, then run this command again:\n${key.publicKey}\n`
          + `for example, on the host: echo '${key.publicKey}' >> ~${user}/.ssh/authorized_keys\n`);
        return 1;
      }
      throw reached;
    }
    const roleList = given.roles ?? existing?.spec.roles ?? ['build', 'runtime'];
    const report = await provisionHost(host, {
      roles: roleList, ...(registry ? { insecureRegistries: [registry] } : {}), edgeWebPort: REMOTE_EDGE_WEB_PORT, out,
    });
    const manifest = hostManifest({ ...input, hostKey: seen }, existing);
    const path = hostPath(name);
    const text = await (await store.view(MAIN)).readText(path);
    if (text !== null && sameHost(manifest, text)) {
      out(`${path} unchanged; no commit (${report.changes.length ? `${report.changes.length} changes on the host` : 'host ready as it was'}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      return 0;
    }
    const author = humanIdentity(v.author as string | undefined);
    const r = await store.commit({
      ref: MAIN, author,
      message: `${existing ? 'Update' : 'Add'} host ${name} (${manifest.spec.roles.join(', ')}) at ${address}\n\n`
        + `SSH ${user}@${address}:${port}, host key ${seen} pinned.\n`
        + (report.changes.length ? `Provisioned: ${report.changes.join('; ')}.\n` : 'Ready as it was: nothing installed.\n')
        + `\nMlink-Tool: mlink host add\n`,
      prepare: async () => [{ path, content: renderHostFile(manifest) }],
    });
    out(`committed ${path} as ${r.commit?.slice(0, 12) ?? '(no change)'} by ${author.name} <${author.email}> (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return 0;
  } finally {
    await host.close();
  }
}

async function list(v: Values): Promise<number> {
  const { store } = await openRepo(v.repo as string | undefined);
  const pool = await clusterHosts(await store.view(MAIN));
  try {
    const health = await poolHealth(pool);
    if (v.json) { out(JSON.stringify({ hosts: health }, null, 2)); return 0; }
    const rows = [['HOST', 'ADDRESS', 'ROLES', 'KEY', 'STATE', 'SSH', 'DOCKER', 'EDGE', 'CAPACITY', 'RUNNING']];
    for (const h of health) {
      rows.push([
        h.name, h.address === 'local' ? 'local' : `${h.address}:${h.port ?? 22}`, h.roles.join(','),
        h.hostKey ?? '-', stateText(h), checkText(h.ssh), h.docker.ok ? `${checkText(h.docker)} (${h.docker.detail ?? '?'})` : checkText(h.docker), checkText(h.edge),
        h.capacity ? `${h.capacity.cpu} cpu, ${h.capacity.memoryMb} MiB` : '-', runningText(h.running),
      ]);
    }
    out(table(rows));
    return health.every((h) => h.ssh.ok && h.docker.ok && (h.edge?.ok ?? true)) ? 0 : 1;
  } finally {
    await pool.close();
  }
}

async function remove(name: string, v: Values): Promise<number> {
  const { store, cluster, declared } = await openRepo(v.repo as string | undefined);
  if (declared.includes(name)) throw new Error(`host ${name} is declared in mlink.yaml's spec.hosts, not in hosts/; edit mlink.yaml to remove it`);
  const existing = await readHostFile(store, name).catch((e: unknown) => {
    if (e instanceof SchemaError) return undefined; // an invalid file can still be removed
    throw e;
  });
  const path = hostPath(name);
  if (!(await (await store.view(MAIN)).readText(path))) throw new Error(`no ${path} on main; \`mlink host list\` shows the hosts there are`);
  if (existing) {
    const pool = await clusterHosts(await store.view(MAIN));
    try {
      const volumes = await observeVolumes(pool.get(name), cluster).catch((e: Error) => {
        throw new Error(`cannot tell whether database data is on host ${name} (${e.message}); bring it back so it can be checked, then remove it`);
      });
      if (volumes.length) {
        throw new Error(`host ${name} holds the data of ${volumes.map((x) => `database ${x.key.project}/${x.key.name} (volume ${x.name})`).join(', ')}; `
          + 'move or delete those databases first (data is never removed with a host)');
      }
    } finally {
      await pool.close();
    }
  }
  if (process.stdin.isTTY && !v.yes && (await ask(`Remove host ${name} from the cluster? Type ${name} to go on: `)) !== name) {
    process.stderr.write('mlink host remove: not removed\n');
    return 1;
  }
  const author = humanIdentity(v.author as string | undefined);
  const r = await store.commit({
    ref: MAIN, author,
    message: `Remove host ${name}${existing ? ` (${existing.spec.roles.join(', ')}) at ${existing.spec.address}` : ''}\n\n`
      + 'The reconciler moves the apps placed there to the other runtime hosts; nothing is removed from the machine itself.\n\nMlink-Tool: mlink host remove\n',
    prepare: async () => [{ path, content: null }],
  });
  out(`committed the removal of ${path} as ${r.commit?.slice(0, 12) ?? '(no change)'}; the reconciler moves the apps placed on ${name} to the other runtime hosts`);
  return 0;
}
