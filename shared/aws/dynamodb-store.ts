/** StateStore on DynamoDB: one item per (repository, secondary); the lease is a conditional write. */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { UploadSession } from '../engine/index.js';
import { normalizedRecord, withoutLease, type FanOutCheckpoint, type RecordKey, type RepositoryRecord, type StateStore } from '../jobs/index.js';

/** Fan-out checkpoints share the table under a partition key no repository name can take. */
const CHECKPOINT_PARTITION = '#fan-out';

/** The table's shape; serverless.yml declares the same and the template test checks they agree. */
export const TABLE_SCHEMA = {
  partitionKey: 'repository',
  sortKey: 'secondary',
  indexes: [
    { name: 'bySyncState', partitionKey: 'syncState', sortKey: 'updatedAt' },
    { name: 'byVerifyState', partitionKey: 'verifyState', sortKey: 'updatedAt' },
  ],
} as const;

export class DynamoDbStateStore implements StateStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  async get(key: RecordKey): Promise<RepositoryRecord | undefined> {
    const { Item } = await this.client.send(new GetItemCommand({ TableName: this.table, Key: toKey(key), ConsistentRead: true }));
    // Every read goes through normalizedRecord: records stored before the verify state spoke the
    // shared vocabulary ('succeeded', 'failed' for a mismatch) read in today's words.
    return Item ? normalizedRecord(fromItem(Item) as unknown as RepositoryRecord) : undefined;
  }

  async acquireLease(
    key: RecordKey,
    lease: { owner: string; expiresAt: number },
    now: number,
    fields: Partial<RepositoryRecord> = {},
  ): Promise<RepositoryRecord | undefined> {
    const stamp = new Date(now).toISOString();
    const set: Record<string, unknown> = { ...fields, leaseOwner: lease.owner, leaseExpiresAt: lease.expiresAt, updatedAt: stamp };
    // A first lease creates the record; these only fill what is missing.
    const defaults: Record<string, unknown> = { syncState: 'pending', verifyState: 'pending', retryCount: 0, createdAt: stamp };
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = { ':now': { N: String(now) } };
    const clauses: string[] = [];
    let i = 0;
    for (const [field, value] of Object.entries(set)) {
      names[`#f${i}`] = field;
      values[`:v${i}`] = toAttribute(value);
      clauses.push(`#f${i} = :v${i}`);
      i++;
    }
    for (const [field, value] of Object.entries(defaults)) {
      if (field in set) continue;
      names[`#f${i}`] = field;
      values[`:v${i}`] = toAttribute(value);
      clauses.push(`#f${i} = if_not_exists(#f${i}, :v${i})`);
      i++;
    }
    try {
      const { Attributes } = await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: toKey(key),
          UpdateExpression: `SET ${clauses.join(', ')}`,
          ConditionExpression: 'attribute_not_exists(#lease) OR #lease < :now',
          ExpressionAttributeNames: { ...names, '#lease': 'leaseExpiresAt' },
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return normalizedRecord(fromItem(Attributes!) as unknown as RepositoryRecord);
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  async release(record: RepositoryRecord, owner: string): Promise<boolean> {
    const item = withoutLease(record);
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: toItem(item),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'leaseOwner' },
          ExpressionAttributeValues: { ':owner': { S: owner } },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async saveProgress(key: RecordKey, owner: string, uploads: UploadSession[]): Promise<boolean> {
    const names = { '#owner': 'leaseOwner', '#uploads': 'uploads' };
    const owned = { ':owner': { S: owner } };
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: toKey(key),
          ...(uploads.length > 0
            ? { UpdateExpression: 'SET #uploads = :uploads', ExpressionAttributeValues: { ...owned, ':uploads': toAttribute(uploads) } }
            : { UpdateExpression: 'REMOVE #uploads', ExpressionAttributeValues: owned }),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: names,
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** Every record, by a paginated scan (fan-out checkpoints left out): the readiness report reads them all. */
  async list(): Promise<RepositoryRecord[]> {
    const records: RepositoryRecord[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(new ScanCommand({ TableName: this.table, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
      for (const item of page.Items ?? []) {
        if (item.repository?.S !== CHECKPOINT_PARTITION) records.push(normalizedRecord(fromItem(item) as unknown as RepositoryRecord));
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return records.sort((a, b) => a.repository.localeCompare(b.repository) || a.secondary.localeCompare(b.secondary));
  }

  async getCheckpoint(id: string): Promise<FanOutCheckpoint | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({ TableName: this.table, Key: toKey({ repository: CHECKPOINT_PARTITION, secondary: id }), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const { repository: _r, secondary: _s, ...checkpoint } = fromItem(Item);
    return checkpoint as unknown as FanOutCheckpoint;
  }

  async putCheckpoint(checkpoint: FanOutCheckpoint): Promise<void> {
    await this.client.send(
      new PutItemCommand({ TableName: this.table, Item: toItem({ repository: CHECKPOINT_PARTITION, secondary: checkpoint.id, ...checkpoint }) }),
    );
  }
}

function toKey(key: RecordKey): Record<string, AttributeValue> {
  return { repository: { S: key.repository }, secondary: { S: key.secondary } };
}

/** Plain JSON values to DynamoDB attributes; undefined fields are left out. */
export function toItem(value: object): Record<string, AttributeValue> {
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, toAttribute(v)]),
  );
}

function toAttribute(value: unknown): AttributeValue {
  if (value === null) return { NULL: true };
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (Array.isArray(value)) return { L: value.map(toAttribute) };
  if (typeof value === 'object') return { M: toItem(value as object) };
  throw new TypeError(`cannot store a ${typeof value} in DynamoDB`);
}

export function fromItem(item: Record<string, AttributeValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, fromAttribute(v)]));
}

function fromAttribute(value: AttributeValue): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.L !== undefined) return value.L.map(fromAttribute);
  if (value.M !== undefined) return fromItem(value.M);
  return null;
}
