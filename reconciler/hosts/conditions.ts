// A host's condition as the control plane's health checks (hosts/monitor.ts) see it over
// time. Pure: one probe result and the clock in, the next condition out, so the state
// machine is tested without hosts.
//
//   Ready --probe fails--> Failing --still failing after lostAfter--> Lost
//     ^                      |                                         |
//     +-----probe ok---------+                                probe ok |
//     +--------- the pass found it clean (rejoin) ---- Returning <-----+
//
// Failing: nothing new is placed there; what runs there is left be (a blip moves nothing).
// Lost: its apps are placed elsewhere; its databases are not (their data is there).
// Returning: it answers again; its stale replicas and routes are removed before it is
// Ready and takes new work.

export type HostState = 'Ready' | 'Failing' | 'Lost' | 'Returning';

export interface HostCondition {
  state: HostState;
  /** When it entered this state (ISO time). */
  since: string;
  /** Failing and Lost: when its checks started failing. */
  failingSince?: string;
  /** Failing and Lost: the check that fails, with its error ("ssh: no answer within 3000 ms"). */
  check?: string;
}

export interface Probe { ok: boolean; failed?: string }

/** mlink.yaml spec.hostHealth, with its defaults. */
export interface HealthSettings { checkIntervalSeconds: number; lostAfterSeconds: number }
export const HEALTH_DEFAULTS: HealthSettings = { checkIntervalSeconds: 3, lostAfterSeconds: 20 };

export type Transition = 'failing' | 'lost' | 'back' | 'recovered' | undefined;

const iso = (ms: number): string => new Date(ms).toISOString();

/** The condition after one probe at `now`; `transition` names the change that matters to the reconciler, if any. */
export function nextCondition(prev: HostCondition | undefined, probe: Probe, now: number, lostAfterMs: number): { condition: HostCondition; transition: Transition } {
  const cur = prev ?? { state: 'Ready' as const, since: iso(now) };
  const check = probe.failed ?? 'a check failed';
  if (probe.ok) {
    if (cur.state === 'Failing') return { condition: { state: 'Ready', since: iso(now) }, transition: 'recovered' };
    if (cur.state === 'Lost') return { condition: { state: 'Returning', since: iso(now) }, transition: 'back' };
    return { condition: cur, transition: undefined };
  }
  switch (cur.state) {
    case 'Ready':
      return lostAfterMs <= 0
        ? { condition: { state: 'Lost', since: iso(now), failingSince: iso(now), check }, transition: 'lost' }
        : { condition: { state: 'Failing', since: iso(now), failingSince: iso(now), check }, transition: 'failing' };
    case 'Failing': {
      const from = Date.parse(cur.failingSince ?? cur.since);
      if (now - from >= lostAfterMs) return { condition: { state: 'Lost', since: iso(now), failingSince: iso(from), check }, transition: 'lost' };
      return { condition: { ...cur, check }, transition: undefined };
    }
    case 'Lost':
      return { condition: { ...cur, check }, transition: undefined };
    case 'Returning':
      // It was lost a moment ago and fails again: lost again at once, its apps stay where they went.
      return { condition: { state: 'Lost', since: iso(now), failingSince: iso(now), check }, transition: 'lost' };
  }
}

/** A Returning host the pass found clean (nothing stale of the cluster left there): Ready, it takes new work. */
export function rejoined(prev: HostCondition | undefined, now: number): HostCondition | undefined {
  return prev?.state === 'Returning' ? { state: 'Ready', since: iso(now) } : undefined;
}

/** Whether placement may put new work there. */
export function schedulableIn(c: HostCondition | undefined): boolean {
  return !c || c.state === 'Ready';
}

/** `Lost since 2026-12-03T16:01:02Z (failing since ...: ssh: ...)`, for tables and messages. */
export function conditionText(c: HostCondition | undefined): string {
  if (!c || c.state === 'Ready') return 'Ready';
  if (c.state === 'Returning') return `Returning since ${c.since} (answers again; its stale replicas and routes go before it takes new work)`;
  return `${c.state} since ${c.since}${c.check ? ` (${c.state === 'Lost' ? `failing since ${c.failingSince ?? '?'}: ` : ''}${c.check})` : ''}`;
}
