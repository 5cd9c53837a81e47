/**
 * The listener's Prometheus metrics (`GET /metrics`), through prom-client on a registry of its
 * own. Fed three ways: the jobs' Metrics port (the CloudWatch names the notify and sync functions
 * emit, mapped here), the webhook door's observer, and the registry clients' observer. Every label
 * takes its value from a closed set (formats, reasons, outcomes, status classes) or from the
 * configuration (registry names): nothing a request or a repository says becomes a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ObservedResponse } from '../engine/index.js';
import type { Metrics, ReadNotifications } from '../jobs/index.js';
import { REFUSAL_REASONS, WEBHOOK_FORMATS, type WebhookObserver } from '../jobs/index.js';

/** What the gauges read at each scrape. */
export interface ListenerState {
  counts(): { pendingTags: number; pendingDigests: number; running: number };
  reconciling(): boolean;
}

const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx', 'error'] as const;
const EVENT_OUTCOMES = ['accepted', 'ignored', 'invalid'] as const;

export class ListenerMetrics {
  readonly registry = new Registry();
  private state: ListenerState | undefined;

  private readonly events = new Counter({
    name: 'geo_sync_webhook_events_total',
    help: 'Events read from webhook requests that passed authentication, by format and outcome (accepted as work, ignored by design, invalid).',
    labelNames: ['format', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly refused = new Counter({
    name: 'geo_sync_webhook_requests_refused_total',
    help: 'Webhook requests refused, by format and reason.',
    labelNames: ['format', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly eventJobs = new Counter({
    name: 'geo_sync_event_jobs_total',
    help: 'Event jobs run, by outcome (succeeded: every named tag as the primary holds it or left for a human; failed).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly tagsReplicated = new Counter({
    name: 'geo_sync_tags_replicated_total',
    help: 'Tags copied or repaired on a secondary, by event jobs and reconciles.',
    registers: [this.registry],
  });
  private readonly tagsRemoved = new Counter({
    name: 'geo_sync_tags_removed_total',
    help: 'Tags removed from a secondary, by event jobs and reconciles.',
    registers: [this.registry],
  });
  private readonly tagsFailed = new Counter({
    name: 'geo_sync_tags_failed_total',
    help: 'Tags an event job failed to make as the primary holds them (sent again after a backoff).',
    registers: [this.registry],
  });
  private readonly lag = new Histogram({
    name: 'geo_sync_replication_lag_seconds',
    help: "Seconds from the registry's event to the secondary holding what it announced.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [this.registry],
  });
  private readonly reconcileRuns = new Counter({
    name: 'geo_sync_reconcile_runs_total',
    help: "Exact reconciles of every repository ended, by outcome (failed: the primary's catalog could not be read whole).",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly reconcileDuration = new Histogram({
    name: 'geo_sync_reconcile_duration_seconds',
    help: 'Seconds from the start of a reconcile to every pair it sent settled.',
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600],
    registers: [this.registry],
  });
  private readonly requests = new Counter({
    name: 'geo_sync_registry_requests_total',
    help: "Requests answered by each configured registry (its role, and its name: primary, or the secondary's), by status class (error: no answer).",
    labelNames: ['role', 'registry', 'status_class'] as const,
    registers: [this.registry],
  });
  private readonly throttled = new Counter({
    name: 'geo_sync_registry_throttled_total',
    help: 'Answers 429 (too many requests) from each configured registry (its role, and its name).',
    labelNames: ['role', 'registry'] as const,
    registers: [this.registry],
  });
  private readonly inFlightLimit = new Gauge({
    name: 'geo_sync_registry_inflight_limit',
    help: 'Requests allowed in flight to each configured registry, as its latest answer left the adaptive limit.',
    labelNames: ['role', 'registry'] as const,
    registers: [this.registry],
  });

  /** `secondaries`: the configured names, so their series (and the primary's) exist from the first scrape. */
  constructor(secondaries: readonly string[]) {
    const read = (pick: (state: ListenerState) => number) => () => (this.state ? pick(this.state) : 0);
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(value());
        },
      });
    gauge(
      'geo_sync_pending_tags',
      'Tags named by events and not yet in a job, over every (repository, secondary) pair.',
      read((s) => s.counts().pendingTags),
    );
    gauge(
      'geo_sync_pending_digests',
      'Digests named by events and not yet in a job.',
      read((s) => s.counts().pendingDigests),
    );
    gauge(
      'geo_sync_jobs_running',
      'Jobs running now (event jobs, full syncs, verifications).',
      read((s) => s.counts().running),
    );
    gauge(
      'geo_sync_reconcile_running',
      '1 while a reconcile is running.',
      read((s) => (s.reconciling() ? 1 : 0)),
    );
    collectDefaultMetrics({ register: this.registry });
    // Every series at zero from the start: a rate over a series that appears late misses its first increase.
    for (const format of WEBHOOK_FORMATS) {
      for (const outcome of EVENT_OUTCOMES) this.events.labels(format, outcome).inc(0);
      for (const reason of REFUSAL_REASONS) this.refused.labels(format, reason).inc(0);
    }
    for (const outcome of ['succeeded', 'failed']) this.eventJobs.labels(outcome).inc(0);
    for (const outcome of ['finished', 'failed']) this.reconcileRuns.labels(outcome).inc(0);
    const registries = [{ role: 'primary', name: 'primary' }, ...secondaries.map((name) => ({ role: 'secondary', name }))];
    for (const { role, name } of registries) {
      for (const statusClass of STATUS_CLASSES) this.requests.labels(role, name, statusClass).inc(0);
      this.throttled.labels(role, name).inc(0);
    }
  }

  /** Where the gauges read pending work and the reconcile, once the listener has them. */
  watch(state: ListenerState): void {
    this.state = state;
  }

  /** The jobs' Metrics port: the names they emit (as on CloudWatch) that have a place here; the others are not kept. */
  readonly port: Metrics = {
    add: (name, value) => {
      if (name === 'EventJobSucceeded') this.eventJobs.labels('succeeded').inc(value);
      else if (name === 'EventJobFailed') this.eventJobs.labels('failed').inc(value);
      else if (name === 'TagsCopied' || name === 'TagsRepaired') this.tagsReplicated.inc(value);
      else if (name === 'TagsRemoved') this.tagsRemoved.inc(value);
      else if (name === 'TagsFailed') this.tagsFailed.inc(value);
      else if (name === 'ReplicationLagSeconds') this.lag.observe(value);
    },
  };

  readonly webhook: WebhookObserver = {
    refused: (format, reason) => this.refused.labels(format, reason).inc(),
    read: (format, read: ReadNotifications) => {
      this.events.labels(format, 'accepted').inc(read.hints.length + read.digests.length);
      this.events.labels(format, 'ignored').inc(read.ignored);
      this.events.labels(format, 'invalid').inc(read.invalid.length);
    },
  };

  /**
   * For openRegistries: the registry by role and configured name (a secondary may be named
   * "primary" too), never a host a registry pointed us at.
   */
  readonly registryAnswer = (registry: { role: 'primary' | 'secondary'; name: string }, observed: ObservedResponse): void => {
    const { status } = observed;
    const statusClass = status !== undefined && status >= 200 && status < 600 ? `${Math.floor(status / 100)}xx` : 'error';
    this.requests.labels(registry.role, registry.name, statusClass).inc();
    if (status === 429) this.throttled.labels(registry.role, registry.name).inc();
    this.inFlightLimit.labels(registry.role, registry.name).set(observed.limit);
  };

  reconcileFinished(outcome: 'finished' | 'failed', seconds: number): void {
    this.reconcileRuns.labels(outcome).inc();
    this.reconcileDuration.observe(seconds);
  }

  /** The text exposition format, and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
