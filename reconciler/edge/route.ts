// edge: one Traefik file-provider file per app. Rendering and reading are pure; the
// file's header comments carry the labels, so observe can tell ml.ink's files (and
// which cluster, app and spec they belong to) from anyone else's.
import { parse } from 'yaml';
import type { LiveRoute } from '../model.js';

export interface RouteSpec {
  cluster: string;
  project: string;
  name: string;
  specHash: string;
  router: string;
  hosts: string[];
  servers: string[];
}

export function renderRoute(r: RouteSpec): string {
  const rule = r.hosts.map((h) => `Host(\`${h}\`)`).join(' || ');
  return [
    '# Written by ml.ink; edits are overwritten by the next reconcile.',
    '# ink.ml.managed-by: mlink',
    `# ink.ml.cluster: ${r.cluster}`,
    `# ink.ml.project: ${r.project}`,
    `# ink.ml.name: ${r.name}`,
    `# ink.ml.spec-hash: ${r.specHash}`,
    'http:',
    '  routers:',
    `    ${r.router}:`,
    `      rule: ${JSON.stringify(rule)}`,
    `      service: ${r.router}`,
    '      entryPoints: [web]',
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

/** Reads a route file written by renderRoute for `cluster`; undefined for anything else. */
export function readRoute(file: string, text: string, cluster: string): LiveRoute | undefined {
  if (header(text, 'ink.ml.managed-by') !== 'mlink' || header(text, 'ink.ml.cluster') !== cluster) return undefined;
  const project = header(text, 'ink.ml.project');
  const name = header(text, 'ink.ml.name');
  const specHash = header(text, 'ink.ml.spec-hash') ?? '';
  if (!project || !name) return undefined;
  let hosts: string[] = [];
  let servers: string[] = [];
  try {
    const doc = parse(text) as { http?: { routers?: Record<string, { rule?: string }>; services?: Record<string, { loadBalancer?: { servers?: Array<{ url: string }> } }> } };
    const router = Object.values(doc.http?.routers ?? {})[0];
    hosts = [...(router?.rule ?? '').matchAll(/Host\(`([^`]+)`\)/g)].map((m) => m[1]!);
    servers = (Object.values(doc.http?.services ?? {})[0]?.loadBalancer?.servers ?? []).map((s) => s.url);
  } catch {
    // an unreadable file of ours is out of date: diff sees no servers and rewrites it
  }
  return { file, project, app: name, specHash, hosts, servers };
}
