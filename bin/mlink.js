#!/usr/bin/env node
// The `mlink` command. Sources are TypeScript run through tsx, so `npm ci` is the whole
// install: no build step, no build output to keep in step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../reconciler/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
