// `mlink review list|show|approve|reject`: humans deciding on agents' proposals.
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { allProposals, approveProposal, readProposal, rejectProposal } from '../domain/proposals.js';
import { StateStore } from '../state/store.js';
import { humanIdentity } from './identity.js';
import { dataDir } from '../util/paths.js';

const HELP = `usage: mlink review list|show ID|approve ID|reject ID [--repo DIR] [--author "Name <email>"]

approve merges proposals/ID into main with a merge commit authored by you (--author, or
git's user.name/user.email, or your login); reject deletes the branch.
`;

async function show(store: StateStore, id: string): Promise<void> {
  const p = await readProposal(store, id);
  const out = [`proposal ${p.id} by ${p.agent} (branch ${p.branch}, head ${p.head.slice(0, 12)}, base ${p.base?.slice(0, 12) ?? 'none'})`, '', 'commits:'];
  for (const c of [...p.commits].reverse()) out.push(`  ${c.commit.slice(0, 12)} ${c.date} ${c.author.name}: ${c.subject}`);
  out.push('', 'files:');
  const view = await store.view(p.head);
  for (const f of p.files) {
    out.push(`  ${f.change.padEnd(8)} ${f.path}`);
    if (f.change !== 'deleted' && /\.ya?ml$/.test(f.path)) {
      const text = (await view.readText(f.path)) ?? '';
      try { parse(text); } catch { out.push('    (not valid YAML)'); }
      for (const line of text.split('\n').slice(0, 80)) out.push(`    | ${line}`);
    }
  }
  out.push('', `line diff: git --git-dir ${store.gitdir} diff ${p.base?.slice(0, 12) ?? 'main'} ${p.branch}`);
  process.stdout.write(out.join('\n') + '\n');
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { repo: { type: 'string' }, author: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  const [action, id] = positionals;
  if (values.help || !action) { (values.help ? process.stdout : process.stderr).write(HELP); return values.help ? 0 : 2; }
  try {
    const store = StateStore.open(values.repo ?? dataDir().stateRepo);
    if (action === 'list') {
      const all = await allProposals(store);
      if (all.length === 0) process.stdout.write('no open proposals\n');
      for (const p of all) process.stdout.write(`${p.id}\t${p.agent}\t${p.files.length === 1 ? "1 file" : `${p.files.length} files`}\t${p.subject}\n`);
      return 0;
    }
    if (!id) { process.stderr.write(`mlink review ${action}: a proposal id is required\n\n${HELP}`); return 2; }
    if (action === 'show') { await show(store, id); return 0; }
    if (action === 'approve') {
      const r = await approveProposal(store, id, humanIdentity(values.author));
      process.stdout.write(`merged proposal ${id} into main as ${r.commit}\n`);
      return 0;
    }
    if (action === 'reject') {
      const p = await rejectProposal(store, id);
      process.stdout.write(`rejected proposal ${id}; its last commit was ${p.head} (recoverable until git gc)\n`);
      return 0;
    }
    process.stderr.write(`mlink review: unknown action ${JSON.stringify(action)}\n\n${HELP}`);
    return 2;
  } catch (err) {
    process.stderr.write(`mlink review: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
