// Binaries that no package ships, built from the Go module proxy and cached in the data
// dir under a name that carries their version: a new version builds once, an old one is
// never rebuilt.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { versions } from '../config.js';
import { must } from '../proc.js';
import type { Step, StepContext } from './step.js';

const infraDir = dirname(dirname(fileURLToPath(import.meta.url)));

interface GoBinary {
  name: string;
  out: (ctx: StepContext) => string;
  /** `go install pkg@version`, or `go build pkg` inside one of our wrapper modules. */
  install?: string;
  /** Without cgo: a static binary that runs where no dynamic loader is (runsc inside its own chroot). */
  static?: boolean;
  wrapper?: { dir: string; pkg: string };
}

const binaries: GoBinary[] = [
  { name: 'temporal', out: ({ cfg }) => cfg.temporal.binary, install: `github.com/temporalio/cli/cmd/temporal@${versions.temporalCli}` },
  { name: 'traefik', out: ({ cfg }) => cfg.traefik.binary, wrapper: { dir: join(infraDir, 'traefik'), pkg: 'github.com/traefik/traefik/v3/cmd/traefik' } },
  { name: 'runsc', out: ({ cfg }) => cfg.runsc.binary, install: `gvisor.dev/gvisor/runsc@${versions.gvisor}`, static: true },
];

async function build(bin: GoBinary, ctx: StepContext): Promise<void> {
  const out = bin.out(ctx);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.building`;
  const env = { ...process.env, GOFLAGS: '-mod=mod', ...(bin.static ? { CGO_ENABLED: '0' } : {}) };
  const ldflags = '-s -w';
  const onLine = (l: string): void => { if (/^go: downloading/.test(l) === false && l.trim()) ctx.progress(`${bin.name}: ${l.trim()}`); };
  if (bin.install) {
    const gobin = `${out}.gobin`;
    rmSync(gobin, { recursive: true, force: true });
    await must('go', ['install', '-trimpath', `-ldflags=${ldflags}`, bin.install], { env: { ...env, GOBIN: gobin }, onLine });
    renameSync(join(gobin, bin.name), out);
    rmSync(gobin, { recursive: true, force: true });
  } else if (bin.wrapper) {
    await must('go', ['build', '-trimpath', `-ldflags=${ldflags}`, '-o', tmp, bin.wrapper.pkg], { env, cwd: bin.wrapper.dir, onLine });
    renameSync(tmp, out);
  }
}

export function goBinaryStep(name: string): Step {
  const bin = binaries.find((b) => b.name === name);
  if (!bin) throw new Error(`no Go binary named ${name}`);
  return {
    name: `${name} binary`,
    async done(ctx) {
      const out = bin.out(ctx);
      return existsSync(out) ? `cached ${out}` : undefined;
    },
    async apply(ctx) {
      ctx.progress(`building ${name} from the Go module proxy (minutes on a new machine; cached after)`);
      await build(bin, ctx);
      return `built ${bin.out(ctx)}`;
    },
  };
}
