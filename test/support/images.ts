// A small web app image for tests and benchmarks (test/fixtures/web, Go's net/http in a
// static binary on the busybox base): answers "<GREETING> from <hostname>", so a test
// can see which version answered; DELAY (seconds) holds the server back, for a deploy
// still waiting on its health check. (busybox httpd was the first choice, but under
// Debian's 2022 runsc with host networking it resets about one connection in eight.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { must, run } from '../../infra/proc.js';
import { toolchainTag, type Toolchain } from '../../reconciler/image-builds/detect.js';
import { cfg } from './infra.js';

export const WEB_IMAGE = 'mlink-test/web:5';
const source = fileURLToPath(new URL('../fixtures/web/', import.meta.url));

export async function ensureWebImage(): Promise<string> {
  if ((await run('docker', ['image', 'inspect', WEB_IMAGE])).code === 0) return WEB_IMAGE;
  const ctx = mkdtempSync(join(tmpdir(), 'mlink-web-'));
  try {
    await must('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', join(ctx, 'web'), '.'], { cwd: source, env: { ...process.env, CGO_ENABLED: '0' } });
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${cfg.images.busybox}\nCOPY web /web\nCMD ["/web"]\n`);
    await must('docker', ['build', '-q', '-t', WEB_IMAGE, ctx], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return WEB_IMAGE;
}

/** A toolchain base image as the builder makes it (Debian packages; once per host). */
export async function ensureToolchainImage(tc: Toolchain): Promise<string> {
  const tag = toolchainTag(tc);
  if ((await run('docker', ['image', 'inspect', tag])).code === 0) return tag;
  const ctx = mkdtempSync(join(tmpdir(), 'mlink-toolchain-'));
  try {
    writeFileSync(join(ctx, 'Dockerfile'), tc.dockerfile);
    for (const [f, text] of Object.entries(tc.files ?? {})) writeFileSync(join(ctx, f), text);
    await must('docker', ['build', '-q', '-t', tag, ctx], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return tag;
}
