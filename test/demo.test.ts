// `npm run demo` (scripts/demo.mjs) run as a newcomer runs it: its output names each difference of
// the reported case, the sync repairs them, the last verify agrees, the signed image's signature is
// on the secondary (read back here over HTTP), a tag pushed to the primary reaches the secondary
// through `geo-sync listen`, a signature reaches a secondary through the referrers API when that
// registry is built, and nothing it started is left.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Artifact, readReferrersTagIndex, referrersTag } from './support/referrers.js';
import { REFERRERS_REGISTRY_START_TIMEOUT_MS, referrersRegistryBinary } from './support/referrers-registry.js';
import { getManifest, sha256Digest } from './support/seed.js';

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

/** The first pair's URLs, as step 1 printed them. */
function registriesOf(stdout: string): { primary: string; secondary: string } {
  const url = (side: string) => new RegExp(`^ +${side} +(http://\\S+) `, 'm').exec(stdout)?.[1] ?? '';
  return { primary: url('primary'), secondary: url('secondary') };
}

const REPOSITORY = 'demo/app';

/**
 * What the secondary holds of demo/app:signed's signature, read over HTTP: its digest there, the
 * referrers tag schema index's descriptors, and the signature manifest's bytes on each side.
 */
async function readSignature(primary: string, secondary: string) {
  const signed = await getManifest(secondary, REPOSITORY, 'signed');
  if (!signed) throw new Error(`${REPOSITORY}:signed is not on the secondary`);
  const listed = (await readReferrersTagIndex(secondary, REPOSITORY, signed.digest)) ?? [];
  const digest = listed[0]?.digest ?? '';
  const onSecondary = digest ? await getManifest(secondary, REPOSITORY, digest) : null;
  const onPrimary = digest ? await getManifest(primary, REPOSITORY, digest) : null;
  return { signed, listed, digest, onSecondary, onPrimary };
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
  // Step 7 runs when the referrers-API registry is built: build it here where Go is installed.
  let referrersApi = false;
  beforeAll(async () => {
    referrersApi = await referrersRegistryBinary().then(
      () => true,
      () => false,
    );
  }, REFERRERS_REGISTRY_START_TIMEOUT_MS);

  it('runs scripts/demo.mjs', () => {
    const scripts = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts as Record<string, string>;
    expect(scripts.demo).toContain('scripts/demo.mjs');
  });

  it('names each difference, syncs, verifies with equal checksums, and leaves nothing running', async () => {
    let readBack: ReturnType<typeof readSignature> | undefined;
    const run = await runDemo(process.env, (stdout, kill) => {
      // The demo says the signature reached the secondary: hold it there (its registries keep
      // serving) and read the signature back from the secondary ourselves.
      if (!readBack && /reached the secondary \(tag schema: /.test(stdout)) {
        kill('SIGSTOP');
        const { primary, secondary } = registriesOf(stdout);
        readBack = readSignature(primary, secondary).finally(() => kill('SIGCONT'));
      }
    });

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    // The first verify: every difference of the reported case, named.
    expect(out).toMatch(/demo\/app: mismatch\n/);
    expect(out).toMatch(/missing: +latest, multi, sha256-[0-9a-f]{64}, signed, v2\.0\n/);
    expect(out).toMatch(/extra: +debug, stable\n/);
    expect(out).toMatch(/mismatched: v1\.1 +primary sha256:[0-9a-f]{12}, secondary sha256:[0-9a-f]{12}\n/);
    const before = checksumsAfter(out, '3. Verify');
    expect(before.primary).toBeDefined();
    expect(before.secondary).not.toBe(before.primary);
    // The sync: five copied (an index with its two images, the signed image, the tag schema's index
    // with the signature), one repaired, two removed.
    expect(out).toMatch(/demo\/app: synced \(copied 5, repaired 1, removed 2; /);
    // The last verify agrees: the same checksum on both sides, the primary's as before.
    const after = checksumsAfter(out, '5. Verify again');
    expect(out.slice(out.indexOf('5. Verify again'))).toMatch(/demo\/app: synced\n/);
    expect(after.secondary).toBe(after.primary);
    expect(after.primary).toBe(before.primary);
    // The signature, on the secondary as registry 2.8 keeps one (the tag schema), is the primary's.
    expect(readBack).toBeDefined();
    const signature = await readBack!;
    expect(signature.listed).toEqual([expect.objectContaining({ digest: signature.digest, artifactType: Artifact.signature.artifactType })]);
    expect(signature.onSecondary).not.toBeNull();
    expect(sha256Digest(signature.onSecondary!.bytes)).toBe(signature.digest);
    expect(Buffer.from(signature.onSecondary!.bytes)).toEqual(Buffer.from(signature.onPrimary!.bytes));
    const manifest = JSON.parse(Buffer.from(signature.onSecondary!.bytes).toString('utf8')) as { subject?: { digest: string }; artifactType?: string };
    expect(manifest.subject?.digest).toBe(signature.signed.digest);
    expect(manifest.artifactType).toBe(Artifact.signature.artifactType);
    const tag = referrersTag(signature.signed.digest);
    expect(out).toContain(`signature ${signature.digest.slice(0, 19)}… of demo/app:signed reached the secondary (tag schema: ${tag.slice(0, 19)}…)`);
    // The event path: a tag pushed to the primary reaches the secondary through `geo-sync listen`.
    const step6 = out.slice(out.indexOf('6. The event path'));
    expect(out.indexOf('6. The event path')).toBeGreaterThan(-1);
    expect(step6).toMatch(/GET \/healthz: 200\n/);
    expect(step6).toMatch(/v2\.1 reached the secondary at the primary's digest \d+\.\d\d s after the push\n/);
    expect(step6).toMatch(/the listener logged: replicated demo\/app copied v2\.1, lagSeconds \d+(\.\d+)?\n/);
    expect(step6).toMatch(/SIGTERM: the listener exited 0\n/);
    // A registry serving the referrers API: the signature listed by the secondary's API.
    const step7 = out.slice(out.indexOf('7. A registry that serves the OCI 1.1 referrers API'));
    expect(out.indexOf('7. A registry that serves')).toBeGreaterThan(out.indexOf('6. The event path'));
    if (referrersApi) {
      const missing = /missing referrer: +(sha256:[0-9a-f]{64}) of sha256:[0-9a-f]{12} +application\/vnd\.dev\.cosign\.artifact\.sig\.v1\+json\n/.exec(step7);
      expect(missing).not.toBeNull();
      const short = `${missing![1]!.slice(0, 19)}…`;
      expect(step7).toMatch(/referrers: copied 1, removed 0\n/);
      expect(step7).toContain(`on the secondary: 200, ${short} application/vnd.dev.cosign.artifact.sig.v1+json\n`);
      expect(step7).toContain(`signature ${short} of demo/app:signed reached the secondary (referrers API)`);
      expect(out).toMatch(/Stopped the four registries and removed .*\. Done in \d+\.\d s\.\n$/);
    } else {
      expect(step7).toMatch(/skipped, not built: /);
      expect(out).toMatch(/Stopped both registries and removed .*\. Done in \d+\.\d s\.\n$/);
    }

    const { pids, dir } = startedBy(out);
    // The two registries and the listener, and the referrers-API pair when built.
    expect(pids).toHaveLength(referrersApi ? 5 : 3);
    expect(/listener .*\(pid (\d+)\)/.exec(step6)).not.toBeNull();
    expect(pids.filter(isRunning)).toEqual([]);
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
  });

  it('without the referrers-API registry, says how to get it in one line and still passes', async () => {
    const run = await runDemo({ ...process.env, REFERRERS_REGISTRY_BIN: '/nonexistent' });

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/reached the secondary \(tag schema: sha256-[0-9a-f]{12}…\)/);
    expect(run.stdout).toMatch(
      /\n7\. A registry that serves the OCI 1\.1 referrers API.*\n {3}skipped, not built: .*scripts\/install-system-packages\.sh installs Go.*\n\nStopped both registries/,
    );
    const { pids, dir } = startedBy(run.stdout);
    expect(pids).toHaveLength(3);
    expect(pids.filter(isRunning)).toEqual([]);
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
