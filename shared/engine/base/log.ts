/**
 * The narrow logger the engine needs. The CLI writes to stderr, one line per event: JSON for a pipe
 * or a file, readable text for a person at a terminal; Lambda uses Powertools Logger (JSON).
 */
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

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function isLogFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

/**
 * Field names whose values are never written, in either format. The engine does not log
 * credentials; this holds should a field carry one by mistake.
 */
const SECRET_FIELD = /^(password|secret|token|authorization|cookie|x-amz-security-token)$/i;
const redact = (key: string, value: unknown) => (SECRET_FIELD.test(key) && value !== undefined ? '[redacted]' : value);

type Line = (level: Exclude<LogLevel, 'silent'>, message: string, fields: object | undefined) => string;

function logger(level: LogLevel, write: (line: string) => void, line: Line): EngineLogger {
  const threshold = LEVELS.indexOf(level);
  const emit = (lvl: Exclude<LogLevel, 'silent'>) => (message: string, fields?: object) => {
    if (LEVELS.indexOf(lvl) < threshold) return;
    write(line(lvl, message, fields));
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

const stderr = (line: string) => void process.stderr.write(line);

/** Structured JSON lines, one per event, on the given stream (stderr for the CLI: stdout is for results). */
export function jsonLogger(level: LogLevel, write: (line: string) => void = stderr): EngineLogger {
  return logger(level, write, (lvl, message, fields) => `${JSON.stringify({ time: new Date().toISOString(), level: lvl, message, ...fields }, redact)}\n`);
}

/**
 * One readable line per event for a terminal: time, level, message, then key=value pairs.
 * Warnings and errors are marked with their level in capitals (and colour when `colour`), so they
 * stand out among info and debug lines.
 */
export function textLogger(level: LogLevel, write: (line: string) => void = stderr, options: { colour?: boolean } = {}): EngineLogger {
  const marks = { debug: 'debug', info: 'info ', warn: 'WARN ', error: 'ERROR' } as const;
  const colours = { debug: '\u001b[2m', info: '', warn: '\u001b[33m', error: '\u001b[31m' } as const;
  return logger(level, write, (lvl, message, fields) => {
    const mark = options.colour && colours[lvl] ? `${colours[lvl]}${marks[lvl]}\u001b[0m` : marks[lvl];
    const pairs = Object.entries(fields ?? {})
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${textValue(redact(key, value))}`);
    return `${clockTime(new Date())} ${mark} ${[message, ...pairs].join('  ')}\n`;
  });
}

/** `HH:MM:SS.mmm` in local time: a person reads it against their own clock. */
function clockTime(date: Date): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** A value as one token: bare when it has no space, quote or `=`; JSON otherwise (objects, lists, odd strings). */
function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value, redact) ?? String(value);
}

export const silentLogger: EngineLogger = jsonLogger('silent');
