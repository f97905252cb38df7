// Debian packages ml.ink needs on a host. Installed once; `dpkg -s` says what is there.
// (iproute2 and util-linux: `ip` and `nsenter` give a replica's network holder its MAC.)
import { must, run } from '../proc.js';
import type { Step } from './step.js';

export const debianPackages = ['docker.io', 'debootstrap', 'busybox-static', 'docker-registry', 'iptables', 'iproute2', 'util-linux', 'runsc', 'git', 'openssl'];

async function missing(): Promise<string[]> {
  const out: string[] = [];
  for (const p of debianPackages) {
    const r = await run('dpkg-query', ['-W', '-f=${Status}', p]);
    if (r.code !== 0 || !r.stdout.includes('install ok installed')) out.push(p);
  }
  return out;
}

export const packagesStep: Step = {
  name: 'debian packages',
  async done() {
    const m = await missing();
    return m.length === 0 ? `${debianPackages.length} installed` : undefined;
  },
  async apply({ progress }) {
    const m = await missing();
    progress(`apt-get install ${m.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await must('apt-get', ['update', '-qq'], { env });
    await must('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...m], { env });
    return `installed ${m.join(', ')}`;
  },
};
