/**
 * The engine's one entry: one repository's sync and verify, and what they stand on. The doors
 * (CLI, Lambda handlers), the jobs and the adapters import the engine from here only. Each folder's
 * index says what it is and what it offers; the folders read as a sync runs: configuration, the
 * registry seam, the sync pipeline (with referrers), verify, and the base they all stand on.
 */
export * from './base/index.js';
export * from './config/index.js';
export * from './registry/index.js';
export * from './sync/index.js';
export * from './verify/index.js';
