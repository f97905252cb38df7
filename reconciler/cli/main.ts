// `mlink` entry point: one file per command under reconciler/cli/, loaded on demand so
// `mlink mcp` starts fast and prints nothing on stdout but MCP.

type Command = { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  up: { summary: 'run everything on embedded defaults and print where agents connect', load: () => import('./up.js') },
  setup: { summary: 'install and start the infrastructure (idempotent, cached)', load: () => import('./setup.js') },
  doctor: { summary: 'one line per component: version, address, OK or FAIL with the fix', load: () => import('./doctor.js') },
  init: { summary: 'create the state repo (git, branch main) and the cluster age key', load: () => import('./init.js') },
  mcp: { summary: 'serve MCP on stdio for one agent (--repo DIR --agent NAME)', load: () => import('./mcp.js') },
  serve: { summary: 'serve MCP over Streamable HTTP at /mcp with bearer tokens', load: () => import('./serve.js') },
  review: { summary: 'list, show, approve or reject agents\' proposals', load: () => import('./review.js') },
  status: { summary: 'a table of apps: phase, URL, running commit, last error', load: () => import('./status.js') },
  logs: { summary: 'an app\'s build log or container output; -f follows', load: () => import('./logs.js') },
  db: { summary: 'databases: list, backup, backups, verify, restore, url, purge', load: () => import('./db.js') },
  host: { summary: 'hosts reached over SSH: add (pin its key, install, commit), list (health), remove, drain, undrain', load: () => import('./host.js') },
  ca: { summary: 'export or show the root certificate of the cluster\'s CA (trust it in clients)', load: () => import('./ca.js') },
  dns: { summary: 'configure the DNS zone and TSIG key apps\' A records go to', load: () => import('./dns.js') },
  token: { summary: 'add, list or revoke agent tokens for `mlink serve`', load: () => import('./token.js') },
  prune: { summary: 'remove what a cluster whose control plane is gone left on this host (--cluster NAME)', load: () => import('./prune.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: mlink <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`mlink: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}
