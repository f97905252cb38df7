// The build plane: turns a pinned source commit into an image in the private registry.
// Steps, each named in progress, logs and errors: source (export the commit), detect
// (the build method), toolchain (a cached base image per language), sandbox (untrusted
// installs and checks in the app's gVisor build sandbox, sandbox-pool.ts), image (the
// classic builder with cpu, memory and time limits) and push. When the sandbox only
// checks (it writes nothing the image copies), the image builds alongside under a
// pending tag that becomes the image's tag once the check passed. The push runs after
// the build returns: this host runs the image already, other hosts pull it once it is
// in. An image that exists for the same key is reused: the same source is built once,
// and a reverted manifest finds its old image again.
import type Docker from 'dockerode';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { BuildSpec } from '../model.js';
import type { Logger } from '../util/log.js';
import { assembly, layerSize, loadAssembled, OWN_IGNORE, writeLayer } from './assemble.js';
import { detect, onPath, toolchainTag, type Detected, type Toolchain } from './detect.js';
import { dockerBuild, ensurePulled, imageExists, push, registryHas, retag, StepFailed, tarContext, untag, type Limits } from './docker-steps.js';
import { BuildRecords, type BuildRecord } from './records.js';
import { SandboxPool } from './sandbox-pool.js';
import { SourceRepos } from '../source-repos/source-repo.js';

export { StepFailed } from './docker-steps.js';

export interface BuilderDeps {
  cluster: string;
  docker: Docker;
  sources: SourceRepos;
  records: BuildRecords;
  /** Runtime for untrusted build steps: runsc (gVisor). */
  sandboxRuntime: string;
  limits: Limits;
  log: Logger;
  /** The build host is another machine (SSH): build sandboxes get their files copied, not mounted. */
  remote?: boolean;
}

export interface BuildTarget { project: string; name: string; image: string; build: BuildSpec }

export interface BuildOutcome {
  image: string;
  key: string;
  reused: boolean;
  method?: string;
  durationMs: number;
  /** One line for status notes: how the image came to be, or why it was reused. */
  note: string;
}

/** A failed build: which step, why, and the last log lines. */
export class BuildFailure extends Error {
  constructor(readonly step: string, readonly reason: string, readonly tail: string[]) {
    super(`build failed at step "${step}": ${reason}${tail.length ? `; last log lines: ${tail.join(' | ')}` : ''}`);
    this.name = 'BuildFailure';
  }
}

const STEPS = ['source', 'detect', 'toolchain', 'sandbox', 'image'] as const;
/** The tag an image builds under while its check still runs. */
const UNCHECKED = '-unchecked';

export class Builder {
  private readonly pool: SandboxPool;
  private readonly pushes = new Map<string, Promise<void>>();
  private readonly inflight = new Map<string, { outcome: Promise<BuildOutcome>; listeners: Set<(p: string) => void> }>();
  /** Builds that just failed, for a minute: the pass that joins a build started with its commit gets its very failure. */
  private readonly failed = new Map<string, BuildFailure>();
  /** Toolchain images being built on this builder's host, by tag. */
  private readonly toolchainBuilds = new Map<string, Promise<void>>();

  constructor(private readonly deps: BuilderDeps) {
    this.pool = new SandboxPool({
      docker: deps.docker, cluster: deps.cluster, runtime: deps.sandboxRuntime, limits: deps.limits, root: join(deps.records.root, '.sandbox'), copy: deps.remote ?? false,
    });
  }

  /** Removes build sandboxes an earlier worker of this cluster left behind. */
  async removeLeftovers(): Promise<void> {
    await this.pool.removeLeftovers();
    // Pending tags of builds that died with their worker: older than any build may run.
    const images = await this.deps.docker.listImages({ filters: { reference: [`*/mlink/*/*:*${UNCHECKED}`] } });
    const before = Date.now() / 1000 - (2 * this.deps.limits.timeoutMs) / 1000;
    for (const img of images.filter((i) => i.Created < before)) {
      for (const tag of (img.RepoTags ?? []).filter((r) => r.endsWith(UNCHECKED))) await untag(this.deps.docker, tag);
    }
  }

  /** Lets pushes in flight finish, then removes this worker's build sandboxes (a build still running fails). */
  async close(): Promise<void> {
    await Promise.all([...this.pushes.values()]);
    await this.pool.close();
  }

  /**
   * The image for `t`: reused when it exists here or in the registry, else built and
   * pushed. A build of the same image already running (started when its commit landed,
   * see early.ts) is joined, not run twice; its progress reaches every caller.
   */
  build(t: BuildTarget, onProgress: (p: string) => void = () => undefined): Promise<BuildOutcome> {
    const failure = this.failed.get(t.image);
    if (failure) return Promise.reject(failure);
    let running = this.inflight.get(t.image);
    if (!running) {
      const listeners = new Set<(p: string) => void>();
      const tell = (p: string): void => {
        for (const l of listeners) {
          try { l(p); } catch (e) { this.deps.log.warn('a build progress listener failed', { image: t.image, error: e }); }
        }
      };
      const outcome = this.buildOnce(t, tell)
        .catch((e: unknown) => {
          if (e instanceof BuildFailure) {
            this.failed.set(t.image, e);
            setTimeout(() => this.failed.delete(t.image), 60_000).unref();
          }
          throw e;
        })
        .finally(() => this.inflight.delete(t.image));
      running = { outcome, listeners };
      this.inflight.set(t.image, running);
    }
    const { outcome, listeners } = running;
    listeners.add(onProgress);
    return outcome.finally(() => listeners.delete(onProgress));
  }

  /** Resolves once `image` (built or reused by this builder) is in the registry, for runtime hosts to pull: its push in flight, or one now. */
  async inRegistry(image: string): Promise<void> {
    await this.pushes.get(image);
    if (await registryHas(image)) return;
    await push(this.deps.docker, image, () => undefined);
  }

  /** Whether this host has the image of `t` already (nothing to build). */
  has(t: BuildTarget): Promise<boolean> {
    return imageExists(this.deps.docker, t.image);
  }

  private async buildOnce(t: BuildTarget, onProgress: (p: string) => void): Promise<BuildOutcome> {
    const { docker, records } = this.deps;
    const t0 = Date.now();
    const { key } = t.build;
    const prior = records.read(t.project, t.name, key);
    const builtBy = prior?.phase === 'Built' ? ` (built ${prior.finishedAt} by ${prior.method} from source ${prior.commit.slice(0, 12)})` : '';
    if (await imageExists(docker, t.image)) {
      if (!(await registryHas(t.image))) this.pushLater(t.image, prior ? { ...prior } : undefined);
      return { image: t.image, key, reused: true, method: prior?.method, durationMs: Date.now() - t0, note: `image reused, not rebuilt: ${t.image} already on this host${builtBy}` };
    }
    if (await registryHas(t.image)) {
      await ensurePulled(docker, t.image);
      return { image: t.image, key, reused: true, method: prior?.method, durationMs: Date.now() - t0, note: `image reused, not rebuilt: pulled ${t.image} from the registry${builtBy}` };
    }
    if (prior?.phase === 'Failed' && prior.final) {
      throw new BuildFailure(prior.step ?? 'unknown', `${prior.error ?? 'failed'} (this source failed before and is not rebuilt; change the source)`, prior.tail ?? records.tail(t.project, t.name, key, 8));
    }
    const rec = records.start({ key, project: t.project, name: t.name, image: t.image, commit: t.build.commit, path: t.build.path, steps: [...STEPS] });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.deps.limits.timeoutMs);
    const work = await mkdtemp(join(this.pool.dirOf(t.project, t.name), 'context-'));
    const line = (l: string): void => records.append(rec, l);
    const stepTo = (i: number, detail = ''): void => {
      rec.step = STEPS[i];
      rec.progress = `${i + 1}/${STEPS.length} ${STEPS[i]}${detail ? `: ${detail}` : ''}`;
      records.save(rec);
      onProgress(rec.progress);
    };
    try {
      const detected = await this.steps(t, rec, work, controller.signal, line, stepTo);
      Object.assign(rec, { phase: 'Built', progress: 'done', step: undefined, finishedAt: new Date().toISOString(), durationMs: Date.now() - t0 });
      records.save(rec);
      line(`built ${t.image} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${detected.method})`);
      this.pushLater(t.image, rec);
      return { image: t.image, key, reused: false, method: detected.method, durationMs: Date.now() - t0, note: `built ${t.image} by ${detected.method} from source ${t.build.commit.slice(0, 12)} in ${((Date.now() - t0) / 1000).toFixed(1)} s, pushing to the registry` };
    } catch (e) {
      const final = e instanceof StepFailed;
      const step = e instanceof StepFailed ? e.step : rec.step ?? 'unknown';
      const reason = (e as Error).message;
      line(`build failed at step "${step}": ${reason}`);
      const tail = final ? (e as StepFailed).tail?.slice(-8) ?? records.tail(t.project, t.name, key, 8) : undefined;
      Object.assign(rec, { phase: 'Failed', step, error: reason, final, tail, finishedAt: new Date().toISOString(), durationMs: Date.now() - t0 });
      records.save(rec);
      if (final) throw new BuildFailure(step, reason, tail!);
      throw e;
    } finally {
      clearTimeout(timer);
      rmSync(work, { recursive: true, force: true });
    }
  }

  private async steps(t: BuildTarget, rec: BuildRecord, work: string, signal: AbortSignal, line: (l: string) => void, stepTo: (i: number, d?: string) => void): Promise<Detected> {
    const { docker, sources, records, limits } = this.deps;
    const { repo, commit, path, origin } = t.build;
    stepTo(0, `export ${repo.project}/${repo.name}@${commit.slice(0, 12)}${path ? `:${path}` : ''}`);
    if (!(await sources.hasCommit(repo.project, repo.name, commit))) {
      if (!origin) throw new StepFailed('source', `commit ${commit} is not in the source repo ${repo.project}/${repo.name}.git`);
      line(`fetching ${origin.url} ${origin.ref}`);
      await sources.fetch(repo.project, repo.name, origin.url, origin.ref);
      if (!(await sources.hasCommit(repo.project, repo.name, commit))) throw new StepFailed('source', `${origin.url}@${origin.ref} does not contain commit ${commit}`);
    }
    const ctx = join(work, 'src');
    const exported = Date.now();
    const count = await sources.exportTree(repo.project, repo.name, commit, path, ctx).catch((e: Error) => { throw new StepFailed('source', e.message); });
    line(`source: ${count} files from ${repo.project}/${repo.name}.git@${commit.slice(0, 12)}${path ? `:${path}` : ''} in ${Date.now() - exported} ms`);

    stepTo(1);
    const installed = { nixpacks: onPath('nixpacks'), railpack: onPath('railpack') };
    line(`detect: nixpacks ${installed.nixpacks ? 'installed' : 'not installed'}, railpack ${installed.railpack ? 'installed' : 'not installed'} on this build host`);
    let d: Detected;
    try { d = detect(ctx, installed); } catch (e) { throw new StepFailed('detect', (e as Error).message); }
    line(`detect: method ${d.method}: ${d.why}`);
    if (d.method === 'nixpacks' || d.method === 'railpack') {
      // Not installed on the hosts ml.ink sets up; the branch stays simple and honest.
      throw new StepFailed('detect', `${d.method} builds are not wired up yet; add a Dockerfile or uninstall ${d.method} to use ml.ink's own detection`);
    }
    if (d.generated) {
      mkdirSync(join(ctx, '.mlink'), { recursive: true });
      writeFileSync(join(ctx, d.dockerfile), d.generated);
      appendFileSync(join(ctx, '.dockerignore'), `\n${OWN_IGNORE}\n`);
      for (const l of d.generated.trimEnd().split('\n')) line(`Dockerfile: ${l}`);
    }
    const dockerfileText = d.generated ?? (existsSync(join(ctx, 'Dockerfile')) ? readFileSync(join(ctx, 'Dockerfile'), 'utf8') : '');
    writeFileSync(join(records.dir(t.project, t.name, t.build.key), 'Dockerfile'), dockerfileText);
    Object.assign(rec, { method: d.method, why: d.why, dockerfile: dockerfileText });

    stepTo(2);
    for (const tc of new Set([d.toolchain, d.sandbox?.toolchain].filter((x): x is Toolchain => !!x))) {
      await this.toolchain(tc, line, signal);
    }

    // ml.ink's own Dockerfiles end in `COPY . <WORKDIR>`: that layer is written directly onto a cached prefix image (assemble.ts).
    const asm = d.generated ? assembly(d.generated, ctx) : undefined;
    if (asm && 'not' in asm) line(`image: the classic builder builds it: ${asm.not}`);
    const image = async (tag: string, stop = signal): Promise<void> => {
      const t0 = Date.now();
      if (asm && !('not' in asm)) {
        stepTo(4, `COPY . ${asm.dest}: layer written by ml.ink onto the prefix image`);
        const layer = await writeLayer(ctx, asm.dest, join(work, 'layer.tar'), stop).catch((e: Error) => {
          throw new StepFailed('image: COPY', stop.aborted ? 'stopped' : e.message);
        });
        const p = await loadAssembled(docker, asm, layer, tag, { limits, signal: stop, onLine: line });
        line(`image: assembled onto ${p.prefixTag} (the instructions above COPY; ${p.prefixBuilt ? 'built now by the classic builder' : 'cached'}), COPY layer of ${layerSize(layer)} written by ml.ink, in ${Date.now() - t0} ms`);
        return;
      }
      await dockerBuild(docker, tarContext(ctx), { tag, dockerfile: d.dockerfile, limits, signal: stop, onLine: line, onStep: (s) => stepTo(4, s) });
      line(`image: built in ${Date.now() - t0} ms`);
    };
    const sb = d.sandbox;
    if (!sb) {
      stepTo(3, 'nothing to run');
      stepTo(4);
      await image(t.image);
    } else if (sb.writes) {
      stepTo(3, sb.name);
      await this.sandbox(t, sb, work, signal, line);
      stepTo(4);
      await image(t.image);
    } else {
      // The check writes nothing the image copies: build meanwhile, and tag the image only once the check passed.
      const pending = `${t.image}${UNCHECKED}`;
      stepTo(3, `${sb.name} (the image builds alongside)`);
      const stopImage = new AbortController();
      const checking = this.sandbox(t, sb, work, signal, line).catch((e: unknown) => { stopImage.abort(); throw e; });
      const [checked, built] = await Promise.allSettled([checking, image(pending, AbortSignal.any([signal, stopImage.signal]))]);
      if (checked.status === 'rejected' || built.status === 'rejected') {
        await untag(docker, pending);
        throw checked.status === 'rejected' ? checked.reason : (built as PromiseRejectedResult).reason;
      }
      await retag(docker, pending, t.image);
    }
    return d;
  }

  /** Runs the untrusted steps in the app's gVisor build sandbox, against the exported context. */
  private async sandbox(t: BuildTarget, sb: NonNullable<Detected['sandbox']>, work: string, signal: AbortSignal, line: (l: string) => void): Promise<void> {
    const { limits, sandboxRuntime } = this.deps;
    line(`sandbox: ${sb.name}, in the app's ${sandboxRuntime} build sandbox (cpu ${limits.cpu}, ${limits.memoryMb} MiB)`);
    const t0 = Date.now();
    const at = { project: t.project, name: t.name, image: toolchainTag(sb.toolchain), cwd: `${basename(work)}/src`, signal };
    if (sb.syntax) {
      const checked = await this.pool.checkSyntax(at, sb.syntax).catch((e: Error) => {
        if (signal.aborted) throw new StepFailed(`sandbox: ${sb.name}`, 'stopped at the build time limit');
        line(`sandbox: the checker kept in the sandbox did not answer (${e.message}); running ${sb.script}`);
        return undefined;
      });
      if (checked) {
        line(`sandbox kernel: ${checked.kernel}`);
        const report = checked.output ? checked.output.split('\n') : [];
        for (const l of report) line(l);
        if (!checked.ok) throw new StepFailed(`sandbox: ${sb.name}`, 'found a syntax error', report);
        line(`sandbox: answered by the checker kept in the sandbox: passed in ${Date.now() - t0} ms`);
        return;
      }
    }
    const proof = `(dmesg 2>/dev/null | head -n 1 | sed 's/^/sandbox kernel: /'); `;
    const own: string[] = [];
    const code = await this.pool.run({
      ...at, script: `${proof}${sb.script}`,
      onLine: (l) => { own.push(l); if (own.length > 50) own.shift(); line(l); },
    });
    if (code !== 0) throw new StepFailed(`sandbox: ${sb.name}`, code === -1 ? 'stopped at the build time limit' : `exited ${code}`, own);
    line(`sandbox: passed in ${Date.now() - t0} ms`);
  }

  /** Pushes `image` to the private registry after the build returned; its record says when it is in. */
  private pushLater(image: string, rec: BuildRecord | undefined): void {
    if (this.pushes.has(image)) return;
    const { records, docker, log } = this.deps;
    const line = (l: string): void => { if (rec) records.append(rec, l); };
    const t0 = Date.now();
    const pushing = push(docker, image, line)
      .then(() => {
        line(`pushed ${image} to the registry in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        if (rec) records.save(Object.assign(rec, { pushedAt: new Date().toISOString() }));
      })
      .catch((e: unknown) => {
        line(`push failed: ${(e as Error).message}; other hosts cannot pull ${image} until a later build pushes it`);
        log.warn('push to the registry failed', { image, error: e });
      })
      .finally(() => this.pushes.delete(image));
    this.pushes.set(image, pushing);
  }

  /** Builds a toolchain base image once per host (trusted: ml.ink's own Dockerfile, Debian packages only). */
  private async toolchain(tc: Toolchain, line: (l: string) => void, signal: AbortSignal): Promise<void> {
    const { docker, limits } = this.deps;
    const tag = toolchainTag(tc);
    if (await imageExists(docker, tag)) { line(`toolchain: ${tag} cached`); return; }
    let running = this.toolchainBuilds.get(tag);
    if (!running) {
      line(`toolchain: building ${tag} (apt-get install; once per host)`);
      running = (async () => {
        const dir = await mkdtemp(join(this.deps.records.root, '.toolchain-'));
        try {
          writeFileSync(join(dir, 'Dockerfile'), tc.dockerfile);
          for (const [f, text] of Object.entries(tc.files ?? {})) writeFileSync(join(dir, f), text);
          await dockerBuild(docker, tarContext(dir), {
            tag, dockerfile: 'Dockerfile', limits: { ...limits, memoryMb: Math.max(limits.memoryMb, 1024) }, signal,
            onLine: (l) => line(`toolchain: ${l}`), onStep: () => undefined,
          });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      })().finally(() => this.toolchainBuilds.delete(tag));
      this.toolchainBuilds.set(tag, running);
    } else {
      line(`toolchain: waiting for ${tag}, being built by another build`);
    }
    await running;
  }
}
