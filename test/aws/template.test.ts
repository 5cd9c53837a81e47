// `osls package` runs offline with dummy credentials; the CloudFormation it generates is asserted:
// functions, queues and dead-letter queues, table, schedules, alarms, dashboard, IAM per function,
// encryption and retention defaults, and what each function's zip holds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_SCHEMA } from '../../shared/aws/dynamodb-store.js';
import { METRIC_NAMES } from '../../shared/jobs/ports.js';
import { packageService, type PackagedService } from './support/package.js';
import { readZip } from './support/zip.js';

let service: PackagedService;
let resources: PackagedService['template']['Resources'];
let outDir: string;

beforeAll(async () => {
  service = await packageService();
  outDir = service.dir;
  resources = service.template.Resources;
}, 150_000);

afterAll(() => service?.remove());

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const FUNCTIONS = [
  { id: 'FanOutLambdaFunction', name: 'fanOut', dir: 'fan-out', role: 'FanOutRole', queue: 'FanOutQueue', timeout: 300 },
  { id: 'SyncLambdaFunction', name: 'sync', dir: 'sync', role: 'SyncRole', queue: 'SyncQueue', timeout: 900 },
  { id: 'VerifyLambdaFunction', name: 'verify', dir: 'verify', role: 'VerifyRole', queue: 'VerifyQueue', timeout: 300 },
];

describe('the packaged CloudFormation template', () => {
  it.each(FUNCTIONS)('$name: Node.js 22 on arm64, its own bundle and role, no credentials in its environment', ({ id, dir, role, timeout }) => {
    const fn = resources[id]!.Properties;
    expect(fn).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: `dist/functions/${dir}/index.handler`,
      Timeout: timeout,
      Role: { 'Fn::GetAtt': [role, 'Arn'] },
    });
    const variables = Object.keys(fn.Environment.Variables);
    expect(variables).toContain('GEO_SYNC_CREDENTIALS_SECRET');
    expect(variables.filter((v) => /PASSWORD|USERNAME|TOKEN/.test(v))).toEqual([]);
  });

  it('gives each function only the settings it reads', () => {
    const settings = (id: string) =>
      Object.keys(resources[id]!.Properties.Environment.Variables)
        .filter((v) => v.startsWith('GEO_SYNC_'))
        .sort();
    const registries = [
      'GEO_SYNC_CREDENTIALS_SECRET',
      'GEO_SYNC_INVOCATIONS_AT_ONCE',
      'GEO_SYNC_PRIMARY_REGION',
      'GEO_SYNC_PRIMARY_REGISTRY_ID',
      'GEO_SYNC_PRIMARY_REQUESTS_PER_SECOND',
      'GEO_SYNC_PRIMARY_ROLE_ARN',
      'GEO_SYNC_PRIMARY_TYPE',
      'GEO_SYNC_PRIMARY_URL',
      'GEO_SYNC_REGISTRY_MAX_IN_FLIGHT',
      'GEO_SYNC_SECONDARIES',
      'GEO_SYNC_TABLE',
    ];
    // The fan-out lists the primary: its repository source too (each set only when its parameter is given).
    const repositorySource = ['GEO_SYNC_GITLAB_GROUPS', 'GEO_SYNC_GITLAB_PROJECTS', 'GEO_SYNC_GITLAB_URL', 'GEO_SYNC_REPOSITORIES'];
    expect(settings('FanOutLambdaFunction')).toEqual(
      [
        ...registries,
        ...repositorySource,
        'GEO_SYNC_FAN_OUT_QUEUE_URL',
        'GEO_SYNC_READY_MAX_AGE',
        'GEO_SYNC_SYNC_QUEUE_URL',
        'GEO_SYNC_VERIFY_QUEUE_URL',
      ].sort(),
    );
    expect(settings('SyncLambdaFunction')).toEqual([...registries, 'GEO_SYNC_REFERRERS', 'GEO_SYNC_SYNC_QUEUE_URL', 'GEO_SYNC_VERIFY_QUEUE_URL'].sort());
    expect(settings('VerifyLambdaFunction')).toEqual([...registries, 'GEO_SYNC_REFERRERS', 'GEO_SYNC_VERIFY_QUEUE_URL'].sort());
    // notify reads no registry and no record: the secondaries' scopes, its queue, its token's secret,
    // and which registry the primary is (an ECR primary's events carry work, no other registry's).
    expect(settings('NotifyLambdaFunction')).toEqual([
      'GEO_SYNC_PRIMARY_REGION',
      'GEO_SYNC_PRIMARY_REGISTRY_ID',
      'GEO_SYNC_PRIMARY_TYPE',
      'GEO_SYNC_PRIMARY_URL',
      'GEO_SYNC_SECONDARIES',
      'GEO_SYNC_SYNC_QUEUE_URL',
      'GEO_SYNC_WEBHOOK_SECRET',
    ]);
    // Referrers are synced and verified unless the stack parameter turns them off.
    expect(resources.SyncLambdaFunction!.Properties.Environment.Variables.GEO_SYNC_REFERRERS).toBe('on');
  });

  it('ECR: each role gets exactly the ECR actions its function calls, on the configured repositories, and only when ECR is configured', () => {
    const ecrStatements = (role: string) =>
      (resources[role]!.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement) as any[])
        .filter((statement) => 'Fn::If' in statement)
        .map((statement) => {
          const [condition, granted, otherwise] = statement['Fn::If'];
          expect(otherwise).toEqual({ Ref: 'AWS::NoValue' });
          return { condition, actions: [granted.Action].flat().sort(), resource: granted.Resource };
        });
    const repositories = (param: string) => ({ 'Fn::Split': [',', param] });
    const read = [
      'ecr:BatchCheckLayerAvailability',
      'ecr:BatchGetImage',
      'ecr:DescribeImages',
      'ecr:DescribeRepositories',
      'ecr:GetDownloadUrlForLayer',
      'ecr:ListImages',
    ];
    const write = [
      ...read,
      'ecr:BatchDeleteImage',
      'ecr:CompleteLayerUpload',
      'ecr:CreateRepository',
      'ecr:InitiateLayerUpload',
      'ecr:PutImage',
      'ecr:TagResource',
      'ecr:UploadLayerPart',
    ].sort();
    const token = { condition: 'ReachesEcr', actions: ['ecr:GetAuthorizationToken'], resource: '*' };
    const roles = { condition: 'AssumesEcrRoles', actions: ['sts:AssumeRole'], resource: repositories('') };
    expect(ecrStatements('FanOutRole')).toEqual([{ condition: 'ReadsEcrPrimary', actions: ['ecr:DescribeRepositories'], resource: repositories('') }, roles]);
    expect(ecrStatements('SyncRole')).toEqual([
      token,
      roles,
      { condition: 'ReadsEcrPrimary', actions: read, resource: repositories('') },
      { condition: 'WritesEcrSecondaries', actions: write, resource: repositories('') },
    ]);
    expect(ecrStatements('VerifyRole')).toEqual([
      token,
      roles,
      { condition: 'ReadsEcrPrimary', actions: read, resource: repositories('') },
      { condition: 'WritesEcrSecondaries', actions: read, resource: repositories('') },
    ]);
    // Notify reads no registry: no ECR permission whatever the configuration.
    expect(JSON.stringify(resources.NotifyRole!.Properties.Policies)).not.toContain('ecr:');
    // With no ECR repository configured, every condition is false: no ECR permission is granted.
    const conditions = (service.template as any).Conditions;
    expect(conditions.ReadsEcrPrimary).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['', ''] }] });
    expect(conditions.WritesEcrSecondaries).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['', ''] }] });
  });

  it.each(FUNCTIONS)('$name: its zip holds only its own minified bundle, no source map, and nothing asks for one', ({ id, name, dir }) => {
    const zip = readZip(join(outDir, `${name}.zip`));
    expect(zip.entries.map((e) => e.name)).toEqual([`dist/functions/${dir}/index.mjs`]);
    const bundle = zip.read(`dist/functions/${dir}/index.mjs`);
    expect(bundle.equals(readFileSync(`dist/functions/${dir}/index.mjs`))).toBe(true);
    // Minified: a few hundred long lines (unminified, the same bundle has ~60,000 lines of ~40 bytes).
    const lines = bundle.toString('utf8').split('\n').length;
    expect(bundle.length / lines).toBeGreaterThan(1000);
    expect(bundle.toString('utf8')).toContain('export{');
    // No map is shipped, so no function pays for --enable-source-maps at start.
    expect(resources[id]!.Properties.Environment.Variables.NODE_OPTIONS).toBeUndefined();
  });

  it.each(FUNCTIONS)(
    '$name: its queue dead-letters after 3 receives, hides messages 6x the timeout, reports partial batch failures',
    ({ id, queue, timeout }) => {
      const props = resources[queue]!.Properties;
      expect(props.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout);
      expect(props.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [queue.replace('Queue', 'DeadLetterQueue'), 'Arn'] }, maxReceiveCount: 3 });
      const mapping = ofType('AWS::Lambda::EventSourceMapping').find(([, r]) => r.Properties.FunctionName['Fn::GetAtt'][0] === id)![1].Properties;
      expect(mapping.EventSourceArn).toEqual({ 'Fn::GetAtt': [queue, 'Arn'] });
      expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    },
  );

  it.each([
    ['sync', 'SyncLambdaFunction', 'GEO_SYNC_SYNC_QUEUE_URL', 'SyncQueue', 'SyncDeferred'],
    ['verify', 'VerifyLambdaFunction', 'GEO_SYNC_VERIFY_QUEUE_URL', 'VerifyQueue', 'VerifyDeferred'],
  ])(
    '%s: knows its own queue, to send back a message that found the lease held, and the dashboard counts those deferrals',
    (_name, id, variable, queue, metric) => {
      expect(resources[id]!.Properties.Environment.Variables[variable]).toEqual({ Ref: queue });
      expect(resources.Dashboard!.Properties.DashboardBody['Fn::Sub'][0]).toContain(`"${metric}"`);
    },
  );

  it.each(FUNCTIONS)(
    "$name: its queue and dead-letter queue are encrypted (SSE-SQS), and the dead-letter queue takes only that queue's messages",
    ({ queue }) => {
      const deadLetter = queue.replace('Queue', 'DeadLetterQueue');
      const name = resources[queue]!.Properties.QueueName as string;
      expect(name).toMatch(/^geo-registry-sync-dev-[a-z-]+$/);
      expect(resources[queue]!.Properties).toMatchObject({ SqsManagedSseEnabled: true });
      expect(resources[queue]!.Properties.KmsMasterKeyId).toBeUndefined();
      expect(resources[deadLetter]!.Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        RedriveAllowPolicy: {
          redrivePermission: 'byQueue',
          sourceQueueArns: [{ 'Fn::Sub': `arn:\${AWS::Partition}:sqs:\${AWS::Region}:\${AWS::AccountId}:${name}` }],
        },
      });
    },
  );

  it("keeps the functions' logs 365 days by default (logRetentionDays)", () => {
    expect(FUNCTIONS.map((f) => resources[`${f.id.replace('LambdaFunction', '')}LogGroup`]!.Properties.RetentionInDays)).toEqual([365, 365, 365]);
  });

  it('the deployment bucket: KMS-encrypted, versioned with replaced artifacts expiring, no public access, HTTPS only', () => {
    const bucket = resources.ServerlessDeploymentBucket!.Properties;
    expect(bucket.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }],
    });
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.LifecycleConfiguration.Rules).toEqual([expect.objectContaining({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 30 } })]);
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const statements = resources.ServerlessDeploymentBucketPolicy!.Properties.PolicyDocument.Statement;
    expect(statements).toEqual([
      expect.objectContaining({ Effect: 'Deny', Principal: '*', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]);
    expect(statements[0].Resource).toEqual([
      { 'Fn::GetAtt': ['ServerlessDeploymentBucket', 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['ServerlessDeploymentBucket', 'Arn'] }, '/*']] },
    ]);
  });

  it("a logRetentionDays param sets every log group's retention", async () => {
    const other = await packageService(['--param=logRetentionDays=30']);
    try {
      const groups = Object.values(other.template.Resources).filter((r) => r.Type === 'AWS::Logs::LogGroup');
      expect(groups.map((g) => g.Properties.RetentionInDays)).toEqual([30, 30, 30, 30]);
    } finally {
      other.remove();
    }
  }, 150_000);

  const eventSourceOf = (functionId: string) =>
    ofType('AWS::Lambda::EventSourceMapping').find(([, r]) => r.Properties.FunctionName['Fn::GetAtt'][0] === functionId)![1];

  it("bounds the sync and verify functions' concurrency at their event sources, to spare the registries", () => {
    expect(eventSourceOf('SyncLambdaFunction').Properties.ScalingConfig).toEqual({ MaximumConcurrency: 20 });
    expect(eventSourceOf('VerifyLambdaFunction').Properties.ScalingConfig).toEqual({ MaximumConcurrency: 10 });
  });

  it.each(FUNCTIONS)(
    '$name: takes its share of registryMaxInFlight, split over as many sync and verify invocations as their event sources let run at once',
    ({ id }) => {
      const [sync, verify] = [eventSourceOf('SyncLambdaFunction'), eventSourceOf('VerifyLambdaFunction')];
      const variables = resources[id]!.Properties.Environment.Variables;
      expect(variables.GEO_SYNC_REGISTRY_MAX_IN_FLIGHT).toBe('1920');
      expect(variables.GEO_SYNC_INVOCATIONS_AT_ONCE).toBe(
        `${sync.Properties.ScalingConfig.MaximumConcurrency}+${verify.Properties.ScalingConfig.MaximumConcurrency}`,
      );
    },
  );

  it('declares the state table on demand, with point-in-time recovery, encrypted under the AWS managed KMS key, the keys and indexes the store uses', () => {
    const table = resources.StateTable!.Properties;
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.SSESpecification).toEqual({ SSEEnabled: true, SSEType: 'KMS' });
    expect(table.KeySchema).toEqual([
      { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
    ]);
    expect(table.GlobalSecondaryIndexes.map((i: any) => [i.IndexName, i.KeySchema[0].AttributeName, i.KeySchema[1].AttributeName])).toEqual(
      TABLE_SCHEMA.indexes.map((i) => [i.name, i.partitionKey, i.sortKey]),
    );
  });

  it('schedules a catalog-wide sync and a slower deep verification on EventBridge', () => {
    const rules = ofType('AWS::Events::Rule')
      .filter(([, r]) => r.Properties.ScheduleExpression)
      .map(([, r]) => [r.Properties.ScheduleExpression, JSON.parse(r.Properties.Targets[0].Input)]);
    expect(rules).toEqual([
      ['rate(1 hour)', { target: 'sync' }],
      ['rate(1 day)', { target: 'verify', deep: true }],
    ]);
  });

  it('alarms on dead letters, function errors, repositories out of sync, a held guard, refused deletes or tags and a stalled fan-out, all to one topic', () => {
    const alarms: Record<string, any> = Object.fromEntries(ofType('AWS::CloudWatch::Alarm').map(([id, r]) => [id, r.Properties]));
    expect(Object.keys(alarms).sort()).toEqual([
      'DeletesRefusedAlarm',
      'FanOutDeadLetterQueueAlarm',
      'FanOutErrorsAlarm',
      'FanOutStalledAlarm',
      'NotReadyAlarm',
      'NotifyErrorsAlarm',
      'NotifyThrottlesAlarm',
      'PruneGuardHeldAlarm',
      'ReplicationLagAlarm',
      'RepositoriesOutOfSyncAlarm',
      'SyncDeadLetterQueueAlarm',
      'SyncErrorsAlarm',
      'TagsRefusedAlarm',
      'VerifyDeadLetterQueueAlarm',
      'VerifyErrorsAlarm',
    ]);
    for (const alarm of Object.values(alarms)) expect(alarm.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
    expect(alarms.SyncDeadLetterQueueAlarm.Dimensions).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['SyncDeadLetterQueue', 'QueueName'] } }]);
    expect(alarms.SyncErrorsAlarm).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'SyncLambdaFunction' } }],
    });
    expect(alarms.RepositoriesOutOfSyncAlarm.Metrics.map((m: any) => m.MetricStat?.Metric.MetricName ?? m.Expression)).toEqual([
      'SyncFailed',
      'VerifyMismatch',
      'FILL(failed, 0) + FILL(mismatched, 0)',
    ]);
    expect(alarms.FanOutStalledAlarm).toMatchObject({ Namespace: 'GeoRegistrySync', MetricName: 'FanOutRunsCompleted', TreatMissingData: 'breaching' });
    expect(JSON.stringify(resources.Dashboard!.Properties.DashboardBody)).toContain('SyncFailed');
    // Any held guard (or refused delete) in an hour raises its alarm: nothing retries it, a human decides.
    for (const [id, metric] of [
      ['PruneGuardHeldAlarm', 'SyncGuardHeld'],
      ['DeletesRefusedAlarm', 'SyncDeletesRefused'],
      ['TagsRefusedAlarm', 'SyncTagsRefused'],
    ]) {
      expect(alarms[id!]).toMatchObject({
        Namespace: 'GeoRegistrySync',
        MetricName: metric,
        Dimensions: [{ Name: 'service', Value: 'geo-registry-sync' }],
        Statistic: 'Sum',
        Period: 3600,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
    }
  });

  it("every metric of the service's namespace in the alarms and the dashboard is one the code emits (METRIC_NAMES)", () => {
    const known = new Set<string>(METRIC_NAMES);
    const named: string[] = [];
    for (const [, alarm] of ofType('AWS::CloudWatch::Alarm')) {
      const { Namespace, MetricName, Metrics } = alarm.Properties;
      if (Namespace === 'GeoRegistrySync') named.push(MetricName);
      for (const metric of Metrics ?? []) if (metric.MetricStat?.Metric.Namespace === 'GeoRegistrySync') named.push(metric.MetricStat.Metric.MetricName);
    }
    const [body] = resources.Dashboard!.Properties.DashboardBody['Fn::Sub'] as [string];
    const widgets = (JSON.parse(body.replace(/\$\{[^}]+\}/g, 'x')) as { widgets: { properties: { metrics?: unknown[][] } }[] }).widgets;
    for (const widget of widgets) {
      // A metric row repeats its namespace as "." after the first.
      let namespace: unknown;
      for (const row of widget.properties.metrics ?? []) {
        if (typeof row[0] !== 'string') continue;
        namespace = row[0] === '.' || row[0] === '...' ? namespace : row[0];
        // "..." repeats the whole metric above with other options: no new name.
        if (namespace === 'GeoRegistrySync' && typeof row[1] === 'string') named.push(row[1]);
      }
    }
    expect(named).toContain('SyncFailed');
    expect(named).toContain('ReplicationLagSeconds');
    expect(named.filter((name) => !known.has(name))).toEqual([]);
  });

  it('the dashboard charts held guards, refused deletes and refused tags, and shows their alarms', () => {
    const [body, values] = resources.Dashboard!.Properties.DashboardBody['Fn::Sub'] as [string, Record<string, unknown>];
    // CloudWatch takes only valid JSON; the placeholders sit inside strings.
    const widgets = (JSON.parse(body.replace(/\$\{[^}]+\}/g, 'x')) as { widgets: { properties: { title: string } }[] }).widgets;
    expect(widgets.map((w) => w.properties.title)).toContain('Held for a human: prune guard held, deletes refused');
    expect(body).toContain(
      '[["GeoRegistrySync", "SyncGuardHeld", "service", "geo-registry-sync"], [".", "SyncDeletesRefused", ".", "."], [".", "SyncTagsRefused", ".", "."]]',
    );
    expect(body).toContain('"${GuardHeldAlarm}", "${RefusedAlarm}"');
    expect(values).toMatchObject({
      GuardHeldAlarm: { 'Fn::GetAtt': ['PruneGuardHeldAlarm', 'Arn'] },
      RefusedAlarm: { 'Fn::GetAtt': ['DeletesRefusedAlarm', 'Arn'] },
    });
  });

  it('alarms when no reading in notReadyAlarmMinutes said every secondary ready, and charts readiness per secondary', () => {
    const alarm = resources.NotReadyAlarm!.Properties;
    // SecondaryReady's `secondary` values are the configuration's, unknown to the template: the
    // alarm watches the count without that dimension, each minute repeating the last reading.
    expect(alarm.Metrics).toEqual([
      {
        Id: 'notReady',
        ReturnData: false,
        MetricStat: {
          Metric: { Namespace: 'GeoRegistrySync', MetricName: 'SecondariesNotReady', Dimensions: [{ Name: 'service', Value: 'geo-registry-sync' }] },
          Period: 60,
          Stat: 'Maximum',
        },
      },
      { Id: 'lastReading', Expression: 'FILL(notReady, REPEAT)', Label: 'Secondaries not ready (last reading)', ReturnData: true },
    ]);
    expect(alarm).toMatchObject({
      EvaluationPeriods: 120,
      DatapointsToAlarm: 120,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'breaching',
    });
    expect(resources.FanOutLambdaFunction!.Properties.Environment.Variables.GEO_SYNC_READY_MAX_AGE).toBe('25h');

    const [body, values] = resources.Dashboard!.Properties.DashboardBody['Fn::Sub'] as [string, Record<string, unknown>];
    type Widget = { type: string; properties: { title: string; metrics?: unknown[][]; alarms?: string[] } };
    const widgets = (JSON.parse(body.replace(/\$\{[^}]+\}/g, 'x')) as { widgets: Widget[] }).widgets;
    const readiness = widgets.filter((w) => w.properties.title.startsWith('Readiness:'));
    const expressions = readiness.flatMap((w) =>
      w.properties.metrics!.flatMap((row) => (typeof row[0] === 'object' ? [(row[0] as { expression: string }).expression] : [])),
    );
    // Every secondary's line, whatever its name: a SEARCH over the `secondary` dimension.
    expect(expressions).toEqual(
      ['SecondaryReady', 'RepositoriesNotReady', 'OldestVerificationAge'].map((metric) =>
        expect.stringContaining(`{GeoRegistrySync,secondary,service} MetricName="${metric}"`),
      ),
    );
    expect(JSON.stringify(readiness)).toContain('"SecondariesNotReady"');
    expect(body).toContain('"${NotReadyAlarm}"');
    expect(values).toMatchObject({ NotReadyAlarm: { 'Fn::GetAtt': ['NotReadyAlarm', 'Arn'] } });
  });

  it.each([
    [
      'FanOutRole',
      'fanOut',
      [
        'dynamodb:GetItem StateTable',
        'dynamodb:PutItem StateTable',
        'dynamodb:Scan StateTable',
        'sqs:DeleteMessage FanOutQueue',
        'sqs:GetQueueAttributes FanOutQueue',
        'sqs:ReceiveMessage FanOutQueue',
        'sqs:SendMessage FanOutQueue',
        'sqs:SendMessage SyncQueue',
        'sqs:SendMessage VerifyQueue',
      ],
    ],
    [
      'SyncRole',
      'sync',
      [
        'dynamodb:GetItem StateTable',
        'dynamodb:PutItem StateTable',
        'dynamodb:UpdateItem StateTable',
        'sqs:DeleteMessage SyncQueue',
        'sqs:GetQueueAttributes SyncQueue',
        'sqs:ReceiveMessage SyncQueue',
        'sqs:SendMessage SyncQueue',
        'sqs:SendMessage VerifyQueue',
      ],
    ],
    [
      'VerifyRole',
      'verify',
      [
        'dynamodb:GetItem StateTable',
        'dynamodb:PutItem StateTable',
        'dynamodb:UpdateItem StateTable',
        'sqs:DeleteMessage VerifyQueue',
        'sqs:GetQueueAttributes VerifyQueue',
        'sqs:ReceiveMessage VerifyQueue',
        'sqs:SendMessage VerifyQueue',
      ],
    ],
  ])('%s grants only what %s needs', (role, fn, expected) => {
    const statements = resources[role]!.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement) as {
      Effect: string;
      Action: string | string[];
      Resource: any;
    }[];
    // ECR's statements are granted only with ECR configured (Fn::If): the ECR test checks them.
    const grants = statements
      .filter((s) => !('Fn::If' in s))
      .flatMap((s) => {
        expect(s.Effect).toBe('Allow');
        const actions = [s.Action].flat();
        return actions.flatMap((action) => [s.Resource].flat().map((resource) => `${action} ${resourceName(resource)}`));
      });
    expect(grants.sort()).toEqual(
      [
        ...expected,
        'logs:CreateLogStream own-log-group',
        'logs:PutLogEvents own-log-group',
        'secretsmanager:GetSecretValue registry-credentials-secret',
      ].sort(),
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
