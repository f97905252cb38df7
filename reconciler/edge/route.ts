// edge: one Traefik file-provider file per app. Rendering and reading are pure; the
// file's header comments carry the labels, so observe can tell ml.ink's files (and
// which cluster, app and spec they belong to) from anyone else's.
import type { LiveRoute } from '../model.js';

export interface RouteSpec {
  cluster: string;
  project: string;
  name: string;
  specHash: string;
  router: string;
  domains: string[];
  servers: string[];
  /** A scale-to-zero app: the route leads to its host's waker (the only server), naming the app in a request header. */
  wake?: { id: string; header: string; idleTimeoutSeconds: number };
}

export function renderRoute(r: RouteSpec): string {
  const rule = r.domains.map((h) => `Host(\`${h}\`)`).join(' || ');
  return [
    '# Written by ml.ink; edits are overwritten by the next reconcile.',
    '# ink.ml.managed-by: mlink',
    `# ink.ml.cluster: ${r.cluster}`,
    `# ink.ml.project: ${r.project}`,
    `# ink.ml.name: ${r.name}`,
    `# ink.ml.spec-hash: ${r.specHash}`,
    ...(r.wake ? [`# ink.ml.scale-to-zero: ${r.wake.idleTimeoutSeconds}`] : []),
    'http:',
    '  routers:',
    `    ${r.router}:`,
    `      rule: ${JSON.stringify(rule)}`,
    `      service: ${r.router}`,
    '      entryPoints: [web]',
    ...(r.wake ? [
      `      middlewares: [${r.router}-wake]`,
      '  middlewares:',
      `    ${r.router}-wake:`,
      '      headers:',
      '        customRequestHeaders:',
      `          ${r.wake.header}: ${JSON.stringify(r.wake.id)}`,
    ] : []),
    '  services:',
    `    ${r.router}:`,
    '      loadBalancer:',
    '        passHostHeader: true',
    '        servers:',
    ...r.servers.map((s) => `          - url: ${JSON.stringify(s)}`),
    '',
  ].join('\n');
}

function header(text: string, key: string): string | undefined {
  const m = new RegExp(`^# ${key.replace(/\./g, '\\.')}: (\\S+)$`, 'm').exec(text);
  return m?.[1];
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
  const rule = /^ {6}rule: (".*")$/m.exec(text)?.[1];
  const domains = rule ? [...quoted(rule).matchAll(/Host\(`([^`]+)`\)/g)].map((m) => m[1]!) : [];
  const servers = [...text.matchAll(/^ {10}- url: (".*")$/gm)].map((m) => quoted(m[1]!));
  const idle = Number(header(text, 'ink.ml.scale-to-zero'));
  return { file, host, key: { kind: 'App', project, name }, specHash, domains, servers, ...(idle > 0 ? { wake: { idleTimeoutSeconds: idle } } : {}) };
}
