// The image step for ml.ink's own generated Dockerfiles, without the classic builder's
// per-build work (a context upload, a cache lookup per instruction, a container to copy
// into and commit): their only instruction that reads the source is the last one,
// `COPY . <WORKDIR>`. Everything above it is built once by the classic builder and kept
// as a "prefix image" tagged by its text; each build then writes the COPY's layer itself
// (GNU tar, owned by root, as COPY does) and hands Docker the one new layer with
// `docker load`, the prefix's layers being on the host already. The image has the files
// and config `docker build` of the same Dockerfile gives (test/integration/assemble.test.ts
// compares the two); a warm image step takes ~0.15 s here instead of ~0.25 s.
// Anything else (an app's own Dockerfile, a .dockerignore of the app's, another last
// instruction) goes to the classic builder as before.
import type Docker from 'dockerode';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { dockerBuild, follow, StepFailed, tarContext, type Limits } from './docker-steps.js';

/** The ignore line ml.ink adds for its own Dockerfile; a .dockerignore with anything else goes to the classic builder. */
export const OWN_IGNORE = '.mlink/Dockerfile';

export interface Assembly {
  /** The Dockerfile without its last instruction: built once, as the prefix image. */
  prefix: string;
  /** Where the last instruction copies the source to (the prefix's WORKDIR). */
  dest: string;
}

const instructions = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/** Whether the image of `dockerfile` (ml.ink's text) for the source in `ctx` can be assembled, and how; a reason when not. */
export function assembly(dockerfile: string, ctx: string): Assembly | { not: string } {
  const lines = instructions(dockerfile);
  const last = lines.at(-1) ?? '';
  const copy = /^COPY\s+\.\s+(\/\S*)$/i.exec(last);
  if (!copy) return { not: `its last instruction is not COPY . <dir> (${last})` };
  const dest = copy[1]!.replace(/\/+$/, '') || '/';
  const workdir = lines.filter((l) => /^WORKDIR\s/i.test(l)).at(-1)?.split(/\s+/)[1];
  if (workdir !== dest) return { not: `COPY goes to ${dest}, not to the WORKDIR` };
  if (lines.slice(0, -1).some((l) => /^(COPY|ADD)\s/i.test(l))) return { not: 'an instruction before the last reads the source' };
  const ignore = join(ctx, '.dockerignore');
  if (existsSync(ignore) && instructions(readFileSync(ignore, 'utf8')).some((l) => l !== OWN_IGNORE)) return { not: "the source has a .dockerignore of its own" };
  const at = dockerfile.lastIndexOf(last);
  return { prefix: dockerfile.slice(0, at), dest };
}

export function prefixTag(prefix: string): string {
  return `mlink-prefix/app:${createHash('sha256').update(prefix).digest('hex').slice(0, 16)}`;
}

interface Prefix { config: Record<string, unknown>; architecture: string; os: string; layers: string[]; history?: Array<Record<string, unknown>> }

/**
 * A prefix build under way, shared by every build that needs the same prefix at once. It
 * has its own stop, pulled only when every build waiting on it stopped: one build's time
 * limit or failed check must not fail another build with "stopped" (a final failure,
 * never retried for that source). Its log lines go to every build waiting on it.
 */
interface PrefixBuild { done: Promise<void>; stop: AbortController; waiting: number; listeners: Set<(l: string) => void> }
const prefixBuilds = new Map<string, PrefixBuild>();
const histories = new Map<string, Array<Record<string, unknown>> | undefined>();

/**
 * The prefix's history as in its image config, with `empty_layer` where an instruction
 * added no layer (told apart by the layer counts of the classic builder's intermediate
 * images). Undefined when an intermediate image is gone: the image then has no history.
 */
async function historyOf(docker: Docker, id: string, layers: number): Promise<Array<Record<string, unknown>> | undefined> {
  if (histories.has(id)) return histories.get(id);
  const entries = (await docker.getImage(id).history()) as Array<{ Id: string; Created: number; CreatedBy: string; Comment: string }>;
  let out: Array<Record<string, unknown>> | undefined = [];
  const counts: number[] = [];
  for (const e of entries) {
    if (e.Id === '<missing>') { out = undefined; break; }
    counts.push(((await docker.getImage(e.Id).inspect()).RootFS.Layers ?? []).length);
  }
  if (out) {
    // Newest first; an entry added a layer when its image has more than the one below it.
    out = entries.map((e, i) => ({
      created: new Date(e.Created * 1000).toISOString(), created_by: e.CreatedBy,
      ...(e.Comment ? { comment: e.Comment } : {}),
      ...(counts[i] === (counts[i + 1] ?? 0) ? { empty_layer: true } : {}),
    })).reverse();
    if (out.filter((h) => !h.empty_layer).length !== layers) out = undefined;
  }
  histories.set(id, out);
  return out;
}

/** The prefix image: built by the classic builder the first time (one per host and prefix text), inspected after. */
async function prefixImage(docker: Docker, prefix: string, opts: { limits: Limits; signal: AbortSignal; onLine: (l: string) => void }): Promise<Prefix & { tag: string; built: boolean }> {
  const tag = prefixTag(prefix);
  let built = false;
  const inspect = (): Promise<Docker.ImageInspectInfo | undefined> => docker.getImage(tag).inspect().catch(() => undefined);
  let info = await inspect();
  if (!info) {
    let running = prefixBuilds.get(tag);
    if (running?.stop.signal.aborted) running = undefined; // every build waiting on it stopped: a new one starts
    if (!running) {
      const build: PrefixBuild = { stop: new AbortController(), waiting: 0, listeners: new Set(), done: Promise.resolve() };
      build.done = (async () => {
        const dir = await mkdtemp(join(tmpdir(), 'mlink-prefix-'));
        try {
          await writeFile(join(dir, 'Dockerfile'), prefix);
          await dockerBuild(docker, tarContext(dir), { tag, dockerfile: 'Dockerfile', limits: opts.limits, signal: build.stop.signal, onLine: (l) => { for (const f of build.listeners) f(`prefix: ${l}`); }, onStep: () => undefined });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      })().finally(() => { if (prefixBuilds.get(tag) === build) prefixBuilds.delete(tag); });
      prefixBuilds.set(tag, build);
      running = build;
      built = true;
    }
    await joinBuild(running, opts.signal, opts.onLine, opts.limits.timeoutMs);
    info = await inspect();
    if (!info) throw new Error(`the prefix image ${tag} is missing right after its build`);
  }
  const layers = info.RootFS.Layers ?? [];
  return { tag, built, config: info.Config as unknown as Record<string, unknown>, architecture: info.Architecture, os: info.Os, layers, history: await historyOf(docker, info.Id, layers.length) };
}

/** Waits for a shared prefix build as one of its builds: stopping `signal` stops the wait, and the build once nobody waits. */
async function joinBuild(b: PrefixBuild, signal: AbortSignal, onLine: (l: string) => void, timeoutMs: number): Promise<void> {
  b.waiting++;
  b.listeners.add(onLine);
  let leave = (): void => undefined;
  const stopped = new Promise<never>((_, reject) => {
    leave = (): void => { if (--b.waiting === 0) b.stop.abort(); reject(new StepFailed('image: prefix', `the build took longer than ${Math.round(timeoutMs / 1000)} s and was stopped`)); };
    if (signal.aborted) leave();
    else signal.addEventListener('abort', leave, { once: true });
  });
  stopped.catch(() => undefined);
  try {
    await Promise.race([b.done, stopped]);
  } finally {
    signal.removeEventListener('abort', leave);
    b.listeners.delete(onLine);
    if (!signal.aborted) b.waiting--;
  }
}

// A ustar header (names here are short: the layer's top directory and the load archive's own entries).
function header(name: string, size: number, type: '0' | '5', mode: number, mtime: number): Buffer {
  const b = Buffer.alloc(512);
  const put = (s: string, at: number, len: number): void => { b.write(s.slice(0, len), at, 'utf8'); };
  const octal = (n: number, len: number): string => `${n.toString(8).padStart(len - 1, '0')}\0`;
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(mtime, 12), 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const byte of b) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return b;
}
const pad = (size: number): Buffer => Buffer.alloc((512 - (size % 512)) % 512);

/** Runs `cmd` with its stdout into `into`; rejects with its stderr when it fails. */
function spawnInto(cmd: string, args: string[], into: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.stdout.pipe(into, { end: false });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim().slice(-500)}`))));
  });
}

export interface Layer { file: string; diffId: string; size: number }

/**
 * The COPY's layer, as COPY writes it: the source's files under `dest`, owned by root
 * with their modes, symlinks kept as links, ml.ink's Dockerfile left out as its
 * .dockerignore says. Written to `file`; its digest is the layer's diff id.
 */
export async function writeLayer(ctx: string, dest: string, file: string, signal: AbortSignal): Promise<Layer> {
  const hash = createHash('sha256');
  let size = 0;
  const tee = new PassThrough();
  tee.on('data', (d: Buffer) => { hash.update(d); size += d.length; });
  const out = pipeline(tee, createWriteStream(file));
  const top = dest.replace(/^\/+/, '');
  if (top) tee.write(header(`${top}/`, 0, '5', 0o755, Math.floor(Date.now() / 1000)));
  const entries = readdirSync(ctx).sort();
  if (entries.length) {
    await spawnInto('tar', [
      '-C', ctx, '-c', '-f', '-', '--sort=name', '--numeric-owner', '--owner=0', '--group=0',
      '--anchored', `--exclude=${OWN_IGNORE}`,
      // Member names go under dest; symlink targets stay as the source wrote them.
      ...(top ? ['--transform', `s,^,${top}/,S`] : []),
      '--', ...entries,
    ], tee, signal);
  } else {
    tee.write(Buffer.alloc(1024));
  }
  tee.end();
  await out;
  return { file, diffId: `sha256:${hash.digest('hex')}`, size };
}

/** A `docker load` archive: the image config, the one new layer, and a manifest naming the prefix's layers (Docker has them). */
function loadArchive(prefix: Prefix, layer: Layer, tag: string, copyLine: string): Readable {
  const created = new Date().toISOString();
  const config = Buffer.from(JSON.stringify({
    architecture: prefix.architecture, os: prefix.os, created, config: prefix.config,
    rootfs: { type: 'layers', diff_ids: [...prefix.layers, layer.diffId] },
    ...(prefix.history ? { history: [...prefix.history, { created, created_by: `/bin/sh -c #(nop) ${copyLine}`, comment: 'layer written by ml.ink' }] } : {}),
  }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const layerName = `${layer.diffId.slice(7)}/layer.tar`;
  const manifest = Buffer.from(JSON.stringify([{
    Config: configName, RepoTags: [tag],
    Layers: [...prefix.layers.map((d) => `${d.slice(7)}/layer.tar`), layerName],
  }]));
  const now = Math.floor(Date.now() / 1000);
  const out = new PassThrough();
  void (async () => {
    for (const [name, data] of [['manifest.json', manifest], [configName, config]] as const) {
      out.write(Buffer.concat([header(name, data.length, '0', 0o644, now), data, pad(data.length)]));
    }
    out.write(header(layerName, layer.size, '0', 0o644, now));
    await pipeline(createReadStream(layer.file), out, { end: false });
    out.end(Buffer.concat([pad(layer.size), Buffer.alloc(1024)]));
  })().catch((e: unknown) => out.destroy(e as Error));
  return out;
}

/** Loads the image `tag`: the prefix's layers plus `layer`, with the prefix's config. */
export async function loadAssembled(docker: Docker, a: Assembly, layer: Layer, tag: string, opts: { limits: Limits; signal: AbortSignal; onLine: (l: string) => void }): Promise<{ prefixTag: string; prefixBuilt: boolean }> {
  const prefix = await prefixImage(docker, a.prefix, opts).catch((e: unknown) => {
    if (e instanceof StepFailed) throw e;
    throw new StepFailed('image: prefix', (e as Error).message);
  });
  const stream = await docker.loadImage(loadArchive(prefix, layer, tag, `COPY . ${a.dest}`), { quiet: true, abortSignal: opts.signal } as Record<string, unknown>);
  let failure: string | undefined;
  await follow(docker, stream, (e) => { if (typeof e.error === 'string') failure = e.error; });
  if (opts.signal.aborted) throw new StepFailed('image', `the build took longer than ${Math.round(opts.limits.timeoutMs / 1000)} s and was stopped`);
  if (failure) throw new StepFailed('image', `docker load of the assembled image failed: ${failure.trim()}`);
  return { prefixTag: prefix.tag, prefixBuilt: prefix.built };
}

/** The size of the source an assembly copies, for the log. */
export function layerSize(l: Layer): string {
  return l.size < 10_240 ? `${l.size} B` : `${(l.size / 1024).toFixed(0)} KiB`;
}
