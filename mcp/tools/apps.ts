// App tools: create_app, update_app, delete_app, get_app, app_logs, list_apps.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain } from '../../reconciler/domain/index.js';
import { MAX_TAR_BASE64 } from '../../reconciler/source-repos/source-files.js';
import type { SourceInput } from '../../reconciler/domain/app-source.js';
import { changes, expectedRevision, handle, liveOutput, mayWrite, name, project, proposal, reads, resources, wait, writeAndWait, writeOutput, writeText } from './shared.js';

// One object with three optional keys rather than a union: the schema check then says
// "exactly one of { image }, { files } or { git }" instead of a bare "invalid input".
const source = z.strictObject({
  image: z.string().max(512).optional().describe('a container image, e.g. nginx:1.27'),
  files: z.record(z.string().max(256), z.string().max(262_144)).optional()
    .describe('the whole source as { "relative/path": "content" } (at most 2000 files, 8 MiB in all): committed to the app\'s source repo and built; an update replaces every file'),
  tar: z.string().max(MAX_TAR_BASE64).optional().describe('the whole source as a base64 uncompressed tar (relative symlinks allowed, 8 MiB of files at most)'),
  git: z.strictObject({ url: z.string().max(512), ref: z.string().max(255), path: z.string().max(256).optional() }).optional()
    .describe('an http(s) repository URL and a branch, tag or commit, fetched now and pinned; path: a directory to build'),
  repo: z.strictObject({ app: z.string().max(127).optional(), commit: z.string().max(40).optional(), path: z.string().max(256).optional() }).optional()
    .describe("a commit (default: newest) of an internal source repo, this app's or app: '<project>/<name>'"),
}).describe('exactly one of { image }, { files }, { tar }, { git: { url, ref } } or { repo }. Sources are built into an image: the app\'s Dockerfile, else detection of static sites, Node.js, Python and Go; get_app shows build progress, app_logs the build log');

function fields(nullable: boolean) {
  const opt = <T extends z.ZodType>(t: T) => (nullable ? t.nullable().optional() : t.optional());
  return {
    env: opt(z.record(z.string().max(128), z.string().max(4096))).describe('plain environment variables; put credentials in secret_env'),
    secret_env: opt(z.record(z.string().max(128), nullable ? z.string().max(65_536).nullable() : z.string().max(65_536)))
      .describe('secret environment variables: values are encrypted with age and never shown again' + (nullable ? '; a null value removes that secret, other secrets stay' : '')),
    resources: opt(resources),
    replicas: opt(z.number().int().min(0).max(20)).describe('containers to run, 0-20'),
    domains: opt(z.array(z.string().max(253)).max(16)).describe('host names routed to the app, each served over HTTPS with a certificate from the cluster\'s issuer (and an A record when mlink.yaml configures DNS)'),
    allow_cidrs: opt(z.array(z.string().max(43)).max(64)).describe("client networks allowed to reach the app, as 'address[/prefix]' (IPv4 or IPv6), e.g. ['10.20.0.0/16']; every other client gets 403. Default: mlink.yaml's access.allowCidrs (the private ranges)" + (nullable ? '; null goes back to that default' : '')),
    https_redirect: opt(z.boolean()).describe('plain HTTP redirects to HTTPS unless false (then the app answers on plain HTTP too)'),
    health_check: opt(z.strictObject({
      path: z.string().max(512).describe('an absolute URL path such as /healthz, answered with 2xx or 3xx'),
      interval_seconds: z.number().int().min(1).max(3600).optional(),
      timeout_seconds: z.number().int().min(1).max(300).optional(),
      retries: z.number().int().min(1).max(20).optional(),
    })),
    scale_to_zero: opt(z.strictObject({ idle_timeout_seconds: z.number().int().min(30).max(86400) })).describe('stop after this many idle seconds (30-86400); start on the next request'),
    egress_allow: opt(z.array(z.string().max(260)).max(64)).describe("destinations the app may reach: 'host', 'host:port', '*.domain', 'IPv4[/prefix]'"),
    ttl_seconds: opt(z.number().int().min(60).max(90 * 86400)).describe('ephemeral apps: remove the app this many seconds from now'),
    databases: opt(z.array(z.strictObject({ name: z.string().max(63), project: z.string().max(63).optional(), env_prefix: z.string().max(128).optional() })).max(8))
      .describe('databases to bind; each injects <env_prefix>_URL (default DATABASE_URL)'),
  };
}

const port = z.number().int().min(1).max(65535).describe('the TCP port the app listens on (1-65535)');

const appOutput = {
  app: z.record(z.string(), z.unknown()).describe('the App manifest as stored in git'),
  revision: z.string().describe('pass as expected_revision to update only if nobody changed the app since'),
  path: z.string(),
  commit: z.string().nullable(),
  live: liveOutput,
};

export function registerAppTools(server: McpServer, domain: Domain): void {
  if (mayWrite(domain)) {
    server.registerTool('create_app', {
      title: 'Create app',
      description: 'Describe a new app. Commits apps/<project>/<name>.yaml (or opens a proposal in review mode). Fails if the app exists. With wait, returns once it serves (or its build or health check failed).',
      inputSchema: z.strictObject({ name, project, source, port, ...fields(false), proposal, wait }),
      outputSchema: writeOutput,
      annotations: changes('Create app', { destructive: false, idempotent: false, openWorld: true }),
    }, ({ wait: seconds, ...args }, extra) => handle('create_app', () => writeAndWait(server, domain, extra, seconds, () => domain.createApp({ ...args, source: args.source as SourceInput })), writeText));

    server.registerTool('update_app', {
      title: 'Update app',
      description: 'Change an existing app. Fields you pass replace the stored ones; null removes an optional field; omitted fields stay. Pass expected_revision from get_app to avoid overwriting someone else\'s change. With wait, returns once the new version serves (or failed; the old one keeps serving).',
      inputSchema: z.strictObject({ name, project, source: source.optional(), port: port.optional(), ...fields(true), expected_revision: expectedRevision, proposal, wait }),
      outputSchema: writeOutput,
      annotations: changes('Update app', { destructive: true, idempotent: false, openWorld: true }),
    }, ({ wait: seconds, ...args }, extra) => handle('update_app', () => writeAndWait(server, domain, extra, seconds, () => domain.updateApp({ ...args, source: args.source as SourceInput | undefined })), writeText));

    server.registerTool('delete_app', {
      title: 'Delete app',
      description: 'Remove an app and its secrets from the desired state; the reconciler then stops it. With wait, returns once its containers and route are gone.',
      inputSchema: z.strictObject({ name, project, expected_revision: expectedRevision, proposal, wait }),
      outputSchema: writeOutput,
      annotations: changes('Delete app', { destructive: true, idempotent: false }),
    }, ({ wait: seconds, ...args }, extra) => handle('delete_app', () => writeAndWait(server, domain, extra, seconds, () => domain.deleteApp(args)), writeText));
  }

  server.registerTool('get_app', {
    title: 'Get app',
    description: 'The app\'s manifest on main, its revision, and its live status (unknown until the reconciler runs): phase (Building, Running, BuildFailed, ...), progress, its URL (https_url; url is where to send people), its certificates on the edges (issuer, not_after), its DNS records and their state (synced, refused, failed, skipped, with the reason), and for apps built from source the newest build (method, step, Dockerfile, last log lines). Secret values are never returned, only names.',
    inputSchema: z.strictObject({ name, project }),
    outputSchema: appOutput,
    annotations: reads('Get app'),
  }, (args) => handle('get_app', () => domain.getApp(args), (r) => `${r.path} @ ${r.revision}\nlive: ${r.live.known ? JSON.stringify(r.live) : r.live.reason}\n${JSON.stringify(r.app, null, 2)}`));

  server.registerTool('app_logs', {
    title: 'App logs',
    description: 'An app\'s build log (default for apps built from source: the newest build, its steps and Dockerfile) or runtime log (its newest container\'s output).',
    inputSchema: z.strictObject({
      name, project,
      kind: z.enum(['build', 'runtime']).optional().describe('build or runtime; default build for source apps, runtime for image apps'),
      lines: z.number().int().min(1).max(5000).optional().describe('the last N lines (1-5000), default 100'),
      since_seconds: z.number().int().min(1).max(30 * 86400).optional().describe('runtime only: output from the last N seconds'),
    }),
    outputSchema: { kind: z.enum(['build', 'runtime']), source: z.string(), lines: z.array(z.string()), truncated: z.boolean() },
    annotations: reads('App logs'),
  }, (args) => handle('app_logs', () => domain.appLogs(args), (r) => [`${r.kind} log, ${r.source}${r.truncated ? ' (older lines left out)' : ''}:`, ...r.lines].join('\n')));

  server.registerTool('list_apps', {
    title: 'List apps',
    description: 'Apps on main, optionally in one project.',
    inputSchema: z.strictObject({ project }),
    outputSchema: { apps: z.array(z.object({ name: z.string(), project: z.string(), source: z.string(), port: z.number(), revision: z.string(), path: z.string(), live: liveOutput })), invalid: z.array(z.string()), commit: z.string().nullable() },
    annotations: reads('List apps'),
  }, (args) => handle('list_apps', () => domain.listApps(args), (r) => r.apps.map((a) => `${a.project}/${a.name}  ${a.source}  port ${a.port}  ${a.live.known ? String(a.live.phase) : 'live state unknown'}`).join('\n') || 'no apps'));
}
