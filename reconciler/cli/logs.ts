// `mlink logs APP`: an app's build and runtime output in a terminal. While a build runs
// its log is followed; with -f the running container's output follows after it.
import { createReadStream, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BuildRecords } from '../image-builds/records.js';
import { readClusterConfig } from '../source/desired.js';
import { buildLogs, resourceContainers, runtimeLogs } from '../status/app-logs.js';
import { clusterHosts } from '../hosts/cluster.js';
import { StateStore } from '../state/store.js';
import { dataDir } from '../util/paths.js';

const HELP = `usage: mlink logs [--project NAME] [--build | --runtime] [-n LINES] [-f] APP

Prints an app's newest build log (--build) or its container's output (--runtime). By
default: the build log while a build runs or when the newest build failed, else the
runtime output. -f follows: a running build to its end, then the container.
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function followBuild(records: BuildRecords, project: string, name: string, out: (s: string) => void): Promise<string | undefined> {
  const key = records.latestKey(project, name);
  if (!key) return undefined;
  const file = records.logFile(project, name, key);
  let at = 0;
  for (;;) {
    const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    if (size > at) {
      await new Promise<void>((resolve) => createReadStream(file, { start: at, end: size - 1 }).on('data', (d) => out(d.toString())).on('end', () => resolve()));
      at = size;
    }
    const rec = records.read(project, name, key);
    if (rec?.phase !== 'Building') return rec?.phase;
    await sleep(200);
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      project: { type: 'string' }, build: { type: 'boolean' }, runtime: { type: 'boolean' }, lines: { type: 'string', short: 'n' },
      follow: { type: 'boolean', short: 'f' }, repo: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  const name = positionals[0];
  if (!name) { process.stderr.write(`mlink logs: name the app\n\n${HELP}`); return 2; }
  const project = values.project ?? 'default';
  const lines = Number(values.lines ?? 100);
  const dirs = dataDir();
  const records = new BuildRecords(dirs.builds);
  const out = (s: string): void => { process.stdout.write(s); };
  const latest = records.latest(project, name);
  const wantBuild = values.build || (!values.runtime && !!latest && latest.phase !== 'Built');
  if (wantBuild) {
    const logs = buildLogs(records, project, name, lines);
    if (!values.follow || latest?.phase !== 'Building') {
      out(`${[`# ${logs.source}`, ...logs.lines].join('\n')}\n`);
      if (!values.follow || values.build) return 0;
    } else {
      out(`# ${logs.source}\n`);
      const phase = await followBuild(records, project, name, out);
      if (values.build) return phase === 'Built' ? 0 : 1;
    }
  }
  const view = await StateStore.open(values.repo ?? dirs.stateRepo).view();
  const cluster = (await readClusterConfig(view)).metadata.name;
  const hosts = await clusterHosts(view);
  const id = { kind: 'App' as const, project, name };
  if (!values.follow) {
    const logs = await runtimeLogs(hosts, cluster, id, { lines });
    out(`${[`# ${logs.source}`, ...logs.lines].join('\n')}\n`);
    return 0;
  }
  for (;;) {
    for (const h of hosts.names('runtime')) {
      const docker = hosts.get(h).docker;
      const [c] = (await resourceContainers(docker, cluster, id)).filter((x) => x.State === 'running');
      if (!c) continue;
      out(`# container ${(c.Names[0] ?? c.Id).replace(/^\//, '')} on ${h}\n`);
      const stream = (await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, follow: true, tail: lines })) as unknown as NodeJS.ReadableStream;
      docker.modem.demuxStream(stream, process.stdout, process.stderr);
      await new Promise<void>((resolve) => { stream.on('end', () => resolve()); process.once('SIGINT', () => resolve()); });
      await hosts.close();
      return 0;
    }
    await sleep(500);
  }
}
