// Pieces every tool group uses: input fields, annotations, the write result shape, the
// wait for a change to go live (its progress and log lines sent as MCP notifications),
// and the one place where a domain error becomes an `isError` result an agent can act on.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { DomainError, type Domain, type WaitOutcome, type WriteResult } from '../../reconciler/domain/index.js';
import { log } from '../../reconciler/util/log.js';
import { passes, type LogLevelStore } from '../session.js';

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export const name = z.string().min(1).max(63).describe("a DNS label: a-z, 0-9 and '-', starting with a letter, at most 63 characters");
export const project = z.string().min(1).max(63).optional().describe('the project (a DNS label); default "default"');
export const proposal = z.string().max(100).optional().describe('add this change to one of your open proposals (see list_proposals) instead of main or a new proposal');
export const expectedRevision = z.string().regex(/^[0-9a-f]{40}$/, 'must be a revision (40 hex digits) from get_app/get_database').optional()
  .describe('the revision you read (get_app/get_database); the write fails with a conflict if the resource changed since');
export const resources = z.strictObject({
  cpu: z.number().min(0.01).max(64).optional().describe('CPU cores, 0.01-64'),
  memory_mb: z.number().int().min(16).max(65536).optional().describe('memory limit in MiB, 16-65536'),
  pids: z.number().int().min(64).max(32768).optional().describe('process limit, 64-32768'),
});

/** Longest wait a tool call may ask for; get_app follows a change after that. */
export const MAX_WAIT_SECONDS = 900;
export const wait = z.number().int().min(1).max(MAX_WAIT_SECONDS).optional()
  .describe(`seconds to wait for the change to go live before returning (1-${MAX_WAIT_SECONDS}); the result then says live, failed (phase, step, reason) or what is still pending. Give a progressToken to get build, rollout and health progress meanwhile (and keep your client from timing out). Default: return at once`);

/** Annotations of a tool that only reads. */
export function reads(title: string): ToolAnnotations {
  return { title, readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };
}

/** Annotations of a tool that changes the desired state (or, for sync, asks for a pass). */
export function changes(title: string, hints: { destructive: boolean; idempotent: boolean; openWorld?: boolean }): ToolAnnotations {
  return { title, readOnlyHint: false, destructiveHint: hints.destructive, idempotentHint: hints.idempotent, openWorldHint: hints.openWorld ?? false };
}

/** Write tools are offered only to a token that may write: a read-only one sees only what it may call. */
export function mayWrite(domain: Domain): boolean {
  return domain.agent.access === 'write';
}

// The log level each server's client set (logging/setLevel), so tool calls can honour it.
const levels = new WeakMap<McpServer, LogLevelStore>();
export function attachLogLevel(server: McpServer, store: LogLevelStore): void { levels.set(server, store); }

export const waitOutput = z.object({
  state: z.enum(['live', 'failed', 'timeout', 'proposal', 'unknown']),
  commit: z.string().nullable(),
  waited_ms: z.number(),
  message: z.string(),
  resources: z.array(z.object({
    kind: z.string(), project: z.string(), name: z.string(),
    state: z.enum(['live', 'failed', 'pending', 'unknown']),
    phase: z.string().optional(), step: z.string().optional(), reason: z.string(), recorded: z.string().optional(), url: z.string().optional(),
  })),
}).optional().describe('present when the call asked to wait: what became of the change');

export const writeOutput = {
  commit: z.string().nullable().describe('the new commit; null when nothing changed'),
  proposal: z.string().nullable().describe('the proposal the change went to (review mode), or null when it went to main'),
  branch: z.string(),
  path: z.string().describe('the manifest path in the state repo'),
  summary: z.string(),
  request_id: z.string(),
  wait: waitOutput,
};

export const liveOutput = z.object({ known: z.boolean(), reason: z.string().optional() }).passthrough();


export function ok(structured: Record<string, unknown>, text: string): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured };
}

/** Runs one domain call; a DomainError becomes an isError result naming the problem. */
export async function handle<T extends object>(tool: string, call: () => Promise<T>, text: (r: T) => string): Promise<CallToolResult> {
  try {
    const result = await call();
    return ok(result as Record<string, unknown>, text(result));
  } catch (err) {
    if (err instanceof DomainError) return { isError: true, content: [{ type: 'text', text: `${err.code}: ${err.message}` }] };
    log.error('tool failed', { tool, err });
    return { isError: true, content: [{ type: 'text', text: `internal_error: ${err instanceof Error ? err.message : String(err)}` }] };
  }
}

export function writeText(r: { summary: string; commit: string | null; proposal: string | null; path: string; wait?: WaitOutcome }): string {
  const waited = r.wait ? `\n${r.wait.state}: ${r.wait.message}` : '';
  if (!r.commit) return r.summary + waited;
  const where = r.proposal ? `proposal ${r.proposal} (a human merges it with \`mlink review approve ${r.proposal}\`)` : 'main';
  return `${r.summary}\ncommit ${r.commit} on ${where}\npath ${r.path}${waited}`;
}

/**
 * A write, then (when asked) the wait for it to go live. Progress goes to the client as
 * notifications/progress when it gave a progressToken; build and deploy log lines as
 * notifications/message when it set a log level. Both ride on this request, so over HTTP
 * they arrive on its own stream.
 */
export function writeAndWait(server: McpServer, domain: Domain, extra: Extra, seconds: number | undefined, write: () => Promise<WriteResult>): Promise<WriteResult & { wait?: WaitOutcome }> {
  return write().then(async (result) => {
    if (!seconds) return result;
    const token = extra._meta?.progressToken;
    const level = levels.get(server);
    let progress = 0;
    // Sent one after the other, and all before the result: a client must not get the result ahead of the last progress.
    let sent = Promise.resolve();
    const notify = (n: ServerNotification): void => { sent = sent.then(() => extra.sendNotification(n)).catch(() => undefined); };
    const outcome = await domain.waitFor(result, {
      timeoutMs: seconds * 1000,
      signal: extra.signal,
      ...(token !== undefined ? { onProgress: (p) => notify({ method: 'notifications/progress', params: { progressToken: token, progress: ++progress, message: p.message } }) } : {}),
      onLog: (l) => {
        if (passes(level?.get(), l.level)) notify({ method: 'notifications/message', params: { level: l.level, logger: `mlink.${l.source}`, data: `${l.resource}: ${l.text}` } });
      },
    });
    await sent;
    return { ...result, wait: outcome };
  });
}
