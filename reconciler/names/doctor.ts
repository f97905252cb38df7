// `mlink doctor`'s lines for apps' names: the cluster CA's root (and when it expires),
// the issuer mlink.yaml names (an ACME directory is asked for its directory document),
// and the DNS server (a TSIG-signed SOA query of the zone, so a wrong key shows here and
// not at the first deploy). It only looks.
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import type { Check } from '../../infra/doctor.js';
import { queryRecords } from '../dns/client.js';
import { TYPE } from '../dns/message.js';
import { readClusterConfig } from '../layout.js';
import { compileNames, TSIG_SECRET_PATH } from '../source/names.js';
import { decryptSecret, loadClusterKey } from '../state/secrets.js';
import { MAIN, StateStore } from '../state/store.js';
import { CA_CERT_FILE, CA_REPO_PATH } from '../tls/ca-store.js';
import { parseCertificate } from '../tls/cert-info.js';
import type { DataDir } from '../util/paths.js';

function getDirectory(url: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // ACME servers refuse requests without a User-Agent (RFC 8555 6.1).
    const req = request(url, { agent: new Agent({ ...(ca ? { ca } : {}) }), timeout: 3000, headers: { 'user-agent': 'mlink-doctor' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 3 s')));
    req.on('error', reject);
    req.end();
  });
}

export async function namesChecks(dirs: DataDir): Promise<Check[]> {
  if (!existsSync(dirs.stateRepo)) return [];
  const out: Check[] = [];
  const store = StateStore.open(dirs.stateRepo);
  const view = await store.view(MAIN);
  const keyFile = join(dirs.keys, CA_CERT_FILE);
  const committed = await view.readText(CA_REPO_PATH);
  if (!existsSync(keyFile)) {
    out.push({ component: 'cluster CA', ok: false, version: '-', address: keyFile, detail: 'no CA in the data dir', fix: 'run `npx mlink init` (makes the CA and commits its root)' });
  } else {
    const pem = readFileSync(keyFile, 'utf8');
    const info = parseCertificate(pem);
    const days = Math.floor((info.notAfter.getTime() - Date.now()) / 86_400_000);
    const inGit = committed === pem;
    out.push({
      component: 'cluster CA', ok: days > 30 && inGit, version: info.subject, address: keyFile,
      detail: `root valid until ${info.notAfter.toISOString()} (${days} days)${inGit ? `, committed at ${CA_REPO_PATH}` : `; ${CA_REPO_PATH} on main is not this root`}`,
      ...(inGit ? {} : { fix: 'run `npx mlink init`, which commits the root clients must trust' }),
      ...(days <= 30 ? { fix: 'the root expires soon: make a new CA and have clients trust it' } : {}),
    });
  }
  let names;
  try {
    names = await compileNames(view, await readClusterConfig(view));
  } catch (e) {
    out.push({ component: 'tls issuer', ok: false, version: '-', address: 'mlink.yaml', detail: (e as Error).message, fix: 'fix spec.tls / spec.dns in mlink.yaml' });
    return out;
  }
  if (names.issuer.kind === 'internal') {
    out.push({ component: 'tls issuer', ok: true, version: 'internal CA', address: '-', detail: `leaf certificates valid ${names.issuer.leafSeconds} s, renewed at 2/3` });
  } else {
    const ca = names.issuer.caFile ? (await view.readText(names.issuer.caFile)) ?? undefined : undefined;
    const dir = await getDirectory(names.issuer.directoryUrl, ca).then((b) => ({ ok: b.includes('newOrder'), detail: b.includes('newOrder') ? 'directory answers (newOrder present)' : 'answered, but not with an ACME directory' }), (e: Error) => ({ ok: false, detail: `directory does not answer: ${e.message}` }));
    out.push({ component: 'tls issuer', ok: dir.ok, version: 'acme', address: names.issuer.directoryUrl, detail: dir.detail, ...(dir.ok ? {} : { fix: 'check spec.tls.acme.directoryUrl (and caFile for a private ACME server)' }) });
  }
  if (!names.dns) {
    out.push({ component: 'dns', ok: true, version: '-', address: '-', detail: 'no spec.dns in mlink.yaml: apps get no DNS records (`mlink dns configure` sets it up)' });
    return out;
  }
  const d = names.dns;
  try {
    const secret = (await decryptSecret((await view.readText(TSIG_SECRET_PATH))!, (await loadClusterKey(dirs.keys)).identity)).trim();
    const soa = await queryRecords({ host: d.server, port: d.port, attempts: 1 }, { name: d.tsig.name, algorithm: d.tsig.algorithm, secret }, d.zone, TYPE.SOA);
    const ok = soa.records.length > 0;
    out.push({ component: 'dns', ok, version: 'RFC 2136 + TSIG', address: `${d.server}:${d.port}`, detail: ok ? `zone ${d.zone} answers (signed with key ${d.tsig.name})` : `no SOA for ${d.zone} (${soa.rcode})`, ...(ok ? {} : { fix: `make ${d.server} authoritative for ${d.zone}` }) });
  } catch (e) {
    out.push({ component: 'dns', ok: false, version: 'RFC 2136 + TSIG', address: `${d.server}:${d.port}`, detail: (e as Error).message, fix: 'check spec.dns (server, zone, key name) and the key\'s secret (`mlink dns configure`)' });
  }
  return out;
}
