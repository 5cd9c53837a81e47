// Sync: one (repository, secondary) per SQS message with partial batch failures, or a direct invocation for one repository.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context } from 'aws-lambda';
import { createAwsRuntime, isSqsEvent } from '../../shared/aws/runtime.js';
import { DirectRequest, SyncMessage, coalescedRecords, parseInput, parseQueued, runSyncJob, syncDirect } from '../../shared/jobs/index.js';

const runtime = createAwsRuntime(process.env);
const processor = new BatchProcessor(EventType.SQS);

export const handler = async (event: unknown, context: Context) =>
  runtime.invoke(context, (registries, budget) =>
    isSqsEvent(event)
      ? processPartialResponse(
          event,
          runtime.recordHandler(
            coalescedRecords(
              event.Records,
              (record) => parseQueued(SyncMessage, record.body, record.attributes.SentTimestamp),
              Date.now(),
              (message) => runSyncJob(message, registries, runtime, budget),
            ),
          ),
          processor,
          { context, throwOnFullBatchFailure: false },
        )
      : syncDirect(parseInput(DirectRequest, event), registries, runtime, budget),
  );
