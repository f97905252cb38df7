// MCP at the byte level: `mlink mcp` spawned with its stdin and stdout in the test's
// hands, so a test can send what no SDK client would (an oversized line, a line that is
// not JSON, a batch) and read every line the server answers.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RawStdio {
  child: ChildProcess;
  /** Writes one line (a message is serialised; a string goes as it is). */
  send(message: unknown): Promise<void>;
  /** The next message with this id (waits for it). */
  answer(id: string | number, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Every message received so far. */
  received: Array<Record<string, unknown>>;
  /** initialize + initialized, as a client does first. */
  handshake(): Promise<void>;
  /** tools/call whoami with this id; resolves with the tool's structured result. */
  whoami(id: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export function spawnMcp(args: string[], env: NodeJS.ProcessEnv): RawStdio {
  const child = spawn(process.execPath, ['bin/mlink.js', 'mcp', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const received: Array<Record<string, unknown>> = [];
  const waiting: Array<() => void> = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) received.push(JSON.parse(line) as Record<string, unknown>);
    }
    for (const w of waiting.splice(0)) w();
  });
  child.stderr!.resume();
  const send = (message: unknown): Promise<void> => new Promise((resolve, reject) => {
    const line = typeof message === 'string' ? message : JSON.stringify(message);
    child.stdin!.write(`${line}\n`, (err) => (err ? reject(err) : resolve()));
  });
  const answer = async (id: string | number, timeoutMs = 10_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = received.find((m) => m.id === id);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no answer with id ${JSON.stringify(id)} in ${timeoutMs} ms; got ${JSON.stringify(received).slice(0, 2000)}`);
      if (child.exitCode !== null) throw new Error(`mlink mcp exited ${child.exitCode} before answering ${JSON.stringify(id)}`);
      await new Promise<void>((r) => { waiting.push(r); setTimeout(r, 200); });
    }
  };
  return {
    child, send, answer, received,
    async handshake() {
      await send({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
      const init = await answer('init');
      if (!init.result) throw new Error(`initialize failed: ${JSON.stringify(init)}`);
      await send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    },
    async whoami(id: string) {
      await send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
      const a = await answer(id);
      const result = a.result as { structuredContent?: Record<string, unknown>; isError?: boolean } | undefined;
      if (!result?.structuredContent || result.isError) throw new Error(`whoami failed: ${JSON.stringify(a)}`);
      return result.structuredContent;
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      await exited;
    },
  };
}
