// A set-up step: a name, a check that says whether it is already done, and the work.
// The runner prints one progress line per step and how long each step took; `mlink
// setup` runs its steps on this machine, `mlink host add` its own on a host over SSH.
import type { InfraConfig } from '../config.js';

export interface Progress {
  progress(msg: string): void;
}

/** A step against some context (this machine's config, a host over SSH). */
export interface StepOf<C> {
  name: string;
  /** A short description of the current state when the step is already done, else undefined. */
  done(ctx: C & Progress): Promise<string | undefined>;
  apply(ctx: C & Progress): Promise<string>;
}

export interface StepContext extends Progress {
  cfg: InfraConfig;
}

export type Step = StepOf<{ cfg: InfraConfig }>;

export interface StepResult { name: string; state: 'ok' | 'done'; detail: string; ms: number }

/**
 * Runs `steps` in order, each skipped when already done: `[3/8] name: ok, detail (0.1 s)`
 * or `[3/8] name: done, detail (41.2 s)`. A failing step throws `failed(step, error)`.
 */
export async function runSteps<C>(steps: Array<StepOf<C>>, ctx: C, out: (line: string) => void, failed: (step: string, e: Error) => Error): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const [i, step] of steps.entries()) {
    const t0 = Date.now();
    const tag = `[${i + 1}/${steps.length}] ${step.name}`;
    const sctx = { ...ctx, progress: (m: string) => out(`${tag}: ${m}`) };
    try {
      const already = await step.done(sctx);
      if (already) {
        results.push({ name: step.name, state: 'ok', detail: already, ms: Date.now() - t0 });
        out(`${tag}: ok, ${already} (${secs(t0)})`);
        continue;
      }
      const what = await step.apply(sctx);
      results.push({ name: step.name, state: 'done', detail: what, ms: Date.now() - t0 });
      out(`${tag}: done, ${what} (${secs(t0)})`);
    } catch (e) {
      throw failed(step.name, e as Error);
    }
  }
  return results;
}

export function secs(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)} s`;
}
