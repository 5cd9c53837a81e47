/**
 * Registry credentials on AWS come from one Secrets Manager secret, never from plain environment
 * variables. Its value is JSON keyed by registry name: {"primary": {"username", "password"},
 * "<secondary name>": {...}}; a registry without an entry is used anonymously. One key is not a
 * registry's: "gitlabToken", the token that lists repositories through GitLab's API.
 */
import { z } from 'zod';
import { GeoSyncError, endpointsFromEnv, invalidInput, mapEndpoints, type Endpoints } from '../engine/index.js';
import { repositorySourceFrom, type RepositorySource } from '../jobs/index.js';

export type RegistryCredentials = Record<string, { username: string; password: string }>;

/** What the secret holds: credentials by registry name, and the GitLab API token when one is kept. */
export interface SecretCredentials {
  registries?: RegistryCredentials;
  gitlabToken?: string;
}

/** The port: where credentials come from. */
export type CredentialSource = () => Promise<SecretCredentials>;

/** The secret's key for the GitLab API token (so no secondary's credentials can sit under that name). */
export const GITLAB_TOKEN_KEY = 'gitlabToken';

const SecretValue = z
  .object({ [GITLAB_TOKEN_KEY]: z.string().min(1).optional() })
  .catchall(z.object({ username: z.string().min(1), password: z.string() }).strict());
const CACHE_MS = 5 * 60_000;

/**
 * Reads the secret through the AWS Parameters and Secrets Lambda Extension (a layer serving
 * localhost:2773), which needs no SDK in the bundle and caches for us. Cached here too, per container.
 */
export function secretsExtensionCredentials(secretId: string, env: NodeJS.ProcessEnv): CredentialSource {
  let cached: { value: SecretCredentials; until: number } | undefined;
  return async () => {
    if (cached && cached.until > Date.now()) return cached.value;
    const value = parseSecret(await readSecretString(secretId, env), secretId);
    cached = { value, until: Date.now() + CACHE_MS };
    return value;
  };
}

/** One secret's SecretString, fresh from the extension (callers cache). */
export async function readSecretString(secretId: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const port = env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? '2773';
  const response = await fetch(`http://localhost:${port}/secretsmanager/get?secretId=${encodeURIComponent(secretId)}`, {
    headers: { 'X-Aws-Parameters-Secrets-Token': env.AWS_SESSION_TOKEN ?? '' },
    signal: AbortSignal.timeout(5_000),
  }).catch((error: unknown) => {
    throw new GeoSyncError('CREDENTIALS_UNAVAILABLE', `cannot reach the secrets extension on port ${port}: ${(error as Error).message}`, { retryable: true });
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new GeoSyncError('CREDENTIALS_UNAVAILABLE', `reading secret ${secretId} failed with HTTP ${response.status}`, { retryable: response.status >= 500 });
  }
  return ((await response.json()) as { SecretString?: string }).SecretString;
}

/** Never echoes the secret: the message names the secret, not its content. */
export function parseSecret(text: string | undefined, secretId: string): SecretCredentials {
  let json: unknown;
  try {
    json = JSON.parse(text ?? '');
  } catch {
    json = undefined;
  }
  const parsed = SecretValue.safeParse(json);
  if (!parsed.success) {
    throw invalidInput(
      'INVALID_CONFIG',
      `secret ${secretId} must be a JSON object of {"<registry name>": {"username": "...", "password": "..."}}, with "${GITLAB_TOKEN_KEY}": "..." if GitLab's API lists the repositories`,
    );
  }
  const { [GITLAB_TOKEN_KEY]: gitlabToken, ...registries } = parsed.data;
  return { registries: registries as RegistryCredentials, ...(gitlabToken ? { gitlabToken } : {}) };
}

/**
 * The registries a function works with, as the environment names them; a username or password
 * there (a variable, or a GEO_SYNC_SECONDARIES entry) is refused: on Lambda credentials come from
 * the secret only, so that no password sits in a function's configuration, readable by anyone who
 * may read that.
 */
export function lambdaEndpoints(env: NodeJS.ProcessEnv): Endpoints {
  const inEnvironment = ['PRIMARY', 'SECONDARY']
    .flatMap((role) => ['USERNAME', 'PASSWORD'].map((field) => `GEO_SYNC_${role}_${field}`))
    .filter((name) => env[name]);
  if (inEnvironment.length > 0) {
    throw invalidInput(
      'INVALID_CONFIG',
      `${inEnvironment.join(', ')} set in the environment: on Lambda, registry credentials come from the secret GEO_SYNC_CREDENTIALS_SECRET only`,
    );
  }
  const endpoints = endpointsFromEnv(env);
  const withPassword = endpoints.secondaries.filter((s) => s.endpoint.username !== undefined || s.endpoint.password !== undefined).map((s) => s.name);
  if (withPassword.length > 0) {
    throw invalidInput(
      'INVALID_CONFIG',
      `GEO_SYNC_SECONDARIES gives a username or password for ${withPassword.join(', ')}: on Lambda, put them in the secret GEO_SYNC_CREDENTIALS_SECRET under each name`,
    );
  }
  return endpoints;
}

/** The endpoints with each registry's credentials filled in by name ("primary" or the secondary's name). */
export function withCredentials(endpoints: Endpoints, credentials: RegistryCredentials = {}): Endpoints {
  return mapEndpoints(endpoints, (endpoint, name) => (credentials[name] ? { ...endpoint, ...credentials[name] } : endpoint));
}

/**
 * Where the fan-out lists the primary's repositories, as the environment configures it; the GitLab
 * token is the secret's alone, for the same reason as the registries' passwords: one in the
 * environment (GEO_SYNC_GITLAB_TOKEN) is refused.
 */
export function lambdaRepositorySource(env: NodeJS.ProcessEnv): RepositorySource {
  if (env.GEO_SYNC_GITLAB_TOKEN) {
    throw invalidInput(
      'INVALID_CONFIG',
      `GEO_SYNC_GITLAB_TOKEN set in the environment: on Lambda, the GitLab token comes from the secret GEO_SYNC_CREDENTIALS_SECRET only, under "${GITLAB_TOKEN_KEY}"`,
    );
  }
  return repositorySourceFrom(env);
}

/** The source with the secret's GitLab token filled in (GitLab's API only; another source takes none). */
export function withGitlabToken(source: RepositorySource, credentials: SecretCredentials): RepositorySource {
  return source.kind === 'gitlab' && credentials.gitlabToken ? { ...source, token: credentials.gitlabToken } : source;
}
