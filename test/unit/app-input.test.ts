import { describe, expect, it } from 'vitest';
import { changedFields, newAppSpec, secretNames, updatedAppSpec } from '../../reconciler/domain/app-input.js';

const now = new Date('2030-01-01T00:00:00Z');

describe('tool input to App spec', () => {
  it('maps snake_case tool fields to the manifest and computes expiry from ttl', () => {
    const spec = newAppSpec({
      name: 'web', source: { image: 'nginx' }, port: 80,
      resources: { cpu: 0.5, memory_mb: 128 }, health_check: { path: '/h', interval_seconds: 5 },
      scale_to_zero: { idle_timeout_seconds: 60 }, egress_allow: ['api.example.com:443'], ttl_seconds: 3600,
      databases: [{ name: 'db', env_prefix: 'PG' }], secret_env: { B: 'x', A: 'y' },
    }, now);
    expect(spec).toEqual({
      source: { image: 'nginx' }, port: 80,
      resources: { cpu: 0.5, memoryMb: 128 }, healthCheck: { path: '/h', intervalSeconds: 5 },
      scaleToZero: { idleTimeoutSeconds: 60 }, egress: { allow: ['api.example.com:443'] }, expiresAt: '2030-01-01T01:00:00.000Z',
      databases: [{ name: 'db', envPrefix: 'PG' }], secretEnv: ['A', 'B'],
    });
  });

  it('keeps omitted fields, replaces given ones and removes null ones on update', () => {
    const old = newAppSpec({ name: 'w', source: { image: 'a' }, port: 80, replicas: 2, env: { A: '1' }, domains: ['x.localhost'] }, now);
    const next = updatedAppSpec(old, { name: 'w', port: 8080, env: { B: '2' }, domains: null }, now);
    expect(next).toEqual({ source: { image: 'a' }, port: 8080, replicas: 2, env: { B: '2' } });
  });

  it('merges secret names: set adds, null removes, null map clears', () => {
    expect(secretNames(['A', 'B'], { C: 'v', A: null })).toEqual(['B', 'C']);
    expect(secretNames(['A'], undefined)).toEqual(['A']);
    expect(secretNames(['A'], null)).toBeUndefined();
  });

  it('summarises what an update touches without secret values', () => {
    const s = changedFields({ name: 'w', port: 81, secret_env: { TOKEN: 'hunter2' }, domains: null });
    expect(s).toBe('port 81, secrets TOKEN, no domains');
    expect(s).not.toContain('hunter2');
  });
});
