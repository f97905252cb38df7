// What the reconciler's status notes say about one resource a write changed: the pure
// decision behind `wait` (reconciler/domain/wait.ts), newest note first.
import { describe, expect, it } from 'vitest';
import { decide, type NotedCommit } from '../../reconciler/domain/wait.js';
import type { ResourceStatus, StatusRecord } from '../../reconciler/status/record.js';

const id = { kind: 'App' as const, project: 'shop', name: 'api' };
const C = 'c'.repeat(40);
const D = 'd'.repeat(40);
const entry = (over: Partial<ResourceStatus>): ResourceStatus => ({ kind: 'App', project: 'shop', name: 'api', change: 'update', result: 'ok', message: 'spec changed', ...over });
const note = (commit: string, phase: StatusRecord['phase'], resources: ResourceStatus[], message = ''): NotedCommit => ({ commit, record: { commit, phase, message, at: '2026-12-03T10:00:00Z', trigger: 'commit', resources, unchanged: 0 } });

describe('decide', () => {
  it('waits while no pass has recorded the commit or a later one', () => {
    expect(decide(id, [])).toEqual({ state: 'pending', reason: 'no reconcile pass has recorded this commit yet' });
  });

  it('is live when the note lists the change as applied', () => {
    expect(decide(id, [note(C, 'Applied', [entry({})])])).toEqual({ state: 'live', reason: 'spec changed', recorded: C });
  });

  it('is live when a later commit\'s pass found it unchanged (the commit itself was skipped for the newer one)', () => {
    expect(decide(id, [note(D, 'Applied', [entry({ name: 'other' })]), note(C, 'Applied', [entry({ result: 'failed', phase: 'HealthCheckFailed' })])]))
      .toEqual({ state: 'live', reason: `unchanged by the reconcile of ${D.slice(0, 12)}: already as the commit says`, recorded: D, unlisted: true });
  });

  it('fails with the phase and the step, quotes and all, when the change failed', () => {
    const message = 'build failed at step "sandbox: node --check "server.js"": found a syntax error';
    expect(decide(id, [note(C, 'Degraded', [entry({ result: 'failed', phase: 'BuildFailed', message })])]))
      .toEqual({ state: 'failed', phase: 'BuildFailed', step: 'sandbox: node --check "server.js"', reason: message, recorded: C });
  });

  it('fails on a skipped resource whose phase is a failure (a build that failed before), waits on one that is not', () => {
    expect(decide(id, [note(C, 'Applied', [entry({ change: 'skip', result: 'pending', phase: 'BuildFailed', message: 'build failed at step "image: Step 2/3 : RUN false": exit 1' })])]))
      .toMatchObject({ state: 'failed', phase: 'BuildFailed', step: 'image: Step 2/3 : RUN false' });
    expect(decide(id, [note(C, 'Applied', [entry({ change: 'skip', result: 'pending', phase: 'Expired', message: 'expired' })])]))
      .toEqual({ state: 'pending', phase: 'Expired', reason: 'expired', recorded: C });
  });

  it('looks past a newer commit that cannot be applied to what an older one did; fails when nothing since was applied', () => {
    const invalid = note(D, 'ValidationFailed', [], 'apps/shop/api.yaml: spec.port must be an integer');
    expect(decide(id, [invalid, note(C, 'Applied', [entry({})])])).toEqual({ state: 'live', reason: 'spec changed', recorded: C });
    expect(decide(id, [invalid])).toEqual({
      state: 'failed', phase: 'ValidationFailed', recorded: D,
      reason: `commit ${D.slice(0, 12)} cannot be applied, so nothing since the last good commit runs: apps/shop/api.yaml: spec.port must be an integer`,
    });
  });
});
