/**
 * Coalescing on AWS: the event jobs one SQS batch holds for the same (repository, secondary) run as
 * one job, and each of their records shares its outcome (a failure fails them all, so SQS delivers
 * them again). Any other message runs alone; a record that does not parse fails alone.
 */
import type { SyncMessage } from '../messages.js';
import { mergeJobs } from './coalesce.js';

export function coalescedRecords<R extends { messageId: string }>(
  records: readonly R[],
  parse: (record: R) => SyncMessage,
  now: number,
  run: (message: SyncMessage) => Promise<unknown>,
): (record: R) => Promise<unknown> {
  const parsed: { record: R; message: SyncMessage }[] = [];
  const poison = new Map<string, unknown>();
  for (const record of records) {
    try {
      parsed.push({ record, message: parse(record) });
    } catch (error) {
      poison.set(record.messageId, error);
    }
  }
  const jobs = mergeJobs(
    parsed.map((p) => p.message),
    now,
  );
  const jobOf = new Map<string, { message: SyncMessage; outcome?: Promise<unknown> }>();
  for (const job of jobs) {
    const shared = { message: job.message };
    for (const index of job.from) jobOf.set(parsed[index]!.record.messageId, shared);
  }
  return async (record) => {
    if (poison.has(record.messageId)) throw poison.get(record.messageId);
    const job = jobOf.get(record.messageId);
    if (!job) throw new Error(`record ${record.messageId} is not in this batch`);
    job.outcome ??= run(job.message);
    return job.outcome;
  };
}
