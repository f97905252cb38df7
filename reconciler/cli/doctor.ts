import { checks, formatChecks } from '../../infra/doctor.js';
import { namesChecks } from '../names/doctor.js';
import { dataDir } from '../util/paths.js';

export async function run(argv: string[]): Promise<number> {
  const list = [...(await checks()), ...(await namesChecks(dataDir()))];
  if (argv.includes('--json')) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
  else process.stdout.write(formatChecks(list));
  return list.every((c) => c.ok) ? 0 : 1;
}
