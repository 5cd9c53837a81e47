/** Queue on SQS: SendMessageBatch, ten per call, several calls in flight; failed entries are resent. */
import { SendMessageBatchCommand, type SQSClient, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import { GeoSyncError, workerPool } from '../engine/index.js';
import type { Queue } from '../jobs/index.js';

const BATCH = 10;
const ATTEMPTS = 3;

export class SqsQueue<M> implements Queue<M> {
  constructor(
    private readonly client: SQSClient,
    private readonly url: string,
    /** SendMessageBatch calls in flight at once. */
    private readonly concurrency = 16,
  ) {}

  async send(messages: M[], options: { delaySeconds?: number } = {}): Promise<void> {
    const batches: SendMessageBatchRequestEntry[][] = [];
    for (let i = 0; i < messages.length; i += BATCH) {
      batches.push(
        messages.slice(i, i + BATCH).map((message, j) => ({
          Id: String(j),
          MessageBody: JSON.stringify(message),
          ...(options.delaySeconds ? { DelaySeconds: options.delaySeconds } : {}),
        })),
      );
    }
    let taken = 0;
    await workerPool(this.concurrency, () => {
      const batch = batches[taken++];
      return batch ? () => this.sendBatch(batch) : undefined;
    });
  }

  private async sendBatch(entries: SendMessageBatchRequestEntry[]): Promise<void> {
    let pending = entries;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const result = await this.client.send(new SendMessageBatchCommand({ QueueUrl: this.url, Entries: pending }));
      const failed = new Set((result.Failed ?? []).map((f) => f.Id));
      if (failed.size === 0) return;
      // SenderFault entries (bad input) will fail again; only throttling-like failures are worth a resend.
      const fault = (result.Failed ?? []).find((f) => f.SenderFault);
      if (fault || attempt >= ATTEMPTS) {
        const first = (result.Failed ?? [])[0];
        throw new GeoSyncError('QUEUE_SEND_FAILED', `SQS refused ${failed.size} message(s): ${first?.Code ?? 'unknown'} ${first?.Message ?? ''}`.trim(), {
          retryable: !fault,
        });
      }
      pending = pending.filter((e) => failed.has(e.Id));
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}
