// hosts/<name>.yaml as `mlink host add` writes it: the manifest from what the operator
// gave (and what the host file already says, for what they left out), validated by the
// Host schema, and rendered the same way every time so an unchanged host is no commit.
import { parse, stringify } from 'yaml';
import { API_VERSION, validateHost, type HostManifest, type HostSpec } from '../../schemas/index.js';
import { hostPath } from '../layout.js';

export interface HostFileInput {
  name: string;
  address: string;
  hostKey: string;
  user?: string;
  port?: number;
  roles?: Array<'build' | 'runtime'>;
  capacity?: { cpu: number; memoryMb: number };
  labels?: Record<string, string>;
}

/** The manifest: given fields win, fields left out keep what `existing` says (or the defaults). Throws SchemaError naming the field. */
export function hostManifest(input: HostFileInput, existing?: HostManifest): HostManifest {
  const old: Partial<HostSpec> = existing?.spec ?? {};
  const spec: HostSpec = {
    address: input.address,
    ssh: { user: input.user ?? old.ssh?.user ?? 'root', port: input.port ?? old.ssh?.port ?? 22, hostKey: input.hostKey },
    roles: input.roles ?? old.roles ?? ['build', 'runtime'],
    ...(input.capacity ?? old.capacity ? { capacity: input.capacity ?? old.capacity } : {}),
    ...(input.labels ?? old.labels ? { labels: input.labels ?? old.labels } : {}),
    // A drained host stays drained when it is added again.
    ...(old.schedulable !== undefined ? { schedulable: old.schedulable } : {}),
  };
  return validateHost(hostPath(input.name), { apiVersion: API_VERSION, kind: 'Host', metadata: { name: input.name }, spec });
}

export function renderHostFile(m: HostManifest): string {
  return `# A host ml.ink reaches over SSH; written by \`mlink host add\`. The host key is pinned:\n# a server answering with another key is refused.\n${stringify(m, { lineWidth: 0 })}`;
}

/** Whether two host files say the same (comments and key order aside). */
export function sameHost(a: HostManifest, text: string): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(parse(text)));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).sort(([x], [y]) => x.localeCompare(y)).map(([k, x]) => [k, sortKeys(x)]));
  return v;
}
