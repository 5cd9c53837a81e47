// Starts real CNCF distribution registries (Debian's docker-registry 2.8.2) for integration tests.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRegistry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  port: number;
  /** Storage root directory (filesystem driver). */
  root: string;
  stop(): Promise<void>;
  /** Stops and starts the process again on the same port and storage. */
  restart?(): Promise<void>;
}

export interface RegistryOptions {
  htpasswd?: { username: string; password: string };
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string /* path to PEM cert */ };
  /** Serve HTTPS with this certificate and key (PEM files); the URL is then https://. */
  tls?: { certificate: string; key: string };
  /** Extra environment for the process, e.g. REGISTRY_* config overrides. */
  env?: Record<string, string>;
  /** Send notifications (config `notifications.endpoints`) to one endpoint. */
  notifications?: NotificationsOptions;
}

export interface NotificationsOptions {
  url: string;
  /** Header values are lists, as in the registry's config: `{ Authorization: ['Bearer x'] }`. */
  headers?: Record<string, string[]>;
  /** Durations as the registry writes them: `1s`, `200ms`. */
  timeout?: string;
  threshold?: number;
  backoff?: string;
  /** `ignore.actions` (registry 2.8 applies it only when `ignore.mediatypes` lists something too). */
  ignoredActions?: string[];
  ignoredMediaTypes?: string[];
}

export interface RegistryPair {
  primary: TestRegistry;
  secondary: TestRegistry;
  stop(): Promise<void>;
}

const BINARY = process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry';
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

// Safety net: never leave registries or temp dirs behind, even if a test forgets stop().
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'test-registry-'));
  liveDirs.add(dir);
  const root = join(dir, 'storage');
  mkdirSync(root);
  const configPath = join(dir, 'config.yml');
  const secret = randomBytes(16).toString('hex'); // fixed across restarts so upload _state stays valid

  let authYaml = '';
  if (options.htpasswd) {
    const { username, password } = options.htpasswd;
    const line = execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' }).trim();
    const htpasswdPath = join(dir, 'htpasswd');
    writeFileSync(htpasswdPath, line + '\n');
    authYaml = `auth:\n  htpasswd:\n    realm: test-realm\n    path: ${q(htpasswdPath)}\n`;
  } else if (options.token) {
    const t = options.token;
    authYaml =
      `auth:\n  token:\n    realm: ${q(t.realm)}\n    service: ${q(t.service)}\n` + `    issuer: ${q(t.issuer)}\n    rootcertbundle: ${q(t.rootCertBundle)}\n`;
  }

  let child: ChildProcess | undefined;
  let port = 0;

  const launch = async (fixedPort?: number): Promise<void> => {
    // A port found free may be taken before the registry binds it; retry with a new one.
    for (let attempt = 1; ; attempt++) {
      port = fixedPort ?? (await freePort());
      writeFileSync(configPath, renderConfig(root, port, secret, authYaml + notificationsYaml(options.notifications)));
      try {
        const tlsEnv: Record<string, string> = options.tls
          ? { REGISTRY_HTTP_TLS_CERTIFICATE: options.tls.certificate, REGISTRY_HTTP_TLS_KEY: options.tls.key }
          : {};
        child = await spawnAndWait(configPath, port, { ...tlsEnv, ...options.env });
        return;
      } catch (err) {
        const inUse = err instanceof Error && /address already in use/.test(err.message);
        if (!inUse || fixedPort !== undefined || attempt >= 5) throw err;
      }
    }
  };

  try {
    await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
    throw err;
  }

  const host = `127.0.0.1:${port}`;
  let stopped = false;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}`,
    host,
    port,
    root,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child) await kill(child);
      rmSync(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    },
    async restart() {
      if (stopped) throw new Error('registry already stopped');
      if (child) await kill(child);
      await launch(port);
    },
  };
}

/** Two independent registries, e.g. a primary to sync from and a secondary to sync to. */
export async function startRegistryPair(options: RegistryOptions = {}): Promise<RegistryPair> {
  const [a, b] = await Promise.allSettled([startRegistry(options), startRegistry(options)]);
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

/** YAML double-quoted scalar; JSON string escaping is compatible. */
function q(value: string): string {
  return JSON.stringify(value);
}

function renderConfig(root: string, port: number, secret: string, authYaml: string): string {
  // No blob descriptor cache: tests inspect state right after deletes and must see the truth.
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${q(root)}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ${q(secret)}
health:
  storagedriver:
    enabled: false
${authYaml}`;
}

function notificationsYaml(options: NotificationsOptions | undefined): string {
  if (!options) return '';
  const list = (values: string[]) => `[${values.map(q).join(', ')}]`;
  const headers = Object.entries(options.headers ?? {})
    .map(([name, values]) => `        ${name}: ${list(values)}\n`)
    .join('');
  const ignore =
    options.ignoredActions || options.ignoredMediaTypes
      ? `      ignore:\n        mediatypes: ${list(options.ignoredMediaTypes ?? [])}\n        actions: ${list(options.ignoredActions ?? [])}\n`
      : '';
  return (
    `notifications:\n  endpoints:\n    - name: test-listener\n      url: ${q(options.url)}\n` +
    (headers ? `      headers:\n${headers}` : '') +
    `      timeout: ${options.timeout ?? '1s'}\n      threshold: ${options.threshold ?? 3}\n      backoff: ${options.backoff ?? '200ms'}\n${ignore}`
  );
}

/** Ports this process has handed out: one found free is not bound yet, so it is never handed out twice. */
const handedOut = new Set<number>();

/** A loopback port free now and not handed out before in this process (a test may bind it later than a registry beside it). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await portFreeNow();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

function portFreeNow(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

async function spawnAndWait(configPath: string, port: number, env?: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(BINARY, ['serve', configPath], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  // Keep only the tail of the output: enough to explain a failed start, bounded for long runs.
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const state: { exited?: string } = {};
  // 'close' (not 'exit') so the output collected above includes the final error lines.
  child.once('close', (code, signal) => {
    liveChildren.delete(child);
    state.exited = `exited with ${signal ?? `code ${code}`}`;
  });
  child.once('error', (err) => {
    liveChildren.delete(child);
    state.exited = `failed to spawn ${BINARY}: ${err.message}`;
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  const url = `http://127.0.0.1:${port}/v2/`;
  while (true) {
    if (state.exited !== undefined) {
      throw new Error(`docker-registry on port ${port} ${state.exited} before becoming ready; output:\n${output}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      // 400: a TLS listener answering our plain-HTTP probe, which is ready all the same.
      if (res.status === 200 || res.status === 401 || res.status === 400) return child;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await kill(child);
      throw new Error(`docker-registry on port ${port} not ready after ${START_TIMEOUT_MS} ms; output:\n${output}`);
    }
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
  liveChildren.delete(child);
}
