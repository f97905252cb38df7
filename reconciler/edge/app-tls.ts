// An app's certificate on an edge: one file-provider file beside its route file, holding
// the leaf (with its chain) and key inline, so Traefik picks it by SNI for the app's host
// names. Its own file: a renewal rewrites only it (Traefik swaps certificates without
// dropping a request, test/integration/edge-tls.test.ts), and the route file can be
// rewritten (new replicas, a waker) without knowing the key. Rendering and reading are
// pure; ensureCertificate does the I/O through the host seam, as route files do.
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { Host } from '../hosts/host.js';
import { CERT_FILE_SUFFIX, certFileName } from '../layout.js';
import type { LiveCertificate, ResourceKey } from '../model.js';
import { needsRenewal, parseCertificate } from '../tls/cert-info.js';
import type { Edge } from './traefik.js';

export interface IssuedCertificate { chainPem: string; keyPem: string }
/** Makes a certificate for host names (tls/issuers.ts). */
export type Issue = (dnsNames: string[]) => Promise<IssuedCertificate>;

export function renderCertFile(r: { cluster: string; project: string; name: string; cert: IssuedCertificate; issuer: string }): string {
  return [
    '# Written by ml.ink; edits are overwritten by the next reconcile.',
    '# ink.ml.managed-by: mlink',
    `# ink.ml.cluster: ${r.cluster}`,
    `# ink.ml.certificate-for: ${r.project}/${r.name}`,
    `# ink.ml.issuer: ${r.issuer}`,
    stringify({ tls: { certificates: [{ certFile: r.cert.chainPem, keyFile: r.cert.keyPem }] } }, { lineWidth: 0 }),
  ].join('\n');
}

/** Reads a file written by renderCertFile for `cluster`; undefined for anything else (or a file whose certificate does not parse). */
export function readCertFile(file: string, text: string, cluster: string, host: string): LiveCertificate | undefined {
  const head = (key: string): string | undefined => new RegExp(`^# ${key.replace(/\./g, '\\.')}: (\\S+)$`, 'm').exec(text)?.[1];
  if (head('ink.ml.managed-by') !== 'mlink' || head('ink.ml.cluster') !== cluster) return undefined;
  const [project, name] = (head('ink.ml.certificate-for') ?? '').split('/');
  if (!project || !name) return undefined;
  try {
    const doc = parse(text) as { tls?: { certificates?: Array<{ certFile?: string }> } };
    const info = parseCertificate(doc.tls?.certificates?.[0]?.certFile ?? '');
    const by = head('ink.ml.issuer');
    return {
      file, host, key: { kind: 'App', project, name }, dnsNames: info.dnsNames, issuer: info.issuer, serial: info.serial, ...(by ? { issuedBy: by } : {}),
      notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString(),
    };
  } catch {
    return undefined;
  }
}

/** This cluster's certificate files on one edge. */
export async function observeCertificates(host: Host, edge: Edge, cluster: string, only: (file: string) => boolean = () => true): Promise<LiveCertificate[]> {
  const prefix = `mlink-${cluster}--`;
  const out: LiveCertificate[] = [];
  for (const f of (await host.files.list(edge.routesDir)).filter((f) => f.startsWith(prefix) && f.endsWith(CERT_FILE_SUFFIX) && only(f)).sort()) {
    const c = readCertFile(f, (await host.files.read(join(edge.routesDir, f))) ?? '', cluster, host.name);
    if (c) out.push(c);
  }
  return out;
}

export interface CertificateOutcome { file: string; issued: boolean; reason: string; certificate: LiveCertificate }

/**
 * Makes sure `app`'s certificate on this edge covers its host names and is not due for
 * renewal (2/3 of its life, cert-info.ts); issues and writes a new one when it is.
 * Idempotent: a retry finds the file it wrote and keeps it.
 */
export async function ensureCertificate(host: Host, edge: Edge, cluster: string, app: ResourceKey & { domains: string[] }, issuer: { kind: string; issue: Issue }, now = new Date()): Promise<CertificateOutcome> {
  const file = certFileName(cluster, app);
  const path = join(edge.routesDir, file);
  const text = await host.files.read(path);
  const current = text ? readCertFile(file, text, cluster, host.name) : undefined;
  const decision = current
    ? needsRenewal({ notBefore: new Date(current.notBefore), notAfter: new Date(current.notAfter), dnsNames: current.dnsNames }, now, app.domains)
    : { renew: true, reason: text ? 'the file there is not a certificate ml.ink can read' : 'none yet' };
  const extra = current && current.dnsNames.length !== new Set(app.domains).size;
  const otherIssuer = current && current.issuedBy !== issuer.kind;
  if (current && !decision.renew && !extra && !otherIssuer) return { file, issued: false, reason: decision.reason, certificate: current };
  const cert = await issuer.issue(app.domains);
  const content = renderCertFile({ cluster, project: app.project, name: app.name, cert, issuer: issuer.kind });
  // The key is in it: readable by the edge (root) only.
  await host.files.write(path, content, { mode: 0o600 });
  const reason = decision.renew ? decision.reason : extra ? 'covers host names the app no longer has' : `issued by ${current?.issuedBy ?? 'another issuer'}; mlink.yaml now names ${issuer.kind}`;
  return { file, issued: true, reason, certificate: readCertFile(file, content, cluster, host.name)! };
}

export async function removeCertificate(host: Host, edge: Edge, file: string): Promise<void> {
  await host.files.remove(join(edge.routesDir, file));
}
