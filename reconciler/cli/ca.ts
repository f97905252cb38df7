// `mlink ca export|show`: the root certificate of the cluster's internal CA, as committed
// to the state repo (tls/ca.pem), for clients and auditors to trust. Never the key.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { parseCertificate } from '../tls/cert-info.js';
import { CA_REPO_PATH } from '../tls/ca-store.js';
import { MAIN, StateStore } from '../state/store.js';
import { dataDir } from '../util/paths.js';

const HELP = `usage: mlink ca export [--out FILE] [--repo DIR]
       mlink ca show [--repo DIR]

export prints the root certificate (PEM) that signs every app's HTTPS certificate, from
${CA_REPO_PATH} on main of the state repo (default $MLINK_HOME/state); trust it in clients:
  mlink ca export > mlink-root.pem
  curl --cacert mlink-root.pem https://web.default.localhost:18443/
show prints its subject, expiry and SHA-256 fingerprint.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, repo: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  const action = positionals[0];
  if (values.help || (action !== 'export' && action !== 'show')) {
    (values.help ? process.stdout : process.stderr).write(HELP);
    return values.help ? 0 : 2;
  }
  try {
    const pem = await (await StateStore.open(values.repo ?? dataDir().stateRepo).view(MAIN)).readText(CA_REPO_PATH);
    if (!pem) throw new Error(`${CA_REPO_PATH} is not on main of the state repo; run \`mlink init\`, which makes the CA and commits its root`);
    const info = parseCertificate(pem);
    if (action === 'show') {
      process.stdout.write(`subject      ${info.subject}\nnot after    ${info.notAfter.toISOString()}\nsha256       ${info.fingerprint256}\nin git at    ${CA_REPO_PATH}\n`);
    } else if (values.out) {
      writeFileSync(values.out, pem);
      process.stderr.write(`wrote ${values.out}: ${info.subject}, valid until ${info.notAfter.toISOString()}\n`);
    } else {
      process.stdout.write(pem);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`mlink ca: ${(err as Error).message}\n`);
    return 1;
  }
}
