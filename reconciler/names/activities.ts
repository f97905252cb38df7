// Apps' names as Temporal activities: certificates on the edges and A records in the
// customer's zone. writeRoute asks for an app's certificate on an edge before its route
// goes live (so the first HTTPS request already meets it); every pass ends with
// ensureNames, which brings the DNS records to where the apps run, keeps the ACME
// challenge route, renews what is due and removes what no app wants any more. Each step
// checks before it acts.
import { ApplicationFailure } from '@temporalio/activity';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { syncAppRecords } from '../dns/app-records.js';
import { ensureCertificate, observeCertificates, removeCertificate, type CertificateOutcome } from '../edge/app-tls.js';
import { removeRouteFile, writeRouteFile } from '../edge/traefik.js';
import type { HostPool } from '../hosts/pool.js';
import { acmeChallengeFileName, certFileName, readClusterConfig } from '../layout.js';
import { keyOf, type ResourceKey } from '../model.js';
import type { ActionOf } from '../plan/actions.js';
import { compileNames, TSIG_SECRET_PATH, type NamesConfig } from '../source/names.js';
import { decryptSecret } from '../state/secrets.js';
import type { StateStore } from '../state/store.js';
import { RENEW_AT_FRACTION } from '../tls/cert-info.js';
import { issuerFor, type IssuerDeps } from '../tls/issuers.js';
import type { Logger } from '../util/log.js';
import { challengeRouter, renderChallengeRoute, type AcmeService } from './acme.js';

export interface NamesDeps {
  cluster: string;
  store: StateStore;
  hosts: HostPool;
  identity: () => Promise<string>;
  log: Logger;
  /** The data dir's keys: the CA's root (tls/ca-store.ts) and the ACME account key. */
  keysDir: string;
  /** ACME's responder and client, on workers that run beside the edge its challenges come through (names/acme.ts). */
  acme?: AcmeService;
  /** Where the DNS records this cluster owns, and their state, are kept (<data dir>/names). */
  stateDir: string;
}

export function createNamesActivities(deps: NamesDeps) {
  const { hosts, cluster, log } = deps;
  const configs = new Map<string, NamesConfig>();
  /** Issuances that failed, by edge, app and names: when to try again. */
  const failures = new Map<string, { n: number; error: string; retryAt: number }>();
  const acme = deps.acme;
  const issuers: IssuerDeps = { keysDir: deps.keysDir, ...(acme ? { acme: (c, names) => acme.issue(c, names) } : {}) };

  /** mlink.yaml's names settings at `commit` (a commit never changes, so once per commit). */
  async function configAt(commit: string): Promise<NamesConfig> {
    const hit = configs.get(commit);
    if (hit) return hit;
    const view = await deps.store.view(commit);
    const config = await compileNames(view, await readClusterConfig(view));
    if (configs.size > 32) configs.clear();
    configs.set(commit, config);
    return config;
  }

  /** The address clients reach a host's edge at, for its A records. */
  function addressOf(hostName: string): string | undefined {
    const edge = hosts.edge(hostName);
    const entry = hosts.entry(hostName);
    const address = edge?.address ?? (entry.address === 'local' ? undefined : entry.address);
    return address && isIP(address) === 4 ? address : undefined;
  }

  /** Certificates seen good lately, by edge and app: not read again until due or a minute has passed (a pass would read every app's file). */
  const seen = new Map<string, { names: string; issuer: string; renewAt: number; at: number; out: CertificateOutcome }>();

  async function certificate(hostName: string, app: ResourceKey & { domains: string[] }, config: NamesConfig): Promise<CertificateOutcome> {
    const edge = hosts.edge(hostName);
    if (!edge) throw new Error(`host ${hostName} has no edge (not a runtime host)`);
    const id = `${hostName}/${keyOf(app)}`;
    const names = app.domains.join(',');
    const now = Date.now();
    const hit = seen.get(id);
    if (hit && hit.names === names && hit.issuer === config.issuer.kind && now < hit.renewAt && now - hit.at < 60_000) return { ...hit.out, issued: false };
    const out = await ensureCertificate(hosts.get(hostName), edge, cluster, app, { kind: config.issuer.kind, issue: issuerFor(config.issuer, issuers) });
    if (out.issued) log.info('certificate issued', { app: keyOf(app), host: hostName, issuer: out.certificate.issuer, notAfter: out.certificate.notAfter, reason: out.reason });
    const from = Date.parse(out.certificate.notBefore);
    seen.set(id, { names, issuer: config.issuer.kind, renewAt: from + (Date.parse(out.certificate.notAfter) - from) * RENEW_AT_FRACTION, at: now, out });
    return out;
  }

  return {
    /** An app's certificate on one edge, for writeRoute (not an activity of its own): issued when missing or due, else left as it is. */
    async appCertificate(hostName: string, app: ResourceKey & { domains: string[] }, commit: string): Promise<CertificateOutcome | undefined> {
      const config = await configAt(commit);
      // An ACME server must resolve the name first: ensureNames publishes the record, then orders.
      if (config.issuer.kind === 'acme') return undefined;
      return certificate(hostName, app, config);
    },

    async ensureNames(input: { action: ActionOf<'ensureNames'>; commit: string }): Promise<{ notes: string[] }> {
      const { config, apps, held } = input.action;
      const notes: string[] = [];
      const problems: string[] = [];
      if (config.dns) {
        const d = config.dns;
        const armored = await (await deps.store.view(input.commit)).readText(TSIG_SECRET_PATH);
        if (armored === null) throw ApplicationFailure.create({ type: 'StalledError', nonRetryable: true, message: `${TSIG_SECRET_PATH} is missing at ${input.commit.slice(0, 12)}; run \`mlink dns configure\`` });
        const secret = (await decryptSecret(armored, await deps.identity())).trim();
        const { result } = await syncAppRecords({
          dir: deps.stateDir, cluster, server: { host: d.server, port: d.port }, zone: d.zone, ttl: d.ttl,
          tsig: { name: d.tsig.name, algorithm: d.tsig.algorithm, secret }, apps, held, addressOf,
        });
        for (const a of result.applied) notes.push(`DNS ${a.name} ${a.action}${a.addresses.length ? ` (A ${a.addresses.join(', ')})` : ''}`);
        for (const r of result.refused) notes.push(`DNS ${r.name} left alone: ${r.reason}`);
        for (const f of result.failed) problems.push(`DNS ${f.name} on ${d.server}:${d.port}: ${f.error}`);
      }
      // ACME's HTTP-01 comes in through the edges: their challenge route sends it to this worker's responder.
      for (const { host, edge } of hosts.runtime()) {
        if (!edge) continue;
        const file = acmeChallengeFileName(cluster);
        if (config.issuer.kind !== 'acme') {
          if ((await host.files.read(join(edge.routesDir, file))) !== null) await removeRouteFile(host, edge, file, challengeRouter(cluster));
          continue;
        }
        if (!acme || hosts.entry(host.name).address !== 'local') {
          problems.push(`ACME on ${host.name}: challenges reach the responder only through the edge on the control plane's own machine; use the internal issuer for apps placed on ${host.name}`);
          continue;
        }
        const content = renderChallengeRoute(cluster, acme.responderUrl);
        if ((await host.files.read(join(edge.routesDir, file))) !== content) await writeRouteFile(host, edge, file, challengeRouter(cluster), content, [acme.responderUrl]);
      }
      const heldKeys = new Set(held.map(keyOf));
      for (const { host, edge } of hosts.runtime()) {
        if (!edge) continue;
        const here = apps.filter((a) => a.hosts.includes(host.name));
        for (const app of here) {
          const id = `${host.name}/${keyOf(app)}/${app.domains.join(',')}`;
          const failed = failures.get(id);
          if (failed && Date.now() < failed.retryAt) {
            problems.push(`${keyOf(app)}: certificate on ${host.name} not issued: ${failed.error} (next attempt after ${new Date(failed.retryAt).toISOString()})`);
            continue;
          }
          try {
            const out = await certificate(host.name, app, config);
            failures.delete(id);
            if (out.issued) notes.push(`certificate for ${app.domains.join(', ')} on ${host.name} issued by ${out.certificate.issuer} (${out.reason}), valid until ${out.certificate.notAfter}`);
          } catch (e) {
            // Backed off, so a name the issuer cannot validate does not become an order every drift check (ACME servers rate-limit).
            const n = (failed?.n ?? 0) + 1;
            failures.set(id, { n, error: (e as Error).message, retryAt: Date.now() + Math.min(3_600_000, 5000 * 2 ** (n - 1)) });
            problems.push(`${keyOf(app)}: certificate on ${host.name} not issued: ${(e as Error).message}`);
          }
        }
        // Only files no app here wants are read (to be sure they are ours) and removed.
        const wanted = new Set(here.map((a) => certFileName(cluster, a)));
        for (const c of await observeCertificates(host, edge, cluster, (f) => !wanted.has(f))) {
          if (heldKeys.has(keyOf(c.key))) continue;
          seen.delete(`${host.name}/${keyOf(c.key)}`);
          await removeCertificate(host, edge, c.file);
          notes.push(`certificate of ${keyOf(c.key)} removed from ${host.name}`);
          log.info('certificate removed', { app: keyOf(c.key), host: host.name, file: c.file });
        }
      }
      // The next pass tries again; retrying within this one would hold the pass up.
      if (problems.length) throw ApplicationFailure.create({ type: 'NamesFailed', nonRetryable: true, message: [...problems, ...notes].join('; ') });
      return { notes };
    },
  };
}
