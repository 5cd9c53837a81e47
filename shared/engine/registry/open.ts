/**
 * Where registries are opened: the one place that knows which implementation of the Registry
 * serves an endpoint, so the engine above it never learns a registry's kind.
 */
import { RegistryClient } from './client.js';
import { dockerCredentialsFor } from './docker-credentials.js';
import { EcrRegistry } from './ecr/registry.js';
import { IdentityToken } from './identity-token.js';
import type { Registry } from './registry.js';
import { parseRegistryUrl, type RegistryEndpoint, type TransportOptions } from './transport.js';

export type OpenOptions = TransportOptions & {
  prefix?: string;
  /** Where docker's and podman's credential files are found ($DOCKER_CONFIG, $REGISTRY_AUTH_FILE, …): the process's environment unless given. */
  env?: Record<string, string | undefined>;
};

/**
 * The Registry for an endpoint: ECR's when the endpoint carries ECR settings (the configuration
 * decides: declared, or an ECR host without a password, config/ecr.ts); else the OCI distribution API's.
 * A registry given no credentials of its own (an entry's, or GEO_SYNC_*) uses what `docker login`,
 * `podman login` or a credential helper has for its host (docker-credentials.ts): a user name and
 * password, a helper's answer, or an identity token, which only the token service sees.
 */
export function openRegistry(endpoint: RegistryEndpoint, options: OpenOptions = {}): Registry {
  if (endpoint.ecr) return new EcrRegistry(endpoint, endpoint.ecr, options);
  const { env, ...transport } = options;
  const own = transport.credentials !== undefined || endpoint.username !== undefined;
  const credentials = own ? undefined : dockerCredentialsFor(parseRegistryUrl(endpoint.url).host, env ?? process.env);
  if (credentials === undefined) return new RegistryClient(endpoint, transport);
  if (credentials instanceof IdentityToken || 'get' in credentials) return new RegistryClient(endpoint, { ...transport, credentials });
  return new RegistryClient({ ...endpoint, username: credentials.username, password: credentials.password }, transport);
}
