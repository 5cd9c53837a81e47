// The event path in the packaged CloudFormation template (`osls package`, offline): the notify
// function behind a function URL, its least-privilege role, its alarms, the replication lag alarm
// and dashboard widgets.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageService, type PackagedService } from './support/package.js';

type Resource = { Type: string; Properties: Record<string, any>; Condition?: string };
let template: { Resources: Record<string, Resource>; Outputs: Record<string, any> };
let resources: Record<string, Resource>;
let packaged: PackagedService | undefined;

beforeAll(async () => {
  packaged = await packageService();
  template = packaged.template as unknown as typeof template;
  resources = template.Resources;
}, 150_000);

afterAll(() => packaged?.remove());

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

describe('the event path in the packaged template', () => {
  it("notify: Node.js 22 on arm64, its own bundle and role, the sync queue and the token secret's name in its environment, never a token", () => {
    const fn = resources.NotifyLambdaFunction!.Properties;
    expect(fn).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'dist/functions/notify/index.handler',
      Timeout: 10,
      Role: { 'Fn::GetAtt': ['NotifyRole', 'Arn'] },
    });
    expect(fn.Environment.Variables).toMatchObject({
      GEO_SYNC_SYNC_QUEUE_URL: { Ref: 'SyncQueue' },
      GEO_SYNC_WEBHOOK_SECRET: 'geo-registry-sync/webhook-token',
    });
    expect(Object.keys(fn.Environment.Variables).filter((v) => /PASSWORD|USERNAME|TOKEN/.test(v))).toEqual([]);
    const zip = readFileSync(join(packaged!.dir, 'notify.zip')).toString('latin1');
    expect(zip).toContain('dist/functions/notify/index.mjs');
    expect(['fan-out', 'sync', 'verify'].filter((dir) => zip.includes(`dist/functions/${dir}/`))).toEqual([]);
  });

  it('notify: a function URL with auth type NONE (the bearer token is checked by the handler), its URL an output; no queue feeds it', () => {
    const [urls] = [ofType('AWS::Lambda::Url')];
    expect(urls.map(([id, r]) => [id, r.Properties.AuthType, r.Properties.TargetFunctionArn])).toEqual([
      ['NotifyLambdaFunctionUrl', 'NONE', { 'Fn::GetAtt': ['NotifyLambdaFunction', 'Arn'] }],
    ]);
    const permissions = ofType('AWS::Lambda::Permission')
      .map(([, r]) => r.Properties)
      .filter((p) => JSON.stringify(p.FunctionName).includes('NotifyLambdaFunction'));
    expect(permissions).toContainEqual(expect.objectContaining({ Action: 'lambda:InvokeFunctionUrl', Principal: '*', FunctionUrlAuthType: 'NONE' }));
    expect(template.Outputs.NotifyLambdaFunctionUrl.Value).toEqual({ 'Fn::GetAtt': ['NotifyLambdaFunctionUrl', 'FunctionUrl'] });
    expect(ofType('AWS::Lambda::EventSourceMapping').filter(([, r]) => r.Properties.FunctionName['Fn::GetAtt'][0] === 'NotifyLambdaFunction')).toEqual([]);
  });

  it('NotifyRole grants only what notify needs: its log group, sending to the sync queue, reading the token secret', () => {
    const statements = resources.NotifyRole!.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement) as {
      Effect: string;
      Action: string | string[];
      Resource: any;
    }[];
    const grants = statements.flatMap((s) => {
      expect(s.Effect).toBe('Allow');
      return [s.Action].flat().flatMap((action) => [s.Resource].flat().map((resource) => `${action} ${resourceName(resource)}`));
    });
    expect(grants.sort()).toEqual([
      'logs:CreateLogStream own-log-group',
      'logs:PutLogEvents own-log-group',
      'secretsmanager:GetSecretValue webhook-token-secret',
      'sqs:SendMessage SyncQueue',
    ]);
    const logGroup = statements.find((s) => [s.Action].flat().includes('logs:PutLogEvents'))!.Resource['Fn::Sub'];
    expect(logGroup).toMatch(/log-group:\/aws\/lambda\/geo-registry-sync-dev-notify:\*$/);
  });

  it("alarms on notify's errors and throttles and on the replication lag, all to the alarm topic", () => {
    const alarm = (id: string) => resources[id]!.Properties;
    expect(alarm('NotifyErrorsAlarm')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'NotifyLambdaFunction' } }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(alarm('NotifyThrottlesAlarm')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Throttles',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'NotifyLambdaFunction' } }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(alarm('ReplicationLagAlarm')).toMatchObject({
      Namespace: 'GeoRegistrySync',
      MetricName: 'ReplicationLagSeconds',
      Dimensions: [{ Name: 'service', Value: 'geo-registry-sync' }],
      ExtendedStatistic: 'p99',
      Period: 300,
      Threshold: 60,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    for (const id of ['NotifyErrorsAlarm', 'NotifyThrottlesAlarm', 'ReplicationLagAlarm']) expect(alarm(id).AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
  });

  it("the dashboard charts the replication lag (p50, p99, max) and notify, and shows the event path's alarms", () => {
    const [body, values] = resources.Dashboard!.Properties.DashboardBody['Fn::Sub'] as [string, Record<string, unknown>];
    const widgets = (JSON.parse(body.replace(/\$\{[^}]+\}/g, 'x')) as { widgets: { type: string; properties: { title: string; metrics?: unknown[][] } }[] })
      .widgets;
    const lag = widgets.find((w) => w.properties.title.startsWith('Event path: replication lag'))!;
    expect(lag.properties.metrics!.slice(0, 3)).toEqual([
      ['GeoRegistrySync', 'ReplicationLagSeconds', 'service', 'geo-registry-sync', { stat: 'p50' }],
      ['...', { stat: 'p99' }],
      ['...', { stat: 'Maximum' }],
    ]);
    expect(body).toContain('"${LagAlarm}", "${NotifyErrors}", "${NotifyThrottles}"');
    expect(values).toMatchObject({
      NotifyFunction: { Ref: 'NotifyLambdaFunction' },
      LagAlarm: { 'Fn::GetAtt': ['ReplicationLagAlarm', 'Arn'] },
      NotifyErrors: { 'Fn::GetAtt': ['NotifyErrorsAlarm', 'Arn'] },
      NotifyThrottles: { 'Fn::GetAtt': ['NotifyThrottlesAlarm', 'Arn'] },
    });
  });

  it('the sync function gathers a batch for at most a second, so an event job waits little for its batch', () => {
    const mapping = ofType('AWS::Lambda::EventSourceMapping').find(([, r]) => r.Properties.FunctionName['Fn::GetAtt'][0] === 'SyncLambdaFunction')![1];
    expect(mapping.Properties.MaximumBatchingWindowInSeconds).toBeLessThanOrEqual(1);
  });

  it("an ECR primary's events: a rule, made only with ecrEvents on, for the primary account's successful pushes and deletes, invoking notify", () => {
    const rule = resources.EcrImageActionRule!;
    expect(rule.Condition).toBe('ListensToEcrEvents');
    expect((template as any).Conditions.ListensToEcrEvents).toEqual({ 'Fn::Equals': ['off', 'on'] });
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.ecr'],
      'detail-type': ['ECR Image Action'],
      account: [{ 'Fn::If': ['HasPrimaryRegistryId', '', { Ref: 'AWS::AccountId' }] }],
      detail: { result: ['SUCCESS'], 'action-type': ['PUSH', 'DELETE'] },
    });
    expect(rule.Properties.Targets).toEqual([expect.objectContaining({ Id: 'notify', Arn: { 'Fn::GetAtt': ['NotifyLambdaFunction', 'Arn'] } })]);
    expect(resources.EcrImageActionPermission).toMatchObject({
      Condition: 'ListensToEcrEvents',
      Properties: { Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', SourceArn: { 'Fn::GetAtt': ['EcrImageActionRule', 'Arn'] } },
    });
    expect(resources.NotifyLambdaFunction!.Properties.Environment.Variables).toMatchObject({ GEO_SYNC_PRIMARY_TYPE: '', GEO_SYNC_PRIMARY_REGISTRY_ID: '' });
  });
});

function resourceName(resource: any): string {
  if (resource?.['Fn::GetAtt']) return resource['Fn::GetAtt'][0];
  const sub: string | undefined = resource?.['Fn::Sub'];
  if (sub?.includes(':log-group:/aws/lambda/')) return 'own-log-group';
  if (sub?.endsWith(':secret:geo-registry-sync/webhook-token-??????')) return 'webhook-token-secret';
  return JSON.stringify(resource);
}
