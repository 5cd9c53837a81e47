// Fan-out: on a schedule or by hand, enqueue one message per (repository, secondary); continuations arrive on its own queue.
// A catalog-wide run that finishes tells readiness as metrics; a direct `{"action": "ready"}` returns the readiness report.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context } from 'aws-lambda';
import { readinessAfterFanOut, readinessOnAws } from '../../shared/aws/readiness.js';
import { createAwsRuntime, isSqsEvent } from '../../shared/aws/runtime.js';
import { FanOutRequest, ReadyRequest, RecordingCatalog, fanOut, isActionRequest, parseInput, parseMessage } from '../../shared/jobs/index.js';

const runtime = createAwsRuntime(process.env);
const processor = new BatchProcessor(EventType.SQS);

export const handler = async (event: unknown, context: Context) =>
  runtime.invoke(context, (registries, budget, catalog) => {
    const run = async (request: FanOutRequest) => {
      const recording = new RecordingCatalog(catalog);
      const outcome = await fanOut(request, recording, registries.secondaries, runtime, budget, runtime.catalogPageSize);
      await readinessAfterFanOut(request, outcome, registries, recording, runtime, context.getRemainingTimeInMillis());
      return outcome;
    };
    if (isSqsEvent(event)) {
      return processPartialResponse(
        event,
        runtime.recordHandler((record) => run(parseMessage(FanOutRequest, record.body))),
        processor,
        { context, throwOnFullBatchFailure: false },
      );
    }
    return isActionRequest(event)
      ? readinessOnAws(parseInput(ReadyRequest, event), registries, catalog, runtime, context.getRemainingTimeInMillis())
      : run(parseInput(FanOutRequest, scheduleInput(event)));
  });

/** A schedule without `input` delivers EventBridge's envelope: that means a plain catalog-wide sync. */
function scheduleInput(event: unknown): unknown {
  const envelope = event as { source?: unknown; 'detail-type'?: unknown } | null;
  return envelope?.source === 'aws.events' && envelope['detail-type'] === 'Scheduled Event' ? {} : event;
}
