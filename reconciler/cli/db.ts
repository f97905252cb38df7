// `mlink db`: databases for the humans who run ml.ink, beside `mlink up` on the control
// plane: what there is (and what data is retained), backups and their drills, restores,
// the connection URL for an operator, and purge, the only way data is ever removed.
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { infraConfig, temporalAddress } from '../../infra/config.js';
import type { Database } from '../../schemas/index.js';
import { createBackupService } from '../backups/service.js';
import { findServer } from '../backups/servers.js';
import { checkCredentials, connectionUrl, type Credentials } from '../databases/credentials.js';
import { removeVolume } from '../databases/volumes.js';
import { clusterHosts } from '../hosts/cluster.js';
import { credentialsPath, listManifests, networkName, readManifest } from '../layout.js';
import { LABEL, MANAGED_BY } from '../model.js';
import { readClusterConfig } from '../source/desired.js';
import { decryptSecret, loadClusterKey } from '../state/secrets.js';
import { MAIN, StateStore } from '../state/store.js';
import { createLiveState } from '../status/live-state.js';
import { ReconcilerClient } from '../temporal/client.js';
import { dataDir } from '../util/paths.js';
import { table } from './status.js';

const HELP = `usage: mlink db list [--project P] [--json]
       mlink db backup NAME [--project P] [--wait SECONDS]
       mlink db backups NAME [--project P] [--json]
       mlink db verify NAME [BACKUP] [--project P]
       mlink db restore NAME [--backup ID | --at TIME] [--into NAME] [--project P] [--wait SECONDS]
       mlink db url NAME [--project P]
       mlink db purge NAME [--project P] [--yes]

list      databases on main with their phase, and data retained after a delete
backup    a backup now, proven by a restore drill
backups   the backups of a database: time, size, drill result
verify    the restore drill of a backup again (default: the newest)
restore   a backup (default: the newest verified) or, for postgres, a time, into the
          database itself (after a safety backup) or into another existing database
url       the connection URL with its password, for an operator (never shown to agents)
purge     removes a database's retained data for good; only for a database that is no
          longer in git; asks for its name unless --yes
`;

interface Ctx { store: StateStore; cluster: string; project: string }

async function open(repo: string | undefined, project: string | undefined): Promise<Ctx> {
  const store = StateStore.open(repo ?? dataDir().stateRepo);
  const cluster = (await readClusterConfig(await store.view(MAIN))).metadata.name;
  return { store, cluster, project: project ?? 'default' };
}

async function client(ctx: Ctx): Promise<ReconcilerClient> {
  const cfg = infraConfig();
  return ReconcilerClient.connect({ address: temporalAddress(cfg), namespace: cfg.temporal.namespace, cluster: ctx.cluster });
}

const out = (s: string): void => { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); };

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      project: { type: 'string' }, repo: { type: 'string' }, json: { type: 'boolean' }, yes: { type: 'boolean' }, wait: { type: 'string' },
      backup: { type: 'string' }, at: { type: 'string' }, into: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  const [action, name, extra] = positionals;
  if (values.help || !action) { (values.help ? process.stdout : process.stderr).write(HELP); return values.help ? 0 : 2; }
  if (action !== 'list' && !name) { process.stderr.write(`mlink db ${action}: name the database\n\n${HELP}`); return 2; }
  const waitMs = Number(values.wait ?? 600) * 1000;
  try {
    const ctx = await open(values.repo, values.project);
    const view = await ctx.store.view(MAIN);
    const hosts = await clusterHosts(view);
    try {
      switch (action) {
        case 'list': return await list(ctx, hosts, values.json ?? false);
        case 'backup': case 'backups': case 'verify': case 'restore': {
          const c = await client(ctx);
          try {
            const service = createBackupService(c, dataDir().backups);
            const manifest = await readManifest<Database>(view, 'Database', ctx.project, name!);
            if (!manifest && action !== 'backups') throw new Error(`database ${ctx.project}/${name} is not in git; \`mlink db list\` shows the databases there are`);
            if (action === 'backup') {
              const r = await service.backup({ project: ctx.project, name: name!, keep: manifest!.manifest.spec.backups?.keep ?? 7 }, waitMs);
              out(`${r.state}: ${r.message} (workflow ${r.workflow})`);
              return r.state === 'done' && r.backup?.verified ? 0 : 1;
            }
            const backups = await service.list({ project: ctx.project, name: name! });
            if (action === 'backups') {
              if (values.json) { out(JSON.stringify(backups, null, 2)); return 0; }
              if (!backups.length) { out(`no backups of ${ctx.project}/${name}`); return 0; }
              out(table([['BACKUP', 'TIME', 'BYTES', 'DRILL'], ...backups.map((b) => [b.id, b.at, String(b.size), b.verified === true ? 'passed' : b.verified === false ? `failed: ${String((b.drill as { reason?: string } | undefined)?.reason ?? '')}` : 'not run'])]));
              return 0;
            }
            if (action === 'verify') {
              const id = extra ?? backups[0]?.id;
              if (!id) throw new Error(`${ctx.project}/${name} has no backups to verify`);
              const o = await c.outcome<import('../backups/activities.js').BackupSummary>(await c.startVerify(ctx.project, name!, id), waitMs);
              if (o.state !== 'done') { out(`${o.state}: ${'message' in o ? o.message : 'still running'}`); return 1; }
              out(o.result.verified ? `backup ${id}: drill passed` : `backup ${id}: drill failed: ${o.result.drill?.reason ?? 'unknown'}`);
              return o.result.verified ? 0 : 1;
            }
            const into = values.into ?? name!;
            if (values.into && !(await readManifest<Database>(view, 'Database', ctx.project, values.into))) throw new Error(`--into ${values.into}: no such database; create it first (create_database), or restore into ${name}`);
            const r = await service.restore({ project: ctx.project, name: name!, into, ...(values.backup ? { backup: values.backup } : {}), ...(values.at ? { at: new Date(values.at).toISOString() } : {}), fresh: false }, waitMs);
            out(`${r.state}: ${r.message} (workflow ${r.workflow})`);
            return r.state === 'done' ? 0 : 1;
          } finally {
            await c.close();
          }
        }
        case 'url': return await url(ctx, hosts, name!);
        case 'purge': return await purge(ctx, hosts, name!, values.yes ?? false);
        default:
          process.stderr.write(`mlink db: unknown action ${JSON.stringify(action)}\n\n${HELP}`);
          return 2;
      }
    } finally {
      await hosts.close();
    }
  } catch (e) {
    process.stderr.write(`mlink db ${action}: ${(e as Error).message}\n`);
    return 1;
  }
}

async function list(ctx: Ctx, hosts: Awaited<ReturnType<typeof clusterHosts>>, json: boolean): Promise<number> {
  const view = await ctx.store.view(MAIN);
  const live = createLiveState({ cluster: ctx.cluster, store: ctx.store, hosts, webPort: infraConfig().traefik.webPort });
  const { items } = await listManifests<Database>(view, 'Database');
  const states = await live.statusMany!(items.map((i) => ({ kind: 'Database' as const, project: i.manifest.metadata.project, name: i.manifest.metadata.name })));
  const retained = await live.retained!();
  if (json) { out(JSON.stringify({ databases: items.map((i, n) => ({ ...i.manifest.metadata, engine: i.manifest.spec.engine, live: states[n] })), retained }, null, 2)); return 0; }
  const rows = [['DATABASE', 'ENGINE', 'PHASE', 'HOST', 'DETAIL']];
  items.forEach((i, n) => {
    const s = states[n]!;
    rows.push([`${i.manifest.metadata.project}/${i.manifest.metadata.name}`, i.manifest.spec.engine, s.known ? s.phase : 'Unknown', s.known ? s.database?.host ?? '-' : '-', s.known ? s.message ?? '' : s.reason]);
  });
  for (const r of retained) rows.push([`${r.project}/${r.name}`, r.engine, 'Retained', r.host, `data kept on ${r.volume} since ${r.since}${r.size_bytes !== undefined ? `, ${r.size_bytes} bytes` : ''}; revert the delete to bring it back, or mlink db purge`]);
  out(rows.length > 1 ? table(rows) : 'no databases');
  return 0;
}

async function url(ctx: Ctx, hosts: Awaited<ReturnType<typeof clusterHosts>>, name: string): Promise<number> {
  const view = await ctx.store.view(MAIN);
  const armored = await view.readText(credentialsPath(ctx.project, name));
  if (!armored) throw new Error(`database ${ctx.project}/${name} has no credentials on main`);
  const creds = JSON.parse(await decryptSecret(armored, (await loadClusterKey(dataDir().keys)).identity)) as Credentials;
  checkCredentials(creds);
  const server = await findServer(hosts, ctx.cluster, ctx.project, name);
  const info = server?.running ? await server.host.docker.getContainer(server.container).inspect() : undefined;
  const address = info?.NetworkSettings.Networks[networkName(ctx.cluster, ctx.project)]?.IPAddress;
  if (!address) throw new Error(`database ${ctx.project}/${name} does not run now; its URL has the address it runs at`);
  out(`${connectionUrl(creds, address)}   (reachable from ${server!.host.name}'s ${networkName(ctx.cluster, ctx.project)} network; keep it secret)`);
  return 0;
}

async function purge(ctx: Ctx, hosts: Awaited<ReturnType<typeof clusterHosts>>, name: string, yes: boolean): Promise<number> {
  if (await readManifest<Database>(await ctx.store.view(MAIN), 'Database', ctx.project, name)) {
    throw new Error(`database ${ctx.project}/${name} is in git; delete it first (delete_database), then purge its retained data`);
  }
  const found: Array<{ host: string; volume: string }> = [];
  for (const h of hosts.names('runtime')) {
    const { Volumes } = await hosts.get(h).docker.listVolumes({ filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${ctx.cluster}`, `${LABEL.project}=${ctx.project}`, `${LABEL.name}=${name}`] } });
    for (const v of Volumes ?? []) if (v.Labels?.[LABEL.kind] === 'Database' || v.Labels?.[LABEL.kind] === 'DatabaseWal') found.push({ host: h, volume: v.Name });
  }
  if (!found.length) { out(`no retained data of ${ctx.project}/${name}`); return 0; }
  const what = found.map((f) => `${f.volume} on ${f.host}`).join(', ');
  if (!yes) {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = (await rl.question(`This removes ${what} for good (backups stay in ${dataDir().backups}). Type ${name} to go on: `)).trim();
    rl.close();
    if (answer !== name) { out('nothing removed'); return 1; }
  }
  for (const f of found) await removeVolume(hosts.get(f.host).docker, f.volume);
  out(`purged ${what}; backups of ${ctx.project}/${name} are kept in ${dataDir().backups}/${ctx.project}/${name}`);
  return 0;
}
