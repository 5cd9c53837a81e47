import { EVERYTHING } from '../../shared/engine/index.js';

/** Secondaries by name that keep everything, under no prefix: how they were before scopes. */
export const unscoped = (...names: string[]) => names.map((name) => ({ name, scope: EVERYTHING }));
