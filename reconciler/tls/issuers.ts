// The issuer mlink.yaml names, as one function the edge code calls: host names in, a
// certificate (leaf plus chain) and its key out. The internal CA signs on the control
// plane with the root key from the data dir; ACME orders from the directory, answering
// HTTP-01 through the edges (tls/acme.ts, names/acme.ts).
import type { IssuedCertificate, Issue } from '../edge/app-tls.js';
import type { IssuerConfig } from '../source/names.js';
import { issueLeaf } from './ca.js';
import { loadClusterCa } from './ca-store.js';

export interface IssuerDeps {
  /** The data dir's keys folder: the root key and certificate (ca-store.ts). */
  keysDir: string;
  /** ACME, when mlink.yaml chooses it and this worker runs beside the edge (names/acme.ts). */
  acme?: (config: Extract<IssuerConfig, { kind: 'acme' }>, names: string[]) => Promise<IssuedCertificate>;
}

export function issuerFor(config: IssuerConfig, deps: IssuerDeps): Issue {
  if (config.kind === 'acme') {
    const acme = deps.acme;
    if (!acme) return async () => { throw new Error('spec.tls.issuer is acme, but this worker has no ACME client configured'); };
    return (names) => acme(config, names);
  }
  return async (names) => {
    let ca;
    try {
      ca = await loadClusterCa(deps.keysDir);
    } catch (e) {
      throw new Error(`internal CA: cannot load the root from ${deps.keysDir} (${(e as Error).message}); run \`mlink init\`, which makes it`, { cause: e });
    }
    const leaf = await issueLeaf(ca, names, { days: config.leafSeconds / 86_400 });
    // The root signs leaves directly: the leaf is the whole chain a client needs beside the root it trusts.
    return { chainPem: leaf.certPem, keyPem: leaf.keyPem };
  };
}
