// What is actually running. The reconciler plugs in a real provider; until then every
// answer says live state is unknown, so agents are never told a desired state is live.
import type { Kind } from '../../schemas/index.js';
import type { HostHealth } from '../hosts/health.js';

export interface ResourceId { kind: Kind; project: string; name: string }
export interface DesiredResource extends ResourceId { revision: string }

/** A database as it runs on its host: never its password. */
export interface DatabaseLive {
  /** The runtime host its server and data are on. */
  host?: string;
  /** Its server container and its data volume. */
  server?: string;
  volume?: string;
  /** Which engine and version wrote the data ("postgres 15.14"). */
  data_written_by?: string;
  /** Its address on its own project's network, where its project's bound apps reach it. */
  address?: string;
  /** Its address on each network it joins (a bound app's `<PREFIX>_HOST` is the one on the app's project network). */
  addresses?: Record<string, string>;
  size_bytes?: number;
}

/** One container of a resource as observed: the commit it was started for, and whether the route sends it traffic. */
export interface ReplicaStatus {
  container: string; commit: string; running: boolean; serving: boolean; host?: string;
  /** Exited, and its host's supervisor starts it again at next_at (restarts: how often it did since it last ran a minute). */
  restarting?: { restarts: number; exit_code: number; next_at: string };
}

export type LiveStatus =
  | { known: false; reason: string }
  | {
    known: true; phase: string; message?: string; appliedCommit?: string; url?: string; updatedAt?: string; progress?: string;
    /** An app's HTTPS address, and its certificates on the edges and DNS records (with whether each is in the zone). */
    https_url?: string;
    certificates?: Array<{ host: string; names: string[]; issuer: string; serial: string; not_before: string; not_after: string }>;
    dns?: Array<{ name: string; addresses: string[]; state: string; reason?: string; at: string }>;
    build?: Record<string, unknown>;
    replicas?: ReplicaStatus[];
    /** Runtime hosts it runs on. */
    hosts?: string[];
    /** A scale-to-zero app, as its hosts' wakers say: awake, waking or sleeping, since when, its last request. */
    sleep?: { state: 'awake' | 'waking' | 'sleeping'; since: string; last_request?: string; idle_timeout_seconds: number; error?: string };
    /** The edges that serve it: each runtime host's Traefik (host:port of its web entrypoint), for a front door to point at. */
    edges?: Array<{ host: string; address: string }>;
    database?: DatabaseLive;
  };

/** A database whose manifest left git while its data stayed (a volume only a human purges). */
export interface RetainedDatabase { project: string; name: string; engine: string; version: string; host: string; volume: string; since: string; size_bytes?: number }

/** A backup as list_backups and get_database show it (reconciler/backups/activities.ts BackupSummary). */
export type BackupInfo = Record<string, unknown> & { id: string; at: string; size: number; verified: boolean | null };

/** A backup or restore workflow's outcome as far as a tool waited for it. */
export interface OperationRun {
  state: 'done' | 'failed' | 'running';
  /** The Temporal workflow that runs it (its history says what happened). */
  workflow: string;
  message: string;
  backup?: BackupInfo;
  restored?: string;
  /** How long the restore itself took (not its safety backup or drills). */
  restore_ms?: number;
  safety_backup?: BackupInfo;
}

export interface RestoreRequest { project: string; name: string; backup?: string; at?: string; into: string; fresh: boolean }

/** Backups and restores: run by the reconciler's workers as durable workflows. */
export interface BackupService {
  backup(id: { project: string; name: string; keep: number }, waitMs: number): Promise<OperationRun>;
  list(id: { project: string; name: string }): Promise<BackupInfo[]>;
  restore(req: RestoreRequest, waitMs: number): Promise<OperationRun>;
}

export interface LogsRequest { kind: 'build' | 'runtime'; lines: number; since?: number }
export interface AppLogs { kind: 'build' | 'runtime'; source: string; lines: string[]; truncated: boolean }

export interface PlannedAction extends ResourceId { action: string; reason: string }
export type LivePlan = { known: false; reason: string } | { known: true; actions: PlannedAction[] };

export interface LiveStateProvider {
  status(id: ResourceId): Promise<LiveStatus>;
  /** Many at once (one look at the hosts); without it, status() is called for each. */
  statusMany?(ids: ResourceId[]): Promise<LiveStatus[]>;
  /** Asks the reconciler for a pass now; absent when no reconciler runs here. */
  sync?(): Promise<void>;
  plan(desired: { commit: string | null; resources: DesiredResource[] }): Promise<LivePlan>;
  /** Backups and restores; absent when the reconciler is not running here. */
  backups?: BackupService;
  /** Databases retained after their manifest was deleted; absent when the reconciler is not running here. */
  retained?(): Promise<RetainedDatabase[]>;
  /** Build or runtime output of an app; absent when the reconciler is not running here. */
  logs?(id: ResourceId, req: LogsRequest): Promise<AppLogs>;
  /** Each host the reconciler drives, with its health and what runs there; absent when the reconciler is not running here. */
  hosts?(): Promise<HostHealth[]>;
}

export const RECONCILER_NOT_RUNNING = 'live state unknown: the reconciler is not running';

export const unknownLiveState: LiveStateProvider = {
  status: async () => ({ known: false, reason: RECONCILER_NOT_RUNNING }),
  plan: async () => ({ known: false, reason: RECONCILER_NOT_RUNNING }),
};
