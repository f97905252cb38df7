// plan, Database part: a database's server is one container on its data volume. A new
// spec stops the old server before the new one starts (a volume holds one server at a
// time); a heal replaces a server that stopped or does not answer; a removal removes
// the server and never the volume. Pure.
import type { DatabaseChange } from '../diff/database.js';
import type { EgressPolicy } from '../hosts/egress-rules.js';
import { databaseContainerName, volumeName } from '../layout.js';
import type { Action } from './actions.js';

export function databaseActions(cluster: string, change: Exclude<DatabaseChange, { change: 'unchanged' | 'stalled' | 'remove' }>, egress: EgressPolicy): Action[] {
  const { db } = change;
  const container = databaseContainerName(cluster, db);
  if (change.change === 'heal' && change.starting) {
    return [{ type: 'waitDatabase', host: db.host, db, container, reason: 'its server is starting: wait until it answers' }];
  }
  const stale = 'stale' in change ? change.stale : [];
  return [
    ...stale.map((c): Action => ({ type: 'removeContainer', host: c.host, id: c.id, name: c.name, reason: `${change.change}: the data volume takes one server at a time (data kept)` })),
    { type: 'startDatabase', host: db.host, db, container, volume: volumeName(cluster, db), egress, reason: `${change.change}: ${change.reason}` },
  ];
}

export function databaseRemoveActions(change: Extract<DatabaseChange, { change: 'remove' }>): Action[] {
  return change.containers.map((c): Action => ({ type: 'removeContainer', host: c.host, id: c.id, name: c.name, reason: change.reason }));
}
