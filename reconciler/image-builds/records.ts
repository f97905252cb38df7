// Build records on the build host: one directory per app and build key holding the
// status (build.json), the log as it streams (build.log) and the Dockerfile that was
// built (kept and shown). `latest` names the app's newest build.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type BuildPhase = 'Building' | 'Built' | 'Failed';

export interface BuildRecord {
  key: string;
  project: string;
  name: string;
  image: string;
  commit: string;
  path: string;
  phase: BuildPhase;
  /** e.g. "3/5 image build: Step 2/4 : COPY . /app" */
  progress: string;
  /** The step that is running, or that failed. */
  step?: string;
  steps: string[];
  method?: string;
  why?: string;
  /** The Dockerfile built (the app's own or the generated one). */
  dockerfile?: string;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  /** When the image reached the private registry (the push runs after the build). */
  pushedAt?: string;
  error?: string;
  /** A failure the same source would fail again (a step exited non-zero): not retried for this key. */
  final?: boolean;
  /** The failed step's own last lines (other output can interleave with them in the log). */
  tail?: string[];
}

export class BuildRecords {
  constructor(readonly root: string) {}

  dir(project: string, name: string, key: string): string {
    return join(this.root, project, name, key);
  }

  logFile(project: string, name: string, key: string): string {
    return join(this.dir(project, name, key), 'build.log');
  }

  read(project: string, name: string, key: string): BuildRecord | undefined {
    const f = join(this.dir(project, name, key), 'build.json');
    try { return JSON.parse(readFileSync(f, 'utf8')) as BuildRecord; } catch { return undefined; }
  }

  latestKey(project: string, name: string): string | undefined {
    try { return readFileSync(join(this.root, project, name, 'latest'), 'utf8').trim() || undefined; } catch { return undefined; }
  }

  latest(project: string, name: string): BuildRecord | undefined {
    const key = this.latestKey(project, name);
    return key ? this.read(project, name, key) : undefined;
  }

  /** Starts a fresh record (and log) for a build and makes it the app's latest. */
  start(r: Omit<BuildRecord, 'phase' | 'progress' | 'startedAt'>): BuildRecord {
    const dir = this.dir(r.project, r.name, r.key);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'build.log'), '');
    const rec: BuildRecord = { ...r, phase: 'Building', progress: 'starting', startedAt: new Date().toISOString() };
    this.save(rec);
    atomicWrite(join(this.root, r.project, r.name, 'latest'), `${r.key}\n`);
    return rec;
  }

  save(r: BuildRecord): void {
    atomicWrite(join(this.dir(r.project, r.name, r.key), 'build.json'), `${JSON.stringify(r, null, 2)}\n`);
  }

  append(r: BuildRecord, text: string): void {
    if (!text) return;
    appendFileSync(this.logFile(r.project, r.name, r.key), text.endsWith('\n') ? text : `${text}\n`);
  }

  /** The last `lines` lines of a build's log. */
  tail(project: string, name: string, key: string, lines = 20): string[] {
    const f = this.logFile(project, name, key);
    if (!existsSync(f)) return [];
    return readFileSync(f, 'utf8').trimEnd().split('\n').filter(Boolean).slice(-lines);
  }
}

function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}
