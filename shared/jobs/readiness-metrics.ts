/**
 * Readiness as CloudWatch reads it: per secondary, ready (1) or not (0), how many repositories keep
 * it from ready and the age of its oldest verification; and the secondaries not ready as one
 * figure without a dimension, so one alarm covers every secondary without knowing their names.
 */
import type { Metrics } from './ports.js';
import type { Readiness } from './readiness.js';

export function emitReadiness(report: Readiness, metrics: Metrics): void {
  for (const secondary of report.secondaries) {
    const ready = secondary.status === 'ready' ? 1 : 0;
    metrics.addForSecondary?.(secondary.secondary, 'SecondaryReady', ready);
    metrics.addForSecondary?.(secondary.secondary, 'RepositoriesNotReady', secondary.notReady.length);
    // None verified at all is no age to chart: SecondaryReady and RepositoriesNotReady say it.
    if (secondary.oldestVerificationAgeSeconds !== undefined) {
      metrics.addForSecondary?.(secondary.secondary, 'OldestVerificationAge', secondary.oldestVerificationAgeSeconds, 'Seconds');
    }
  }
  // An unknown secondary counts as not ready: nothing says it could take the primary's place.
  metrics.add('SecondariesNotReady', report.secondaries.filter((s) => s.status !== 'ready').length);
}
