import { EVERYTHING, type RegistryClient } from '../../shared/engine/index.js';
import type { Registries } from '../../shared/jobs/ports.js';

/** Secondaries by name that keep everything, under no prefix: how they were before scopes. */
export const unscoped = (...names: string[]) => names.map((name) => ({ name, scope: EVERYTHING }));

/** Registries for one job: the given primary, and one secondary `eu` (its client looked up on each call) that keeps everything. */
export function fixedRegistries(primary: RegistryClient, secondary: () => RegistryClient): Registries {
  return { secondaryNames: ['eu'], secondaries: unscoped('eu'), scopeOf: () => EVERYTHING, primary: () => primary, secondary, close: async () => undefined };
}
