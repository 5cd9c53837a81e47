/** The registry seam: the narrow `Registry` interface the engine speaks through, and `RegistryClient`, its OCI distribution API implementation. */
export { RegistryClient } from './client.js';
export type { Registry, TrafficStats } from './registry.js';
export { parseRegistryUrl, type ObservedResponse, type RegistryEndpoint, type TransportOptions } from './transport.js';
