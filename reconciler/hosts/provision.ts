// Making a Debian machine reached over SSH ready for its roles, as `mlink setup` makes
// this one ready: Debian's docker.io, iptables and iproute2; this machine's runsc; the
// runsc runtime and the cluster's registry in daemon.json; dockerd running; the base
// images; a container under gVisor proven; and on a runtime host its own edge (Traefik
// in a container). Every step checks first and does only what is missing, so a second
// run changes nothing and takes seconds. What runs is rendered in provision-commands.ts.
import Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { infraConfig, versions, type InfraConfig } from '../../infra/config.js';
import { runSteps, type StepOf, type StepResult } from '../../infra/setup/step.js';
import { demux } from '../status/app-logs.js';
import { REMOTE_EDGE, REMOTE_EDGE_WEB_PORT } from './cluster.js';
import { must, type Host } from './host.js';
import { copyImage, imageId } from './image-copy.js';
import {
  DAEMON_JSON, HOST_PACKAGES, RUNSC_PATH, cmd, dockerdCommands, isDebian, mergeDaemonJson, parseDaemonJson, parseOsRelease, parsePackages, parseSha256,
  renderDaemonJson, type EdgeOptions,
} from './provision-commands.js';
import { edgeStep } from './provision-edge.js';

export type HostRole = 'build' | 'runtime';

/** A host that can take a local file (SshHost.upload: SFTP, streamed). */
export type ProvisionTarget = Host & { upload(localPath: string, remotePath: string, mode?: number): Promise<void> };

export interface ProvisionOptions {
  roles: HostRole[];
  /** Registries its Docker may reach over plain HTTP (`host:port` or a CIDR): the cluster's registry on the private network. */
  insecureRegistries?: string[];
  /** The port of a runtime host's edge (web entrypoint, every address of the host); default 80. */
  edgeWebPort?: number;
  /** This machine's infrastructure: where runsc and Traefik are, and the base images' names. */
  cfg?: InfraConfig;
  /** This machine's Docker, which the base images are copied from. */
  localDocker?: Docker;
  /** Progress, one line per step. */
  out?: (line: string) => void;
}

export interface ProvisionReport {
  host: string;
  roles: HostRole[];
  /** What was installed, uploaded, written or started; empty when the host was ready already. */
  changes: string[];
  versions: { os: string; docker?: string; runsc?: string; traefik?: string; packages: Record<string, string> };
  /** The edge of a runtime host. */
  edge?: { container: string; image: string; web: string; api: string };
  steps: StepResult[];
  ms: number;
}

export interface ProvisionCtx {
  host: ProvisionTarget;
  opts: ProvisionOptions;
  cfg: InfraConfig;
  local: Docker;
  /** What earlier steps found (steps get a copy of the context; this object is shared). */
  facts: {
    systemd: boolean;
    /** daemon.json changed in this run: how dockerd takes it. */
    config?: 'reload' | 'restart';
  };
  edge: EdgeOptions;
  report: ProvisionReport;
}

const fileHashes = new Map<string, string>();

async function fileSha256(path: string): Promise<string> {
  const st = statSync(path);
  const key = `${path}:${st.size}:${st.mtimeMs}`;
  const hit = fileHashes.get(key);
  if (hit) return hit;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  const sum = h.digest('hex');
  fileHashes.set(key, sum);
  return sum;
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${Math.round(timeoutMs / 1000)} s${last ? ` (last: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const systemStep: StepOf<ProvisionCtx> = {
  name: 'system',
  async done(c) {
    const os = parseOsRelease((await c.host.run(cmd.osRelease())).stdout);
    if (!isDebian(os)) throw new Error(`host ${c.host.name} runs ${os.pretty}; ml.ink installs what it needs with Debian's packages, so it needs Debian (or a derivative with apt)`);
    if ((await c.host.run(cmd.hasApt())).code !== 0) throw new Error(`host ${c.host.name}: no apt-get or dpkg-query on ${os.pretty}`);
    const uid = (await must(c.host, cmd.whoami())).trim();
    if (uid !== '0') throw new Error(`host ${c.host.name}: the SSH user has uid ${uid}; provisioning installs packages and starts dockerd, so it needs root (--user root, with the control key in root's authorized_keys)`);
    c.facts.systemd = (await c.host.run(cmd.systemd())).code === 0;
    c.report.versions.os = os.pretty;
    return `${os.pretty}, apt, root, ${c.facts.systemd ? 'systemd' : 'no init system (dockerd via start-stop-daemon)'}`;
  },
  async apply() { return 'checked'; },
};

async function installed(c: ProvisionCtx): Promise<Map<string, string>> {
  return parsePackages((await c.host.run(cmd.packages(HOST_PACKAGES))).stdout);
}

const packagesStep: StepOf<ProvisionCtx> = {
  name: 'packages',
  async done(c) {
    const have = await installed(c);
    c.report.versions.packages = Object.fromEntries(have);
    if (HOST_PACKAGES.some((p) => !have.has(p))) return undefined;
    return HOST_PACKAGES.map((p) => `${p} ${have.get(p)}`).join(', ');
  },
  async apply(c) {
    const before = await installed(c);
    const missing = HOST_PACKAGES.filter((p) => !before.has(p));
    c.progress(`apt-get update and install ${missing.join(' ')} from the host's Debian mirror`);
    await must(c.host, cmd.aptUpdate());
    const got = /Need to get ([\d.,]+ [kMG]?B)/.exec(await must(c.host, cmd.aptInstall(missing)))?.[1];
    const after = await installed(c);
    c.report.versions.packages = Object.fromEntries(after);
    const still = missing.filter((p) => !after.has(p));
    if (still.length) throw new Error(`apt-get install finished but ${still.join(', ')} is not installed`);
    c.report.changes.push(...missing.map((p) => `installed ${p} ${after.get(p)}`));
    return `installed ${missing.map((p) => `${p} ${after.get(p)}`).join(', ')}${got ? ` (${got} from the mirror)` : ''}`;
  },
};

// gVisor built from its Go module prints VERSION_MISSING; the binary is this machine's, of the version setup built.
async function runscVersion(c: ProvisionCtx): Promise<string | undefined> {
  const r = await c.host.run(cmd.runscVersion());
  if (r.code !== 0) return undefined;
  const v = r.stdout.split('\n')[0]?.replace(/^runsc version\s*/, '').trim();
  return !v || v === 'VERSION_MISSING' ? `gvisor ${versions.gvisor}` : v;
}

const runscStep: StepOf<ProvisionCtx> = {
  name: 'runsc',
  async done(c) {
    const [want, got] = await Promise.all([fileSha256(c.cfg.runsc.binary), c.host.run(cmd.sha256(RUNSC_PATH)).then((r) => parseSha256(r.stdout))]);
    if (want !== got) return undefined;
    c.report.versions.runsc = await runscVersion(c);
    return `${RUNSC_PATH} (${c.report.versions.runsc ?? 'version unknown'}) matches this machine's, sha256 ${want.slice(0, 12)}`;
  },
  async apply(c) {
    const size = statSync(c.cfg.runsc.binary).size;
    c.progress(`uploading ${c.cfg.runsc.binary} (${Math.round(size / 1e6)} MB) over SFTP`);
    await c.host.upload(c.cfg.runsc.binary, RUNSC_PATH, 0o755);
    const [want, got] = await Promise.all([fileSha256(c.cfg.runsc.binary), c.host.run(cmd.sha256(RUNSC_PATH)).then((r) => parseSha256(r.stdout))]);
    if (want !== got) throw new Error(`${RUNSC_PATH} has sha256 ${got ?? 'none'} after the upload, expected ${want}`);
    c.report.versions.runsc = await runscVersion(c);
    c.report.changes.push(`uploaded runsc ${c.report.versions.runsc ?? ''}`.trim());
    return `uploaded ${Math.round(size / 1e6)} MB to ${RUNSC_PATH}, sha256 ${want.slice(0, 12)}`;
  },
};

function wantedDaemonJson(c: ProvisionCtx, existing: Record<string, unknown>): ReturnType<typeof mergeDaemonJson> {
  return mergeDaemonJson(existing, { runsc: { path: RUNSC_PATH, runtimeArgs: [] }, insecureRegistries: c.opts.insecureRegistries ?? [] });
}

const dockerConfigStep: StepOf<ProvisionCtx> = {
  name: 'docker config',
  async done(c) {
    const m = wantedDaemonJson(c, parseDaemonJson(c.host.name, await c.host.files.read(DAEMON_JSON)));
    if (m.changed.length) return undefined;
    const regs = c.opts.insecureRegistries ?? [];
    return `${DAEMON_JSON} has the runsc runtime${regs.length ? ` and registries ${regs.join(', ')}` : ''}`;
  },
  async apply(c) {
    const existing = parseDaemonJson(c.host.name, await c.host.files.read(DAEMON_JSON));
    const m = wantedDaemonJson(c, existing);
    await c.host.files.write(DAEMON_JSON, renderDaemonJson(m.config));
    c.facts.config = m.reloadable ? 'reload' : 'restart';
    c.report.changes.push(`wrote ${DAEMON_JSON} (${m.changed.join(', ')})`);
    return `wrote ${m.changed.join(', ')} into ${DAEMON_JSON}, kept the rest`;
  },
};

async function dockerAnswers(c: ProvisionCtx): Promise<boolean> {
  return c.host.docker.ping().then(() => true, () => false);
}

/** Docker answers over SSH and shows what daemon.json asks for (a reload takes a moment). */
async function waitDocker(c: ProvisionCtx): Promise<string> {
  const regs = c.opts.insecureRegistries ?? [];
  return eventually(`host ${c.host.name}: Docker answering over SSH with the runsc runtime`, async () => {
    const info = await c.host.docker.info() as { ServerVersion: string; Runtimes?: Record<string, unknown>; RegistryConfig?: { IndexConfigs?: Record<string, { Secure: boolean }>; InsecureRegistryCIDRs?: string[] } };
    if (!info.Runtimes?.runsc) return undefined;
    const insecure = new Set([...Object.entries(info.RegistryConfig?.IndexConfigs ?? {}).filter(([, v]) => !v.Secure).map(([k]) => k), ...(info.RegistryConfig?.InsecureRegistryCIDRs ?? [])]);
    if (regs.some((r) => !insecure.has(r))) return undefined;
    return info.ServerVersion;
  }, 60_000);
}

const dockerDaemonStep: StepOf<ProvisionCtx> = {
  name: 'docker daemon',
  async done(c) {
    if (c.facts.config || !(await dockerAnswers(c))) return undefined;
    c.report.versions.docker = await waitDocker(c);
    return `dockerd ${c.report.versions.docker} answering over SSH`;
  },
  async apply(c) {
    const how = dockerdCommands(c.facts.systemd);
    let what: string;
    if (!(await dockerAnswers(c))) {
      await must(c.host, how.start);
      what = `started dockerd${c.facts.systemd ? ' (systemctl)' : ' (start-stop-daemon)'}`;
    } else if (c.facts.config === 'reload') {
      await must(c.host, how.reload);
      what = 'dockerd re-read daemon.json (SIGHUP)';
    } else {
      await must(c.host, how.restart);
      what = 'restarted dockerd for its new daemon.json';
    }
    c.report.versions.docker = await waitDocker(c);
    c.report.changes.push(what);
    return `${what}; ${c.report.versions.docker} answering over SSH`;
  },
};

function baseImages(c: ProvisionCtx): string[] {
  return [c.cfg.images.busybox, c.cfg.images.debian];
}

const imagesStep: StepOf<ProvisionCtx> = {
  name: 'base images',
  async done(c) {
    for (const ref of baseImages(c)) {
      const [want, got] = await Promise.all([imageId(c.local, ref), imageId(c.host.docker, ref)]);
      if (!want || want !== got) return undefined;
    }
    return `${baseImages(c).join(', ')} present`;
  },
  async apply(c) {
    const loaded: string[] = [];
    for (const ref of baseImages(c)) {
      c.progress(`docker save ${ref} here, docker load there`);
      if (await copyImage(c.local, c.host, ref)) loaded.push(ref);
    }
    c.report.changes.push(...loaded.map((r) => `loaded ${r}`));
    return `loaded ${loaded.join(', ')}`;
  },
};

/** Runs dmesg in a busybox container under runsc through the host's Docker: gVisor's kernel says so. */
export async function provesGvisorOn(host: Host, image: string): Promise<string> {
  const c = await host.docker.createContainer({ Image: image, Cmd: ['dmesg'], Labels: { 'ink.ml.probe': 'runsc' }, HostConfig: { Runtime: 'runsc', NetworkMode: 'none' } });
  try {
    await c.start();
    const { StatusCode } = await c.wait() as { StatusCode: number };
    const out = demux(await c.logs({ stdout: true, stderr: true }) as unknown as Buffer).trim();
    if (StatusCode !== 0 || !/Starting gVisor/.test(out)) throw new Error(`host ${host.name}: a container under runsc exited ${StatusCode} without gVisor's kernel: ${out.split('\n').slice(-3).join(' | ')}`);
    return out.split('\n')[0]!;
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

const gvisorStep: StepOf<ProvisionCtx> = {
  name: 'gVisor',
  async done(c) {
    const line = await provesGvisorOn(c.host, c.cfg.images.busybox);
    return `a container under runsc runs gVisor's kernel (dmesg: ${line.replace(/^\[[^\]]*\]\s*/, '')})`;
  },
  async apply() { return 'checked'; },
};

/** The steps for a host's roles, in order: what `provisionHost` runs. */
export function provisionSteps(roles: HostRole[]): Array<StepOf<ProvisionCtx>> {
  return [systemStep, packagesStep, runscStep, dockerConfigStep, dockerDaemonStep, imagesStep, gvisorStep, ...(roles.includes('runtime') ? [edgeStep] : [])];
}

/**
 * Makes `host` ready for `roles`, idempotently: each step checks and does only what is
 * missing, printing one line (`[2/8] packages: done, installed docker.io 20.10.24… (21.3 s)`).
 * Throws naming the host and the step that failed.
 */
export async function provisionHost(host: ProvisionTarget, opts: ProvisionOptions): Promise<ProvisionReport> {
  const started = Date.now();
  const cfg = opts.cfg ?? infraConfig();
  const webPort = opts.edgeWebPort ?? REMOTE_EDGE_WEB_PORT;
  if (!Number.isInteger(webPort) || webPort < 1 || webPort > 65535) throw new Error(`edgeWebPort ${String(opts.edgeWebPort)} is not a TCP port (1 to 65535)`);
  const report: ProvisionReport = { host: host.name, roles: [...opts.roles], changes: [], versions: { os: 'unknown', packages: {} }, steps: [], ms: 0 };
  const ctx: ProvisionCtx = {
    host, opts, cfg, local: opts.localDocker ?? new Docker(), facts: { systemd: false }, report,
    edge: { version: versions.traefik, webAddress: `:${webPort}`, apiAddress: new URL(REMOTE_EDGE.api).host, routesDir: REMOTE_EDGE.routesDir },
  };
  report.steps = await runSteps(provisionSteps(opts.roles), ctx, opts.out ?? (() => undefined),
    (step, e) => new Error(e.message.startsWith(`host ${host.name}`) ? `${e.message} (step ${step})` : `host ${host.name}: step ${step}: ${e.message}`));
  report.ms = Date.now() - started;
  return report;
}
