/** The narrow logger the engine needs; the CLI writes JSON lines to stderr, Lambda uses Powertools Logger. */
export interface EngineLogger {
  debug(message: string, fields?: object): void;
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
  error(message: string, fields?: object): void;
}

const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];

export function isLogLevel(value: string): value is LogLevel {
  return (LEVELS as readonly string[]).includes(value);
}

/** Structured JSON lines, one per event, on the given stream (stderr for the CLI: stdout is for results). */
export function jsonLogger(level: LogLevel, write: (line: string) => void = (line) => process.stderr.write(line)): EngineLogger {
  const threshold = LEVELS.indexOf(level);
  const emit = (lvl: LogLevel) => (message: string, fields?: object) => {
    if (LEVELS.indexOf(lvl) < threshold) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, message, ...fields })}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

export const silentLogger: EngineLogger = jsonLogger('silent');
