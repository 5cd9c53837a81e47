/**
 * Where registries are opened: the one place that knows which implementation of the Registry
 * serves an endpoint, so the engine above it never learns a registry's kind.
 */
import { RegistryClient } from './client.js';
import { EcrRegistry } from './ecr/registry.js';
import type { Registry } from './registry.js';
import type { RegistryEndpoint, TransportOptions } from './transport.js';

export type OpenOptions = TransportOptions & { prefix?: string };

/**
 * The Registry for an endpoint: ECR's when the endpoint carries ECR settings (the configuration
 * decides: declared, or an ECR host without a password, config/ecr.ts); else the OCI distribution API's.
 */
export function openRegistry(endpoint: RegistryEndpoint, options: OpenOptions = {}): Registry {
  return endpoint.ecr ? new EcrRegistry(endpoint, endpoint.ecr, options) : new RegistryClient(endpoint, options);
}
