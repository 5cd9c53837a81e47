// `osls package` runs offline with dummy credentials; the CloudFormation it generates is asserted:
// functions, queues and dead-letter queues, table, schedules, alarms, dashboard, and IAM per function.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_SCHEMA } from '../../shared/aws/dynamodb-store.js';

type Resource = { Type: string; Properties: Record<string, any>; Condition?: string };
let resources: Record<string, Resource>;
let outDir: string;

beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), 'osls-package-'));
  // The function bundles were built by the global test setup (scripts/build.mjs -> build-functions.mjs).
  await promisify(execFile)(process.execPath, ['node_modules/osls/bin/serverless.js', 'package', '--package', outDir], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1', SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' },
    timeout: 120_000,
  });
  resources = JSON.parse(readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')).Resources;
}, 150_000);

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const FUNCTIONS = [
  { id: 'FanOutLambdaFunction', name: 'fanOut', dir: 'fan-out', role: 'FanOutRole', queue: 'FanOutQueue', timeout: 300 },
  { id: 'SyncLambdaFunction', name: 'sync', dir: 'sync', role: 'SyncRole', queue: 'SyncQueue', timeout: 900 },
  { id: 'VerifyLambdaFunction', name: 'verify', dir: 'verify', role: 'VerifyRole', queue: 'VerifyQueue', timeout: 300 },
];

describe('the packaged CloudFormation template', () => {
  it.each(FUNCTIONS)('$name: Node.js 22 on arm64, its own bundle and role, no credentials in its environment', ({ id, name, dir, role, timeout }) => {
    const fn = resources[id]!.Properties;
    expect(fn).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Handler: `dist/functions/${dir}/index.handler`, Timeout: timeout, Role: { 'Fn::GetAtt': [role, 'Arn'] } });
    const variables = Object.keys(fn.Environment.Variables);
    expect(variables).toContain('GEO_SYNC_CREDENTIALS_SECRET');
    expect(variables.filter((v) => /PASSWORD|USERNAME|TOKEN/.test(v))).toEqual([]);
    const zip = readFileSync(join(outDir, `${name}.zip`)).toString('latin1');
    expect(zip).toContain(`dist/functions/${dir}/index.mjs`);
    expect(FUNCTIONS.filter((f) => f.dir !== dir && zip.includes(`dist/functions/${f.dir}/`))).toEqual([]);
  });

  it.each(FUNCTIONS)('$name: its queue dead-letters after 3 receives, hides messages 6x the timeout, reports partial batch failures', ({ id, queue, timeout }) => {
    const props = resources[queue]!.Properties;
    expect(props.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout);
    expect(props.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [queue.replace('Queue', 'DeadLetterQueue'), 'Arn'] }, maxReceiveCount: 3 });
    const mapping = ofType('AWS::Lambda::EventSourceMapping').find(([, r]) => r.Properties.FunctionName['Fn::GetAtt'][0] === id)![1].Properties;
    expect(mapping.EventSourceArn).toEqual({ 'Fn::GetAtt': [queue, 'Arn'] });
    expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
  });

  it.each([
    ['sync', 'SyncLambdaFunction', 'GEO_SYNC_SYNC_QUEUE_URL', 'SyncQueue', 'SyncDeferred'],
    ['verify', 'VerifyLambdaFunction', 'GEO_SYNC_VERIFY_QUEUE_URL', 'VerifyQueue', 'VerifyDeferred'],
  ])('%s: knows its own queue, to send back a message that found the lease held, and the dashboard counts those deferrals', (_name, id, variable, queue, metric) => {
    expect(resources[id]!.Properties.Environment.Variables[variable]).toEqual({ Ref: queue });
    expect(resources.Dashboard!.Properties.DashboardBody['Fn::Sub'][0]).toContain(`"${metric}"`);
  });

  it('bounds the sync function\'s concurrency at the event source, to spare the registries', () => {
    const mapping = ofType('AWS::Lambda::EventSourceMapping').find(([, r]) => r.Properties.FunctionName['Fn::GetAtt'][0] === 'SyncLambdaFunction')![1];
    expect(mapping.Properties.ScalingConfig).toEqual({ MaximumConcurrency: 20 });
  });

  it('declares the state table on demand, with point-in-time recovery, the keys and indexes the store uses', () => {
    const table = resources.StateTable!.Properties;
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.KeySchema).toEqual([
      { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
    ]);
    expect(table.GlobalSecondaryIndexes.map((i: any) => [i.IndexName, i.KeySchema[0].AttributeName, i.KeySchema[1].AttributeName])).toEqual(
      TABLE_SCHEMA.indexes.map((i) => [i.name, i.partitionKey, i.sortKey]),
    );
  });

  it('schedules a catalog-wide sync and a slower deep verification on EventBridge', () => {
    const rules = ofType('AWS::Events::Rule').map(([, r]) => [r.Properties.ScheduleExpression, JSON.parse(r.Properties.Targets[0].Input)]);
    expect(rules).toEqual([
      ['rate(1 hour)', { target: 'sync' }],
      ['rate(1 day)', { target: 'verify', deep: true }],
    ]);
  });

  it('alarms on dead letters, function errors, repositories out of sync, a held guard, refused deletes and a stalled fan-out, all to one topic', () => {
    const alarms: Record<string, any> = Object.fromEntries(ofType('AWS::CloudWatch::Alarm').map(([id, r]) => [id, r.Properties]));
    expect(Object.keys(alarms).sort()).toEqual([
      'DeletesRefusedAlarm', 'FanOutDeadLetterQueueAlarm', 'FanOutErrorsAlarm', 'FanOutStalledAlarm', 'NotifyErrorsAlarm', 'NotifyThrottlesAlarm', 'PruneGuardHeldAlarm',
      'ReplicationLagAlarm', 'RepositoriesOutOfSyncAlarm', 'SyncDeadLetterQueueAlarm', 'SyncErrorsAlarm', 'VerifyDeadLetterQueueAlarm', 'VerifyErrorsAlarm',
    ]);
    for (const alarm of Object.values(alarms)) expect(alarm.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
    expect(alarms.SyncDeadLetterQueueAlarm.Dimensions).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['SyncDeadLetterQueue', 'QueueName'] } }]);
    expect(alarms.SyncErrorsAlarm).toMatchObject({ Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'SyncLambdaFunction' } }] });
    expect(alarms.RepositoriesOutOfSyncAlarm.Metrics.map((m: any) => m.MetricStat?.Metric.MetricName ?? m.Expression)).toEqual(['SyncFailed', 'VerifyMismatch', 'FILL(failed, 0) + FILL(mismatched, 0)']);
    expect(alarms.FanOutStalledAlarm).toMatchObject({ Namespace: 'GeoRegistrySync', MetricName: 'FanOutRunsCompleted', TreatMissingData: 'breaching' });
    expect(JSON.stringify(resources.Dashboard!.Properties.DashboardBody)).toContain('SyncFailed');
    // Any held guard (or refused delete) in an hour raises its alarm: nothing retries it, a human decides.
    for (const [id, metric] of [['PruneGuardHeldAlarm', 'SyncGuardHeld'], ['DeletesRefusedAlarm', 'SyncDeletesRefused']]) {
      expect(alarms[id!]).toMatchObject({ Namespace: 'GeoRegistrySync', MetricName: metric, Dimensions: [{ Name: 'service', Value: 'geo-registry-sync' }], Statistic: 'Sum', Period: 3600, Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
    }
  });

  it('the dashboard charts held guards and refused deletes, and shows their alarms', () => {
    const [body, values] = resources.Dashboard!.Properties.DashboardBody['Fn::Sub'] as [string, Record<string, unknown>];
    // CloudWatch takes only valid JSON; the placeholders sit inside strings.
    const widgets = (JSON.parse(body.replace(/\$\{[^}]+\}/g, 'x')) as { widgets: { properties: { title: string } }[] }).widgets;
    expect(widgets.map((w) => w.properties.title)).toContain('Held for a human: prune guard held, deletes refused');
    expect(body).toContain('[["GeoRegistrySync", "SyncGuardHeld", "service", "geo-registry-sync"], [".", "SyncDeletesRefused", ".", "."]]');
    expect(body).toContain('"${GuardHeldAlarm}", "${RefusedAlarm}"');
    expect(values).toMatchObject({ GuardHeldAlarm: { 'Fn::GetAtt': ['PruneGuardHeldAlarm', 'Arn'] }, RefusedAlarm: { 'Fn::GetAtt': ['DeletesRefusedAlarm', 'Arn'] } });
  });

  it.each([
    ['FanOutRole', 'fanOut', [
      'dynamodb:GetItem StateTable', 'dynamodb:PutItem StateTable',
      'sqs:DeleteMessage FanOutQueue', 'sqs:GetQueueAttributes FanOutQueue', 'sqs:ReceiveMessage FanOutQueue',
      'sqs:SendMessage FanOutQueue', 'sqs:SendMessage SyncQueue', 'sqs:SendMessage VerifyQueue',
    ]],
    ['SyncRole', 'sync', [
      'dynamodb:GetItem StateTable', 'dynamodb:PutItem StateTable', 'dynamodb:UpdateItem StateTable',
      'sqs:DeleteMessage SyncQueue', 'sqs:GetQueueAttributes SyncQueue', 'sqs:ReceiveMessage SyncQueue',
      'sqs:SendMessage SyncQueue', 'sqs:SendMessage VerifyQueue',
    ]],
    ['VerifyRole', 'verify', [
      'dynamodb:GetItem StateTable', 'dynamodb:PutItem StateTable', 'dynamodb:UpdateItem StateTable',
      'sqs:DeleteMessage VerifyQueue', 'sqs:GetQueueAttributes VerifyQueue', 'sqs:ReceiveMessage VerifyQueue',
      'sqs:SendMessage VerifyQueue',
    ]],
  ])('%s grants only what %s needs', (role, fn, expected) => {
    const statements = resources[role]!.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement) as { Effect: string; Action: string | string[]; Resource: any }[];
    const grants = statements.flatMap((s) => {
      expect(s.Effect).toBe('Allow');
      const actions = [s.Action].flat();
      return actions.flatMap((action) => [s.Resource].flat().map((resource) => `${action} ${resourceName(resource)}`));
    });
    expect(grants.sort()).toEqual(
      [...expected, 'logs:CreateLogStream own-log-group', 'logs:PutLogEvents own-log-group', 'secretsmanager:GetSecretValue registry-credentials-secret'].sort(),
    );
    const logGroup = statements.find((s) => [s.Action].flat().includes('logs:PutLogEvents'))!.Resource['Fn::Sub'];
    expect(logGroup).toMatch(new RegExp(`log-group:/aws/lambda/geo-registry-sync-dev-${fn}:\\*$`));
  });
});

/** A readable name for a policy resource; anything broader than one named resource fails the comparison. */
function resourceName(resource: any): string {
  if (resource?.['Fn::GetAtt']) return resource['Fn::GetAtt'][0];
  const sub: string | undefined = resource?.['Fn::Sub'];
  if (sub?.includes(':log-group:/aws/lambda/')) return 'own-log-group';
  if (sub?.endsWith(':secret:geo-registry-sync/registries-??????')) return 'registry-credentials-secret';
  return JSON.stringify(resource);
}
