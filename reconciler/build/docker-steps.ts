// The Docker side of a build: tar a context, run the classic builder with cpu and memory
// limits, run untrusted steps in a gVisor container against the context, push to and
// pull from the private registry. Each streams its output line by line to `onLine`.
import type Docker from 'dockerode';
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { LABEL, MANAGED_BY } from '../model.js';

export interface Limits { cpu: number; memoryMb: number; timeoutMs: number }

/** A build step that failed because of its input (a non-zero exit, a bad Dockerfile): the same source fails again. */
export class StepFailed extends Error {
  constructor(readonly step: string, message: string) {
    super(message);
    this.name = 'StepFailed';
  }
}

export function tarContext(dir: string): Readable {
  const child = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'ignore'] });
  return child.stdout;
}

function follow(docker: Docker, stream: NodeJS.ReadableStream, onEvent: (e: Record<string, unknown>) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()), onEvent);
  });
}

/** Builds `context` with the classic builder; `onStep` sees "Step 2/5 : COPY . /app". Throws StepFailed naming the step. */
export async function dockerBuild(docker: Docker, context: Readable, opts: {
  tag: string; dockerfile: string; limits: Limits; signal: AbortSignal; nocache?: boolean;
  onLine: (l: string) => void; onStep: (s: string) => void;
}): Promise<void> {
  const stream = await docker.buildImage(context, {
    t: opts.tag, dockerfile: opts.dockerfile, rm: true, forcerm: true, nocache: opts.nocache ?? false,
    cpuperiod: 100_000, cpuquota: Math.round(opts.limits.cpu * 100_000),
    memory: opts.limits.memoryMb * 1024 * 1024, memswap: opts.limits.memoryMb * 1024 * 1024,
    abortSignal: opts.signal,
  } as Docker.ImageBuildOptions);
  let step = 'image build';
  let failure: string | undefined;
  let partial = '';
  await follow(docker, stream, (e) => {
    if (typeof e.stream === 'string') {
      partial += e.stream;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        opts.onLine(l);
        if (/^Step \d+\/\d+ : /.test(l)) { step = l; opts.onStep(l); }
      }
    }
    if (typeof e.error === 'string') failure = e.error;
  });
  if (partial) opts.onLine(partial);
  if (opts.signal.aborted) throw new StepFailed(step, `the build took longer than ${Math.round(opts.limits.timeoutMs / 1000)} s and was stopped`);
  if (failure) {
    opts.onLine(`error: ${failure}`);
    throw new StepFailed(step, failure.trim());
  }
}

/** Runs `script` with sh in a container of `image` under `runtime` (gVisor), the context mounted read-write at /src. */
export async function sandboxRun(docker: Docker, opts: {
  image: string; runtime: string; context: string; script: string; limits: Limits; signal: AbortSignal; onLine: (l: string) => void;
}): Promise<number> {
  const container = await docker.createContainer({
    Image: opts.image,
    Cmd: ['sh', '-c', opts.script],
    WorkingDir: '/src',
    Env: ['HOME=/tmp', 'npm_config_cache=/tmp/npm-cache'],
    Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.kind]: 'Build' },
    HostConfig: {
      Runtime: opts.runtime,
      Binds: [`${opts.context}:/src`],
      NanoCpus: Math.round(opts.limits.cpu * 1e9),
      Memory: opts.limits.memoryMb * 1024 * 1024,
      MemorySwap: opts.limits.memoryMb * 1024 * 1024,
      PidsLimit: 1024,
      SecurityOpt: ['no-new-privileges'],
    },
  });
  const abort = (): void => { void container.kill().catch(() => undefined); };
  opts.signal.addEventListener('abort', abort);
  try {
    const logs = await container.attach({ stream: true, stdout: true, stderr: true, logs: true });
    let partial = '';
    const out = new PassThrough();
    out.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    });
    docker.modem.demuxStream(logs, out, out);
    const done = new Promise<void>((resolve) => { logs.on('end', () => resolve()); });
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    await Promise.race([done, new Promise((r) => setTimeout(r, 500))]);
    if (partial) opts.onLine(partial);
    return opts.signal.aborted ? -1 : StatusCode;
  } finally {
    opts.signal.removeEventListener('abort', abort);
    await container.remove({ force: true }).catch(() => undefined);
  }
}

export async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch {
    return false;
  }
}

function splitRef(ref: string): { repo: string; tag: string; registry: string } {
  const at = ref.lastIndexOf(':');
  return { repo: ref.slice(0, at), tag: ref.slice(at + 1), registry: ref.split('/')[0]! };
}

/** Whether the registry holds the image (a manifest HEAD, no pull). */
export async function registryHas(ref: string): Promise<boolean> {
  const { repo, tag, registry } = splitRef(ref);
  try {
    const res = await fetch(`http://${registry}/v2/${repo.slice(registry.length + 1)}/manifests/${tag}`, {
      method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' }, signal: AbortSignal.timeout(3000),
    });
    return res.ok;
  } catch {
    return false;
  }
}

export async function push(docker: Docker, ref: string, onLine: (l: string) => void): Promise<void> {
  const { repo, tag, registry } = splitRef(ref);
  const stream = (await docker.getImage(repo).push({ tag, authconfig: { serveraddress: registry } } as Record<string, unknown>)) as NodeJS.ReadableStream;
  let failure: string | undefined;
  await follow(docker, stream, (e) => {
    if (typeof e.error === 'string') failure = e.error;
    else if (typeof e.status === 'string' && !e.progressDetail) onLine(`push: ${e.id ? `${String(e.id)}: ` : ''}${e.status}`);
  });
  if (failure) throw new Error(`pushing ${ref} to the registry failed: ${failure}`);
}

/** Pulls `ref` when this host does not have it (runtime hosts take built images from the registry). */
export async function ensurePulled(docker: Docker, ref: string): Promise<boolean> {
  if (await imageExists(docker, ref)) return false;
  const stream = (await docker.pull(ref, { authconfig: { serveraddress: ref.split('/')[0] } })) as NodeJS.ReadableStream;
  let failure: string | undefined;
  await follow(docker, stream, (e) => { if (typeof e.error === 'string') failure = e.error; });
  if (failure) throw new Error(`pulling ${ref} failed: ${failure}`);
  return true;
}
