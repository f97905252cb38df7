// Which runsc backs Docker's `runsc` runtime. A current gVisor (built from its Go module)
// runs with its own sandbox network; Debian's 2022 build fails on kernels from 6.11 with
// "cannot run with network enabled in root network namespace" and only works with
// --network=host. We try the current one first and prove it with dmesg from inside.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { run } from '../proc.js';
import { registerRunsc, registeredRunsc, reloadDocker, type RuntimeChoice } from './docker.js';
import type { Step, StepContext } from './step.js';

const debianRunsc = '/usr/bin/runsc';

export function readRuntimeChoice(file: string): RuntimeChoice | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RuntimeChoice;
  } catch {
    return undefined;
  }
}

/** Runs `dmesg` in a busybox container under runsc; gVisor's kernel prints "Starting gVisor". */
export async function provesGvisor(image: string, extra: string[] = []): Promise<{ ok: boolean; output: string }> {
  const r = await run('docker', ['run', '--rm', '--runtime', 'runsc', '--label', 'ink.ml.probe=runsc', ...extra, image, 'dmesg']);
  const output = (r.stdout + r.stderr).trim();
  return { ok: r.code === 0 && /gVisor/i.test(output), output };
}

function candidates(ctx: StepContext): RuntimeChoice[] {
  const out: RuntimeChoice[] = [];
  if (existsSync(ctx.cfg.runsc.binary)) {
    out.push({ kind: 'current', path: ctx.cfg.runsc.binary, runtimeArgs: [], reason: 'gVisor built from its Go module; default sandbox network' });
  }
  if (existsSync(debianRunsc)) {
    out.push({ kind: 'debian', path: debianRunsc, runtimeArgs: ['--network=host'], reason: "Debian's runsc (2022) needs --network=host on this kernel: the host kernel's network stack, the container still in its own namespace" });
  }
  return out;
}

export function runscStep(): Step {
  return {
    name: 'gVisor runtime',
    async done(ctx) {
      const choice = readRuntimeChoice(ctx.cfg.runsc.choice);
      const reg = registeredRunsc();
      if (!choice || !reg || reg.path !== choice.path) return undefined;
      if (!existsSync(choice.path)) return undefined;
      // A better runsc appeared (a new or fixed build) that was never tried: try it.
      const best = candidates(ctx).find((c) => !choice.failed?.includes(c.path));
      if (best && best.path !== choice.path) return undefined;
      return `runsc = ${choice.kind} (${choice.path})`;
    },
    async apply(ctx) {
      const failures: string[] = [];
      const failed: RuntimeChoice[] = [];
      for (const choice of candidates(ctx)) {
        ctx.progress(`trying ${choice.kind} runsc ${choice.path} ${choice.runtimeArgs.join(' ')}`.trim());
        if (registerRunsc(choice)) await reloadDocker();
        const probe = await provesGvisor(ctx.cfg.images.busybox);
        if (probe.ok) {
          mkdirSync(dirname(ctx.cfg.runsc.choice), { recursive: true });
          writeFileSync(ctx.cfg.runsc.choice, JSON.stringify({ ...choice, failed: failed.map((f) => f.path) }, null, 2) + '\n');
          return `runsc = ${choice.kind}: ${choice.reason}`;
        }
        failures.push(`${choice.kind} (${choice.path}): ${probe.output.split('\n').slice(-3).join(' | ')}`);
        failed.push(choice);
      }
      throw new Error(`no runsc could start a container:\n${failures.join('\n')}\nfix: check dockerd's log, then run mlink setup again`);
    },
  };
}
