// One scale-to-zero app as its waker keeps it: awake (its replicas' addresses known),
// sleeping (nothing of it runs) or waking (one start under way, whoever asked first).
// Idleness is the waker's own count: requests in flight and open connections (a
// WebSocket, an SSE stream, a download) keep it awake; it sleeps once none was open for
// idleTimeoutSeconds. It never polls the app to decide that. The Docker side is behind
// Replicas (runtime.ts), so this logic reads on its own.
import type { WakeSpec, WakeState } from './spec.js';

export interface Replicas {
  /** Starts every replica (each on a new network holder) and gives their addresses. */
  start(spec: WakeSpec): Promise<string[]>;
  /** Stops every replica and removes its holder. */
  stop(spec: WakeSpec): Promise<void>;
  /** The addresses of the replicas that run now; empty when none does. */
  running(spec: WakeSpec): Promise<string[]>;
  /** Whether GET url answers 2xx or 3xx. */
  answers(url: string, timeoutMs: number): Promise<boolean>;
  save(state: WakeState): Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class Session {
  private targets: string[] = [];
  private next = 0;
  private active = 0;
  private lastActivity: number;
  private lastRequest?: number;
  private savedLastRequest?: number;
  private waking?: Promise<string[]>;
  /** Counts wakes: connections kept alive to one generation's replicas are useless to the next. */
  generation = 0;
  private sleeping?: Promise<void>;
  state: WakeState;

  constructor(public spec: WakeSpec, private readonly replicas: Replicas, private readonly now: () => number = Date.now) {
    this.lastActivity = now();
    this.state = { id: spec.id, specHash: spec.specHash, state: 'sleeping', since: iso(now()) };
  }

  /** Takes over what runs: replicas that run are awake (their idle time starts now); none running is asleep. */
  async adopt(saved?: WakeState): Promise<void> {
    const ips = await this.replicas.running(this.spec);
    if (saved?.lastRequest) this.lastRequest = this.savedLastRequest = Date.parse(saved.lastRequest);
    if (ips.length) {
      this.targets = ips;
      await this.enter('awake', saved?.state === 'awake' ? Date.parse(saved.since) : undefined);
    } else {
      await this.enter('sleeping', saved?.state === 'sleeping' ? Date.parse(saved.since) : undefined, saved?.error);
    }
  }

  /** A new spec for the same app (a deploy): while awake, traffic moves to the new replicas once they run. */
  async update(spec: WakeSpec): Promise<void> {
    const old = this.spec;
    this.spec = spec;
    if (old.specHash === spec.specHash || this.state.state !== 'awake') {
      this.state = { ...this.state, specHash: spec.specHash };
      return;
    }
    const ips = await this.replicas.running(spec);
    if (ips.length) this.targets = ips;
    this.state = { ...this.state, specHash: spec.specHash };
    await this.replicas.save(this.status());
  }

  /** Whether the waker serves this spec (a deploy waits for it before it removes the old replicas). */
  serves(specHash: string): boolean {
    return this.spec.specHash === specHash && (this.state.state !== 'awake' || this.targets.length > 0);
  }

  /** A request or connection opens; call the result when it closes. */
  open(): () => void {
    this.active++;
    this.lastRequest = this.now();
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.active--;
      this.lastActivity = this.now();
    };
  }

  get awake(): boolean {
    return this.state.state === 'awake' && this.targets.length > 0 && !this.sleeping;
  }

  /** The next replica to send to (round robin). */
  target(): string {
    return this.targets[this.next++ % this.targets.length]!;
  }

  /** Asks Docker again where the replicas are (one stopped, or was replaced): false when none runs. */
  async refresh(): Promise<boolean> {
    this.targets = await this.replicas.running(this.spec);
    return this.targets.length > 0;
  }

  /** The replicas' addresses once the app answers: at once when awake, else after one start however many ask. */
  ready(): Promise<string[]> {
    if (this.awake) return Promise.resolve(this.targets);
    this.waking ??= this.wake().finally(() => { this.waking = undefined; });
    return this.waking;
  }

  private async wake(): Promise<string[]> {
    await this.sleeping;
    const t0 = this.now();
    await this.enter('waking');
    try {
      // Started by someone else meanwhile (a pass, after scale-to-zero was turned off): those are used as they are.
      const already = await this.replicas.running(this.spec);
      const ips = already.length === this.spec.replicas.length ? already : await this.replicas.start(this.spec);
      const deadline = t0 + this.spec.waitMs;
      await Promise.all(ips.map(async (ip) => {
        const url = `http://${ip}:${this.spec.port}${this.spec.health.path}`;
        while (!(await this.replicas.answers(url, this.spec.health.timeoutMs))) {
          if (this.now() > deadline) throw new Error(`${url} did not answer 2xx/3xx within ${Math.round(this.spec.waitMs / 1000)} s`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }));
      this.targets = ips;
      this.generation++;
      this.lastActivity = this.now();
      await this.enter('awake');
      return ips;
    } catch (e) {
      // Nothing half-started stays: the next request tries again from the start.
      await this.replicas.stop(this.spec).catch(() => undefined);
      this.targets = [];
      await this.enter('sleeping', undefined, `wake failed: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Puts it to sleep when nothing was open for its idle timeout (or at once with `force`). */
  async tick(force = false): Promise<void> {
    if (this.lastRequest !== this.savedLastRequest && this.state.state !== 'waking') await this.replicas.save(this.status()).catch(() => undefined);
    if (this.state.state !== 'awake' || this.waking || this.sleeping) return;
    if (!force && (this.active > 0 || this.now() - this.lastActivity < this.spec.idleTimeoutSeconds * 1000)) return;
    this.sleeping = (async () => {
      // Said before it is done, so a reconcile pass that sees the replicas stop reads it as sleep, not a crash.
      await this.enter('sleeping');
      this.targets = [];
      await this.replicas.stop(this.spec);
    })().finally(() => { this.sleeping = undefined; });
    await this.sleeping;
  }

  status(): WakeState {
    this.savedLastRequest = this.lastRequest;
    return { ...this.state, ...(this.lastRequest !== undefined ? { lastRequest: iso(this.lastRequest) } : {}) };
  }

  private async enter(state: WakeState['state'], since?: number, error?: string): Promise<void> {
    this.state = { id: this.spec.id, specHash: this.spec.specHash, state, since: iso(since ?? this.now()), ...(error ? { error } : {}) };
    await this.replicas.save(this.status());
  }
}
