import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/geo-sync.mjs', import.meta.url));
const RSS_PROBE = fileURLToPath(new URL('./report-rss.mjs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident memory of the CLI process in bytes, when measured. */
  peakRss?: number;
}

/** Runs the real `geo-sync` binary as a user would, with a clean environment plus `env`. */
export function runGeoSync(args: string[], env: Record<string, string> = {}, options: { measureRss?: boolean } = {}): Promise<CliResult> {
  const nodeArgs = options.measureRss ? ['--import', RSS_PROBE, CLI] : [CLI];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
}
