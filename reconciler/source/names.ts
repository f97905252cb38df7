// source, names part: how apps' host names are served, compiled from mlink.yaml: which
// issuer makes their certificates, who may reach them by default, and the DNS server
// their records go to. Pure but for the blob ids and files it reads at the commit.
import type { App, ClusterConfig } from '../../schemas/index.js';
import { validateAllowCidrs } from '../edge/tls-config.js';
import { StalledError } from '../errors.js';
import { CLUSTER_FILE, manifestPath } from '../layout.js';
import type { TreeView } from '../state/tree.js';

/** The private ranges and loopback: what an app accepts when neither it nor mlink.yaml says otherwise. */
export const DEFAULT_ALLOW_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '::1/128', 'fc00::/7'];
/** The TSIG key's secret, age-encrypted to the cluster key, in the state repo. */
export const TSIG_SECRET_PATH = 'dns/tsig.age';
export const DEFAULT_LEAF_LIFETIME = '30d';
const MIN_LEAF_S = 60;
const MAX_LEAF_S = 398 * 86_400;

export type IssuerConfig =
  | { kind: 'internal'; leafSeconds: number }
  | { kind: 'acme'; directoryUrl: string; email?: string; caFile?: string; /** caFile's PEM roots, read at the commit. */ caPem?: string };

export interface DnsConfig {
  server: string;
  port: number;
  zone: string;
  ttl: number;
  tsig: { name: string; algorithm: 'hmac-sha256' };
  /** Blob id of dns/tsig.age: the secret is decrypted only inside the activity that signs updates. */
  secretOid: string;
}

export interface NamesConfig { issuer: IssuerConfig; dns?: DnsConfig }

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `30d` -> 2592000. Throws naming the field for a lifetime out of range. */
export function parseLifetime(text: string, field = 'spec.tls.leafLifetime'): number {
  const m = /^([1-9][0-9]*)(s|m|h|d)$/.exec(text);
  const s = m ? Number(m[1]) * UNIT_S[m[2]!]! : NaN;
  if (!(s >= MIN_LEAF_S && s <= MAX_LEAF_S)) throw new Error(`${field}: "${text}" must be a number and s, m, h or d, from 60s to 398d (for example 30d)`);
  return s;
}

function stall(message: string): never {
  throw new StalledError('ValidationFailed', CLUSTER_FILE, message);
}

export async function compileNames(view: TreeView, cluster: ClusterConfig): Promise<NamesConfig> {
  const tls = cluster.spec.tls ?? {};
  let issuer: IssuerConfig;
  if ((tls.issuer ?? 'internal') === 'internal') {
    if (tls.acme) stall('spec.tls.acme is set but spec.tls.issuer is internal; set issuer: acme to use the ACME directory, or remove spec.tls.acme');
    try {
      issuer = { kind: 'internal', leafSeconds: parseLifetime(tls.leafLifetime ?? DEFAULT_LEAF_LIFETIME) };
    } catch (e) { stall((e as Error).message); }
  } else {
    if (!tls.acme) stall('spec.tls.issuer is acme but spec.tls.acme is missing; give spec.tls.acme.directoryUrl');
    if (tls.leafLifetime) stall('spec.tls.leafLifetime applies to the internal issuer only (the ACME server decides how long its certificates last); remove it');
    const caPem = tls.acme.caFile ? await view.readText(tls.acme.caFile) : undefined;
    if (tls.acme.caFile && !caPem?.includes('-----BEGIN CERTIFICATE-----')) stall(`spec.tls.acme.caFile names ${tls.acme.caFile}, which is not a PEM certificate file in the state repo; commit the PEM roots there or remove the field`);
    issuer = { kind: 'acme', directoryUrl: tls.acme.directoryUrl, ...(tls.acme.email ? { email: tls.acme.email } : {}), ...(tls.acme.caFile ? { caFile: tls.acme.caFile, caPem: caPem! } : {}) };
  }
  if (cluster.spec.access?.allowCidrs) {
    try { validateAllowCidrs(cluster.spec.access.allowCidrs, 'spec.access.allowCidrs'); } catch (e) { stall((e as Error).message); }
  }
  const d = cluster.spec.dns;
  if (!d) return { issuer };
  const secretOid = await view.blobOid(TSIG_SECRET_PATH);
  if (!secretOid) stall(`spec.dns is set but the TSIG key's secret ${TSIG_SECRET_PATH} is missing; run \`mlink dns configure\` to store it (encrypted)`);
  return {
    issuer,
    dns: { server: d.server, port: d.port ?? 53, zone: d.zone.replace(/\.$/, ''), ttl: d.ttl ?? 300, tsig: { name: d.tsigKey.name, algorithm: d.tsigKey.algorithm ?? 'hmac-sha256' }, secretOid },
  };
}

/** An app's access settings: its own allow-list, else mlink.yaml's, else the private ranges; HTTPS redirect unless it opts out. */
export function appAccess(app: App, cluster: ClusterConfig): { allowCidrs: string[]; redirectToHttps: boolean } {
  const file = manifestPath('App', app.metadata.project, app.metadata.name);
  const allowCidrs = app.spec.allowCidrs ?? cluster.spec.access?.allowCidrs ?? DEFAULT_ALLOW_CIDRS;
  try {
    validateAllowCidrs(allowCidrs, 'spec.allowCidrs');
  } catch (e) {
    throw new StalledError('ValidationFailed', file, (e as Error).message);
  }
  return { allowCidrs: [...allowCidrs], redirectToHttps: app.spec.httpsRedirect !== false };
}
