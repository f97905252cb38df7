// What the waker of a runtime host knows of each scale-to-zero app (written by the
// reconciler beside the app's route) and what it says of it (written by the waker, read
// by observe). Plain data and file names only: both the control plane and the waker
// program (main.ts, a container of its own on the host) import this file.

/** The request header the app's route adds (a Traefik headers middleware): which app a request is for. */
export const WAKE_HEADER = 'x-mlink-wake';

/** One replica as the waker keeps it: its container, and the network holder a deploy started it in. */
export interface WakeReplica {
  container: string;
  /**
   * The holder's Docker create request (hosts/containers.ts holderOptions), `name` included:
   * the holder goes when the replica sleeps, and the replica keeps its MAC (runtime.ts).
   */
  holder: Record<string, unknown> & { name: string };
}

export interface WakeSpec {
  /** `<cluster>--<project>--<name>`: the app's route file's name without `.yaml`. */
  id: string;
  cluster: string;
  project: string;
  name: string;
  specHash: string;
  idleTimeoutSeconds: number;
  port: number;
  /** The project network, where each holder's address is read. */
  network: string;
  health: { path: string; timeoutMs: number };
  /** How long a request is held while the app wakes, before 503 + Retry-After. */
  waitMs: number;
  replicas: WakeReplica[];
}

export type SleepPhase = 'awake' | 'waking' | 'sleeping';

export interface WakeState {
  id: string;
  specHash: string;
  state: SleepPhase;
  /** When it entered this state (ISO time). */
  since: string;
  lastRequest?: string;
  /** Why the last wake failed, while it sleeps again. */
  error?: string;
}

export function wakeId(cluster: string, app: { project: string; name: string }): string {
  return `${cluster}--${app.project}--${app.name}`;
}

/** An app's route file on its edge, by its wake id (the same name as layout.ts routeFileName gives). */
export function routeFileOf(id: string): string {
  return `mlink-${id}.yaml`;
}

/** The wake id of an app's route file (layout.ts routeFileName: `mlink-<id>.yaml`). */
export function wakeIdOfRoute(file: string): string {
  return file.replace(/^mlink-/, '').replace(/\.yaml$/, '');
}

export const specFile = (id: string): string => `apps/${id}.json`;
export const stateFile = (id: string): string => `state/${id}.json`;

/** A JSON file the waker wrote, if it reads whole and `ok` says it is one; else undefined (missing, half-written, someone else's). */
function parseFile<T>(text: string | null, ok: (x: T) => boolean): T | undefined {
  if (!text) return undefined;
  try {
    const x = JSON.parse(text) as T;
    return x && ok(x) ? x : undefined;
  } catch {
    return undefined;
  }
}

export function parseWakeState(text: string | null): WakeState | undefined {
  return parseFile<WakeState>(text, (s) => typeof s.id === 'string' && ['awake', 'waking', 'sleeping'].includes(s.state));
}

/** Where each runtime host's waker listens: on the host's own loopback, where its edge reaches it. */
export const WAKER_PORT = 18090;
export const WAKER_URL = `http://127.0.0.1:${WAKER_PORT}`;

/**
 * What a runtime host's supervisor (supervisor.ts) says of one replica that exited: how
 * often it brought it back, the last exit, and when it tries again. Written by the
 * waker beside its wake states, read by observe: a replica it is bringing back is not
 * drift, and the reconciler leaves it to it.
 */
export interface ReplicaRecord {
  container: string;
  state: 'restarting' | 'running' | 'given-up';
  /** Restarts since the replica last ran a minute without exiting. */
  restarts: number;
  lastExit: { code: number; at: string };
  /** When it is started again (state restarting). */
  nextAt?: string;
  /** Why it is not (state given-up): the reconciler replaces it. */
  reason?: string;
}

export const replicaFile = (container: string): string => `replicas/${container}.json`;

export function parseReplicaRecord(text: string | null): ReplicaRecord | undefined {
  return parseFile<ReplicaRecord>(text, (r) => typeof r.container === 'string' && ['restarting', 'running', 'given-up'].includes(r.state));
}

/** How long after its `restarts`-th restart a replica waits for the next: 0, 1, 2, 4 ... 60 s, as Docker's restart policy backs off. */
export function restartDelayMs(restarts: number): number {
  return restarts === 0 ? 0 : Math.min(60_000, 1000 * 2 ** (restarts - 1));
}

/** A replica that ran this long before it exited starts its count again. */
export const RAN_WELL_MS = 60_000;
