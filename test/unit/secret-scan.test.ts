// The scan that proves no workflow history holds a secret (test/e2e/reconcile.test.ts)
// must be able to fail. Histories made here the way Temporal stores them (payloads as
// bytes from the SDK's own payload converter) with a secret put into an activity input,
// a local activity's result and a child workflow's input: the scan finds each; the
// check it replaces (the CLI's JSON, where payloads are base64, searched as text) found none.
import { defaultPayloadConverter } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { findSecret } from '../support/secret-scan.js';

const secret = 's3cret-planted-value';
const payloads = (...values: unknown[]): { payloads: unknown[] } => ({ payloads: values.map((v) => defaultPayloadConverter.toPayload(v)) });

function history(input: unknown): { events: unknown[] } {
  return {
    events: [
      { eventId: 1, eventType: 1, workflowExecutionStartedEventAttributes: { workflowType: { name: 'applyResourceWorkflow' }, input: payloads({ commit: 'c0ffee' }) } },
      { eventId: 5, eventType: 10, activityTaskScheduledEventAttributes: { activityType: { name: 'rollOut' }, input: payloads(input) } },
    ],
  };
}

/** What `temporal workflow show -o json` prints: the same events with every byte string in base64. */
function asCliJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(asCliJson);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asCliJson(v)]));
  return value;
}

describe('the secret scan over workflow histories', () => {
  it('finds a secret put into an activity input, where the old text search of the CLI output did not', () => {
    const h = history({ actions: [{ type: 'startReplica', app: { env: { GREETING: 'v1', API_TOKEN: secret } } }] });
    expect(findSecret(h, secret)).toEqual(['$.events[1].activityTaskScheduledEventAttributes.input.payloads[0].data']);
    const cli = JSON.stringify(asCliJson(h));
    expect(cli).not.toContain(secret); // the old check passed on this history
    expect(findSecret(JSON.parse(cli), secret)).toEqual(['$.events[1].activityTaskScheduledEventAttributes.input.payloads[0].data']);
    // wherever the secret falls in the payload (base64 groups bytes by three)
    for (const pad of ['', 'x', 'xy']) expect(findSecret(asCliJson(history({ pad, token: secret })), secret)).toHaveLength(1);
  });

  it('finds it in a local activity\'s recorded result and a child workflow\'s input, and in base64 or hex inside a payload', () => {
    const marker = { eventId: 7, markerRecordedEventAttributes: { markerName: 'core_local_activity', details: { result: payloads({ plan: { env: { T: secret } } }) } } };
    const child = { eventId: 9, startChildWorkflowExecutionInitiatedEventAttributes: { input: payloads({ resource: { secrets: [Buffer.from(secret).toString('base64')] } }) } };
    const hex = { eventId: 11, activityTaskCompletedEventAttributes: { result: payloads({ blob: Buffer.from(secret).toString('hex') }) } };
    expect(findSecret({ events: [marker, child, hex] }, secret)).toEqual([
      '$.events[0].markerRecordedEventAttributes.details.result.payloads[0].data',
      '$.events[1].startChildWorkflowExecutionInitiatedEventAttributes.input.payloads[0].data',
      '$.events[2].activityTaskCompletedEventAttributes.result.payloads[0].data',
    ]);
  });

  it('finds nothing in a history without it', () => {
    expect(findSecret(history({ actions: [{ type: 'startReplica', app: { env: { GREETING: 'v1' }, secretEnv: ['API_TOKEN'] } }] }), secret)).toEqual([]);
  });
});
