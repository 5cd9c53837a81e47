/** The registry seam: the narrow `Registry` interface the engine speaks through; `RegistryClient`, its OCI distribution API implementation; `EcrRegistry`, ECR's; `openRegistry`, which picks one for an endpoint (and reads docker's and podman's credentials for it). */
export { RegistryClient } from './client.js';
export { EcrRegistry } from './ecr/registry.js';
export { ENCRYPTION_TYPES, TAG_MUTABILITIES, ecrHost, ecrRegistryUrl, type EcrRepositorySettings, type EcrSettings } from './ecr/settings.js';
export { openRegistry, type OpenOptions } from './open.js';
export { dockerCredentialsFor, dockerCredentialsSource } from './docker-credentials.js';
export type { CredentialsProvider } from './auth.js';
export type { Registry, TrafficStats } from './registry.js';
export { parseRegistryUrl, type ObservedResponse, type RegistryEndpoint, type TransportOptions } from './transport.js';
