/**
 * Credentials from the files `docker login` and `podman login` write, read the way docker and
 * containers/image read them: the containers `auth.json` ($REGISTRY_AUTH_FILE, else
 * $XDG_RUNTIME_DIR/containers/auth.json), then docker's `config.json` ($DOCKER_CONFIG, else
 * ~/.docker). In a file: the host's `credHelpers` entry, else the `credsStore`, else its `auths`
 * entry. Used only for a registry given no credentials of its own (config.ts, open.ts).
 * An identity token (`identitytoken`, a helper's `<token>` user) signs in through the token
 * service's OAuth2 refresh grant (identity-token.ts). No secret read here is ever put in a message.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GeoSyncError } from '../base/errors.js';
import { credentialsOfBasic, type Credentials, type CredentialsProvider, type RegistryCredentials } from './auth.js';
import { IDENTITY_TOKEN_USERNAME, IdentityToken } from './identity-token.js';

type Env = Record<string, string | undefined>;

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Docker Hub's key in the files, whichever of its hosts the URL names. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const HELPER_TIMEOUT_MS = 30_000;

/** The files in the order they are read: the first that knows the host answers. */
export function credentialFiles(env: Env): string[] {
  const containers = env.REGISTRY_AUTH_FILE || (env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json') : undefined);
  const docker = join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json');
  return containers ? [containers, docker] : [docker];
}

/** `host[:port]` of a key as the files write it: a bare host, or a URL with scheme and path. */
function hostOfKey(key: string): string {
  const host = key
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .split('/')[0]!
    .toLowerCase();
  return DOCKER_HUB_HOSTS.has(host) ? 'docker.io' : host;
}

/** The host as the files' keys name it (Docker Hub's hosts are one). */
function normalHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_HOSTS.has(lower) ? 'docker.io' : lower;
}

function readAuthFile(path: string): AuthFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new GeoSyncError('CREDENTIALS_UNAVAILABLE', `cannot read the credentials file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as AuthFile) : {};
  } catch {
    // The message names the file only: its text holds secrets.
    throw new GeoSyncError('CREDENTIALS_UNAVAILABLE', `the credentials file ${path} is not valid JSON`);
  }
}

/** The value of a map whose key names this host (exact key first, as docker looks it up). */
function entryFor<T>(map: Record<string, T> | undefined, host: string): T | undefined {
  if (!map || typeof map !== 'object') return undefined;
  const exact = host === 'docker.io' ? (map[DOCKER_HUB_KEY] ?? map['docker.io']) : map[host];
  if (exact !== undefined) return exact;
  const key = Object.keys(map).find((candidate) => hostOfKey(candidate) === host);
  return key === undefined ? undefined : map[key];
}

/**
 * The credentials of an `auths` entry, or undefined for an entry without any (a helper's
 * placeholder). An identity token wins over the entry's `auth`, as docker uses it (a registry's
 * login may write both: a placeholder user beside the token).
 */
function fromAuthEntry(entry: AuthEntry, host: string, file: string): Credentials | IdentityToken | undefined {
  if (typeof entry.identitytoken === 'string' && entry.identitytoken) return new IdentityToken(entry.identitytoken, `the "auths" entry for ${host} in ${file}`);
  if (typeof entry.auth === 'string' && entry.auth) {
    const credentials = credentialsOfBasic(entry.auth);
    if (!credentials) throw new GeoSyncError('CREDENTIALS_UNAVAILABLE', `the "auth" of ${host} in ${file} is not base64 of user:password`);
    return credentials;
  }
  if (typeof entry.username === 'string' && entry.username) {
    return { username: entry.username, password: typeof entry.password === 'string' ? entry.password : '' };
  }
  return undefined;
}

/**
 * The credentials the files give for a registry's `host[:port]`: fixed ones from `auths`, a
 * helper's answer (asked now, asked again once after a 401), or undefined where none knows the host.
 */
export function dockerCredentialsFor(host: string, env: Env = process.env): RegistryCredentials | undefined {
  const wanted = normalHost(host);
  for (const file of credentialFiles(env)) {
    const config = readAuthFile(file);
    if (!config) continue;
    const perHost = entryFor(config.credHelpers, wanted);
    const helper = perHost ?? (typeof config.credsStore === 'string' && config.credsStore ? config.credsStore : undefined);
    const entry = entryFor(config.auths, wanted);
    const fixed = entry && typeof entry === 'object' ? fromAuthEntry(entry, host, file) : undefined;
    if (typeof helper === 'string' && helper) {
      const source = `docker-credential-${helper} (${perHost ? 'credHelpers' : 'credsStore'} in ${file})`;
      const provider = HelperCredentials.ask(helper, host, env, source);
      if (provider) return provider;
    }
    if (fixed) return fixed;
  }
  return undefined;
}

/**
 * Where the files would take a host's credentials from, said without running a helper, for a
 * hint after a refusal: `docker-credential-pass (credHelpers in …/config.json)`, `the "auths"
 * entry for host in …/auth.json`; undefined where no file names the host.
 */
export function dockerCredentialsSource(host: string, env: Env = process.env): string | undefined {
  const wanted = normalHost(host);
  for (const file of credentialFiles(env)) {
    let config: AuthFile | undefined;
    try {
      config = readAuthFile(file);
    } catch {
      continue;
    }
    if (!config) continue;
    const helper = entryFor(config.credHelpers, wanted);
    if (typeof helper === 'string' && helper) return `docker-credential-${helper} (credHelpers in ${file})`;
    if (entryFor(config.auths, wanted) === undefined) continue;
    if (typeof config.credsStore === 'string' && config.credsStore) return `docker-credential-${config.credsStore} (credsStore in ${file})`;
    return `the "auths" entry for ${host} in ${file}`;
  }
  return undefined;
}

/** The server name a helper is asked for: Docker Hub's key, else the host as `docker login` stored it. */
function serverFor(host: string): string {
  return normalHost(host) === 'docker.io' ? DOCKER_HUB_KEY : host;
}

interface HelperAnswer {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: Error | undefined;
}

/**
 * A credential helper's answer for one registry, kept for the run; after a 401 the helper is asked
 * again, once (a token it renewed since), and its answer kept from then on.
 */
export class HelperCredentials implements CredentialsProvider {
  private asked = false;
  private pending: Promise<Credentials> | undefined;

  private constructor(
    private readonly helper: string,
    private readonly host: string,
    private readonly env: Env,
    private current: Credentials,
  ) {}

  /**
   * The helper's credentials for the host, or undefined when it has none ("credentials not found");
   * an identity token as it is (its refusal is final: no helper is asked again for it).
   */
  static ask(helper: string, host: string, env: Env, source = `docker-credential-${helper}`): HelperCredentials | IdentityToken | undefined {
    const result = spawnSync(`docker-credential-${helper}`, ['get'], {
      input: serverFor(host),
      env: env as NodeJS.ProcessEnv,
      encoding: 'utf8',
      timeout: HELPER_TIMEOUT_MS,
    });
    const credentials = readAnswer(
      helper,
      host,
      { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error },
      source,
    );
    if (credentials instanceof IdentityToken) return credentials;
    return credentials ? new HelperCredentials(helper, host, env, credentials) : undefined;
  }

  get(): Promise<Credentials> {
    return this.pending ?? Promise.resolve(this.current);
  }

  refused(credentials: Credentials): void {
    if (this.asked || this.pending || credentials !== this.current) return;
    this.asked = true;
    this.pending = askAsync(this.helper, this.host, this.env)
      .then((renewed) => {
        if (renewed instanceof IdentityToken)
          throw helperFailure(this.helper, this.host, 'asked again, it answered an identity token for a user name and password');
        return (this.current = renewed ?? this.current);
      })
      .finally(() => (this.pending = undefined));
  }
}

function askAsync(helper: string, host: string, env: Env): Promise<Credentials | IdentityToken | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, ['get'], { env: env as NodeJS.ProcessEnv, timeout: HELPER_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', (error) => reject(helperFailure(helper, host, error.message)));
    child.on('close', (status) => {
      try {
        resolve(readAnswer(helper, host, { status, stdout, stderr }));
      } catch (error) {
        reject(error);
      }
    });
    child.stdin.on('error', () => undefined); // EPIPE: the exit status says what happened.
    child.stdin.end(serverFor(host));
  });
}

/** The helper's JSON answer (Username `<token>`: the Secret is an identity token); "credentials not found" (exit 1) is none; anything else an error. */
function readAnswer(helper: string, host: string, answer: HelperAnswer, source = `docker-credential-${helper}`): Credentials | IdentityToken | undefined {
  // A helper that exits without reading the server name (EPIPE) still answered: its exit says how.
  if (answer.error && answer.status === null) {
    const code = (answer.error as NodeJS.ErrnoException).code;
    throw helperFailure(helper, host, code === 'ENOENT' ? 'it is not on PATH' : (code ?? answer.error.message));
  }
  if (answer.status !== 0) {
    if (/credentials not found/i.test(answer.stdout)) return undefined;
    // The helper's own words, first line only: enough to say why, never its whole output.
    const said = (answer.stderr.trim() || answer.stdout.trim()).split('\n')[0]!.slice(0, 200);
    throw helperFailure(helper, host, `exit ${answer.status ?? 'by signal'}${said ? `: ${said}` : ''}`);
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(answer.stdout) as typeof parsed;
  } catch {
    throw helperFailure(helper, host, 'its answer is not JSON');
  }
  if (typeof parsed.Secret !== 'string' || typeof parsed.Username !== 'string') throw helperFailure(helper, host, 'its answer has no Username and Secret');
  if (parsed.Username === IDENTITY_TOKEN_USERNAME) {
    if (!parsed.Secret) throw helperFailure(helper, host, 'it answered an identity token that is empty');
    return new IdentityToken(parsed.Secret, source);
  }
  return { username: parsed.Username, password: parsed.Secret };
}

function helperFailure(helper: string, host: string, why: string): GeoSyncError {
  return new GeoSyncError('CREDENTIALS_UNAVAILABLE', `credential helper docker-credential-${helper} failed for ${host}: ${why}`);
}
