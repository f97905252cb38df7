// A workflow started through the Temporal server runs its activity in a worker of ours.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { temporalAddress } from '../../infra/config.js';
import { cfg, runId } from '../support/infra.js';

describe('temporal server', () => {
  it('runs a workflow whose activity executes in our worker', async () => {
    const address = temporalAddress(cfg);
    const taskQueue = `infra-test-${runId}`;
    const calls: string[] = [];
    const nativeConnection = await NativeConnection.connect({ address });
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: cfg.temporal.namespace,
      taskQueue,
      workflowsPath: fileURLToPath(new URL('./fixtures/echo-workflow.ts', import.meta.url)),
      activities: {
        async echo(input: { nonce: string }) {
          calls.push(input.nonce);
          return { nonce: input.nonce, pid: process.pid };
        },
      },
    });
    const connection = await Connection.connect({ address });
    const client = new Client({ connection, namespace: cfg.temporal.namespace });
    const nonce = randomUUID();
    try {
      const result = await worker.runUntil(
        client.workflow.execute('echoWorkflow', { taskQueue, workflowId: `echo-${nonce}`, args: [{ nonce }] }),
      );
      expect(result).toEqual({ nonce, pid: process.pid });
      expect(calls).toEqual([nonce]);
      // The server kept the history: it is a real server, not the worker talking to itself.
      const history = await client.workflow.getHandle(`echo-${nonce}`).fetchHistory();
      expect(history.events?.some((e) => e.activityTaskCompletedEventAttributes)).toBe(true);
    } finally {
      await connection.close();
      await nativeConnection.close();
    }
  }, 120_000);
});
