// A small stand-in for Lambda's SQS event source mapping: receive a batch, invoke the handler,
// delete what succeeded, leave the reported failures to reappear after the visibility timeout.
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';

export type Handler = (event: unknown, context: Context) => Promise<unknown>;

export interface Handlers {
  fanOut: Handler;
  sync: Handler;
  verify: Handler;
}

/** Imports the real handlers; call it after setting the environment they read at module load. */
export async function importHandlers(): Promise<Handlers> {
  return {
    fanOut: (await import('../../../functions/fan-out/handler.js')).handler as Handler,
    sync: (await import('../../../functions/sync/handler.js')).handler as Handler,
    verify: (await import('../../../functions/verify/handler.js')).handler as Handler,
  };
}

export function lambdaContext(remainingMs = 300_000, functionName = 'test'): Context {
  const deadline = Date.now() + remainingMs;
  return {
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: `req-${Math.random().toString(16).slice(2)}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'test',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export interface PollResult {
  received: number;
  failed: number;
}

/** One event-source poll: up to `batchSize` messages into one invocation. */
export async function pollOnce(
  sqs: SQSClient,
  queueUrl: string,
  arn: string,
  handler: Handler,
  options: { batchSize?: number; context?: () => Context } = {},
): Promise<PollResult> {
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: options.batchSize ?? 10,
      MessageSystemAttributeNames: ['All'],
      AttributeNames: ['All'],
    }),
  );
  if (Messages.length === 0) return { received: 0, failed: 0 };
  const event: SQSEvent = { Records: Messages.map((m): SQSRecord => sqsRecord(m.MessageId!, m.ReceiptHandle!, m.Body!, arn, m.Attributes ?? {})) };
  const response = (await handler(event, options.context?.() ?? lambdaContext())) as { batchItemFailures?: { itemIdentifier: string }[] } | undefined;
  const failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
  const done = Messages.filter((m) => !failed.has(m.MessageId!));
  if (done.length > 0) {
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  return { received: Messages.length, failed: failed.size };
}

export function sqsRecord(messageId: string, receiptHandle: string, body: string, arn: string, attributes: Record<string, string> = {}): SQSRecord {
  return {
    messageId,
    receiptHandle,
    body,
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: 'us-east-1',
  };
}

export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<{ visible: number; inFlight: number; delayed: number }> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'],
    }),
  );
  return {
    visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
    delayed: Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0),
  };
}

/**
 * Runs the event sources of several queues until none has a message to deliver or in flight
 * (delayed messages, i.e. scheduled retries, are left alone). Returns invocations per queue.
 */
export async function drain(
  sqs: SQSClient,
  sources: { name: string; url: string; arn: string; handler: Handler; batchSize?: number; context?: () => Context }[],
  options: { timeoutMs?: number } = {},
): Promise<Record<string, { invocations: number; messages: number; failed: number }>> {
  const stats = Object.fromEntries(sources.map((s) => [s.name, { invocations: 0, messages: 0, failed: 0 }]));
  const until = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < until) {
    let received = 0;
    for (const source of sources) {
      const result = await pollOnce(sqs, source.url, source.arn, source.handler, source);
      if (result.received > 0) {
        const s = stats[source.name]!;
        s.invocations++;
        s.messages += result.received;
        s.failed += result.failed;
      }
      received += result.received;
    }
    if (received > 0) continue;
    const depths = await Promise.all(sources.map((s) => queueDepth(sqs, s.url)));
    if (depths.every((d) => d.inFlight === 0 && d.visible === 0)) return stats;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`queues not drained within ${options.timeoutMs ?? 60_000} ms`);
}
