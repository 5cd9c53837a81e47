// Starts a local CNCF distribution registry (Debian's docker-registry) on a free loopback port, with
// its storage in a directory the caller owns and removes. Deletes are enabled, as geo-sync needs on
// a secondary. Also, when it was built, the registry that serves the OCI 1.1 referrers API that the
// tests build (test/support/referrers-registry.ts). Used by scripts/demo.mjs; the tests have their
// own, richer starters in test/support.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { buildReferrersRegistry, missingBuildTools, referrersRegistryBinaryPath } from '../../test/support/referrers-registry/build.mjs';

const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

// Every registry process alive, also those still starting, so that stopAll() leaves none behind.
const live = new Set();
let closed = false;

/** Stops every registry started here, and refuses to start more. */
export async function stopAll() {
  closed = true;
  await Promise.all([...live].map(stop));
}

/** For process 'exit' handlers, where nothing can be awaited: SIGKILL to every registry still alive. */
export function killAllNow() {
  for (const child of live) child.kill('SIGKILL');
}

/** The docker-registry binary: $DOCKER_REGISTRY_BIN, else the first on PATH; undefined when there is none. */
export function findRegistryBinary(env = process.env) {
  const candidates = env.DOCKER_REGISTRY_BIN
    ? [env.DOCKER_REGISTRY_BIN]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, 'docker-registry'));
  return candidates.find(isExecutable);
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The referrers-API registry: $REFERRERS_REGISTRY_BIN, else the binary the tests build from
 * test/support/referrers-registry/main.go, built now if this machine has Go and go-containerregistry
 * (scripts/install-system-packages.sh installs them); else what is missing.
 */
export async function referrersRegistryBinary(env = process.env, onBuild = () => {}) {
  if (env.REFERRERS_REGISTRY_BIN)
    return isExecutable(env.REFERRERS_REGISTRY_BIN)
      ? { path: env.REFERRERS_REGISTRY_BIN }
      : { missing: `REFERRERS_REGISTRY_BIN=${env.REFERRERS_REGISTRY_BIN} is not an executable; unset it to build from source` };
  const built = referrersRegistryBinaryPath();
  if (isExecutable(built)) return { path: built };
  const missing = missingBuildTools();
  if (missing.length > 0) return { missing: `this machine lacks ${missing.join(', ')}` };
  onBuild();
  return { path: await buildReferrersRegistry() };
}

/**
 * Starts the referrers-API registry (in memory) on a free loopback port; resolves with { url, port, pid }
 * once it answers /v2/. It binds port 0 itself and prints the address it got on its first stdout line.
 */
export async function startReferrersRegistry(binary) {
  if (closed) throw new Error('registries stopped');
  const child = track(spawn(binary, ['-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stderr.on('data', (chunk) => (output = (output + chunk.toString('utf8')).slice(-4096)));
  const host = await new Promise((resolve) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => resolve(undefined), START_TIMEOUT_MS);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    lines.once('close', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
  if (!host) {
    await stop(child);
    throw new Error(`referrers registry ${binary} printed no address:\n${output}`);
  }
  const port = Number(host.slice(host.lastIndexOf(':') + 1));
  await waitUntilReady(child, port, 'referrers registry', () => output);
  return { url: `http://${host}`, port, pid: child.pid };
}

/**
 * Starts one registry with its storage and config under `dir`; resolves with { url, port, pid } once it answers /v2/.
 * `options.notifications` ({ url, headers, timeout, threshold, backoff }) makes it send its events
 * (config `notifications.endpoints`) to one endpoint; `headers` values are lists, as in the config:
 * `{ Authorization: ['Bearer x'] }`. Events for an endpoint not yet listening are kept in memory and retried.
 */
export async function startRegistry(binary, dir, options = {}) {
  mkdirSync(join(dir, 'storage'), { recursive: true });
  // A port found free can be taken before the registry binds it: then try another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    if (closed) throw new Error('registries stopped');
    const config = join(dir, 'config.yml');
    writeFileSync(config, renderConfig(join(dir, 'storage'), port) + notificationsYaml(options.notifications));
    try {
      const child = await spawnAndWait(binary, config, port);
      return { url: `http://127.0.0.1:${port}`, port, pid: child.pid };
    } catch (error) {
      if (!/address already in use/.test(error.message) || attempt >= 5) throw error;
    }
  }
}

function renderConfig(root, port) {
  // No blob descriptor cache: what a delete removed is gone at once.
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${JSON.stringify(root)}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
health:
  storagedriver:
    enabled: false
`;
}

function notificationsYaml(notifications) {
  if (!notifications) return '';
  const q = (value) => JSON.stringify(value);
  const list = (values) => `[${values.map(q).join(', ')}]`;
  const headers = Object.entries(notifications.headers ?? {})
    .map(([name, values]) => `        ${name}: ${list(values)}\n`)
    .join('');
  return (
    `notifications:\n  endpoints:\n    - name: ${notifications.name ?? 'geo-sync-listen'}\n      url: ${q(notifications.url)}\n` +
    (headers ? `      headers:\n${headers}` : '') +
    `      timeout: ${notifications.timeout ?? '1s'}\n      threshold: ${notifications.threshold ?? 3}\n      backoff: ${notifications.backoff ?? '200ms'}\n`
  );
}

/** A loopback port free at the time of asking. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function spawnAndWait(binary, config, port) {
  const child = track(spawn(binary, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] }));
  // The tail of its output explains a failed start.
  let output = '';
  const collect = (chunk) => (output = (output + chunk.toString('utf8')).slice(-4096));
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  await waitUntilReady(child, port, 'docker-registry', () => output);
  return child;
}

/** Counts `child` as live until it exits, so that stopAll() and killAllNow() reach it. */
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** Resolves once `child` answers GET /v2/ on `port` with 200; rejects, having stopped it, if it exits or takes too long. */
async function waitUntilReady(child, port, name, output) {
  let exited;
  child.once('close', (code, signal) => (exited ??= `exited with ${signal ?? `code ${code}`}`));
  child.once('error', (error) => (exited ??= `could not be started (${error.message})`));

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited === undefined && (child.exitCode !== null || child.signalCode !== null)) exited = `exited with ${child.signalCode ?? `code ${child.exitCode}`}`;
    if (exited !== undefined) throw new Error(`${name} on port ${port} ${exited}:\n${output()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`${name} on port ${port} not ready after ${START_TIMEOUT_MS} ms:\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
