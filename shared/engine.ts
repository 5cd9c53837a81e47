/** The engine's public surface: what the CLI and the Lambda handlers build on. */
export { tagChecksum, type ChecksumKind } from './checksum.js';
export { EXIT, GeoSyncError, RegistryError, errorMessage } from './errors.js';
export { jsonLogger, silentLogger, type EngineLogger, type LogLevel } from './log.js';
export { isValidDigest, validateDigest, validateRepositoryName, validateTag } from './oci.js';
export { planRepository, type Plan, type TagChange, type TagMap } from './planner.js';
export { RegistryClient } from './registry/client.js';
export type { RegistryEndpoint, TransportOptions } from './registry/transport.js';
export type { MissingObject } from './replicate.js';
export {
  createRegistryClient,
  listRepositoriesPage,
  readTagMap,
  syncRepository,
  verifyRepository,
  type SyncOptions,
  type SyncReport,
  type VerifyOptions,
  type VerifyReport,
} from './usecases.js';
export { endpointsFromEnv, type Endpoints } from './config.js';
export { syncTags, type TagSyncOptions, type TagSyncReport } from './targeted-sync.js';
