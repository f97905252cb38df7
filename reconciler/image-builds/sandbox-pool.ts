// Untrusted build steps (installs, compiles, checks) run in a gVisor container kept per
// app and toolchain between builds: a step is one `docker exec` into a sandbox that is
// already up (about 0.25 s here) instead of a new sandbox per build (about 0.7 s). The
// sandbox mounts only that app's build directory, carries the build limits, and is
// removed after `idleMs` without a build, when a step overruns the time limit, and when
// the worker stops. Sandboxes left by a worker that died are removed by the next one.
// On this machine the sandbox mounts the build directory; on a build host reached over
// SSH there is no shared directory, so a step's files are copied in before it runs and
// back after, through Docker's archive API, into a volume of the sandbox's own (gVisor
// keeps a container's root filesystem in the sandbox, where a copy from outside is not
// seen; a mount is shared with the host).
// A syntax check needs no new process at all: the checker kept running in the sandbox
// (checker.ts) parses the files on request, about 10 ms instead of a node start.
import type Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { LABEL, MANAGED_BY } from '../model.js';
import { Checker, type Checked } from './checker.js';
import type { Limits } from './docker-steps.js';

export interface SandboxStep {
  project: string;
  name: string;
  /** The toolchain image the step needs. */
  image: string;
  /** Where the step runs, inside the app's build directory (see `dirOf`). */
  cwd: string;
  script: string;
  signal: AbortSignal;
  onLine: (l: string) => void;
}

const DIR_LABEL = 'ink.ml.build-dir';

interface Sandbox { container: Docker.Container; busy: number; idle?: NodeJS.Timeout; checker?: Promise<Checker> }

export class SandboxPool {
  private readonly sandboxes = new Map<string, Promise<Sandbox>>();

  constructor(private readonly opts: {
    docker: Docker; cluster: string; runtime: string; limits: Limits;
    /** Root of the per-app build directories (contexts live there while they build). */
    root: string;
    /** The build host is another machine: copy the step's files in and out instead of mounting them. */
    copy?: boolean;
    idleMs?: number;
  }) {}

  /** The host directory an app's build contexts are made in; the app's sandbox sees it at /work. */
  dirOf(project: string, name: string): string {
    const dir = join(this.opts.root, project, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Runs `step.script` with sh in the app's sandbox; the exit code, or -1 when stopped at the time limit. */
  run(step: SandboxStep): Promise<number> {
    return this.use(step, async (box) => {
      if (this.opts.copy) await this.copyIn(box, step);
      const exec = await box.container.exec({ Cmd: ['sh', '-c', step.script], WorkingDir: `/work/${step.cwd}`, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      let partial = '';
      const out = new PassThrough();
      out.on('data', (chunk: Buffer) => {
        partial += chunk.toString('utf8');
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) step.onLine(l);
      });
      box.container.modem.demuxStream(stream, out, out);
      await new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); stream.on('error', () => resolve()); });
      if (partial) step.onLine(partial);
      if (step.signal.aborted) return -1;
      const { ExitCode } = await exec.inspect();
      if (this.opts.copy) await this.copyOut(box, step);
      return ExitCode ?? -1;
    });
  }

  /** The step's directory (`/work/<cwd>`) as it is here, into the sandbox on the build host. */
  private async copyIn(box: Sandbox, step: Pick<SandboxStep, 'project' | 'name' | 'cwd'>): Promise<void> {
    const dir = this.dirOf(step.project, step.name);
    await execIn(box.container, ['rm', '-rf', `/work/${step.cwd}`]);
    await box.container.putArchive(tarOf(dir, step.cwd), { path: '/work' });
  }

  /** What the step left in its directory, back here (dependencies it installed are part of the image). */
  private async copyOut(box: Sandbox, step: Pick<SandboxStep, 'project' | 'name' | 'cwd'>): Promise<void> {
    const local = join(this.dirOf(step.project, step.name), step.cwd);
    const archive = (await box.container.getArchive({ path: `/work/${step.cwd}/.` })) as NodeJS.ReadableStream;
    rmSync(local, { recursive: true, force: true });
    mkdirSync(local, { recursive: true });
    await untarInto(local, archive);
    await execIn(box.container, ['rm', '-rf', `/work/${step.cwd}`]);
  }

  /**
   * Whether `files` (relative to the step's directory) parse as Node.js, asked of the
   * checker kept running in the app's sandbox (started with the sandbox's first check).
   * Throws when the checker cannot answer; the caller then runs `node --check` instead.
   */
  checkSyntax(step: Omit<SandboxStep, 'script' | 'onLine'>, files: string[]): Promise<Checked> {
    return this.use(step, async (box) => {
      if (this.opts.copy) await this.copyIn(box, step);
      if (box.checker) {
        const alive = await box.checker.then((c) => c.alive, () => false);
        if (!alive) box.checker = undefined;
      }
      box.checker ??= Checker.start(box.container);
      const checker = await box.checker;
      if (step.signal.aborted) throw new Error('stopped at the build time limit');
      return checker.check(`/work/${step.cwd}`, files);
    });
  }

  /**
   * Runs `fn` with the step's sandbox marked busy; the build's time limit removes the
   * sandbox. A sandbox that is no longer running (removed or killed from outside) is
   * replaced, and `fn` tried once more in the new one.
   */
  private async use<T>(step: Omit<SandboxStep, 'script' | 'onLine'>, fn: (box: Sandbox) => Promise<T>, retried = false): Promise<T> {
    const key = this.nameOf(step);
    const box = await this.acquire(key, step);
    box.busy++;
    clearTimeout(box.idle);
    const kill = (): void => { void this.discard(key, box); };
    step.signal.addEventListener('abort', kill);
    try {
      return await fn(box);
    } catch (e) {
      const running = await box.container.inspect().then((i) => i.State.Running, () => false);
      if (retried || step.signal.aborted || running) throw e;
    } finally {
      step.signal.removeEventListener('abort', kill);
      box.busy--;
      this.scheduleIdle(key, box);
    }
    await this.discard(key, box);
    return this.use(step, fn, true);
  }

  /** Removes this cluster's sandboxes that no build of this pool is using (left by a worker that died). */
  async removeLeftovers(): Promise<void> {
    const list = await this.opts.docker.listContainers({ all: true, filters: { label: [`${LABEL.kind}=Build`, `${LABEL.cluster}=${this.opts.cluster}`] } });
    await Promise.all(list
      .filter((c) => !this.sandboxes.has(c.Names[0]?.replace(/^\//, '') ?? ''))
      .map((c) => this.opts.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    if (!this.opts.copy) return;
    const { Volumes } = await this.opts.docker.listVolumes({ filters: { label: [`${LABEL.kind}=Build`, `${LABEL.cluster}=${this.opts.cluster}`] } });
    await Promise.all((Volumes ?? []).filter((v) => !this.sandboxes.has(v.Name.replace(/-work$/, ''))).map((v) => this.opts.docker.getVolume(v.Name).remove().catch(() => undefined)));
  }

  /** Removes every sandbox this pool knows (the worker is stopping). */
  async close(): Promise<void> {
    await Promise.all([...this.sandboxes.keys()].map(async (k) => {
      const box = await this.sandboxes.get(k)?.catch(() => undefined);
      if (box) await this.discard(k, box);
    }));
  }

  private nameOf(step: Pick<SandboxStep, 'project' | 'name' | 'image'>): string {
    const { runtime, limits } = this.opts;
    const h = createHash('sha256').update(JSON.stringify([step.image, runtime, limits.cpu, limits.memoryMb])).digest('hex').slice(0, 10);
    return `mlink-${this.opts.cluster}-build-${step.project}-${step.name}-${h}`;
  }

  private acquire(key: string, step: Pick<SandboxStep, 'project' | 'name' | 'image'>): Promise<Sandbox> {
    let box = this.sandboxes.get(key);
    if (!box) {
      box = this.create(key, step);
      this.sandboxes.set(key, box);
      box.catch(() => this.sandboxes.delete(key));
    }
    return box;
  }

  private async create(key: string, step: Pick<SandboxStep, 'project' | 'name' | 'image'>): Promise<Sandbox> {
    const { docker, runtime, limits } = this.opts;
    const dir = this.dirOf(step.project, step.name);
    // The directory's identity: a sandbox whose mount no longer is this directory (removed and made again) is replaced.
    const dirId = this.opts.copy ? 'copied' : `${dir}#${statSync(dir).ino}`;
    const existing = docker.getContainer(key);
    const info = await existing.inspect().catch(() => undefined);
    if (info?.State.Running && info.Config.Labels[DIR_LABEL] === dirId) return { container: docker.getContainer(info.Id), busy: 0 };
    if (info) await existing.remove({ force: true }).catch(() => undefined);
    const container = await docker.createContainer({
      name: key,
      Image: step.image,
      Cmd: ['sleep', 'infinity'],
      WorkingDir: '/work',
      Env: ['HOME=/tmp', 'npm_config_cache=/tmp/npm-cache'],
      Labels: {
        [LABEL.managedBy]: MANAGED_BY, [LABEL.kind]: 'Build', [LABEL.cluster]: this.opts.cluster,
        [LABEL.project]: step.project, [LABEL.name]: step.name, [DIR_LABEL]: dirId,
      },
      HostConfig: {
        Runtime: runtime,
        ...(this.opts.copy
          ? { Mounts: [{ Type: 'volume' as const, Source: `${key}-work`, Target: '/work', VolumeOptions: { NoCopy: true, Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.kind]: 'Build', [LABEL.cluster]: this.opts.cluster }, DriverConfig: { Name: 'local', Options: {} } } }] }
          : { Binds: [`${dir}:/work`] }),
        NanoCpus: Math.round(limits.cpu * 1e9),
        Memory: limits.memoryMb * 1024 * 1024,
        MemorySwap: limits.memoryMb * 1024 * 1024,
        PidsLimit: 1024,
        SecurityOpt: ['no-new-privileges'],
      },
    });
    try {
      await container.start();
    } catch (e) {
      await container.remove({ force: true }).catch(() => undefined);
      throw e;
    }
    return { container, busy: 0 };
  }

  private scheduleIdle(key: string, box: Sandbox): void {
    clearTimeout(box.idle);
    if (box.busy > 0) return;
    box.idle = setTimeout(() => { if (box.busy === 0) void this.discard(key, box); }, this.opts.idleMs ?? 10 * 60_000);
    box.idle.unref();
  }

  /** Removes `box` (by its container's id), and forgets it unless `key` names a newer sandbox already. */
  private async discard(key: string, box: Sandbox): Promise<void> {
    const current = this.sandboxes.get(key);
    if (current && (await current.catch(() => undefined)) === box) this.sandboxes.delete(key);
    clearTimeout(box.idle);
    void box.checker?.then((c) => c.close(), () => undefined);
    await box.container.remove({ force: true }).catch(() => undefined);
    if (this.opts.copy) await this.opts.docker.getVolume(`${key}-work`).remove().catch(() => undefined);
  }
}

/** `tar -c` of `path` (relative to `dir`), as a stream. */
function tarOf(dir: string, path: string): Readable {
  const child = spawn('tar', ['-C', dir, '-c', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  return child.stdout;
}

/** Extracts a tar stream (Docker's archive of a directory's contents) into `dir`. */
function untarInto(dir: string, archive: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', ['-C', dir, '-x', '--no-same-owner'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    archive.on('error', reject);
    archive.pipe(child.stdin);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`extracting the build sandbox's files into ${dir} failed (tar exited ${code}): ${err.trim().slice(-300)}`))));
  });
}

/** Runs `argv` in the sandbox and waits for it (a cleanup step: its output is not kept). */
async function execIn(container: Docker.Container, argv: string[]): Promise<void> {
  const exec = await container.exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  stream.resume();
  await new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); stream.on('error', () => resolve()); });
}
