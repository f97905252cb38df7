// A bounded run of bench:faults' local scenarios (test/support/faults.ts), with the real
// parts and `mlink up`'s default drift interval: `mlink up` SIGKILLed at a random moment
// of a deploy and started again, three times (R1), and an app's container removed by
// hand (drift). The figures are printed; only convergence is asserted, within bounds
// generous enough for a busy 2-core machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runId } from '../support/infra.js';
import { ensureWebImage } from '../support/images.js';
import { DEFAULT_DRIFT_S, LocalCluster, deployWindowMs, killDuringDeploy, removedByHand } from '../support/faults.js';

let c: LocalCluster;
let image: string;
const APP = 'deploy';
const REPLICAS = 2;

beforeAll(async () => {
  image = await ensureWebImage();
  c = await LocalCluster.start(`f${runId}`.slice(0, 30));
}, 120_000);

afterAll(async () => {
  await c?.tearDown();
}, 120_000);

describe('fault suite, bounded', () => {
  it('R1: a deploy whose mlink up is SIGKILLed at a random moment converges after a restart: one container per replica, no orphan route', async () => {
    await c.createApp(APP, { image, replicas: REPLICAS, env: { GREETING: 'v0' } });
    const windowMs = await deployWindowMs(c, APP, REPLICAS, 'v1');
    for (let i = 2; i <= 4; i++) {
      const t = await killDuringDeploy(c, { app: APP, replicas: REPLICAS, greeting: `v${i}`, windowMs, boundMs: 90_000 });
      process.stdout.write(`R1 trial ${i - 1}: killed ${t.killedAtMs} ms into a ${Math.round(windowMs)} ms deploy; converged ${t.convergedS === undefined ? `never (${t.why})` : `in ${t.convergedS.toFixed(1)} s`}, ${t.duplicates} duplicate(s), orphan routes [${t.orphanRoutes.join('; ')}]\n`);
      expect(t.why, `trial ${i - 1}, killed at ${t.killedAtMs} ms`).toBeUndefined();
      expect(t.duplicates).toBe(0);
      expect(t.orphanRoutes).toEqual([]);
    }
  }, 420_000);

  it(`drift: an app's container removed by hand serves again before the next drift check (every ${DEFAULT_DRIFT_S} s): the exit watcher sees the removal`, async () => {
    await c.createApp('drift', { image, env: { GREETING: 'here' } });
    const s = await removedByHand(c, 'drift', (DEFAULT_DRIFT_S + 30) * 1000);
    process.stdout.write(`drift: serves again ${s === undefined ? 'never' : `${s.toFixed(1)} s`} after docker rm -f\n`);
    expect(s).toBeDefined();
  }, 180_000);
});
