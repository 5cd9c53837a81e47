/** Powertools Logger and Metrics, configured in one place and narrowed to the ports the jobs take. */
import { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, Metrics } from '@aws-lambda-powertools/metrics';
import type { EngineLogger } from '../engine/index.js';
import type { Metrics as MetricsPort } from '../jobs/index.js';

export const SERVICE_NAME = 'geo-registry-sync';
/** CloudWatch namespace of the custom metrics; serverless.yml's alarms and dashboard use the same. */
export const METRICS_NAMESPACE = 'GeoRegistrySync';

export function createLogger(): Logger {
  return new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
}

export function createMetrics(): Metrics {
  return new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  });
}

export function engineLogger(logger: Logger): EngineLogger {
  return {
    debug: (message, fields) => logger.debug(message, { ...fields }),
    info: (message, fields) => logger.info(message, { ...fields }),
    warn: (message, fields) => logger.warn(message, { ...fields }),
    error: (message, fields) => logger.error(message, { ...fields }),
  };
}

const UNITS = { Count: MetricUnit.Count, Bytes: MetricUnit.Bytes, Milliseconds: MetricUnit.Milliseconds, Seconds: MetricUnit.Seconds } as const;

export function metricsPort(metrics: Metrics): MetricsPort {
  return {
    add: (name, value, unit = 'Count') => metrics.addMetric(name, UNITS[unit], value),
    // A metric of its own, published at once: the dimension stays off every other metric of the invocation.
    addForSecondary: (secondary, name, value, unit = 'Count') => {
      const single = metrics.singleMetric();
      single.addDimension('secondary', secondary);
      single.addMetric(name, UNITS[unit], value);
    },
  };
}
