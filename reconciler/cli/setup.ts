import { runSetup } from '../../infra/setup/index.js';

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write('usage: mlink setup [--skip-debian]\n\nInstalls and starts Docker with runsc, Temporal, Traefik and a registry; builds base images.\n');
    return 0;
  }
  try {
    await runSetup({ skipDebian: argv.includes('--skip-debian') });
    return 0;
  } catch (e) {
    process.stderr.write(`mlink setup: ${(e as Error).message}\n`);
    return 1;
  }
}
