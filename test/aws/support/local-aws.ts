// Local stand-ins for AWS started by the tests: dynalite (DynamoDB) and local-aws-sqs (SQS JSON
// protocol), on free loopback ports, with the table and queues serverless.yml declares.
import { CreateTableCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { TABLE_SCHEMA, fromItem } from '../../../shared/aws/dynamodb-store.js';

const require = createRequire(import.meta.url);
// Neither package ships types; each returns a plain node:http Server.
const dynalite = require('dynalite') as (options: { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number }) => Server;
const { createSqsServer } = require('local-aws-sqs') as { createSqsServer: (options: { port: number; hostname: string }) => Promise<Server> };

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
export const REGION = 'us-east-1';

export interface QueuePair {
  url: string;
  arn: string;
  deadLetterUrl: string;
}

export interface LocalAws {
  dynamoEndpoint: string;
  sqsEndpoint: string;
  dynamo: DynamoDBClient;
  sqs: SQSClient;
  table: string;
  queues: { sync: QueuePair; verify: QueuePair; fanOut: QueuePair };
  /** Every item of the table, as plain objects. */
  items(): Promise<Record<string, unknown>[]>;
  /** The environment the handlers read, pointing the real SDK clients at these servers. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

/** `visibilityTimeout` is short so redelivery and dead-lettering happen within a test. */
export async function startLocalAws(options: { visibilityTimeout?: number; maxReceiveCount?: number } = {}): Promise<LocalAws> {
  const dynamoServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => dynamoServer.listen(0, '127.0.0.1', resolve));
  const sqsServer = await createSqsServer({ port: 0, hostname: '127.0.0.1' });
  const dynamoEndpoint = `http://127.0.0.1:${portOf(dynamoServer)}`;
  const sqsEndpoint = `http://127.0.0.1:${portOf(sqsServer)}`;
  const dynamo = new DynamoDBClient({ region: REGION, endpoint: dynamoEndpoint, credentials });
  const sqs = new SQSClient({ region: REGION, endpoint: sqsEndpoint, credentials });
  const table = 'geo-sync-state';
  await createTable(dynamo, table);
  const queue = async (name: string): Promise<QueuePair> => {
    const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
    const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
    const main = await sqs.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          VisibilityTimeout: String(options.visibilityTimeout ?? 1),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxReceiveCount ?? 3 }),
        },
      }),
    );
    const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: main.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
    return { url: main.QueueUrl!, arn, deadLetterUrl: dlq.QueueUrl! };
  };
  const queues = { sync: await queue('sync'), verify: await queue('verify'), fanOut: await queue('fan-out') };

  return {
    dynamoEndpoint,
    sqsEndpoint,
    dynamo,
    sqs,
    table,
    queues,
    async items() {
      const items: Record<string, unknown>[] = [];
      let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
      do {
        const page = await dynamo.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
        items.push(...(page.Items ?? []).map(fromItem));
        start = page.LastEvaluatedKey;
      } while (start);
      return items;
    },
    env: () => ({
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_ENDPOINT_URL_SQS: sqsEndpoint,
      GEO_SYNC_TABLE: table,
      GEO_SYNC_SYNC_QUEUE_URL: queues.sync.url,
      GEO_SYNC_VERIFY_QUEUE_URL: queues.verify.url,
      GEO_SYNC_FAN_OUT_QUEUE_URL: queues.fanOut.url,
    }),
    async stop() {
      dynamo.destroy();
      sqs.destroy();
      await Promise.all([dynamoServer, sqsServer].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}

/** The table as serverless.yml declares it (the template test checks the two agree). */
export async function createTable(client: DynamoDBClient, name: string): Promise<void> {
  const keys = new Set<string>([TABLE_SCHEMA.partitionKey, TABLE_SCHEMA.sortKey, ...TABLE_SCHEMA.indexes.flatMap((i) => [i.partitionKey, i.sortKey])]);
  await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [...keys].map((AttributeName) => ({ AttributeName, AttributeType: 'S' })),
      KeySchema: [
        { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: TABLE_SCHEMA.indexes.map((index) => ({
        IndexName: index.name,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: 'HASH' },
          { AttributeName: index.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      })),
    }),
  );
}

function portOf(server: Server): number {
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('server is not listening on a TCP port');
  return address.port;
}
