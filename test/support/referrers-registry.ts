// Starts a registry that really serves the OCI 1.1 referrers API (go-containerregistry's in-memory
// registry, built from ./referrers-registry/main.go) for integration tests. Its handle has the
// shape of the docker-registry 2.8 ones from ./registry.ts, so a test can use either kind.
//
// Quirks of go-containerregistry 0.14 (Debian bookworm-backports), checked in
// test/referrers-registry.test.ts: a referrer's artifactType is read from its config's mediaType;
// the list drops annotations, has no index Content-Type and is never paged; `?artifactType=` is
// ignored; an unknown repository answers 404 NAME_UNKNOWN on the referrers endpoint; DELETE by
// digest keeps the tags on that manifest; everything is in memory, so a stop loses it all.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { TestRegistry } from './registry.js';
import { buildReferrersRegistry } from './referrers-registry/build.mjs';

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

const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

// Safety net, as in ./registry.ts: never leave a registry running after the test process.
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

let binary: Promise<string> | undefined;

/** The path of the built registry binary, built on first use (./referrers-registry/build.mjs). */
export function referrersRegistryBinary(): Promise<string> {
  // A failed build is not remembered, so a test after the fix (or the install) tries again.
  binary ??= buildReferrersRegistry().catch((err: unknown) => {
    binary = undefined;
    throw err;
  });
  return binary;
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
