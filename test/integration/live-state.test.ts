// The reconciler plugs live state into get_app and plan through LiveStateProvider,
// without touching mcp/: a provider given to the domain is what agents see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveStateProvider } from '../../reconciler/domain/index.js';
import { call, memoryClient, structured, tempState, writer, type TempState } from '../support/state-repo.js';

let t: TempState;
beforeAll(async () => { t = await tempState(); });
afterAll(() => t.cleanup());

describe('live state provider', () => {
  it('get_app and plan report what the provider says, for the desired state on main', async () => {
    const asked: string[] = [];
    const provider: LiveStateProvider = {
      status: async (id) => { asked.push(`${id.kind} ${id.project}/${id.name}`); return { known: true, phase: 'Running', appliedCommit: 'abc' }; },
      plan: async (desired) => ({ known: true, actions: desired.resources.map((r) => ({ ...r, action: 'create', reason: `not running (revision ${r.revision.slice(0, 7)})` })) }),
    };
    const client = await memoryClient(t.store, writer(), provider);
    structured(await call(client, 'create_app', { name: 'web', source: { image: 'nginx' }, port: 80 }));
    const app = structured<{ live: { known: boolean; phase: string }; revision: string }>(await call(client, 'get_app', { name: 'web' }));
    expect(app.live).toEqual({ known: true, phase: 'Running', appliedCommit: 'abc' });
    expect(asked).toEqual(['App default/web']);
    const plan = structured<{ live: { known: boolean; actions: Array<{ action: string; name: string; reason: string }> } }>(await call(client, 'plan', {}));
    expect(plan.live.actions).toEqual([expect.objectContaining({ action: 'create', name: 'web', reason: `not running (revision ${app.revision.slice(0, 7)})` })]);
  });
});
