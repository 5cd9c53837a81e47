import { GeoSyncError, invalidInput } from './errors.js';
import type { RegistryEndpoint } from './registry/transport.js';

export interface Endpoints {
  primary: RegistryEndpoint;
  secondaries: { name: string; endpoint: RegistryEndpoint }[];
}

type Env = Record<string, string | undefined>;

/** A secondary site's name, in GEO_SYNC_SECONDARIES and in messages: 1-64 letters, digits, . _ - */
export const SECONDARY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Registries from the environment: GEO_SYNC_PRIMARY_URL (+ _USERNAME, _PASSWORD, _CA_FILE) and
 * either GEO_SYNC_SECONDARY_URL (+ the same) or GEO_SYNC_SECONDARIES, a JSON array of
 * {name, url, username?, password?, caFile?} for several secondary sites. Overrides win; the
 * secondary override is the name of a GEO_SYNC_SECONDARIES entry, or else a URL.
 */
export function endpointsFromEnv(env: Env, overrides: { primary?: string; secondary?: string } = {}): Endpoints {
  const primary = endpointFromEnv(env, 'PRIMARY', overrides.primary);
  const configured = env.GEO_SYNC_SECONDARIES ? parseSecondaries(env.GEO_SYNC_SECONDARIES) : undefined;
  const chosen = overrides.secondary;
  if (chosen !== undefined) {
    // A configured name wins, even one that could be a host name (`registry.example.com`).
    const named = configured?.find((entry) => entry.name === chosen);
    if (named) return { primary, secondaries: [named] };
    if (!looksLikeUrl(chosen)) {
      const known = configured ? `GEO_SYNC_SECONDARIES names ${configured.map((entry) => entry.name).join(', ')}` : 'GEO_SYNC_SECONDARIES is not set';
      throw invalidInput('UNKNOWN_SECONDARY', `unknown secondary ${JSON.stringify(chosen)}: ${known}; for a registry URL write https://${chosen}`);
    }
  }
  if (configured && chosen === undefined) return { primary, secondaries: configured };
  return { primary, secondaries: [{ name: 'secondary', endpoint: endpointFromEnv(env, 'SECONDARY', chosen) }] };
}

/** `https://…`, `host.domain`, `host:port`, `[::1]`, `localhost`; a bare word is a secondary's name. */
function looksLikeUrl(value: string): boolean {
  return /[.:/[]/.test(value) || value === 'localhost';
}

/** No URL for a registry (MISSING_CONFIG, bad input): names the role, so a door can say how it gives one. */
export class MissingRegistryError extends GeoSyncError {
  constructor(readonly role: 'primary' | 'secondary') {
    super('MISSING_CONFIG', `no ${role} registry: set GEO_SYNC_${role.toUpperCase()}_URL`);
    this.name = 'MissingRegistryError';
    (this as { invalid: boolean }).invalid = true;
  }
}

function endpointFromEnv(env: Env, role: 'PRIMARY' | 'SECONDARY', url: string | undefined): RegistryEndpoint {
  const value = url ?? env[`GEO_SYNC_${role}_URL`];
  if (!value) {
    throw new MissingRegistryError(role === 'PRIMARY' ? 'primary' : 'secondary');
  }
  return withoutUndefined({
    url: value,
    username: env[`GEO_SYNC_${role}_USERNAME`],
    password: env[`GEO_SYNC_${role}_PASSWORD`],
    caFile: env[`GEO_SYNC_${role}_CA_FILE`],
  });
}

function parseSecondaries(json: string): Endpoints['secondaries'] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw invalidInput('INVALID_CONFIG', 'GEO_SYNC_SECONDARIES is not valid JSON');
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw invalidInput('INVALID_CONFIG', 'GEO_SYNC_SECONDARIES must be a non-empty JSON array of {name, url}');
  }
  const names = new Set<string>();
  return parsed.map((item: unknown, index) => {
    const entry = item as Record<string, unknown> | null;
    if (!entry || typeof entry.url !== 'string' || typeof entry.name !== 'string' || !SECONDARY_NAME.test(entry.name)) {
      throw invalidInput('INVALID_CONFIG', `GEO_SYNC_SECONDARIES[${index}] needs a "name" (letters, digits, . _ -) and a "url"`);
    }
    if (names.has(entry.name)) throw invalidInput('INVALID_CONFIG', `GEO_SYNC_SECONDARIES names ${JSON.stringify(entry.name)} twice`);
    names.add(entry.name);
    const text = (key: string) => (typeof entry[key] === 'string' ? (entry[key] as string) : undefined);
    return { name: entry.name, endpoint: withoutUndefined({ url: entry.url, username: text('username'), password: text('password'), caFile: text('caFile') }) };
  });
}

function withoutUndefined(endpoint: {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
}): RegistryEndpoint {
  return Object.fromEntries(Object.entries(endpoint).filter(([, v]) => v !== undefined)) as unknown as RegistryEndpoint;
}
