/** Configuration: the registries from the environment or a file, and each secondary's scope (which repositories and tags it keeps). */
export {
  MissingRegistryError,
  SECONDARY_NAME,
  endpointsFromEnv,
  mapEndpoints,
  parseSecondaries,
  secondariesFromEnv,
  type Endpoints,
  type SecondarySite,
} from './config.js';
export { EVERYTHING, EVERY_TAG, compileScope, type Scope, type ScopeConfig, type TagScope } from './scope.js';
export { ecrFromEnv } from './ecr.js';
