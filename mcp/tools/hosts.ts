// list_hosts: the cluster's machines, their roles, health and what runs there. Hosts are
// added by a human (`mlink host add` pins the SSH key), so agents only read them.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain, HostView } from '../../reconciler/domain/index.js';
import { handle, reads } from './shared.js';

const check = z.object({ ok: z.boolean(), ms: z.number().optional(), detail: z.string().optional(), error: z.string().optional() });
const condition = z.object({
  state: z.enum(['Ready', 'Failing', 'Lost', 'Returning']), since: z.string().optional(),
  failing_since: z.string().optional(), check: z.string().optional(),
}).describe('the control plane\'s health checks over time: Failing (nothing new placed there), Lost (failing for spec.hostHealth.lostAfterSeconds: its apps moved), Returning (answers again; its stale replicas and routes go first)');

function line(h: HostView): string {
  const health = h.live.known
    ? `ssh ${h.live.ssh.ok ? 'ok' : 'FAIL'}, docker ${h.live.docker.ok ? 'ok' : 'FAIL'}${h.live.edge ? `, edge ${h.live.edge.ok ? 'ok' : 'FAIL'}` : ''}; running ${Object.entries(h.live.running).map(([k, n]) => `${k} ${n}`).join(', ') || 'nothing'}`
    : h.live.reason;
  const c = h.live.known && h.live.condition.state !== 'Ready' ? `  ${h.live.condition.state} since ${h.live.condition.since ?? '?'}${h.live.condition.check ? ` (${h.live.condition.check})` : ''}` : '';
  return `${h.name}  ${h.address}  ${h.roles.join(',')}${h.schedulable ? '' : ' (drained)'}${c}  ${health}`;
}

export function registerHostTools(server: McpServer, domain: Domain): void {
  server.registerTool('list_hosts', {
    title: 'List hosts',
    description: 'The machines of the cluster: the embedded `local` host and hosts added with `mlink host add` (reached over SSH with a pinned host key). For each: address, roles (control, build, runtime), capacity, labels, whether new work may be placed there, and live health (SSH, Docker and edge answering, with latency; its condition over time: Ready, Failing, Lost since when and the failing check, Returning) and what ml.ink runs there, by kind.',
    inputSchema: z.strictObject({}),
    outputSchema: {
      hosts: z.array(z.object({
        name: z.string(), address: z.string(), roles: z.array(z.string()), path: z.string(),
        ssh: z.object({ user: z.string(), port: z.number(), host_key: z.string().optional() }).optional(),
        capacity: z.object({ cpu: z.number(), memory_mb: z.number() }).optional(),
        labels: z.record(z.string(), z.string()), schedulable: z.boolean(),
        live: z.object({ known: z.boolean(), reason: z.string().optional(), ssh: check.optional(), docker: check.optional(), edge: check.optional(), running: z.record(z.string(), z.number()).optional(), condition: condition.optional() }),
      })),
      invalid: z.array(z.string()), commit: z.string().nullable(),
    },
    annotations: reads('List hosts'),
  }, () => handle('list_hosts', () => domain.listHosts(), (r) => [...r.hosts.map(line), ...r.invalid.map((i) => `invalid: ${i}`)].join('\n') || 'no hosts'));
}
