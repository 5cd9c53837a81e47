import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/geo-sync.mjs', import.meta.url));
const RSS_PROBE = fileURLToPath(new URL('./report-rss.mjs', import.meta.url));
const LOAD_RECORDER = new URL('./record-loads.mjs', import.meta.url);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident memory of the CLI process in bytes, when measured. */
  peakRss?: number;
}

export interface CliOptions {
  /** Measure the process's peak resident memory (CliResult.peakRss). */
  measureRss?: boolean;
  /** Append the file: URL of every ES module the process loads to this file, a line each. */
  recordLoadsTo?: string;
}

/** Runs the real `geo-sync` binary as a user would, with a clean environment plus `env`. */
export function runGeoSync(args: string[], env: Record<string, string> = {}, options: CliOptions = {}): Promise<CliResult> {
  return spawnGeoSync(args, env, options).done;
}

/** Like runGeoSync, with the process at hand (to kill it mid-run). */
export function spawnGeoSync(args: string[], env: Record<string, string> = {}, options: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const nodeArgs = [
    ...(options.measureRss ? ['--import', RSS_PROBE] : []),
    ...(options.recordLoadsTo ? ['--import', `${LOAD_RECORDER.href}?to=${encodeURIComponent(options.recordLoadsTo)}`] : []),
    CLI,
  ];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const match = /^peak-rss-kb=(\d+)$/m.exec(stderr);
      resolve({ code: code ?? -1, stdout, stderr, ...(match ? { peakRss: Number(match[1]) * 1024 } : {}) });
    });
  });
  return { child, done };
}
