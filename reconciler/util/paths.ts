// Where ml.ink keeps its data on a host. Everything machine-local lives under one
// directory: `~/.mlink` unless MLINK_HOME says otherwise.
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface DataDir {
  home: string;
  bin: string; // binaries built from source, named with their version
  run: string; // pid files and daemon logs
  stateRepo: string; // the default state repo
  keys: string; // the cluster's private age key (never in git)
  routes: string; // Traefik file-provider directory
  temporalDb: string;
  registry: string;
  images: string; // debootstrap output and image build contexts
  sources: string; // internal source repos, one bare git repo per app: <project>/<app>.git
  builds: string; // build records and logs: <project>/<app>/<key>/
  backups: string; // the backup store: <project>/<database>/<backup id>/ (dump.age, meta.json) and pitr/
  holds: string; // resources a human-started operation (a restore) holds the reconciler off
  names: string; // DNS records each cluster owns in its zone, and their state: <cluster>.json
  health: string; // hosts' conditions as the control plane's health checks see them: <cluster>.json
}

export function dataDir(home = process.env.MLINK_HOME ?? join(homedir(), '.mlink')): DataDir {
  return {
    home,
    bin: join(home, 'bin'),
    run: join(home, 'run'),
    stateRepo: join(home, 'state'),
    keys: join(home, 'keys'),
    routes: join(home, 'routes'),
    temporalDb: join(home, 'temporal', 'dev.db'),
    registry: join(home, 'registry'),
    images: join(home, 'images'),
    sources: join(home, 'sources'),
    builds: join(home, 'builds'),
    backups: join(home, 'backups'),
    holds: join(home, 'holds'),
    names: join(home, 'names'),
    health: join(home, 'health'),
  };
}
