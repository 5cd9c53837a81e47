// Starts a registry that really serves the OCI 1.1 referrers API (go-containerregistry's in-memory
// registry, built from ./referrers-registry/main.go) for integration tests. Its handle has the
// shape of the docker-registry 2.8 ones from ./registry.ts, so a test can use either kind.
//
// Quirks of go-containerregistry 0.14 (Debian bookworm-backports), checked in
// test/referrers-registry.test.ts: a referrer's artifactType is read from its config's mediaType;
// the list drops annotations, has no index Content-Type and is never paged; `?artifactType=` is
// ignored; an unknown repository answers 404 NAME_UNKNOWN on the referrers endpoint; DELETE by
// digest keeps the tags on that manifest; everything is in memory, so a stop loses it all.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { TestRegistry } from './registry.js';

/** What this registry and docker-registry's share: enough for tests that only speak HTTP to either. */
export type RegistryEndpoint = Pick<TestRegistry, 'url' | 'host' | 'port' | 'stop'>;

export interface ReferrersRegistry extends RegistryEndpoint {
  /** The process id (no storage directory to find it by, unlike docker-registry). */
  pid: number;
}

export interface ReferrersRegistryPair {
  primary: ReferrersRegistry;
  secondary: ReferrersRegistry;
  stop(): Promise<void>;
}

export interface ReferrersRegistryOptions {
  /** Log every request on the process's stderr (kept in the tail shown when a start fails). */
  logRequests?: boolean;
}

/**
 * A cold build compiles Go's standard library and go-containerregistry (a minute or more on two
 * busy cores); pass this to the beforeAll that starts the first one. Later builds take seconds.
 */
export const REFERRERS_REGISTRY_START_TIMEOUT_MS = 240_000;

const GO = '/usr/lib/go-1.23/bin/go';
const GO_PATH = '/usr/share/gocode';
const GGCR_REGISTRY_PACKAGE = join(GO_PATH, 'src/github.com/google/go-containerregistry/pkg/registry');
const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'referrers-registry');
const CACHE_DIR = join(SOURCE_DIR, '../../../node_modules/.cache/geo-sync-referrers-registry');
const BINARY_NAME = 'referrers-registry';
const INSTALL_HINT = `Install them from Debian bookworm-backports (as .ci/run does):
  awk -v RS= 'NR == 1' /etc/apt/sources.list.d/debian.sources | sed 's/^Suites:.*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/backports.sources
  apt-get update
  apt-get install -y -t bookworm-backports golang-github-google-go-containerregistry-dev golang-1.23-go`;
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

// Safety net, as in ./registry.ts: never leave a registry running after the test process.
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

let binary: Promise<string> | undefined;

/**
 * The path of the built registry binary, built on first use. Cached under node_modules/.cache by a
 * hash of main.go, so only a change to main.go rebuilds it; safe when several test workers build at
 * once (each builds into its own directory, the first rename wins).
 */
export function referrersRegistryBinary(): Promise<string> {
  // A failed build is not remembered, so a test after the fix (or the install) tries again.
  binary ??= buildBinary().catch((err: unknown) => {
    binary = undefined;
    throw err;
  });
  return binary;
}

async function buildBinary(): Promise<string> {
  const missing = [GO, GGCR_REGISTRY_PACKAGE].filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`The referrers-API test registry needs Go 1.23 and go-containerregistry (missing: ${missing.join(', ')}). ${INSTALL_HINT}`);
  }
  const source = readFileSync(join(SOURCE_DIR, 'main.go'));
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const finalDir = join(CACHE_DIR, hash);
  const finalBinary = join(finalDir, BINARY_NAME);
  if (existsSync(finalBinary)) return finalBinary;

  mkdirSync(CACHE_DIR, { recursive: true });
  const buildDir = mkdtempSync(join(CACHE_DIR, `${hash}.building-`));
  try {
    await goBuild(join(buildDir, BINARY_NAME));
    try {
      renameSync(buildDir, finalDir);
    } catch (err) {
      // Another worker renamed its build first; theirs is built from the same main.go.
      if (!existsSync(finalBinary)) throw err;
    }
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
  return finalBinary;
}

async function goBuild(output: string): Promise<void> {
  try {
    await promisify(execFile)(GO, ['build', '-trimpath', '-o', output, '.'], {
      cwd: SOURCE_DIR,
      env: {
        ...process.env,
        // Debian ships the Go source of its Go libraries as a GOPATH tree, not as modules.
        GO111MODULE: 'off',
        GOPATH: GO_PATH,
        GOFLAGS: '',
        GOTOOLCHAIN: 'local',
        // A static binary, and no C compiler needed.
        CGO_ENABLED: '0',
        // Go's own build cache (~/.cache/go-build) outlives npm ci, which wipes node_modules: with it
        // warm, a rebuild only links. Without a home directory, keep it beside the binaries.
        ...(!process.env.GOCACHE && !process.env.HOME && !process.env.XDG_CACHE_HOME && { GOCACHE: join(CACHE_DIR, 'go-build') }),
      },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    // execFile's message holds the command and its stderr (the compiler's errors).
    throw new Error(`go build of ${join(SOURCE_DIR, 'main.go')} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Builds (once) and starts a registry serving the referrers API on a free loopback port. */
export async function startReferrersRegistry(options: ReferrersRegistryOptions = {}): Promise<ReferrersRegistry> {
  const path = await referrersRegistryBinary();
  const args = ['-addr', '127.0.0.1:0', ...(options.logRequests ? ['-log-requests'] : [])];
  const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  // Keep only the tail of stderr: enough to explain a failed start, bounded for long runs.
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-8192);
  });

  try {
    const host = await boundAddress(child, child.stdout, () => output);
    await waitUntilReady(`http://${host}/v2/`, child, () => output);
    const port = Number(host.slice(host.lastIndexOf(':') + 1));
    return {
      url: `http://${host}`,
      host,
      port,
      pid: child.pid ?? 0,
      stop: () => kill(child),
    };
  } catch (err) {
    await kill(child);
    throw err;
  }
}

/** Two independent registries serving the referrers API: a primary and a secondary. */
export async function startReferrersRegistryPair(options: ReferrersRegistryOptions = {}): Promise<ReferrersRegistryPair> {
  const [a, b] = await Promise.allSettled([startReferrersRegistry(options), startReferrersRegistry(options)]);
  if (a.status === 'rejected' || b.status === 'rejected') {
    await Promise.all([a, b].map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
  }
  const primary = a.value;
  const secondary = b.value;
  return {
    primary,
    secondary,
    async stop() {
      await Promise.all([primary.stop(), secondary.stop()]);
    },
  };
}

/** The process binds the port itself and prints the address on its first stdout line. */
function boundAddress(child: ChildProcess, stdout: Readable, output: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    const timer = setTimeout(() => fail(`printed no address within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const onExit = (code: number | null, signal: string | null) => fail(`exited with ${signal ?? `code ${code}`}`);
    function fail(why: string): void {
      cleanUp();
      reject(new Error(`referrers registry ${why}; output:\n${output()}`));
    }
    function cleanUp(): void {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
    }
    child.once('exit', onExit);
    child.once('error', (err) => fail(`failed to spawn: ${err.message}`));
    lines.once('line', (line) => {
      cleanUp();
      resolve(line.trim());
    });
  });
}

async function waitUntilReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`referrers registry exited before answering ${url}; output:\n${output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // Not serving yet.
    }
    if (Date.now() > deadline) throw new Error(`referrers registry not ready at ${url} after ${START_TIMEOUT_MS} ms; output:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}
