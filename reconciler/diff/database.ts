// diff, Database part: one desired database against its live server container and its
// volume. A database's data is never part of a change: a volume is created once, kept
// through every update, heal and removal, and only a human purges it.
// Pure: no I/O, deterministic, imported by workflows.
import type { DesiredDatabase, LiveContainer, LiveVolume, ResourceKey } from '../model.js';
import { sameRelease } from '../source/database.js';

export type DatabaseChange =
  | { change: 'create'; db: DesiredDatabase; volume?: LiveVolume; reason: string }
  | { change: 'update'; db: DesiredDatabase; stale: LiveContainer[]; reason: string }
  | { change: 'heal'; db: DesiredDatabase; stale: LiveContainer[]; reason: string; starting?: boolean }
  | { change: 'remove'; key: ResourceKey; containers: LiveContainer[]; reason: string }
  | { change: 'stalled'; db: DesiredDatabase; reason: string }
  | { change: 'unchanged'; db: DesiredDatabase };

export function diffDatabase(db: DesiredDatabase, containers: LiveContainer[], volume: LiveVolume | undefined): DatabaseChange {
  if (volume && volume.host !== db.host) {
    return { change: 'stalled', db, reason: `its data is on host ${volume.host}, not on ${db.host}; ml.ink does not move a database's data (restore its latest verified backup into a database on ${db.host})` };
  }
  if (volume && volume.engine && (volume.engine !== db.engine || !sameRelease(volume.version, db.version))) {
    return {
      change: 'stalled', db,
      reason: `its data was written by ${volume.engine} ${volume.version}; changing to ${db.engine} ${db.version} in place is not supported: create a new database with the new engine or version, dump this one into it (backup_database, then restore_database into the new name), and bind the apps to the new one`,
    };
  }
  const current = containers.filter((c) => c.specHash === db.specHash && c.host === db.host);
  const other = containers.filter((c) => !current.includes(c));
  if (containers.length === 0) {
    return { change: 'create', db, ...(volume ? { volume } : {}), reason: volume ? `not running; its retained data (since ${volume.createdAt}) is used again` : 'not running' };
  }
  if (current.length === 0) {
    return { change: 'update', db, stale: other, reason: `spec changed (${other[0]!.specHash.slice(0, 10)} -> ${db.specHash.slice(0, 10)}); the server restarts on the same data` };
  }
  const running = current.filter((c) => c.running);
  if (running.length === 0) return { change: 'heal', db, stale: [...current, ...other], reason: 'server stopped' };
  if (other.length) return { change: 'heal', db, stale: other, reason: `${other.length} container(s) of an older spec` };
  const [server] = running;
  if (server!.healthy === false) return { change: 'heal', db, stale: current, reason: 'server does not answer its health check' };
  if (server!.healthy === undefined) return { change: 'heal', db, stale: [], reason: 'server starting', starting: true };
  return { change: 'unchanged', db };
}
