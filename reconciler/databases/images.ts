// Engine images: built on each Docker host from Debian packages on ml.ink's Debian base
// image (no registry is needed), once per recipe, and tagged by the engine's Debian
// package version as installed by the build: `mlink/postgres:15.20-0_deb12u1-<recipe>`.
// The recipe hash (Dockerfile, entrypoint, config, base image id) is also a label, so the
// next call finds the image without building; a build already running for the same
// engine on the same host is joined, never started twice.
import type Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { ENGINES, engineOf, upstreamVersion, versionTag, type EngineName } from './engines.js';

export const RECIPE_LABEL = 'ink.ml.engine-recipe';
export const ENGINE_LABEL = 'ink.ml.engine';
const DEFAULT_BASE = 'mlink/debian:bookworm';

export interface EngineImage {
  engine: EngineName;
  /** The image reference to run. */
  tag: string;
  /** The Debian package version installed in it ("15.20-0+deb12u1"). */
  version: string;
  /** The upstream version ("15.20"). */
  upstream: string;
  /** Whether this call built it (false: it was there, or another caller's build was joined). */
  built: boolean;
  ms: number;
}

export interface EnsureImageOptions {
  /** The base image (default mlink/debian:bookworm, made by `mlink setup`). */
  base?: string;
  /** A key naming the Docker host, so builds on one host are joined; default: the Docker client object. */
  host?: string;
  /** Build output, a line at a time (Docker's "Step 2/8 : RUN ..." and apt's lines). */
  onProgress?: (line: string) => void;
  /** Limits for the build container. */
  limits?: { cpu: number; memoryMb: number; timeoutMs: number };
  /** Build again without Docker's cache (to take a new Debian point release). */
  refresh?: boolean;
}

const IMAGE_NAME: Record<EngineName, string> = { postgres: 'mlink/postgres', redis: 'mlink/redis', mysql: 'mlink/mariadb' };
const FILES: Record<EngineName, Array<{ name: string; mode: number }>> = {
  postgres: [{ name: 'Dockerfile', mode: 0o644 }, { name: 'entrypoint.sh', mode: 0o755 }, { name: 'pgbackrest.conf', mode: 0o644 }],
  redis: [{ name: 'Dockerfile', mode: 0o644 }, { name: 'entrypoint.sh', mode: 0o755 }],
  mysql: [{ name: 'Dockerfile', mode: 0o644 }, { name: 'entrypoint.sh', mode: 0o755 }],
};

/** The recipe's files as shipped beside this module. */
export function recipeFiles(engine: EngineName): Array<{ name: string; mode: number; text: string }> {
  return FILES[engine].map((f) => ({ ...f, text: readFileSync(new URL(`./recipes/${engine}/${f.name}`, import.meta.url), 'utf8') }));
}

export function recipeHash(engine: EngineName, baseImageId: string): string {
  const h = createHash('sha256').update(`${engine}\n${baseImageId}\n`);
  for (const f of recipeFiles(engine)) h.update(`${f.name} ${f.mode}\n${f.text}\n`);
  return h.digest('hex').slice(0, 12);
}

function contextOf(engine: EngineName): Readable {
  const pack = tar.pack();
  for (const f of recipeFiles(engine)) pack.entry({ name: f.name, mode: f.mode, mtime: new Date(0) }, f.text);
  pack.finalize();
  return pack;
}

const clientKeys = new WeakMap<Docker, string>();
let clients = 0;
function hostKey(docker: Docker, host?: string): string {
  if (host) return host;
  let k = clientKeys.get(docker);
  if (!k) { k = `client-${++clients}`; clientKeys.set(docker, k); }
  return k;
}

interface InFlight { promise: Promise<EngineImage>; listeners: Set<(l: string) => void> }
const inFlight = new Map<string, InFlight>();

/**
 * The engine's image on this host, built when missing. Concurrent calls for the same
 * engine and host share one build; every caller's onProgress sees its lines.
 */
export async function ensureEngineImage(docker: Docker, engineName: string, opts: EnsureImageOptions = {}): Promise<EngineImage> {
  const engine = engineOf(engineName).name;
  const key = `${hostKey(docker, opts.host)}|${engine}`;
  const running = inFlight.get(key);
  if (running) {
    if (opts.onProgress) running.listeners.add(opts.onProgress);
    const img = await running.promise;
    return { ...img, built: false };
  }
  const listeners = new Set<(l: string) => void>(opts.onProgress ? [opts.onProgress] : []);
  const emit = (l: string): void => { for (const f of listeners) f(l); };
  const promise = findOrBuild(docker, engine, opts, emit);
  inFlight.set(key, { promise, listeners });
  try {
    return await promise;
  } finally {
    inFlight.delete(key);
  }
}

async function findOrBuild(docker: Docker, engine: EngineName, opts: EnsureImageOptions, emit: (l: string) => void): Promise<EngineImage> {
  const t0 = Date.now();
  const base = opts.base ?? DEFAULT_BASE;
  let baseId: string;
  try {
    baseId = (await docker.getImage(base).inspect()).Id;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) throw new Error(`engine image ${engine}: the base image ${base} is missing on this host: run \`mlink setup\``);
    throw new Error(`engine image ${engine}: Docker could not be asked for the base image ${base}: ${(e as Error).message}`, { cause: e });
  }
  const hash = recipeHash(engine, baseId);
  if (!opts.refresh) {
    const found = await findByRecipe(docker, engine, hash);
    if (found) return { engine, ...found, upstream: upstreamVersion(found.version), built: false, ms: Date.now() - t0 };
  }
  const limits = opts.limits ?? { cpu: 2, memoryMb: 2048, timeoutMs: 15 * 60_000 };
  const waited = await takeBuildLock(docker, engine, base, hash, limits.timeoutMs, emit, opts.refresh ? undefined : () => findByRecipe(docker, engine, hash));
  if (waited) return { engine, ...waited, upstream: upstreamVersion(waited.version), built: false, ms: Date.now() - t0 };
  try {
    emit(`building ${ENGINES[engine].description} from Debian's ${ENGINES[engine].package} on ${base}`);
    const buildTag = `${IMAGE_NAME[engine]}:building-${hash}`;
    await build(docker, engine, { base, tag: buildTag, hash, refresh: opts.refresh ?? false, limits, emit });
    const version = await readVersion(docker, buildTag);
    const tag = `${IMAGE_NAME[engine]}:${versionTag(version)}-${hash}`;
    const previous = await docker.getImage(tag).inspect().then((i) => i.Id, () => undefined);
    const at = tag.lastIndexOf(':');
    await docker.getImage(buildTag).tag({ repo: tag.slice(0, at), tag: tag.slice(at + 1) });
    await docker.getImage(buildTag).remove().catch(() => undefined);
    // A refresh that built a new image leaves the old one nameless: dropped unless a container still uses it.
    if (previous && previous !== (await docker.getImage(tag).inspect()).Id) await docker.getImage(previous).remove().catch(() => undefined);
    await dropOlderRecipes(docker, engine, hash);
    emit(`built ${tag} (${ENGINES[engine].package} ${version}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return { engine, tag, version, upstream: upstreamVersion(version), built: true, ms: Date.now() - t0 };
  } finally {
    await docker.getContainer(lockName(engine)).remove({ force: true }).catch(() => undefined);
  }
}

/** Removes this engine's images of other recipes; one a container still uses (running or not) stays, Docker refuses. */
async function dropOlderRecipes(docker: Docker, engine: EngineName, hash: string): Promise<void> {
  const list = await docker.listImages({ filters: { label: [`${ENGINE_LABEL}=${engine}`] } });
  for (const img of list) {
    if (img.Labels?.[RECIPE_LABEL] === hash) continue;
    for (const t of img.RepoTags ?? []) if (t.startsWith(`${IMAGE_NAME[engine]}:`)) await docker.getImage(t).remove().catch(() => undefined);
  }
}

const lockName = (engine: EngineName): string => `mlink-engine-build-${engine}`;

/**
 * Takes the host-wide build lock: a created (never started) container whose name only one
 * creator gets, so processes (and control hosts) sharing a Docker host build once. While
 * another holds it, waits and returns that build's image once `found` sees it. A lock
 * older than the build timeout is a crashed builder's and is taken over.
 */
async function takeBuildLock(docker: Docker, engine: EngineName, base: string, hash: string, timeoutMs: number, emit: (l: string) => void,
  found?: () => Promise<{ tag: string; version: string } | undefined>): Promise<{ tag: string; version: string } | undefined> {
  let told = false;
  for (;;) {
    try {
      await docker.createContainer({ name: lockName(engine), Image: base, Entrypoint: ['true'], Cmd: [], Labels: { [RECIPE_LABEL]: hash, [ENGINE_LABEL]: engine }, HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'none', Config: {} } } });
      return undefined;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 409) throw e;
    }
    const since = await docker.getContainer(lockName(engine)).inspect().then((i) => Date.parse(i.Created), () => Date.now());
    if (Date.now() - since > timeoutMs) {
      emit(`a build of ${engine} started ${Math.round((Date.now() - since) / 1000)} s ago never finished: taking it over`);
      await docker.getContainer(lockName(engine)).remove({ force: true }).catch(() => undefined);
      continue;
    }
    if (!told) { emit(`another build of ${engine} is running on this host: waiting for it`); told = true; }
    await new Promise((r) => setTimeout(r, 1000));
    const img = await found?.();
    if (img) return img;
  }
}

async function findByRecipe(docker: Docker, engine: EngineName, hash: string): Promise<{ tag: string; version: string } | undefined> {
  const list = await docker.listImages({ filters: { label: [`${RECIPE_LABEL}=${hash}`] } });
  const prefix = `${IMAGE_NAME[engine]}:`;
  for (const img of list) {
    const tag = (img.RepoTags ?? []).find((t) => t.startsWith(prefix) && !t.includes(':building-'));
    if (tag) return { tag, version: await readVersion(docker, tag) };
  }
  return undefined;
}

/** The package version the build wrote to /etc/mlink-engine-version, read through a created (never started) container. */
async function readVersion(docker: Docker, image: string): Promise<string> {
  const c = await docker.createContainer({ Image: image, Entrypoint: ['/bin/true'], Cmd: [], Labels: { [ENGINE_LABEL]: 'version-probe' }, HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'none', Config: {} } } });
  try {
    const stream = (await c.getArchive({ path: '/etc/mlink-engine-version' })) as unknown as Readable;
    const text = await firstFileOf(stream);
    if (!text.trim()) throw new Error(`${image} has an empty /etc/mlink-engine-version`);
    return text.trim();
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

function firstFileOf(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let text: string | undefined;
    extract.on('entry', (_h, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (d: Buffer) => chunks.push(d));
      body.on('end', () => { text ??= Buffer.concat(chunks).toString('utf8'); next(); });
      body.resume();
    });
    extract.on('finish', () => (text === undefined ? reject(new Error('the archive held no file')) : resolve(text)));
    extract.on('error', reject);
    stream.on('error', reject);
    stream.pipe(extract);
  });
}

async function build(docker: Docker, engine: EngineName, o: {
  base: string; tag: string; hash: string; refresh: boolean; limits: { cpu: number; memoryMb: number; timeoutMs: number }; emit: (l: string) => void;
}): Promise<void> {
  const signal = AbortSignal.timeout(o.limits.timeoutMs);
  const stream = await docker.buildImage(contextOf(engine), {
    t: o.tag, rm: true, forcerm: true, nocache: o.refresh, pull: false,
    buildargs: { BASE: o.base },
    labels: { [RECIPE_LABEL]: o.hash, [ENGINE_LABEL]: engine },
    cpuperiod: 100_000, cpuquota: Math.round(o.limits.cpu * 100_000),
    memory: o.limits.memoryMb * 1024 * 1024, memswap: o.limits.memoryMb * 1024 * 1024,
    abortSignal: signal,
  } as Docker.ImageBuildOptions);
  let failure: string | undefined;
  let partial = '';
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()), (e: Record<string, unknown>) => {
      if (typeof e.stream === 'string') {
        partial += e.stream;
        const lines = partial.split(/\r?\n/);
        partial = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) o.emit(l);
      }
      if (typeof e.error === 'string') failure = e.error;
    });
  }).catch((e: unknown) => { failure ??= (e as Error).message; });
  if (partial.trim()) o.emit(partial);
  if (signal.aborted) throw new Error(`engine image ${engine}: the build took longer than ${Math.round(o.limits.timeoutMs / 1000)} s and was stopped`);
  if (failure) throw new Error(`engine image ${engine}: the build failed: ${failure.trim()}`);
}
