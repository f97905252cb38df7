// bench:faults R3: a runtime host stopped hard. A control plane here and two runtime
// hosts of their own (test hosts: sshd, dockerd, runsc, reached over SSH only) added with
// `mlink host add`; N apps made while only the first runtime host is in the cluster, so
// all run there (placement is stable: adding the second moves nothing). Its container is
// then killed; each app's time to its first 200 from the other host's edge is measured,
// within a bound, while a client asks every app every 50 ms at both edges in turn (as
// a browser with two addresses for a name does) and counts the requests no edge served.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registryAddress } from '../infra/config.js';
import { must, run } from '../infra/proc.js';
import { Poller, appHost, get, sleep, within } from '../test/support/faults.js';
import { call, connectAgent, removeCluster, removeHome, startUp, stopUp, upEnv, type Up } from '../test/support/mlink-up.js';
import { freePort } from '../test/support/ports.js';
import { humanCommit } from '../test/support/human.js';
import { removeTestHosts, startTestHost, testControlKey, type TestHost } from '../test/support/test-hosts.js';

export interface HostLoss {
  /** Per app: seconds from the kill to its first 200 from the surviving host's edge; undefined if not within the bound. */
  each: Array<number | undefined>;
  boundS: number;
  served: number;
  failed: number;
}

async function pull(th: TestHost, ref: string): Promise<void> {
  const h = th.connect();
  try {
    for (let i = 0; ; i++) {
      try {
        await new Promise<void>((resolve, reject) => {
          void h.docker.pull(ref).then((s) => h.docker.modem.followProgress(s as NodeJS.ReadableStream, (e) => (e ? reject(e) : resolve())), reject);
        });
        return;
      } catch (e) {
        if (i >= 20) throw e; // the relay comes up a moment after the commit that names it
        await sleep(500);
      }
    }
  } finally {
    await h.close();
  }
}

export async function hostLoss(opts: { image: string; apps: number; boundMs: number; say: (line: string) => void }): Promise<HostLoss> {
  const { say } = opts;
  const cluster = `fh${Date.now().toString(36)}`;
  const repo = `mlink-bench/faults-web:${process.pid}`;
  let up: Up | undefined;
  let hosts: TestHost[] = [];
  try {
    hosts = await Promise.all([startTestHost({ name: `fr1${process.pid}` }), startTestHost({ name: `fr2${process.pid}` })]);
    const [rt1, rt2] = hosts as [TestHost, TestHost];
    await must('docker', ['tag', opts.image, `${registryAddress()}/${repo}`]);
    await must('docker', ['push', '-q', `${registryAddress()}/${repo}`]);
    up = await startUp({ cluster, drift: 30 });
    const agent = await connectAgent(up);
    try {
      mkdirSync(join(up.home, 'keys', 'ssh'), { recursive: true, mode: 0o700 });
      writeFileSync(join(up.home, 'keys', 'ssh', 'id_ed25519'), testControlKey().privateKey, { mode: 0o600 });
      // The control plane alone here; the registry on this machine's address on the hosts' network.
      const registry = `${rt1.gateway}:${await freePort()}`;
      await humanCommit(up.repo, (work) => {
        const file = join(work, 'mlink.yaml');
        writeFileSync(file, readFileSync(file, 'utf8').replace(/roles: \[ ?control, build, runtime ?\]/, 'roles: [control]').replace(/^ {2}defaults:/m, `  registry:\n    address: ${registry}\n  defaults:`));
      }, 'Runtime hosts of their own (benchmark)');
      const add = async (th: TestHost): Promise<void> => {
        const r = await run('node', ['bin/mlink.js', 'host', 'add', th.name, th.address, '--roles', 'runtime', '--host-key', th.hostKey], { env: upEnv(up!.home) });
        if (r.code !== 0) throw new Error(`mlink host add ${th.name} failed:\n${r.stdout}\n${r.stderr}`);
      };
      await add(rt1);
      // An app from an image (not built here) is not pulled onto a remote runtime host by the
      // reconciler: Docker's create finds no image. Both hosts get it first, through the relay the
      // control plane serves at spec.registry.address, so the figures are about the host loss.
      await Promise.all(hosts.map((th) => pull(th, `${registry}/${repo}`)));
      say(`R3: runtime host ${rt1.name} added; creating ${opts.apps} apps there`);
      const names = Array.from({ length: opts.apps }, (_, i) => `h${i}`);
      await Promise.all(names.map(async (name) => {
        const r = await call<{ wait?: { state: string; message: string } }>(agent, 'create_app', { name, source: { image: `${registry}/${repo}` }, port: 8080, https_redirect: false, wait: 300 });
        if (r.wait?.state !== 'live') throw new Error(`create_app ${name}: ${r.wait?.state}: ${r.wait?.message}`);
      }));
      await add(rt2);
      for (const name of names) {
        const { live } = await call<{ live: { hosts?: string[] } }>(agent, 'get_app', { name });
        if (JSON.stringify(live.hosts) !== JSON.stringify([rt1.name])) throw new Error(`${name} runs on ${live.hosts?.join(', ')}, not ${rt1.name} alone`);
        if ((await get(rt1.address, 80, appHost(name))).status !== 200) throw new Error(`${name}: no 200 from ${rt1.name}'s edge`);
      }
      say(`R3: runtime host ${rt2.name} added; ${opts.apps} apps serve from ${rt1.name}; killing ${rt1.name}`);
      const either = async (name: string): Promise<boolean> => {
        for (const th of [rt1, rt2]) if ((await get(th.address, 80, appHost(name), 500)).status === 200) return true;
        return false;
      };
      const pollers = names.map((n) => new Poller(() => either(n)).start());
      await sleep(1000);
      const t0 = performance.now();
      await rt1.kill();
      let back = 0;
      const each = await Promise.all(names.map(async (name) => {
        const ok = await within(opts.boundMs, async () => ((await get(rt2.address, 80, appHost(name), 1000)).status === 200 ? true : undefined), 100);
        const s = ok ? (performance.now() - t0) / 1000 : undefined;
        if (s !== undefined) say(`R3: ${name} serves from ${rt2.name} ${s.toFixed(1)} s after the kill (${++back}/${opts.apps})`);
        return s;
      }));
      if (back < opts.apps) say(`R3: ${opts.apps - back} of ${opts.apps} apps not served from ${rt2.name} within ${opts.boundMs / 1000} s`);
      const counts = await Promise.all(pollers.map((p) => p.stop()));
      return { each, boundS: opts.boundMs / 1000, served: counts.reduce((a, x) => a + x.served, 0), failed: counts.reduce((a, x) => a + x.failed, 0) };
    } finally {
      await agent.close().catch(() => undefined);
    }
  } finally {
    if (up) {
      await stopUp(up);
      await removeCluster(cluster).catch((e: unknown) => say(`R3 clean-up: ${(e as Error).message}`));
      removeHome(up);
    }
    for (const h of hosts) await h.stop();
    await removeTestHosts();
    await run('docker', ['rmi', `${registryAddress()}/${repo}`]);
  }
}
