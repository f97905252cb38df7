// Structured logs on stderr (stdout belongs to command output and to MCP's stdio
// transport). One JSON object a line when stderr is not a terminal or
// MLINK_LOG_FORMAT=json; a readable line otherwise.

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  const want = (process.env.MLINK_LOG_LEVEL ?? 'info') as Level;
  return order[want] ?? order.info;
}

function json(): boolean {
  return process.env.MLINK_LOG_FORMAT === 'json' || !process.stderr.isTTY;
}

function render(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

export function createLogger(base: Fields = {}, sink: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const emit = (level: Level, msg: string, fields: Fields = {}): void => {
    if (order[level] < threshold()) return;
    const all: Fields = { ...base, ...fields };
    for (const [k, v] of Object.entries(all)) if (v instanceof Error) all[k] = v.message;
    if (json()) {
      sink(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...all }));
    } else {
      const extra = Object.entries(all).map(([k, v]) => `${k}=${render(v)}`).join(' ');
      sink(`${level.padEnd(5)} ${msg}${extra ? ' ' + extra : ''}`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger({ ...base, ...f }, sink),
  };
}

export const log: Logger = createLogger();
