// `mlink init [DIR]`: lay down a state repo (default: the data dir's) and the cluster's
// age key pair (--cluster names the cluster: it prefixes every container, network, route
// and workflow ml.ink creates, so several clusters can share one host). Safe to run twice: an existing repo and key are kept.
import { parseArgs } from 'node:util';
import { initStateRepo } from '../state/init.js';
import { dataDir } from '../util/paths.js';

const HELP = `usage: mlink init [DIR] [--base-domain NAME] [--cluster NAME]

Creates a bare git repo (branch main) holding mlink.yaml, apps/, databases/ and a README
for reviewers. DIR defaults to $MLINK_HOME/state (~/.mlink/state). The cluster's private
age key and the root key of its CA go to $MLINK_HOME/keys, never into git;
the CA's root certificate is committed at tls/ca.pem.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { 'base-domain': { type: 'string' }, cluster: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(HELP); return 0; }
  const dd = dataDir();
  const dir = positionals[0] ?? dd.stateRepo;
  try {
    const r = await initStateRepo({ dir, keysDir: dd.keys, baseDomain: values['base-domain'], clusterName: values.cluster });
    process.stdout.write(r.created
      ? `initialised state repo ${r.dir} (main at ${r.commit?.slice(0, 12)})\nage public key ${r.recipient}\nprivate key ${r.keyFile} (keep it out of git; back it up)\ncluster CA root ${r.caFile}, committed at tls/ca.pem (trust it in clients: \`mlink ca export > root.pem\`)\n`
      : `state repo ${r.dir} already exists (main at ${r.commit?.slice(0, 12)}); nothing changed\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`mlink init: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
