// `npm run bench <name>` runs bench/<name>.ts (commit, deploy, build, ...).
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('./', import.meta.url));
const names = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_')).map((f) => f.slice(0, -3));
const name = process.argv[2];
if (!name || !existsSync(`${dir}${name}.ts`)) {
  process.stderr.write(`usage: npm run bench <${names.join('|')}>\n`);
  process.exit(2);
}
process.argv.splice(2, 1);
await import(`./${name}.ts`);
