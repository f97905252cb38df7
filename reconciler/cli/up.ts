import { runSetup } from '../../infra/setup/index.js';
import { checks, formatChecks } from '../../infra/doctor.js';

export async function run(_argv: string[]): Promise<number> {
  try {
    await runSetup();
  } catch (e) {
    process.stderr.write(`mlink up: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(formatChecks(await checks()));
  return 0;
}
