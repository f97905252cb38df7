// The Docker side of a build: tar a context, run the classic builder with cpu and memory
// limits, tag, push to and pull from the private registry. Each streams its output line
// by line to `onLine`. (Untrusted steps run in the app's gVisor sandbox: sandbox-pool.ts.)
import type Docker from 'dockerode';
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';

export interface Limits { cpu: number; memoryMb: number; timeoutMs: number }

/** A build step that failed because of its input (a non-zero exit, a bad Dockerfile): the same source fails again. */
export class StepFailed extends Error {
  /** `tail`: the step's own last output lines, when other output interleaved with it in the build log. */
  constructor(readonly step: string, message: string, readonly tail?: string[]) {
    super(message);
    this.name = 'StepFailed';
  }
}

/**
 * `dir` as a tar stream. Piped at once: Node resumes (and so empties) a child's stdout
 * that nothing reads when the child exits, and a small context's tar exits before
 * dockerode starts reading, so Docker got an empty context ("Cannot locate specified
 * Dockerfile"). A tar that fails ends the stream with its error instead of a short archive.
 */
export function tarContext(dir: string): Readable {
  const out = new PassThrough();
  const child = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  child.stdout.pipe(out, { end: false });
  child.on('error', (e) => out.destroy(e));
  child.on('close', (code) => (code === 0 ? out.end() : out.destroy(new Error(`tar of the build context ${dir} exited ${code}: ${err.trim().slice(-300)}`))));
  return out;
}

/** Reads a Docker progress stream (build, push, pull, load) to its end, each event to `onEvent`. */
export function follow(docker: Docker, stream: NodeJS.ReadableStream, onEvent: (e: Record<string, unknown>) => void): Promise<void> {
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

export async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch {
    return false;
  }
}

/** Gives the image `from` names the tag `to` and drops the name `from`. */
export async function retag(docker: Docker, from: string, to: string): Promise<void> {
  const { repo, tag } = splitRef(to);
  await docker.getImage(from).tag({ repo, tag });
  await untag(docker, from);
}

/** Drops the name `ref` (the image goes with it when no other name holds it). */
export async function untag(docker: Docker, ref: string): Promise<void> {
  await docker.getImage(ref).remove().catch(() => undefined);
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
