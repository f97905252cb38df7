// The few Docker Engine API calls the waker makes, over the host's Docker socket with
// node:http only, so the waker program needs no package beside Node itself.
import { request } from 'node:http';

export interface DockerAnswer { status: number; body: unknown }

export interface Inspected {
  Id: string;
  Name: string;
  State: { Running: boolean; Status: string; ExitCode: number; StartedAt: string; FinishedAt: string };
  Config: Record<string, unknown> & { Image?: string; Labels?: Record<string, string> };
  HostConfig: Record<string, unknown> & { NetworkMode?: string };
  NetworkSettings: { Networks: Record<string, { IPAddress?: string; IPPrefixLen?: number; Gateway?: string; MacAddress?: string }> };
}

export interface Listed { Id: string; Names: string[]; State: string; Labels: Record<string, string> }

/** One line of Docker's event stream, as much of it as the waker reads. */
export interface DockerEvent { Type?: string; Action?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } }

export class DockerApi {
  constructor(private readonly socketPath = '/var/run/docker.sock') {}

  call(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<DockerAnswer> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.socketPath, method, path, timeout: timeoutMs,
        headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
      }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => {
          let parsed: unknown = text;
          try { parsed = text ? JSON.parse(text) : undefined; } catch { /* plain text error */ }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`Docker ${method} ${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Throws unless the answer is one of `ok`, naming the call and Docker's message. */
  async must(method: string, path: string, body?: unknown, ok: number[] = [200, 201, 204]): Promise<DockerAnswer> {
    const a = await this.call(method, path, body);
    if (!ok.includes(a.status)) {
      const msg = (a.body as { message?: string } | undefined)?.message ?? JSON.stringify(a.body);
      throw new Error(`Docker ${method} ${path} answered ${a.status}: ${msg}`);
    }
    return a;
  }

  async inspect(name: string): Promise<Inspected | undefined> {
    const a = await this.call('GET', `/containers/${encodeURIComponent(name)}/json`);
    if (a.status === 404) return undefined;
    if (a.status !== 200) throw new Error(`Docker inspect ${name} answered ${a.status}`);
    return a.body as never;
  }

  async remove(name: string): Promise<void> {
    await this.must('DELETE', `/containers/${encodeURIComponent(name)}?force=1`, undefined, [204, 404]);
  }

  async create(opts: Record<string, unknown> & { name: string }): Promise<void> {
    const { name, ...body } = opts;
    await this.must('POST', `/containers/create?name=${encodeURIComponent(name)}`, body, [201]);
  }

  async start(name: string): Promise<void> {
    await this.must('POST', `/containers/${encodeURIComponent(name)}/start`, undefined, [204, 304]);
  }

  async list(labels: string[], all = true): Promise<Listed[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: labels }));
    return (await this.must('GET', `/containers/json?all=${all ? 1 : 0}&filters=${filters}`)).body as Listed[];
  }

  /** Waits until the container exits; its exit code. */
  async wait(name: string, timeoutMs = 30_000): Promise<number> {
    const a = await this.call('POST', `/containers/${encodeURIComponent(name)}/wait`, undefined, timeoutMs);
    if (a.status !== 200) throw new Error(`Docker wait ${name} answered ${a.status}`);
    return (a.body as { StatusCode: number }).StatusCode;
  }

  /**
   * Docker's events of containers with these labels, one callback per event, until the
   * stream ends (dockerd restarted or stopped): then `onEnd`, once.
   */
  events(labels: string[], onEvent: (e: DockerEvent) => void, onEnd: (why: string) => void): { close(): void } {
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'], label: labels }));
    let ended = false;
    const end = (why: string): void => { if (!ended) { ended = true; onEnd(why); } };
    const req = request({ socketPath: this.socketPath, method: 'GET', path: `/events?filters=${filters}` }, (res) => {
      if (res.statusCode !== 200) { res.resume(); end(`Docker events answered ${res.statusCode}`); return; }
      let partial = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        const lines = (partial + d).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines.filter(Boolean)) {
          try { onEvent(JSON.parse(line) as DockerEvent); } catch { /* not an event */ }
        }
      }).on('end', () => end('the event stream ended')).on('error', (e) => end(e.message));
    });
    req.on('error', (e) => end(e.message));
    req.end();
    return { close: () => { ended = true; req.destroy(); } };
  }

  async stop(name: string, seconds: number): Promise<void> {
    await this.must('POST', `/containers/${encodeURIComponent(name)}/stop?t=${seconds}`, undefined, [204, 304, 404]);
  }
}
