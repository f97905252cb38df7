// Base images made here: no image registry is reachable, so every image starts from
// Debian. `mlink/busybox` is a static busybox (about 2 MB: a web server for fast tests);
// `mlink/debian:bookworm` is a debootstrap minbase that Dockerfiles build on.
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, copyFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { must, run } from '../proc.js';
import type { Step, StepContext } from './step.js';

export async function imageExists(ref: string): Promise<boolean> {
  return (await run('docker', ['image', 'inspect', '--format', '{{.Id}}', ref])).code === 0;
}

async function importDir(dir: string, ref: string, changes: string[]): Promise<void> {
  const args = ['-c', `tar -C '${dir}' -c . | docker import ${changes.map((c) => `--change '${c}'`).join(' ')} - '${ref}'`];
  await must('sh', args);
}

/** A base image as a set-up step: done when Docker has the image, else `build` makes it. */
function imageStep(name: string, refOf: (cfg: StepContext['cfg']) => string, build: (ctx: StepContext) => Promise<string>): Step {
  return {
    name,
    async done({ cfg }) {
      return (await imageExists(refOf(cfg))) ? `${refOf(cfg)} present` : undefined;
    },
    async apply(ctx) {
      mkdirSync(ctx.cfg.dirs.images, { recursive: true });
      return build(ctx);
    },
  };
}

export function busyboxImageStep(): Step {
  return imageStep('busybox image', (cfg) => cfg.images.busybox, async ({ cfg, progress }) => {
    const root = mkdtempSync(join(cfg.dirs.images, 'busybox-'));
    try {
      mkdirSync(join(root, 'bin'), { recursive: true });
      for (const d of ['tmp', 'etc', 'www', 'proc', 'sys', 'dev']) mkdirSync(join(root, d));
      copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
      const applets = (await must('/bin/busybox', ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
      for (const a of applets) symlinkSync('busybox', join(root, 'bin', a));
      writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
      writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
      writeFileSync(join(root, 'www', 'index.html'), 'busybox\n');
      progress(`importing ${cfg.images.busybox}`);
      await importDir(root, cfg.images.busybox, ['ENV PATH=/bin', 'CMD ["/bin/sh"]']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    return `imported ${cfg.images.busybox}`;
  });
}

export function debianImageStep(): Step {
  return imageStep('debian base image', (cfg) => cfg.images.debian, async ({ cfg, progress }) => {
    const tarball = join(cfg.dirs.images, 'debian-bookworm-minbase.tar');
    if (!existsSync(tarball)) {
      const root = join(cfg.dirs.images, 'debian-bookworm.rootfs');
      rmSync(root, { recursive: true, force: true });
      progress('debootstrap --variant=minbase bookworm (about a minute)');
      await must('debootstrap', ['--variant=minbase', 'bookworm', root, 'http://deb.debian.org/debian'], {
        onLine: (l) => { if (/^I: (Retrieving|Installing|Configuring) /.test(l) === false && /^I: /.test(l)) progress(l.slice(3)); },
      });
      rmSync(join(root, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
      mkdirSync(join(root, 'var', 'cache', 'apt', 'archives', 'partial'), { recursive: true });
      await must('tar', ['-C', root, '-cf', `${tarball}.part`, '.']);
      renameSync(`${tarball}.part`, tarball);
      rmSync(root, { recursive: true, force: true });
    }
    progress(`importing ${cfg.images.debian}`);
    await must('sh', ['-c', `docker import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' '${tarball}' '${cfg.images.debian}'`]);
    return `imported ${cfg.images.debian}`;
  });
}
