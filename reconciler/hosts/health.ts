// A host's health as an operator (`mlink host list`) or an agent (`list_hosts`) sees it:
// SSH answering, Docker answering, with how long each took; the edge answering on a
// runtime host; and what ml.ink runs there, counted by kind. Each check has a deadline
// so one host that is down does not hold the others' answers.
import { LABEL, MANAGED_BY } from '../model.js';
import { conditionText, type HostCondition } from './conditions.js';
import type { HostPool, HostEntry } from './pool.js';
import { within } from '../util/deadline.js';

export interface Check { ok: boolean; ms?: number; detail?: string; error?: string }

export interface HostHealth {
  name: string;
  address: string;
  roles: HostEntry['roles'];
  hostKey?: string;
  user?: string;
  port?: number;
  capacity?: { cpu: number; memoryMb: number };
  labels?: Record<string, string>;
  schedulable: boolean;
  ssh: Check;
  docker: Check;
  /** Runtime hosts only. */
  edge?: Check;
  /** Containers ml.ink runs there that are running, by kind (App, AppNet, Database, Edge, ...). */
  running: Record<string, number>;
  /** What the control plane's health checks say over time (absent: Ready), and when they last ran. */
  condition?: HostCondition;
  checkedAt?: string;
}

async function check(ms: number, what: string, fn: () => Promise<string | undefined>): Promise<Check> {
  const t0 = Date.now();
  try {
    const detail = await within(ms, what, fn());
    return { ok: true, ms: Date.now() - t0, ...(detail ? { detail } : {}) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** One host's health; `timeoutMs` bounds each check. */
export async function hostHealth(pool: HostPool, name: string, timeoutMs = 8000): Promise<HostHealth> {
  const e = pool.entry(name);
  const out: HostHealth = {
    name, address: e.address, roles: [...e.roles], schedulable: e.schedulable,
    ...(e.ssh?.hostKey ? { hostKey: e.ssh.hostKey } : {}),
    ...(e.address !== 'local' ? { user: e.ssh?.user ?? 'root', port: e.ssh?.port ?? 22 } : {}),
    ...(e.capacity ? { capacity: e.capacity } : {}), ...(e.labels ? { labels: e.labels } : {}),
    ssh: { ok: false }, docker: { ok: false }, running: {},
    ...(pool.condition(name) ? { condition: pool.condition(name)! } : {}),
    ...(pool.healthCheckedAt ? { checkedAt: pool.healthCheckedAt } : {}),
  };
  let host;
  try {
    host = pool.get(name);
  } catch (err) {
    out.ssh = { ok: false, error: (err as Error).message };
    out.docker = { ok: false, error: 'not reached' };
    return out;
  }
  out.ssh = e.address === 'local'
    ? { ok: true, detail: 'this machine' }
    : await check(timeoutMs, `host ${name}: SSH`, async () => {
      const r = await host.run({ argv: ['true'] });
      if (r.code !== 0) throw new Error(`host ${name}: \`true\` exited ${r.code}`);
      return undefined;
    });
  out.docker = out.ssh.ok
    ? await check(timeoutMs, `host ${name}: Docker`, async () => (await host.docker.version()).Version)
    : { ok: false, error: 'not reached: SSH is not answering' };
  const edge = pool.edge(name);
  if (edge) {
    out.edge = out.ssh.ok
      ? await check(timeoutMs, `host ${name}: edge`, async () => {
        const r = await host.request(`${edge.api}/ping`, { timeoutMs });
        if (r.status !== 200) throw new Error(`the edge's ping at ${edge.api} answered ${r.status}`);
        return edge.api;
      })
      : { ok: false, error: 'not reached: SSH is not answering' };
  }
  if (out.docker.ok) {
    const list = await within(timeoutMs, `host ${name}: containers`, host.docker.listContainers({ filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`] } })).catch(() => []);
    for (const c of list) {
      const kind = c.Labels[LABEL.kind] ?? 'other';
      out.running[kind] = (out.running[kind] ?? 0) + 1;
    }
  }
  return out;
}

/** Every host of the pool, checked at once. */
export function poolHealth(pool: HostPool, timeoutMs?: number): Promise<HostHealth[]> {
  return Promise.all(pool.names().map((n) => hostHealth(pool, n, timeoutMs)));
}

/** `App 2, Database 1, Edge 1`, or `nothing`. */
export function runningText(running: Record<string, number>): string {
  const parts = Object.entries(running).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : 'nothing';
}

/** The STATE column: Ready, Failing/Lost since when and the failing check, drained; with the checks' age when they look stopped. */
export function stateText(h: HostHealth, now = Date.now()): string {
  const parts = [conditionText(h.condition)];
  if (!h.schedulable) parts.push('drained');
  const age = h.checkedAt ? (now - Date.parse(h.checkedAt)) / 1000 : undefined;
  if (age === undefined) parts.push('(no health checks yet: is `mlink up` running?)');
  else if (age > 60) parts.push(`(health checks last ran ${Math.round(age)} s ago: is \`mlink up\` running?)`);
  return parts.join(', ');
}

export function checkText(c: Check | undefined): string {
  if (!c) return '-';
  if (c.ok) return c.ms !== undefined ? `ok ${c.ms} ms` : 'ok';
  return `FAIL ${c.error ?? ''}`.trim();
}
