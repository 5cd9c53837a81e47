import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { GeoSyncError, invalidInput } from '../base/errors.js';
import type { RegistryEndpoint } from '../registry/transport.js';
import { EVERYTHING, compileScope, type Scope } from './scope.js';
import { describeEntryIssue } from '../base/zod-issues.js';
import { ecrDeclared, ecrFields, ecrFromEnv } from './ecr.js';

export interface SecondarySite {
  name: string;
  endpoint: RegistryEndpoint;
  /** What this secondary keeps of the primary, and under which prefix (scope.ts). */
  scope: Scope;
}

export interface Endpoints {
  primary: RegistryEndpoint;
  secondaries: SecondarySite[];
}

/** The endpoints with each registry's changed by `change`, which is given the registry's name ("primary", or the secondary's). */
export function mapEndpoints(endpoints: Endpoints, change: (endpoint: RegistryEndpoint, name: string) => RegistryEndpoint): Endpoints {
  return {
    primary: change(endpoints.primary, 'primary'),
    secondaries: endpoints.secondaries.map((site) => ({ ...site, endpoint: change(site.endpoint, site.name) })),
  };
}

type Env = Record<string, string | undefined>;

/** A secondary site's name, in GEO_SYNC_SECONDARIES and in messages: 1-64 letters, digits, . _ - */
export const SECONDARY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const patterns = z.strictObject({ include: z.array(z.string()).optional(), exclude: z.array(z.string()).optional() });

/** One secondary as GEO_SYNC_SECONDARIES or a --config file writes it; a field not listed here is an error. */
const secondaryEntry = z.strictObject({
  name: z.string().regex(SECONDARY_NAME, 'letters, digits, . _ - (1 to 64)'),
  /** Optional for an ECR entry with its registryId: the account's registry in its region. */
  url: z.string().min(1).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  caFile: z.string().optional(),
  repositories: patterns.optional(),
  tags: patterns.optional(),
  prefix: z.string().optional(),
  /** The most requests a second this process sends to the registry (registry/pace.ts). */
  requestsPerSecond: z.number().positive().finite().optional(),
  ...ecrFields,
});
export type SecondaryEntry = z.infer<typeof secondaryEntry>;

/**
 * Registries from the environment: GEO_SYNC_PRIMARY_URL (+ _USERNAME, _PASSWORD, _CA_FILE,
 * _REQUESTS_PER_SECOND) and either GEO_SYNC_SECONDARY_URL (+ the same) or a list of secondaries,
 * each {name, url, username?, password?, caFile?, repositories?, tags?, prefix?,
 * requestsPerSecond?}: GEO_SYNC_SECONDARIES (JSON), or a YAML or
 * JSON file (`config`, env GEO_SYNC_CONFIG), never both. Overrides win; the secondary override is
 * the name of a listed secondary, or else a URL (which keeps everything, under no prefix).
 */
export function endpointsFromEnv(env: Env, overrides: { primary?: string; secondary?: string; config?: string } = {}): Endpoints {
  const primary = endpointFromEnv(env, 'PRIMARY', overrides.primary);
  return { primary, secondaries: secondariesFromEnv(env, overrides) };
}

/** The secondaries alone, as endpointsFromEnv finds them: for a function that never talks to the primary. */
export function secondariesFromEnv(env: Env, overrides: { secondary?: string; config?: string } = {}): SecondarySite[] {
  const configured = configuredSecondaries(env, overrides.config);
  const chosen = overrides.secondary;
  if (chosen !== undefined) {
    // A configured name wins, even one that could be a host name (`registry.example.com`).
    const named = configured?.sites.find((entry) => entry.name === chosen);
    if (named) return [named];
    if (!looksLikeUrl(chosen)) {
      const known = configured ? `${configured.source} names ${configured.sites.map((entry) => entry.name).join(', ')}` : 'GEO_SYNC_SECONDARIES is not set';
      throw invalidInput('UNKNOWN_SECONDARY', `unknown secondary ${JSON.stringify(chosen)}: ${known}; for a registry URL write https://${chosen}`);
    }
  }
  if (configured && chosen === undefined) return configured.sites;
  return [{ name: 'secondary', endpoint: endpointFromEnv(env, 'SECONDARY', chosen), scope: EVERYTHING }];
}

/** The list of secondaries and where it came from; undefined when none is configured. */
function configuredSecondaries(env: Env, file: string | undefined): { source: string; sites: SecondarySite[] } | undefined {
  const path = file ?? (env.GEO_SYNC_CONFIG || undefined);
  if (path !== undefined && env.GEO_SYNC_SECONDARIES) {
    // One source for each setting: two lists would leave the reader guessing which one ran.
    throw invalidInput('INVALID_CONFIG', `both GEO_SYNC_SECONDARIES and the config file ${path} list secondaries: keep one`);
  }
  if (path !== undefined) return { source: path, sites: parseSecondaries(readConfigFile(path), path) };
  if (env.GEO_SYNC_SECONDARIES) return { source: 'GEO_SYNC_SECONDARIES', sites: parseSecondaries(parseJson(env.GEO_SYNC_SECONDARIES), 'GEO_SYNC_SECONDARIES') };
  return undefined;
}

/** A YAML or JSON file (JSON is YAML too); duplicate keys are an error, as elsewhere. */
function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw invalidInput('INVALID_CONFIG', `cannot read the config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return parseYaml(text, { uniqueKeys: true, prettyErrors: true });
  } catch (error) {
    throw invalidInput('INVALID_CONFIG', `the config file ${path} is neither YAML nor JSON: ${(error as Error).message.split('\n')[0]}`);
  }
}

function parseJson(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    throw invalidInput('INVALID_CONFIG', 'GEO_SYNC_SECONDARIES is not valid JSON');
  }
}

/**
 * The configured secondaries, each checked whole: an unknown field, a wrong type, a bad pattern
 * or prefix is an error naming the entry and the field, never a silent match-all.
 */
export function parseSecondaries(parsed: unknown, source: string): SecondarySite[] {
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw invalidInput('INVALID_CONFIG', `${source} must be a non-empty list of secondaries, each {name, url}`);
  }
  const names = new Set<string>();
  return parsed.map((item: unknown, index) => {
    const label = `${source}[${index}]${isNamed(item) ? ` (${item.name})` : ''}`;
    const result = secondaryEntry.safeParse(item);
    if (!result.success) throw invalidInput('INVALID_CONFIG', `${label}: ${describeEntryIssue(result.error)}`);
    const entry = result.data;
    if (names.has(entry.name)) throw invalidInput('INVALID_CONFIG', `${source} names ${JSON.stringify(entry.name)} twice`);
    names.add(entry.name);
    const { url, ecr } = ecrDeclared(entry, label);
    const { username, password, caFile, requestsPerSecond } = entry;
    const endpoint = withoutUndefined({ url, username, password, caFile, ecr, requestsPerSecond });
    return { name: entry.name, endpoint, scope: compileScope(entry, label) };
  });
}

function isNamed(item: unknown): item is { name: string } {
  return typeof item === 'object' && item !== null && typeof (item as { name?: unknown }).name === 'string';
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

/**
 * A registry from GEO_SYNC_<ROLE>_URL (+ _USERNAME, _PASSWORD, _CA_FILE, _REQUESTS_PER_SECOND), or
 * ECR's from _TYPE=ecr, _REGION, _REGISTRY_ID, _ROLE_ARN.
 */
function endpointFromEnv(env: Env, role: 'PRIMARY' | 'SECONDARY', url: string | undefined): RegistryEndpoint {
  const value = url ?? (env[`GEO_SYNC_${role}_URL`] || undefined);
  const declared = ecrFromEnv(env, role);
  const username = env[`GEO_SYNC_${role}_USERNAME`];
  const password = env[`GEO_SYNC_${role}_PASSWORD`];
  // Without a URL only a declared ECR registry (its registryId and region name it) is a registry.
  if (!value && !(declared.type === 'ecr' && declared.registryId)) {
    throw new MissingRegistryError(role === 'PRIMARY' ? 'primary' : 'secondary');
  }
  const { url: resolved, ecr } = ecrDeclared({ ...declared, url: value, username, password }, `GEO_SYNC_${role}_*`);
  const requestsPerSecond = requestsPerSecondFromEnv(env, `GEO_SYNC_${role}_REQUESTS_PER_SECOND`);
  return withoutUndefined({ url: resolved, username, password, caFile: env[`GEO_SYNC_${role}_CA_FILE`], ecr, requestsPerSecond });
}

/** A positive number of requests a second, fractions allowed (`0.5`: one every two seconds); empty or unset: no pace. */
function requestsPerSecondFromEnv(env: Env, name: string): number | undefined {
  const value = env[name]?.trim();
  if (!value) return undefined;
  const rate = /^(?:\d+(?:\.\d*)?|\.\d+)$/.test(value) ? Number(value) : NaN;
  if (!(rate > 0) || !Number.isFinite(rate)) {
    throw invalidInput(
      'INVALID_CONFIG',
      `${name} must be a positive number of requests a second (fractions allowed, e.g. 20 or 0.5), not ${JSON.stringify(value)}`,
    );
  }
  return rate;
}

function withoutUndefined(endpoint: {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  ecr?: RegistryEndpoint['ecr'] | undefined;
  requestsPerSecond?: number | undefined;
}): RegistryEndpoint {
  return Object.fromEntries(Object.entries(endpoint).filter(([, v]) => v !== undefined)) as unknown as RegistryEndpoint;
}
