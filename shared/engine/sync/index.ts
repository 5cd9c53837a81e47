/** The one sync pipeline, in the order it runs: a reader (every tag, or named tags) → plan → apply → confirm → report. */
export { DEFAULT_MAX_PRUNE, planRepository, type Plan, type TagChange, type TagMap } from './planner.js';
export { readTagMap } from './read-tags.js';
export type { MissingObject } from './replicate.js';
export { statusFacts, syncStatus, type StatusFacts, type SyncReport, type TagSyncReport } from './report.js';
export { syncTags, type TagSyncOptions } from './targeted-sync.js';
export { SESSION_MAX_AGE_MS, shownUploads, uploadsAdvanced, type UploadSession } from './upload-session.js';
export { syncRepository, type SyncOptions } from './whole-repository.js';
