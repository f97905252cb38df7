// `mlink prune --cluster NAME`: removes what a cluster whose control plane is gone left
// on this host (see reconciler/prune.ts). Refuses while a worker of it still runs.
import { LocalHost } from '../hosts/host.js';
import { parseArgs } from 'node:util';
import { infraConfig, temporalAddress } from '../../infra/config.js';
import { pruneCluster } from '../prune.js';

const HELP = `usage: mlink prune --cluster NAME [--dry-run] [--force]

Removes everything cluster NAME left on this host once its control plane is gone (an
mlink up that died, a benchmark, a test): its reconcile workflow, its containers
(replicas, network holders, build sandboxes), its Traefik route and certificate files, its project
networks and its egress rules. Only objects ml.ink labelled with that cluster's name;
never another cluster's, never volumes. Refuses while a worker of the cluster still
polls Temporal (stop its mlink up first; --force skips that check).

  --dry-run   list what would be removed, remove nothing
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { cluster: { type: 'string' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (e) {
    process.stderr.write(`mlink prune: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) { process.stdout.write(HELP); return 0; }
  if (!values.cluster) { process.stderr.write(`mlink prune: --cluster NAME is required (the name mlink up was given, as mlink doctor lists it)\n\n${HELP}`); return 2; }
  const cfg = infraConfig();
  try {
    const r = await pruneCluster({
      cluster: values.cluster, host: new LocalHost(), routesDir: cfg.traefik.routesDir,
      temporal: { address: temporalAddress(cfg), namespace: cfg.temporal.namespace },
      dryRun: values['dry-run'] ?? false, force: values.force ?? false,
    });
    const verb = values['dry-run'] ? 'would remove' : 'removed';
    const line = (what: string, items: string[]): string => `${verb} ${items.length} ${what}${items.length ? `: ${items.join(', ')}` : ''}`;
    process.stdout.write([
      `cluster ${values.cluster}:`,
      `  ${r.workflow}`,
      `  ${line('container(s)', r.containers)}`,
      `  ${line('route file(s)', r.routes)}`,
      `  ${line('network(s)', r.networks)}`,
      `  ${line('egress chain(s)', r.chains)}`,
      ...r.left.map((l) => `  left: ${l}`),
      '',
    ].join('\n'));
    return r.left.length ? 1 : 0;
  } catch (e) {
    process.stderr.write(`mlink prune: ${(e as Error).message}\n`);
    return 1;
  }
}
