// source, egress part: who may reach what, compiled from mlink.yaml and the App
// manifests. Deny lists are files in the state repo (reviewed in git like everything
// else), named in mlink.yaml under spec.egress.denyFiles: one entry a line ('IPv4',
// 'IPv4/prefix', 'host', any of them with ':port'), '#' starts a comment.
import type { App, ClusterConfig } from '../../schemas/index.js';
import type { TreeView } from '../state/tree.js';
import { StalledError } from '../errors.js';

const ENTRY = /^((\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?|[0-9]{1,3}(\.[0-9]{1,3}){3}(\/[0-9]{1,2})?)(:[0-9]{1,5})?$/;
const MAX_DENY_ENTRIES = 20_000;

/** The allow list an app gets: the cluster's, its project's and its own, without repeats. */
export function appEgress(app: App, cluster: ClusterConfig): string[] {
  const lists = [cluster.spec.egress?.allow, cluster.spec.projects?.[app.metadata.project]?.egress?.allow, app.spec.egress?.allow];
  return [...new Set(lists.flatMap((l) => l ?? []))];
}

/** Parses one deny-list file; a bad line stalls the commit and names the file and line. */
export function parseDenyList(file: string, text: string): string[] {
  const out: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim().toLowerCase();
    if (!line) continue;
    if (!ENTRY.test(line) || line.startsWith('*.')) {
      throw new StalledError('ValidationFailed', file, `line ${i + 1} ${JSON.stringify(raw.trim().slice(0, 80))} is not 'IPv4', 'IPv4/prefix' or 'host', optionally with ':port'`);
    }
    out.push(line);
  }
  return out;
}

/** Deny-list entries and control-plane addresses for the whole cluster. */
export async function loadClusterEgress(view: TreeView, cluster: ClusterConfig): Promise<{ deny: string[]; control: string[] }> {
  const deny: string[] = [];
  for (const file of cluster.spec.egress?.denyFiles ?? []) {
    const text = await view.readText(file);
    if (text === null) throw new StalledError('ValidationFailed', 'mlink.yaml', `spec.egress.denyFiles names ${file}, which is not in the repo; add the file or remove the entry`);
    deny.push(...parseDenyList(file, text));
    if (deny.length > MAX_DENY_ENTRIES) throw new StalledError('ValidationFailed', file, `deny lists hold more than ${MAX_DENY_ENTRIES} entries; shorten them`);
  }
  const control = cluster.spec.hosts.filter((h) => h.roles.includes('control') && h.address !== 'local').map((h) => h.address);
  return { deny: [...new Set(deny)], control };
}
