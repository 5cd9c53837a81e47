// Timing helpers: a child process run under /usr/bin/time (wall, CPU, peak RSS), registry
// process CPU from /proc, medians.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

const TIME_BIN = '/usr/bin/time';

export interface Timed {
  code: number;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** User + system CPU of the child, when /usr/bin/time is there. */
  cpuMs?: number;
  /** Peak resident set of the child in KiB, when /usr/bin/time is there. */
  maxRssKb?: number;
}

/** Runs `command args` to completion, timed from spawn to exit; never rejects on a non-zero exit. */
export async function runTimed(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; statsFile: string }): Promise<Timed> {
  const timed = existsSync(TIME_BIN);
  const [file, argv] = timed ? [TIME_BIN, ['-o', options.statsFile, '-f', '%U %S %M', command, ...args]] : [command, args];
  const started = performance.now();
  const child = spawn(file, argv, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-256 * 1024)));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exit, signal) => resolve(exit ?? (signal ? 128 : -1)));
  });
  const wallMs = performance.now() - started;
  const result: Timed = { code, stdout, stderr, wallMs };
  if (timed && existsSync(options.statsFile)) {
    // /usr/bin/time writes "Command exited with non-zero status N" first when the child fails.
    const line = readFileSync(options.statsFile, 'utf8').trim().split('\n').at(-1) ?? '';
    const [user, system, rss] = line.split(' ').map(Number);
    if (user !== undefined && system !== undefined && Number.isFinite(user + system)) result.cpuMs = (user + system) * 1000;
    if (rss !== undefined && Number.isFinite(rss)) result.maxRssKb = rss;
    rmSync(options.statsFile, { force: true });
  }
  return result;
}

let clockTicks: number | undefined;

/** CPU time (ms) a process has used so far, from /proc/<pid>/stat; undefined off Linux. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}

/** The pid of the docker-registry serving a test registry's storage root (its config sits beside it). */
export function registryPid(storageRoot: string): number | undefined {
  const config = join(dirname(storageRoot), 'config.yml');
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes('serve') && argv.includes(config)) return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
