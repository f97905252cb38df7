// `mlink status`: a table of every app on main with what runs now: phase, containers,
// URL, applied commit and the last error. Reads git and the hosts; needs no Temporal.
import { parseArgs } from 'node:util';
import { infraConfig } from '../../infra/config.js';
import type { App } from '../../schemas/index.js';
import { listManifests } from '../domain/manifests.js';
import { readClusterConfig } from '../source/desired.js';
import { clusterHosts } from '../hosts/cluster.js';
import { conditionText } from '../hosts/conditions.js';
import { createLiveState } from '../status/live-state.js';
import { latestStatus } from '../status/record.js';
import { MAIN, StateStore } from '../state/store.js';
import { dataDir } from '../util/paths.js';

const HELP = `usage: mlink status [--repo DIR] [--json]

One line per app on main: phase, containers, URL, the commit running, the last error.
`;

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { repo: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(HELP); return 0; }
  try {
    const store = StateStore.open(values.repo ?? dataDir().stateRepo);
    const view = await store.view(MAIN);
    const config = await readClusterConfig(view);
    const cluster = config.metadata.name;
    const hosts = await clusterHosts(view);
    const live = createLiveState({ cluster, store, hosts, webPort: infraConfig().traefik.webPort });
    const { items, invalid } = await listManifests<App>(view, 'App');
    const ids = items.map((i) => ({ kind: 'App' as const, project: i.manifest.metadata.project, name: i.manifest.metadata.name }));
    const states = await live.statusMany!(ids);
    const last = await latestStatus(store);
    // Hosts that are not Ready or take no new work, as the control plane's health checks last said.
    const unwell = hosts.names().flatMap((n) => {
      const c = hosts.condition(n);
      const drained = !hosts.entry(n).schedulable;
      return c || drained ? [{ name: n, state: c?.state ?? 'Ready', ...(c ? { condition: c } : {}), drained, text: `${conditionText(c)}${drained ? ', drained' : ''}` }] : [];
    });
    await hosts.close();
    if (values.json) {
      process.stdout.write(JSON.stringify({ cluster, commit: view.commit, last, hosts: unwell, apps: ids.map((id, i) => ({ ...id, live: states[i] })), invalid }, null, 2) + '\n');
      return 0;
    }
    const rows = [['APP', 'PHASE', 'URL', 'HOSTS', 'RUNNING COMMIT', 'DETAIL']];
    ids.forEach((id, i) => {
      const s = states[i]!;
      // Where its replicas run, one entry per replica (two on one host show as host×2).
      const placed = s.known ? countBy((s.replicas ?? []).filter((r) => r.running).map((r) => r.host ?? '?')) : '';
      rows.push(s.known
        ? [`${id.project}/${id.name}`, s.phase, s.url ?? '-', placed || '-', s.appliedCommit?.slice(0, 12) ?? '-', s.message ?? '']
        : [`${id.project}/${id.name}`, 'Unknown', '-', '-', '-', s.reason]);
    });
    process.stdout.write(`cluster ${cluster}, main at ${view.commit?.slice(0, 12) ?? '(empty)'}\n`);
    process.stdout.write(last ? `last reconcile: ${last.phase} ${last.commit.slice(0, 12)} at ${last.at} (${last.trigger}): ${last.message}\n` : 'no reconcile recorded yet (is `mlink up` running?)\n');
    for (const h of unwell) process.stdout.write(`host ${h.name}: ${h.text}\n`);
    process.stdout.write('\n');
    process.stdout.write(ids.length ? table(rows) : 'no apps on main\n');
    for (const bad of invalid) process.stdout.write(`invalid: ${bad}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`mlink status: ${(e as Error).message}\n`);
    return 1;
  }
}

function countBy(names: string[]): string {
  const n = new Map<string, number>();
  for (const x of names) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].sort(([a], [b]) => a.localeCompare(b)).map(([h, c]) => (c > 1 ? `${h}×${c}` : h)).join(',');
}
