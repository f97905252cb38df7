// What starts a reconcile pass: a new commit on main (chokidar on the repo's refs), the
// drift timer (node-cron), and explicit requests (the MCP `sync` tool, start-up).
import { watch } from 'chokidar';
import { basename, join } from 'node:path';
import cron from 'node-cron';

export interface Stoppable { stop(): Promise<void> }

/** Calls `onChange` whenever refs/heads/main (loose or packed) changes. */
export function watchMain(gitdir: string, onChange: () => void): Stoppable {
  const watcher = watch([join(gitdir, 'refs', 'heads'), join(gitdir, 'packed-refs')], {
    ignoreInitial: true,
    depth: 0,
    atomic: false, // git moves refs by rename; chokidar's atomic-write detection would hold each event 100 ms
    ignored: (p: string) => p.endsWith('.lock'),
  });
  const fire = (path: string): void => {
    const name = basename(path);
    if (name === 'main' || name === 'packed-refs') onChange();
  };
  watcher.on('add', fire).on('change', fire);
  return { stop: () => watcher.close() };
}

/** A cron expression that fires every `seconds` (seconds field when under a minute). */
export function driftSchedule(seconds: number): string {
  if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`drift interval must be a whole number of seconds >= 1 (got ${seconds})`);
  if (seconds < 60) return `*/${seconds} * * * * *`;
  const minutes = Math.max(1, Math.round(seconds / 60));
  return `0 */${minutes} * * * *`;
}

export function driftTimer(seconds: number, onTick: () => void): Stoppable {
  const task = cron.schedule(driftSchedule(seconds), onTick, { noOverlap: true });
  return { stop: async () => { await task.stop(); } };
}
