/** Jobs behind direct invocation of sync or verify: one repository on one or every secondary. */
import { shownUploads, type SyncReport } from '../engine/index.js';
import type { DirectRequest } from './messages.js';
import type { Budget, Registries, Runtime } from './ports.js';
import { planSync, processSyncMessage } from './sync.js';
import { processVerifyMessage } from './verify.js';

const targets = (request: DirectRequest, registries: Registries) => (request.secondary ? [request.secondary] : registries.secondaryNames);

/**
 * Dry run: the plan per secondary, nothing written. Otherwise a forced sync (retry backoff
 * ignored), recorded like any other. `maxPrune` is the prune limit of this sync: the way past a
 * held guard on AWS.
 */
export async function syncDirect(request: DirectRequest, registries: Registries, runtime: Runtime, budget: Budget) {
  const results = [];
  for (const secondary of targets(request, registries)) {
    if (!registries.scopeOf(secondary).hasRepository(request.repository)) results.push({ secondary, outcome: 'out-of-scope' });
    else if (request.dryRun) {
      results.push({
        secondary,
        outcome: 'planned',
        report: await planSync(request.repository, secondary, registries, runtime, request.deep, request.maxPrune),
      });
    } else {
      const message = {
        repository: request.repository,
        secondary,
        force: true,
        ...(request.deep ? { deep: true } : {}),
        ...(request.maxPrune !== undefined ? { maxPrune: request.maxPrune } : {}),
      };
      const outcome = await processSyncMessage(message, registries, runtime, budget);
      results.push({ secondary, outcome: outcome.kind, ...('report' in outcome && outcome.report ? { report: shownReport(outcome.report) } : {}) });
    }
  }
  return { repository: request.repository, results };
}

/** The report as the invoker sees it: unfinished uploads without their Locations (signed upload state). */
function shownReport(report: SyncReport): SyncReport | (Omit<SyncReport, 'uploads'> & { uploads: ReturnType<typeof shownUploads> }) {
  return report.uploads ? { ...report, uploads: shownUploads(report.uploads) } : report;
}

export async function verifyDirect(request: DirectRequest, registries: Registries, runtime: Runtime, budget: Budget) {
  const results = [];
  for (const secondary of targets(request, registries)) {
    const outcome = await processVerifyMessage(
      { repository: request.repository, secondary, ...(request.deep ? { deep: true } : {}) },
      registries,
      runtime,
      budget,
    );
    results.push({ secondary, outcome: outcome.kind, ...('report' in outcome ? { report: outcome.report } : {}) });
  }
  return { repository: request.repository, results };
}
