// The Docker create request for one database server: pure, so a plan can carry it and a
// test can compare it. Zero-trust defaults as for apps (gVisor, limits, no capabilities,
// no-new-privileges, read-only root), with the data on a named volume the caller labels.
//
// Capabilities: none, for every engine (CapDrop ALL, CapAdd empty; CapEff of PID 1 is
// 0, checked by test/integration/database-engines.test.ts). Each server runs as its own
// unprivileged user from the first instruction (`User` below; uid/gid 999, fixed in the
// image), and Docker fills a new named volume from the image's mount point, owner and
// mode included, so no entrypoint needs root to chown anything. Tried under runsc:
// - postgres: initdb, single-user role setup, the server, pgBackRest archive-push,
//   backup and restore: none.
// - mysql (MariaDB): mariadb-install-db run without --user (with it, it tries to chown
//   the PAM helper: "Operation not permitted"), the server: none.
// - redis: none; the server writes only its data dir and /run/redis.
//
// Read-only root, writable only: the data volume, the pgBackRest volume (Postgres with
// point-in-time recovery), and small tmpfs mounts for sockets, pid files and config the
// entrypoints write (/run/postgresql, /run/mysqld, /run/redis) and /tmp.
import type Docker from 'dockerode';
import { checkCredentials, serverEnv, type Credentials } from './credentials.js';
import { ENGINES, engineOf, type Engine } from './engines.js';

export const PITR_MOUNT = '/var/lib/mlink/pgbackrest';

export interface DatabaseContainerInput {
  /** The container's name (deterministic from identity: the caller's naming module). */
  name: string;
  engine: string;
  /** ensureEngineImage's tag. */
  image: string;
  credentials: Credentials;
  /** Named volume holding the data; made by ensureVolume with the caller's labels. */
  volume: string;
  /** Postgres only: a second named volume for the pgBackRest repository; turns WAL archiving on. */
  pitrVolume?: string;
  /** Postgres with pitrVolume: seconds after which a WAL segment with any write in it is archived (Postgres's archive_timeout). Default 60. */
  archiveTimeoutS?: number;
  /** The Docker network (the project's); "none" for a drill's sandbox, which needs no MAC. */
  network: string;
  /** DNS names on that network (for example the database's name). Docker's embedded DNS is not reachable from gVisor's
   * own network stack, so apps under runsc cannot resolve them: give apps an address (`ip`, or ExtraHosts name:ip). */
  aliases?: string[];
  /** A fixed IPv4 address on the network (which must have a configured subnet), so a bound app's _HOST survives restarts. */
  ip?: string;
  /** The container's MAC on the network (the caller's deterministic one; egress rules tell containers apart by it). */
  mac?: string;
  /** Labels for the container (identity, spec hash, commit): the caller's. */
  labels: Record<string, string>;
  resources: { cpu: number; memoryMb: number; pids: number };
  /** Default runsc (gVisor). */
  runtime?: 'runsc' | 'runc';
  /** Default unless-stopped: Docker brings a crashed server back, on its own, with the control plane gone. Drills use "no". */
  restart?: 'unless-stopped' | 'no';
}

const MIN: Record<string, { memoryMb: number; pids: number }> = {
  postgres: { memoryMb: 128, pids: 128 }, mysql: { memoryMb: 192, pids: 128 }, redis: { memoryMb: 32, pids: 128 },
};

/** Throws naming the field when the input could not make a working container. */
export function checkContainerInput(i: DatabaseContainerInput): Engine {
  const e = engineOf(i.engine);
  if (i.credentials.engine !== e.name) throw new Error(`credentials.engine: credentials are for ${i.credentials.engine}, the container is ${e.name}`);
  checkCredentials(i.credentials);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(i.name)) throw new Error(`name: "${i.name}" is not a Docker container name`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(i.volume)) throw new Error(`volume: "${i.volume}" is not a Docker volume name`);
  if (i.pitrVolume !== undefined) {
    if (e.name !== 'postgres') throw new Error(`pitrVolume: point-in-time recovery is for postgres only, not ${e.name}`);
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(i.pitrVolume) || i.pitrVolume === i.volume) throw new Error(`pitrVolume: "${i.pitrVolume}" must be a Docker volume name other than the data volume's`);
  }
  if (i.archiveTimeoutS !== undefined && (!Number.isInteger(i.archiveTimeoutS) || i.archiveTimeoutS < 1 || i.archiveTimeoutS > 3600)) {
    throw new Error('archiveTimeoutS: must be a whole number of seconds from 1 to 3600');
  }
  if (!i.network) throw new Error('network: the Docker network to join is required');
  if (i.network === 'none') {
    if (i.mac !== undefined) throw new Error('mac: a container without a network (network "none") has no MAC; leave mac out');
  } else {
    if (i.mac === undefined || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(i.mac)) throw new Error(`mac: "${i.mac ?? ''}" is not a MAC address like 02:42:ac:11:00:02 (lower-case hex); the caller's deterministic MAC is required`);
    if ((parseInt(i.mac.slice(0, 2), 16) & 1) === 1) throw new Error(`mac: "${i.mac}" is a multicast address; the first octet must be even (02 is locally administered)`);
  }
  if (i.ip !== undefined && (i.network === 'none' || !/^(\d{1,3}\.){3}\d{1,3}$/.test(i.ip) || i.ip.split('.').some((o) => Number(o) > 255))) {
    throw new Error(`ip: "${i.ip}" must be an IPv4 address on the network's subnet`);
  }
  if (Object.keys(i.labels).length === 0) throw new Error('labels: a database container needs the labels that identify it (managed-by, kind, project, name)');
  const min = MIN[e.name]!;
  const r = i.resources;
  if (!(r.cpu > 0 && r.cpu <= 64)) throw new Error(`resources.cpu: ${r.cpu} must be more than 0 and at most 64`);
  if (!Number.isInteger(r.memoryMb) || r.memoryMb < min.memoryMb) throw new Error(`resources.memory_mb: ${e.name} needs at least ${min.memoryMb} MiB, not ${r.memoryMb}`);
  if (!Number.isInteger(r.pids) || r.pids < min.pids) throw new Error(`resources.pids: ${r.pids} is too few; gVisor's own threads count, give at least ${min.pids}`);
  return e;
}

function tmpfs(e: Engine, size: string): string {
  return `rw,nosuid,nodev,noexec,size=${size},uid=${e.uid},gid=${e.uid},mode=0700`;
}

/** Engine tuning from the memory limit: a quarter for Postgres's shared buffers or InnoDB's pool, most of it for Redis's maxmemory. */
function tuning(e: Engine, memoryMb: number): Record<string, string> {
  if (e.name === 'postgres') return { MLINK_PG_SHARED_BUFFERS: `${Math.max(16, Math.floor(memoryMb / 4))}MB` };
  if (e.name === 'mysql') return { MLINK_MYSQL_BUFFER_POOL: `${Math.max(32, Math.floor(memoryMb / 4))}M` };
  return { MLINK_REDIS_MAXMEMORY: `${Math.floor(memoryMb * 0.75)}mb` };
}

const RUN_DIR: Record<string, string> = { postgres: '/run/postgresql', mysql: '/run/mysqld', redis: '/run/redis' };

/** The create request for one database server. */
export function databaseContainerSpec(i: DatabaseContainerInput): Docker.ContainerCreateOptions {
  const e = checkContainerInput(i);
  const env: Record<string, string> = { ...serverEnv(i.credentials), ...tuning(e, i.resources.memoryMb) };
  if (i.pitrVolume) {
    env.MLINK_PITR = '1';
    env.MLINK_ARCHIVE_TIMEOUT = String(i.archiveTimeoutS ?? 60);
  }
  const mounts: Docker.MountSettings[] = [{ Type: 'volume', Source: i.volume, Target: e.dataDir }];
  if (i.pitrVolume) mounts.push({ Type: 'volume', Source: i.pitrVolume, Target: PITR_MOUNT });
  return {
    name: i.name,
    Image: i.image,
    User: e.user,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: { ...i.labels },
    ...(i.mac ? { MacAddress: i.mac } : {}),
    ExposedPorts: { [`${e.port}/tcp`]: {} },
    StopTimeout: 30,
    HostConfig: {
      Runtime: i.runtime ?? 'runsc',
      NetworkMode: i.network,
      NanoCpus: Math.round(i.resources.cpu * 1e9),
      Memory: i.resources.memoryMb * 1024 * 1024,
      MemorySwap: i.resources.memoryMb * 1024 * 1024,
      PidsLimit: i.resources.pids,
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Mounts: mounts,
      Tmpfs: { [RUN_DIR[e.name]!]: tmpfs(e, '16m'), '/tmp': tmpfs(e, `${Math.max(16, Math.floor(i.resources.memoryMb / 8))}m`) },
      ...(e.name === 'postgres' ? { ShmSize: Math.max(64, Math.floor(i.resources.memoryMb / 4)) * 1024 * 1024 } : {}),
      // No Docker socket, no host path: nothing from the host is mounted.
      Binds: [],
      RestartPolicy: { Name: i.restart ?? 'unless-stopped' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
    ...(i.network === 'none' ? {} : {
      NetworkingConfig: {
        EndpointsConfig: {
          [i.network]: { ...(i.aliases?.length ? { Aliases: i.aliases } : {}), ...(i.ip ? { IPAMConfig: { IPv4Address: i.ip } } : {}), MacAddress: i.mac },
        },
      },
    }),
  };
}

/** Where each engine keeps its data, for callers that show it. */
export function dataMount(engine: string): string {
  return ENGINES[engineOf(engine).name].dataDir;
}

export interface ToolContainerInput {
  name: string;
  engine: string;
  image: string;
  /** The command, run as the engine's user instead of the server. */
  cmd: string[];
  /** Named volumes by mount point. */
  volumes: Record<string, string>;
  labels: Record<string, string>;
  runtime?: 'runsc' | 'runc';
}

/** A one-off container of the engine's image (a pgBackRest restore): the same sandbox as the server, no network, no restart. */
export function toolContainerSpec(i: ToolContainerInput): Docker.ContainerCreateOptions {
  const e = engineOf(i.engine);
  if (Object.keys(i.labels).length === 0) throw new Error('labels: a tool container needs the labels that identify what it works for');
  return {
    name: i.name,
    Image: i.image,
    User: e.user,
    Entrypoint: [i.cmd[0]!],
    Cmd: i.cmd.slice(1),
    Env: [],
    Labels: { ...i.labels },
    HostConfig: {
      Runtime: i.runtime ?? 'runsc',
      NetworkMode: 'none',
      NanoCpus: 1e9,
      Memory: 512 * 1024 * 1024,
      MemorySwap: 512 * 1024 * 1024,
      PidsLimit: 256,
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Mounts: Object.entries(i.volumes).map(([target, source]) => ({ Type: 'volume' as const, Source: source, Target: target })),
      Tmpfs: { [RUN_DIR[e.name]!]: tmpfs(e, '16m'), '/tmp': tmpfs(e, '64m') },
      Binds: [],
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '1' } },
    },
  };
}
