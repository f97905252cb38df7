// Before the diff: each bound app gets the addresses its databases run at now. Sandboxed
// apps cannot resolve names through Docker's embedded DNS (gVisor's network stack does
// not reach it), so `<PREFIX>_HOST` is the server's address on the app's network, and the
// addresses are part of what the app's replicas are: a server that comes back elsewhere
// rolls its apps onto the new address. An app whose database does not run yet waits
// (what runs of it is left alone) and starts in the pass after the database is ready.
// Pure: no I/O.
import { createHash } from 'node:crypto';
import { networkName } from '../layout.js';
import { keyFields, keyOf, type DesiredApp, type DesiredResource, type DesiredState, type LiveState, type ResourceKey } from '../model.js';

export interface Waiting extends ResourceKey { reason: string }

function resolve(cluster: string, app: DesiredApp, live: LiveState): DesiredApp | string {
  if (!app.databases.length) return app;
  const network = networkName(cluster, app.project);
  const hosts = [...new Set(app.placement.slice(0, app.replicas))];
  const databases = [];
  for (const b of app.databases) {
    const key = keyOf({ kind: 'Database', project: b.project, name: b.name });
    const server = live.containers.find((c) => keyOf(c.key) === key && c.running && c.healthy !== false);
    if (!server) return `database ${b.project}/${b.name} is not running yet; this starts once it answers`;
    if (hosts.some((h) => h !== server.host)) return `database ${b.project}/${b.name} runs on ${server.host}, and an app reaches a database only on its host`;
    const address = server.addresses?.[network];
    if (!address) return `database ${b.project}/${b.name} is not on network ${network} yet; this starts once it is`;
    databases.push({ ...b, address });
  }
  const specHash = createHash('sha256').update(JSON.stringify([app.specHash, databases.map((d) => [d.project, d.name, d.address])])).digest('hex');
  return { ...app, databases, specHash };
}

export function resolveBindings(desired: DesiredState, live: LiveState): { desired: DesiredState; waiting: Waiting[] } {
  const waiting: Waiting[] = [];
  const resources = desired.resources.flatMap((r): DesiredResource[] => {
    if (r.kind !== 'App') return [r];
    const out = resolve(desired.cluster, r, live);
    if (typeof out === 'string') { waiting.push({ ...keyFields(r), reason: out }); return []; }
    return [out];
  });
  return { desired: { ...desired, resources, held: [...desired.held, ...waiting.map(keyFields)] }, waiting };
}
