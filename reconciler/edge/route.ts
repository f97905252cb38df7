// edge: one Traefik file-provider file per app. Rendering and reading are pure; the
// file's header comments carry the labels, so observe can tell ml.ink's files (and
// which cluster, app and spec they belong to) from anyone else's. The routers (HTTPS on
// websecure, HTTP that redirects, both behind the app's allow-list) come from
// tls-config.ts; the certificate is a file of its own (app-tls.ts), so a renewal never
// rewrites the route and rewriting the route (say, to a waker) never touches the certificate.
import { stringify } from 'yaml';
import type { AppAccess, LiveRoute } from '../model.js';
import { routeHeader } from './route-header.js';
import { edgeTlsConfig } from './tls-config.js';

/** An app's access settings on one edge: the HTTPS port goes into the redirect (omitted for 443). */
export interface RouteAccess extends AppAccess { httpsPort?: number }

export interface RouteSpec {
  cluster: string;
  project: string;
  name: string;
  specHash: string;
  router: string;
  domains: string[];
  servers: string[];
  access: RouteAccess;
  /** A scale-to-zero app: the route leads to its host's waker (the only server), naming the app in a request header. */
  wake?: { id: string; header: string; idleTimeoutSeconds: number };
}

/** The access settings as one header value, so diff can tell a route written with other settings. */
export function accessDigest(a: AppAccess): string {
  return `allow=${a.allowCidrs.join(',')};redirect=${a.redirectToHttps}`;
}

export function renderRoute(r: RouteSpec): string {
  const { http } = edgeTlsConfig({ router: r.router, service: r.router, hosts: r.domains, ...r.access });
  const middlewares: Record<string, unknown> = { ...http.middlewares };
  if (r.wake) {
    // Every router that reaches the service names the app to the waker (a redirect never reaches it).
    const wake = `${r.router}-wake`;
    middlewares[wake] = { headers: { customRequestHeaders: { [r.wake.header]: r.wake.id } } };
    for (const router of Object.values(http.routers)) if (!router.middlewares?.includes(`${r.router}-https`)) router.middlewares = [...(router.middlewares ?? []), wake];
  }
  const routers = stringify({ routers: http.routers, middlewares }, { lineWidth: 0 }).trimEnd().split('\n').map((l) => `  ${l}`);
  return [
    '# Written by ml.ink; edits are overwritten by the next reconcile.',
    '# ink.ml.managed-by: mlink',
    `# ink.ml.cluster: ${r.cluster}`,
    `# ink.ml.project: ${r.project}`,
    `# ink.ml.name: ${r.name}`,
    `# ink.ml.spec-hash: ${r.specHash}`,
    `# ink.ml.access: ${accessDigest(r.access)}`,
    ...(r.wake ? [`# ink.ml.scale-to-zero: ${r.wake.idleTimeoutSeconds}`] : []),
    'http:',
    ...routers,
    '  services:',
    `    ${r.router}:`,
    '      loadBalancer:',
    '        passHostHeader: true',
    '        servers:',
    ...r.servers.map((s) => `          - url: ${JSON.stringify(s)}`),
    '',
  ].join('\n');
}

const header = routeHeader;

/** Whether `text` is an edge file ml.ink wrote for `cluster` (a route, a certificate, the ACME challenge route): what prune may remove. */
export function ownedBy(text: string, cluster: string): boolean {
  return header(text, 'ink.ml.managed-by') === 'mlink' && header(text, 'ink.ml.cluster') === cluster;
}

/** Reads a route file written by renderRoute for `cluster` on `host`'s edge; undefined for anything else. */
export function readRoute(file: string, text: string, cluster: string, host: string): LiveRoute | undefined {
  if (header(text, 'ink.ml.managed-by') !== 'mlink' || header(text, 'ink.ml.cluster') !== cluster) return undefined;
  const project = header(text, 'ink.ml.project');
  const name = header(text, 'ink.ml.name');
  const specHash = header(text, 'ink.ml.spec-hash') ?? '';
  if (!project || !name) return undefined;
  // The file is ours (renderRoute), so its lines are read directly rather than through a
  // YAML parser: a pass reads one file per app. An edited or broken file reads as having
  // other hosts or servers than wanted, and diff rewrites it.
  const quoted = (q: string): string => { try { return JSON.parse(q) as string; } catch { return ''; } };
  const rule = /^ {6}rule: (.*)$/m.exec(text)?.[1];
  const domains = rule ? [...rule.matchAll(/Host\(`([^`]+)`\)/g)].map((m) => m[1]!) : [];
  const servers = [...text.matchAll(/^ {10}- url: (".*")$/gm)].map((m) => quoted(m[1]!));
  const access = /^# ink\.ml\.access: (.+)$/m.exec(text)?.[1];
  const idle = Number(header(text, 'ink.ml.scale-to-zero'));
  return { file, host, key: { kind: 'App', project, name }, specHash, domains, servers, ...(access ? { access } : {}), ...(idle > 0 ? { wake: { idleTimeoutSeconds: idle } } : {}) };
}
