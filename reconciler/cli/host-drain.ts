// `mlink host drain NAME` and `mlink host undrain NAME`: a drain is a reviewable commit
// that sets `schedulable: false` in hosts/NAME.yaml. Placement then moves every app off
// the host with the rollout machinery (new replicas start and pass their health checks
// elsewhere, routes switch, then the old ones drain and go), and this command waits
// until nothing of ml.ink's apps runs there. It refuses, naming them, when an app would
// fit on no other host; databases stay with their data.
import { parse } from 'yaml';
import { validateHost, type HostManifest } from '../../schemas/index.js';
import { clusterHosts } from '../hosts/cluster.js';
import { conditionText } from '../hosts/conditions.js';
import { renderHostFile } from '../hosts/host-file.js';
import type { HostPool } from '../hosts/pool.js';
import { hostPath, listHosts } from '../layout.js';
import { LABEL, keyOf } from '../model.js';
import { observeReachable } from '../observe/reachable.js';
import { clusterFilter } from '../observe/live.js';
import { place } from '../placement.js';
import { loadDesired, readClusterConfig } from '../source/desired.js';
import { MAIN, type StateStore } from '../state/store.js';
import { humanIdentity } from './identity.js';

export interface DrainOptions {
  store: StateStore;
  author?: string;
  /** Seconds to wait for the apps to leave (default 600). */
  timeoutS?: number;
  out: (line: string) => void;
}

async function hostFile(store: StateStore, name: string): Promise<{ manifest: HostManifest; declared: string[]; cluster: string }> {
  const view = await store.view(MAIN);
  const config = await readClusterConfig(view);
  const declared = config.spec.hosts.map((h) => h.name);
  if (declared.includes(name)) throw new Error(`host ${name} is declared in mlink.yaml's spec.hosts, which has no schedulable field; drain a host added with \`mlink host add\` (hosts/${name}.yaml)`);
  const text = await view.readText(hostPath(name));
  if (text === null) {
    const names = [...declared, ...(await listHosts(view)).items.map((i) => i.host.metadata.name)].sort();
    throw new Error(`no host named ${JSON.stringify(name)} in this cluster (hosts: ${names.join(', ') || 'none'}); \`mlink host list\` shows them`);
  }
  return { manifest: validateHost(hostPath(name), parse(text)), declared, cluster: config.metadata.name };
}

/** App replicas (and their routes) of `cluster` on host `name`, by app. */
async function appsOn(pool: HostPool, cluster: string, name: string): Promise<string[]> {
  const host = pool.get(name);
  const list = await host.docker.listContainers({ all: true, filters: clusterFilter(cluster, `${LABEL.kind}=App`) });
  return list.map((c) => `${c.Labels[LABEL.project]}/${c.Labels[LABEL.name]}`).sort();
}

/** What would fit nowhere once `name` takes no work: refused before anything is committed. */
async function refusals(store: StateStore, pool: HostPool, cluster: string, name: string): Promise<{ stuck: string[]; databases: string[] }> {
  const commit = await store.resolve(MAIN);
  if (!commit) return { stuck: [], databases: [] };
  const loaded = await loadDesired(store, commit, cluster);
  pool.configure(loaded.hosts, loaded.registry);
  const { live, unreachable } = await observeReachable(pool, cluster);
  const now = pool.placementHosts(unreachable.map((u) => u.host));
  const after = now.map((h) => (h.name === name ? { ...h, schedulable: false, unschedulable: 'being drained' } : h));
  const before = new Set(place(loaded.desired, live, now).unplaced.map((u) => keyOf(u)));
  const stuck = place(loaded.desired, live, after, pool.names('build')).unplaced
    .filter((u) => u.kind === 'App' && !before.has(keyOf(u)))
    .map((u) => `${u.project}/${u.name} (${u.reason})`);
  const databases = live.volumes.filter((v) => v.host === name).map((v) => `${v.key.project}/${v.key.name}`);
  return { stuck, databases };
}

async function commitSchedulable(store: StateStore, m: HostManifest, schedulable: boolean, author: string | undefined, message: string): Promise<string | undefined> {
  const spec = { ...m.spec };
  if (schedulable) delete spec.schedulable;
  else spec.schedulable = false;
  const next = validateHost(hostPath(m.metadata.name), { ...m, spec });
  const who = humanIdentity(author);
  const r = await store.commit({ ref: MAIN, author: who, message, prepare: async () => [{ path: hostPath(m.metadata.name), content: renderHostFile(next) }] });
  return r.commit ?? undefined;
}

export async function drain(name: string, opts: DrainOptions): Promise<number> {
  const t0 = Date.now();
  const { manifest, cluster } = await hostFile(opts.store, name);
  if (!manifest.spec.roles.includes('runtime')) throw new Error(`host ${name} is not a runtime host (roles: ${manifest.spec.roles.join(', ')}): no app runs there to move`);
  const pool = await clusterHosts(await opts.store.view(MAIN));
  try {
    if (manifest.spec.schedulable === false) {
      opts.out(`host ${name} is drained already (hosts/${name}.yaml says schedulable: false); waiting for its apps to leave`);
    } else {
      const others = pool.placementHosts().filter((h) => h.name !== name && h.schedulable);
      if (!others.length) {
        const why = pool.placementHosts().filter((h) => h.name !== name).map((h) => `${h.name} is ${h.unschedulable ?? conditionText(pool.condition(h.name))}`);
        throw new Error(`host ${name} is the last runtime host that takes work${why.length ? ` (${why.join('; ')})` : ''}; add another with \`mlink host add\` before draining it`);
      }
      const { stuck, databases } = await refusals(opts.store, pool, cluster, name);
      if (stuck.length) throw new Error(`cannot drain ${name}: ${stuck.length === 1 ? 'this app fits' : 'these apps fit'} on no other runtime host, so ${stuck.length === 1 ? 'it' : 'they'} would stop serving: ${stuck.join('; ')}. Make room (mlink host add, smaller resources) or move them first; nothing was committed`);
      for (const d of databases) opts.out(`database ${d} stays on ${name} with its data (a database is not moved without it)`);
      const commit = await commitSchedulable(opts.store, manifest, false, opts.author,
        `Drain host ${name}\n\nNothing new is placed on ${name}; the reconciler moves its apps to ${others.map((h) => h.name).join(', ')} `
        + '(new replicas start and pass their health checks there, routes switch, then the old replicas drain and go).\n'
        + `Undo with \`mlink host undrain ${name}\` or by reverting this commit.\n\nMlink-Tool: mlink host drain\n`);
      opts.out(`committed hosts/${name}.yaml (schedulable: false) as ${commit?.slice(0, 12) ?? '(no change)'}; moving its apps to ${others.map((h) => h.name).join(', ')}`);
    }
    const deadline = t0 + (opts.timeoutS ?? 600) * 1000;
    let said = '';
    for (;;) {
      const left = await appsOn(pool, cluster, name).catch((e: Error) => [`(cannot list its containers: ${e.message})`]);
      const text = left.length ? `${left.length} app replica(s) left on ${name}: ${[...new Set(left)].join(', ')}` : '';
      if (!left.length) {
        opts.out(`drained ${name}: nothing of ml.ink's apps runs there (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        return 0;
      }
      if (text !== said) { opts.out(text); said = text; }
      if (Date.now() > deadline) {
        opts.out(`still ${text} after ${opts.timeoutS ?? 600} s; is \`mlink up\` running? \`mlink status\` says what the reconciler did. The drain commit stays; run this again to wait`);
        return 1;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await pool.close();
  }
}

export async function undrain(name: string, opts: DrainOptions): Promise<number> {
  const { manifest } = await hostFile(opts.store, name);
  if (manifest.spec.schedulable !== false) {
    opts.out(`host ${name} is not drained; nothing to commit`);
    return 0;
  }
  const commit = await commitSchedulable(opts.store, manifest, true, opts.author,
    `Undrain host ${name}\n\nNew work may be placed on ${name} again; what runs elsewhere stays where it runs.\n\nMlink-Tool: mlink host undrain\n`);
  opts.out(`committed hosts/${name}.yaml (schedulable again) as ${commit?.slice(0, 12) ?? '(no change)'}; new work may be placed there`);
  return 0;
}
