// What one client's connection remembers between its requests: the log level it set with
// logging/setLevel. Over stdio that is the process; over stateless HTTP every request
// gets a fresh server, so the HTTP endpoint keeps the level per bearer token.
import type { LoggingLevel } from '@modelcontextprotocol/sdk/types.js';

export type { LoggingLevel } from '@modelcontextprotocol/sdk/types.js';

export interface LogLevelStore {
  /** The level the client set; undefined until it sets one (then no log lines are sent). */
  get(): LoggingLevel | undefined;
  set(level: LoggingLevel): void;
}

const SEVERITY: LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** Whether a line at `level` reaches a client that asked for `threshold` and above. */
export function passes(threshold: LoggingLevel | undefined, level: LoggingLevel): boolean {
  return threshold !== undefined && SEVERITY.indexOf(level) >= SEVERITY.indexOf(threshold);
}

export function memoryLevel(): LogLevelStore {
  let level: LoggingLevel | undefined;
  return { get: () => level, set: (l) => { level = l; } };
}

/** Levels kept by key (a token's hash) for a server that outlives its connections. */
export class LevelsByKey {
  private readonly levels = new Map<string, LoggingLevel>();
  constructor(private readonly limit = 10_000) {}

  store(key: string): LogLevelStore {
    return {
      get: () => this.levels.get(key),
      set: (l) => {
        if (!this.levels.has(key) && this.levels.size >= this.limit) this.levels.delete(this.levels.keys().next().value!);
        this.levels.set(key, l);
      },
    };
  }
}
