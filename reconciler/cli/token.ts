// `mlink token add|list|revoke`: agent tokens for `mlink serve`. Only a hash is stored.
import { parseArgs } from 'node:util';
import { DEFAULT_POLICY, defaultTokensFile, issueToken, listAgents, revokeToken } from '../state/tokens.js';

const HELP = `usage: mlink token add NAME [--projects a,b] [--propose] [--read-only] [--tokens FILE]
       mlink token list [--tokens FILE]
       mlink token revoke NAME [--tokens FILE]

add prints a new bearer token for agent NAME (replacing any old one); it is shown once.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { tokens: { type: 'string' }, projects: { type: 'string' }, propose: { type: 'boolean' }, 'read-only': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  const [action, name] = positionals;
  const file = values.tokens ?? defaultTokensFile();
  try {
    if (action === 'add' && name) {
      const token = await issueToken(file, {
        name,
        projects: values.projects ? values.projects.split(',').map((p) => p.trim()) : DEFAULT_POLICY.projects,
        mode: values.propose ? 'propose' : 'commit',
        access: values['read-only'] ? 'read' : 'write',
      });
      process.stdout.write(`${token}\n`);
      return 0;
    }
    if (action === 'list') {
      for (const a of await listAgents(file)) process.stdout.write(`${a.name}\t${a.access}\t${a.mode}\t${a.projects.join(',')}\t${a.createdAt}\n`);
      return 0;
    }
    if (action === 'revoke' && name) {
      if (await revokeToken(file, name)) return 0;
      process.stderr.write(`mlink token: no agent named ${name}\n`);
      return 1;
    }
  } catch (err) {
    process.stderr.write(`mlink token: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  (values.help ? process.stdout : process.stderr).write(HELP);
  return values.help ? 0 : 2;
}
