// app_logs: an app's build or runtime output, from the live-state provider (the
// reconciler's build records and containers). Read-only.
import type { App } from '../../schemas/index.js';
import { MAIN } from '../state/store.js';
import { DomainError, invalid, notFound } from './errors.js';
import type { AppLogs, LiveStateProvider } from './live-state.js';
import { readManifest } from './manifests.js';
import { requireProjects, type Ctx } from './write.js';

export interface AppLogsInput { name: string; project?: string; kind?: 'build' | 'runtime'; lines?: number; since_seconds?: number }

export async function appLogs(ctx: Ctx, live: LiveStateProvider, input: AppLogsInput): Promise<AppLogs> {
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const lines = input.lines ?? 100;
  if (!Number.isInteger(lines) || lines < 1 || lines > 5000) throw invalid(`lines must be a whole number from 1 to 5000, got ${lines}`);
  const found = await readManifest<App>(await ctx.store.view(MAIN), 'App', project, input.name);
  if (!found) throw notFound(`app ${project}/${input.name} does not exist; list_apps shows the apps there are`);
  if (!live.logs) throw new DomainError('not_found', 'logs are unknown: the reconciler is not running in this server (use `mlink up`)');
  const kind = input.kind ?? ('image' in found.manifest.spec.source ? 'runtime' : 'build');
  const since = input.since_seconds ? Math.floor(Date.now() / 1000) - input.since_seconds : undefined;
  return live.logs({ kind: 'App', project, name: input.name }, { kind, lines, ...(since ? { since } : {}) });
}
