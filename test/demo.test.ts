// `npm run demo` (scripts/demo.mjs) run as a newcomer runs it: its output names each difference of
// the reported case, the sync repairs them, the last verify agrees, a tag pushed to the primary
// reaches the secondary through `geo-sync listen`, and nothing it started is left.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../scripts/demo.mjs', import.meta.url));

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo; `onStdout` sees the output so far and may act on the process (e.g. kill it). */
function runDemo(env: NodeJS.ProcessEnv = process.env, onStdout?: (stdout: string, kill: (signal: NodeJS.Signals) => void) => void): Promise<DemoRun> {
  const child = spawn(process.execPath, [DEMO], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    onStdout?.(stdout, (signal) => child.kill(signal));
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The PIDs (registries and listener) and the temporary directory the demo printed. */
function startedBy(stdout: string): { pids: number[]; dir: string } {
  const pids = [...stdout.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
  const dir = /storage under (\S+)/.exec(stdout)?.[1] ?? '';
  return { pids, dir };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** The two checksum lines of the verify output that follows `heading`. */
function checksumsAfter(stdout: string, heading: string): { primary?: string; secondary?: string } {
  const section = stdout.slice(stdout.indexOf(heading));
  return {
    primary: /^\s+primary\s+([0-9a-f]{64})\s/m.exec(section)?.[1],
    secondary: /^\s+secondary\s+([0-9a-f]{64})\s/m.exec(section)?.[1],
  };
}

describe('npm run demo', () => {
  it('runs scripts/demo.mjs', () => {
    const scripts = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts as Record<string, string>;
    expect(scripts.demo).toContain('scripts/demo.mjs');
  });

  it('names each difference, syncs, verifies with equal checksums, and leaves nothing running', async () => {
    const run = await runDemo();

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    // The first verify: every difference of the reported case, named.
    expect(out).toMatch(/demo\/app: mismatch\n/);
    expect(out).toMatch(/missing: +latest, multi, v2\.0\n/);
    expect(out).toMatch(/extra: +debug, stable\n/);
    expect(out).toMatch(/mismatched: v1\.1 +primary sha256:[0-9a-f]{12}, secondary sha256:[0-9a-f]{12}\n/);
    const before = checksumsAfter(out, '3. Verify');
    expect(before.primary).toBeDefined();
    expect(before.secondary).not.toBe(before.primary);
    // The sync: three copied (one an index with its two images), one repaired, two removed.
    expect(out).toMatch(/demo\/app: synced \(copied 3, repaired 1, removed 2; /);
    // The last verify agrees: the same checksum on both sides, the primary's as before.
    const after = checksumsAfter(out, '5. Verify again');
    expect(out.slice(out.indexOf('5. Verify again'))).toMatch(/demo\/app: synced\n/);
    expect(after.secondary).toBe(after.primary);
    expect(after.primary).toBe(before.primary);
    // The event path: a tag pushed to the primary reaches the secondary through `geo-sync listen`.
    const step6 = out.slice(out.indexOf('6. The event path'));
    expect(out.indexOf('6. The event path')).toBeGreaterThan(-1);
    expect(step6).toMatch(/GET \/healthz: 200\n/);
    expect(step6).toMatch(/v2\.1 reached the secondary at the primary's digest \d+\.\d\d s after the push\n/);
    expect(step6).toMatch(/the listener logged: replicated demo\/app copied v2\.1, lagSeconds \d+(\.\d+)?\n/);
    expect(step6).toMatch(/SIGTERM: the listener exited 0\n/);
    expect(out).toMatch(/Stopped both registries and removed .*\. Done in \d+\.\d s\.\n$/);

    const { pids, dir } = startedBy(out);
    // The two registries and the listener.
    expect(pids).toHaveLength(3);
    expect(/listener .*\(pid (\d+)\)/.exec(step6)).not.toBeNull();
    expect(pids.filter(isRunning)).toEqual([]);
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
  });

  it('stops both registries and removes its directory when sent SIGTERM mid-run', async () => {
    let signalled = false;
    const run = await runDemo(process.env, (stdout, kill) => {
      // Both registries are up (their PIDs printed); the seeding and the CLI runs are still to come.
      if (!signalled && startedBy(stdout).pids.length === 2) {
        signalled = true;
        kill('SIGTERM');
      }
    });

    expect(signalled).toBe(true);
    expect(run.code).toBe(143);
    expect(run.stderr).toMatch(/SIGTERM: stopping the registries/);
    expect(run.stdout).not.toMatch(/Done in/);
    const { pids, dir } = startedBy(run.stdout);
    expect(pids.filter(isRunning)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('says how to install docker-registry when it is missing, and exits non-zero', async () => {
    const { DOCKER_REGISTRY_BIN: _ignored, ...env } = process.env;
    const run = await runDemo({ ...env, PATH: '/nonexistent' });

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/docker-registry not found .*: install it with: apt-get install -y docker-registry/);
    expect(run.stdout).toBe('');
  });
});
