/** Referrers (OCI 1.1: signatures, SBOMs, attestations): each side's graph read, the pure plan between them, the plan applied. */
export { applyReferrerPlan, edgeOnly } from './apply.js';
export {
  edgesOf,
  isDerivedTag,
  mediaTypesOf,
  reachedManifests,
  readReferrerGraph,
  referrerMode,
  type ReferrerEdge,
  type ReferrerMode,
  type ReferrerStore,
} from './graph.js';
export { emptyReferrerOutcome, planReferrers, type ReferrerOutcome, type ReferrerPlan, type ReferrersDone } from './plan.js';
