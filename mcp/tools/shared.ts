// Pieces every tool group uses: input fields, the write result shape, and the one place
// where a domain error becomes an `isError` result an agent can act on.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { DomainError } from '../../reconciler/domain/index.js';
import { log } from '../../reconciler/util/log.js';

export const name = z.string().min(1).max(63).describe("a DNS label: a-z, 0-9 and '-', starting with a letter, at most 63 characters");
export const project = z.string().min(1).max(63).optional().describe('the project (a DNS label); default "default"');
export const proposal = z.string().max(100).optional().describe('add this change to one of your open proposals (see list_proposals) instead of main or a new proposal');
export const expectedRevision = z.string().regex(/^[0-9a-f]{40}$/, 'must be a revision (40 hex digits) from get_app/get_database').optional()
  .describe('the revision you read (get_app/get_database); the write fails with a conflict if the resource changed since');
export const resources = z.strictObject({
  cpu: z.number().optional().describe('CPU cores, 0.01-64'),
  memory_mb: z.number().int().optional().describe('memory limit in MiB, 16-65536'),
  pids: z.number().int().optional().describe('process limit, 64-32768'),
});

export const writeOutput = {
  commit: z.string().nullable().describe('the new commit; null when nothing changed'),
  proposal: z.string().nullable().describe('the proposal the change went to (review mode), or null when it went to main'),
  branch: z.string(),
  path: z.string().describe('the manifest path in the state repo'),
  summary: z.string(),
  request_id: z.string(),
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

export function writeText(r: { summary: string; commit: string | null; proposal: string | null; path: string }): string {
  if (!r.commit) return r.summary;
  const where = r.proposal ? `proposal ${r.proposal} (a human merges it with \`mlink review approve ${r.proposal}\`)` : 'main';
  return `${r.summary}\ncommit ${r.commit} on ${where}\npath ${r.path}`;
}
