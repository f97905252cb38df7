// `mlink dns configure`: points ml.ink at the zone its apps' A records go to. One commit
// sets mlink.yaml's spec.dns and stores the TSIG key's secret age-encrypted at
// dns/tsig.age, so the secret is never in git in clear and never in a tool's output.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { validateClusterConfig } from '../../schemas/index.js';
import { validateTsigKey } from '../dns/tsig.js';
import { CLUSTER_FILE } from '../layout.js';
import { TSIG_SECRET_PATH } from '../source/names.js';
import { encryptSecret } from '../state/secrets.js';
import { MAIN, StateStore } from '../state/store.js';
import { dataDir } from '../util/paths.js';

const HELP = `usage: mlink dns configure --server IP[:PORT] --zone ZONE --key-name NAME --secret-file FILE [--ttl SECONDS] [--repo DIR]

Apps' host names inside ZONE get A records (pointing at the edges serving them) by RFC 2136
updates signed with the TSIG key NAME (hmac-sha256). FILE holds the key's base64 secret, as
in BIND's \`secret "..."\` (tsig-keygen prints one); it is stored age-encrypted. ml.ink marks
each record it creates with a TXT ownership record and never changes one it did not create.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { server: { type: 'string' }, zone: { type: 'string' }, 'key-name': { type: 'string' }, 'secret-file': { type: 'string' }, ttl: { type: 'string' }, repo: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals[0] !== 'configure') { (values.help ? process.stdout : process.stderr).write(HELP); return values.help ? 0 : 2; }
  try {
    const [host, port] = (values.server ?? '').split(':');
    if (!host || isIP(host) !== 4) throw new Error(`--server: "${values.server ?? ''}" must be the zone's primary server as an IPv4 address, optionally with :PORT`);
    if (!values.zone) throw new Error('--zone: give the zone the records go in, such as internal.agency.gov');
    if (!values['key-name'] || !values['secret-file']) throw new Error('--key-name and --secret-file: give the TSIG key\'s name and a file holding its base64 secret');
    const secret = readFileSync(values['secret-file'], 'utf8').trim().replace(/^secret\s+"?|"?;?$/g, '');
    validateTsigKey({ name: values['key-name'], algorithm: 'hmac-sha256', secret }, '--secret-file');
    const store = StateStore.open(values.repo ?? dataDir().stateRepo);
    const { commit } = await store.commit({
      ref: MAIN,
      author: { name: process.env.USER ?? 'operator', email: `${process.env.USER ?? 'operator'}@localhost` },
      message: `Publish apps' host names in ${values.zone} through ${values.server}\n\nml.ink keeps A records for apps' host names in the zone by RFC 2136 updates\nsigned with TSIG key ${values['key-name']} (its secret is encrypted at ${TSIG_SECRET_PATH}).\n`,
      prepare: async (view) => {
        const doc = parseDocument((await view.readText(CLUSTER_FILE)) ?? '');
        doc.setIn(['spec', 'dns'], doc.createNode({
          server: host, ...(port ? { port: Number(port) } : {}), zone: values.zone!.replace(/\.$/, ''),
          ...(values.ttl ? { ttl: Number(values.ttl) } : {}), tsigKey: { name: values['key-name']!, algorithm: 'hmac-sha256' },
        }));
        validateClusterConfig(CLUSTER_FILE, doc.toJS());
        const recipients = (doc.toJS() as { spec: { secrets: { recipients: string[] } } }).spec.secrets.recipients;
        return [{ path: CLUSTER_FILE, content: doc.toString() }, { path: TSIG_SECRET_PATH, content: await encryptSecret(secret, recipients) }];
      },
    });
    process.stdout.write(`DNS configured at ${commit?.slice(0, 12)}: records for names under ${values.zone} go to ${values.server}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`mlink dns: ${(err as Error).message}\n`);
    return 1;
  }
}
