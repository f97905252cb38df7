// `mlink setup`: every host prerequisite, in order, each step skipped when already done.
// Idempotent and cached: a second run on the same machine takes seconds.
import { mkdirSync } from 'node:fs';
import { infraConfig, type InfraConfig } from '../config.js';
import { dockerStep } from './docker.js';
import { goBinaryStep } from './go-binaries.js';
import { busyboxImageStep, debianImageStep } from './images.js';
import { packagesStep } from './packages.js';
import { runscStep } from './runsc.js';
import { registryStep, temporalStep, traefikStep } from './services.js';
import { runSteps, secs, type Step } from './step.js';

export interface SetupOptions {
  cfg?: InfraConfig;
  /** Skip the debian base image (only builds from source need it). */
  skipDebian?: boolean;
  out?: (line: string) => void;
}

export function setupSteps(cfg: InfraConfig, opts: SetupOptions = {}): Step[] {
  return [
    packagesStep,
    goBinaryStep('temporal'),
    goBinaryStep('traefik'),
    goBinaryStep('runsc'),
    dockerStep(cfg.dirs.run),
    busyboxImageStep(),
    runscStep(),
    temporalStep(),
    traefikStep(),
    registryStep(),
    ...(opts.skipDebian ? [] : [debianImageStep()]),
  ];
}

export async function runSetup(opts: SetupOptions = {}): Promise<InfraConfig> {
  const cfg = opts.cfg ?? infraConfig();
  const out = opts.out ?? ((l: string) => process.stderr.write(l + '\n'));
  if (process.getuid && process.getuid() !== 0) {
    throw new Error('mlink setup installs packages and starts dockerd, so it runs as root; run it again with sudo');
  }
  for (const d of [cfg.dirs.home, cfg.dirs.bin, cfg.dirs.run, cfg.dirs.images, cfg.dirs.routes]) mkdirSync(d, { recursive: true });
  const steps = setupSteps(cfg, opts);
  const started = Date.now();
  await runSteps(steps, { cfg }, out, (step, e) => new Error(`setup step "${step}" failed: ${e.message}`));
  out(`setup complete in ${secs(started)}`);
  return cfg;
}
