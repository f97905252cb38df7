// The operations agents can ask for, bound to one agent identity. Each MCP tool calls
// exactly one of these. Reads take live state from an injected provider so the
// reconciler can plug in real status without touching mcp/.
import type { StateStore } from '../state/store.js';
import type { AgentPolicy } from '../state/tokens.js';
import * as apps from './apps.js';
import type { CreateAppInput, UpdateAppInput } from './app-input.js';
import * as dbs from './databases.js';
import * as hist from './history.js';
import { listHosts } from './hosts.js';
import { RECONCILER_NOT_RUNNING, unknownLiveState, type LiveStateProvider } from './live-state.js';
import { listProposals } from './proposals.js';
import type { Ctx, WriteResult } from './write.js';
import { appLogs, type AppLogsInput } from './app-logs.js';
import type { AppLogs } from './live-state.js';
import type { SourceRepos } from '../source-repos/source-repo.js';
import { waitForChange, type WaitOptions, type WaitOutcome } from './wait.js';

export type { WriteResult } from './write.js';
export type { CreateAppInput, UpdateAppInput } from './app-input.js';
export type { CreateDatabaseInput, UpdateDatabaseInput } from './databases.js';
export { DomainError } from './errors.js';
export { unknownLiveState, RECONCILER_NOT_RUNNING, type LiveStateProvider } from './live-state.js';
export type { HostView, HostLive } from './hosts.js';
export type { WaitOptions, WaitOutcome, WaitProgress, WaitLogLine, ResourceOutcome } from './wait.js';

type Ident = { name: string; project?: string };
type Guarded = Ident & { expected_revision?: string; proposal?: string };

export interface Domain {
  agent: AgentPolicy;
  whoami(): Promise<AgentPolicy>;
  createApp(input: CreateAppInput): Promise<WriteResult>;
  updateApp(input: UpdateAppInput): Promise<WriteResult>;
  deleteApp(input: Guarded): Promise<WriteResult>;
  getApp(input: Ident): ReturnType<typeof apps.getApp>;
  listApps(input: { project?: string }): ReturnType<typeof apps.listApps>;
  appLogs(input: AppLogsInput): Promise<AppLogs>;
  createDatabase(input: dbs.CreateDatabaseInput): Promise<WriteResult>;
  updateDatabase(input: dbs.UpdateDatabaseInput): Promise<WriteResult>;
  backupDatabase(input: Ident & { wait?: number }): ReturnType<typeof dbs.backupDatabase>;
  listBackups(input: Ident): ReturnType<typeof dbs.listBackups>;
  restoreDatabase(input: dbs.RestoreDatabaseInput): ReturnType<typeof dbs.restoreDatabase>;
  deleteDatabase(input: Guarded): Promise<WriteResult>;
  getDatabase(input: Ident): ReturnType<typeof dbs.getDatabase>;
  listDatabases(input: { project?: string }): ReturnType<typeof dbs.listDatabases>;
  history(input: hist.HistoryInput): ReturnType<typeof hist.history>;
  revert(input: { commit: string; proposal?: string }): Promise<WriteResult>;
  plan(input: { project?: string }): ReturnType<typeof hist.plan>;
  listProposals(): ReturnType<typeof listProposals>;
  listHosts(): ReturnType<typeof listHosts>;
  sync(): Promise<{ requested: boolean; message: string }>;
  /** Waits for a write's change to go live, fail, or the time to run out (see wait.ts). */
  waitFor(change: Pick<WriteResult, 'commit' | 'proposal'>, opts: WaitOptions): Promise<WaitOutcome>;
}

export interface DomainOptions { store: StateStore; agent: AgentPolicy; liveState?: LiveStateProvider; sources?: SourceRepos }

export function createDomain(opts: DomainOptions): Domain {
  const ctx: Ctx = { store: opts.store, agent: opts.agent, ...(opts.sources ? { sources: opts.sources } : {}) };
  const live = opts.liveState ?? unknownLiveState;
  // A write that lands on main asks the reconciler (when one runs in this process) for a
  // pass at once; the ref watcher would see it too, only later.
  const applied = <T extends WriteResult>(p: Promise<T>): Promise<T> => p.then((r) => {
    if (r.commit && !r.proposal && live.sync) void live.sync().catch(() => undefined);
    return r;
  });
  return {
    agent: opts.agent,
    whoami: async () => ({ ...opts.agent }),
    createApp: (i) => applied(apps.createApp(ctx, i)),
    updateApp: (i) => applied(apps.updateApp(ctx, i)),
    deleteApp: (i) => applied(apps.deleteApp(ctx, i)),
    getApp: (i) => apps.getApp(ctx, live, i),
    listApps: (i) => apps.listApps(ctx, live, i),
    appLogs: (i) => appLogs(ctx, live, i),
    createDatabase: (i) => applied(dbs.createDatabase(ctx, i)),
    updateDatabase: (i) => applied(dbs.updateDatabase(ctx, i)),
    backupDatabase: (i) => dbs.backupDatabase(ctx, live, i),
    listBackups: (i) => dbs.listBackups(ctx, live, i),
    restoreDatabase: (i) => dbs.restoreDatabase(ctx, live, i),
    deleteDatabase: (i) => applied(dbs.deleteDatabase(ctx, i)),
    getDatabase: (i) => dbs.getDatabase(ctx, live, i),
    listDatabases: (i) => dbs.listDatabases(ctx, live, i),
    history: (i) => hist.history(ctx, i),
    revert: (i) => applied(hist.revert(ctx, i)),
    plan: (i) => hist.plan(ctx, live, i),
    listProposals: () => listProposals(ctx),
    listHosts: () => listHosts(ctx, live),
    sync: async () => {
      if (!live.sync) return { requested: false, message: RECONCILER_NOT_RUNNING };
      await live.sync();
      return { requested: true, message: 'reconcile requested: the newest commit on main is applied within moments; get_app shows the result' };
    },
    waitFor: (change, o) => waitForChange(opts.store, live, change, o),
  };
}
