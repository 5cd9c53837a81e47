// Verify: compare both checksums of one (repository, secondary) per SQS message, or by direct invocation; record the outcome.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context } from 'aws-lambda';
import { createAwsRuntime, isSqsEvent } from '../../shared/aws/runtime.js';
import { DirectRequest, VerifyMessage, parseInput, parseQueued, processVerifyMessage, verifyDirect } from '../../shared/jobs/index.js';

const runtime = createAwsRuntime(process.env);
const processor = new BatchProcessor(EventType.SQS);

export const handler = async (event: unknown, context: Context) =>
  runtime.invoke(context, (registries, budget) =>
    isSqsEvent(event)
      ? processPartialResponse(
          event,
          runtime.recordHandler((record) =>
            processVerifyMessage(parseQueued(VerifyMessage, record.body, record.attributes.SentTimestamp), registries, runtime, budget),
          ),
          processor,
          { context, throwOnFullBatchFailure: false },
        )
      : verifyDirect(parseInput(DirectRequest, event), registries, runtime, budget),
  );
