// AWS's own controls: the AWS Control Tower proactive-control rules, run by AWS CloudFormation
// Guard (both shipped by @cdklabs/cdk-validator-cfnguard) on the template `osls package` builds.
// A failing rule fails this test unless test/aws/cfn-guard-suppressions.json lists it with a
// reason; a listed rule that passes fails it too, so the list stays honest.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTROL_TOWER_RULES,
  cfnGuardBinary,
  checkSuppressions,
  controlTowerRuleNames,
  formatFailure,
  parseGuardOutput,
  runCfnGuard,
  type GuardReport,
  type RuleFailure,
  type Suppression,
} from './support/cfn-guard.js';
import { packageService, type PackagedService } from './support/package.js';

const SUPPRESSIONS_FILE = 'test/aws/cfn-guard-suppressions.json';
const suppressions = (JSON.parse(readFileSync(SUPPRESSIONS_FILE, 'utf8')) as { suppressions: Suppression[] }).suppressions;

let service: PackagedService;
let report: GuardReport;

beforeAll(async () => {
  service = await packageService();
  report = await runCfnGuard(service.templatePath);
}, 150_000);

afterAll(() => service?.remove());

describe('AWS Control Tower proactive controls on the packaged template', () => {
  it(`fails no rule that ${SUPPRESSIONS_FILE} does not list with its reason`, () => {
    const { unsuppressed } = checkSuppressions(report.failing, suppressions);
    expect(unsuppressed.map(formatFailure), `failing controls (fix them, or list them with a reason in ${SUPPRESSIONS_FILE})`).toEqual([]);
  });

  it('lists no suppression that passes now', () => {
    expect(checkSuppressions(report.failing, suppressions).stale, `remove these from ${SUPPRESSIONS_FILE}`).toEqual([]);
  });

  it('every suppression names a Control Tower rule and its control, once, and says why', () => {
    const known = controlTowerRuleNames();
    expect(known.size).toBeGreaterThan(100);
    expect(new Set(suppressions.map((s) => s.rule)).size).toBe(suppressions.length);
    for (const s of suppressions) {
      expect(known, s.rule).toContain(s.rule);
      expect(s.reason.length, `${s.rule}: a reason a reviewer can check`).toBeGreaterThan(80);
      const failing = report.failing.find((f) => f.rule === s.rule);
      if (failing?.control) expect(s.control, s.rule).toBe(failing.control);
    }
  });

  it('encryption at rest, HTTPS only, no public access, versioning, retention and dead-letter queues: those rules run and pass', () => {
    expect(report.passing).toEqual(
      expect.arrayContaining([
        'sqs_queue_encrypted_check', // CT.SQS.PR.2: SSE-SQS on every queue
        'sqs_dlq_check', // CT.SQS.PR.1: work queues redrive, dead-letter queues accept only their source
        'dynamodb_table_encrypted_kms_check', // CT.DYNAMODB.PR.2: the AWS managed key
        'dynamodb_table_pitr_enabled_check',
        'cloudwatch_log_group_retention_period_check', // CT.CLOUDWATCH.PR.2: logRetentionDays, 365 by default
        's3_bucket_level_public_access_prohibited_check', // the deployment bucket, CT.S3.PR.1
        's3_bucket_policy_ssl_requests_only_check', // CT.S3.PR.8
        's3_bucket_versioning_enabled_check', // CT.S3.PR.11
        's3_bucket_default_encryption_kms_check', // CT.S3.PR.10
        's3_lifecycle_policy_check', // CT.S3.PR.6
        's3_event_notifications_enabled_check', // CT.S3.PR.4
        'iam_inline_policy_no_statements_with_admin_access_check',
        'iam_inline_policy_no_statements_with_full_access_check',
      ]),
    );
  });
});

describe('running cfn-guard', () => {
  it('picks the packaged binary by platform and architecture', () => {
    expect(cfnGuardBinary('linux', 'x64')).toMatch(/bin\/ubuntu\/x86_64\/cfn-guard$/);
    expect(cfnGuardBinary('linux', 'arm64')).toMatch(/bin\/ubuntu\/aarch64\/cfn-guard$/);
    expect(cfnGuardBinary('darwin', 'arm64')).toMatch(/bin\/macos\/aarch64\/cfn-guard$/);
    expect(() => cfnGuardBinary('win32', 'x64')).toThrow(/not win32\/x64/);
    expect(existsSync(cfnGuardBinary())).toBe(true);
  });

  it('reports a failing rule with its control, the resource, why, and the fix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfn-guard-'));
    try {
      const template = join(dir, 'template.json');
      writeFileSync(
        template,
        JSON.stringify({
          Resources: {
            Plain: { Type: 'AWS::SQS::Queue', Properties: { VisibilityTimeout: 30 } },
            Encrypted: { Type: 'AWS::SQS::Queue', Properties: { SqsManagedSseEnabled: true } },
          },
        }),
      );
      const result = await runCfnGuard(template, join(CONTROL_TOWER_RULES, 'sqs', 'ct-sqs-pr-2.guard'));
      expect(result.failing).toHaveLength(1);
      const [failure] = result.failing;
      expect(failure).toMatchObject({ rule: 'sqs_queue_encrypted_check', control: 'CT.SQS.PR.2', description: expect.stringMatching(/encryption at rest/) });
      expect(Object.keys(failure!.resources)).toEqual(['Plain']);
      expect(failure!.resources.Plain!.join(' ')).toMatch(/SqsManagedSseEnabled\] is missing/);
      expect(formatFailure(failure!)).toMatch(
        /^sqs_queue_encrypted_check \[CT\.SQS\.PR\.2\]: .*\n {2}Plain: .*SqsManagedSseEnabled.*\n {2}fix: Set 'SqsManagedSseEnabled' to 'true'/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads rules wrapped as Rule or Clause, and tells failing from passing and skipped rules', () => {
    const check = (path: string, error: string) => ({
      Clause: { Unary: { check: { UnResolved: { value: { traversed_to: { path, value: {} } } } }, messages: { custom_message: '', error_message: error } } },
    });
    const output = JSON.stringify([
      {
        name: 't.json',
        status: 'FAIL',
        not_compliant: [
          {
            Rule: {
              name: 'a_check',
              messages: { custom_message: null },
              checks: [
                {
                  Rule: {
                    name: 'check',
                    messages: { custom_message: '\n  [CT.X.PR.1]: Require X\n  [FIX]: Do X.\n' },
                    checks: [
                      check(
                        '/Resources/One/Properties',
                        'Check was not compliant as property [X] is missing. Value traversed to [Path=/Resources/One/Properties[L:3,C:4] Value={}].',
                      ),
                      check('/Resources/Two/Properties', 'Two is wrong [L:9,C:1]'),
                    ],
                  },
                },
              ],
            },
          },
          { Clause: { name: 'b_check', checks: [check('/Resources/Three', 'no')] } },
        ],
        not_applicable: ['a_check', 'c_check', 'd_check'],
        compliant: ['a_check', 'c_check'],
      },
    ]);
    const parsed = parseGuardOutput(output, 't.json');
    expect(parsed.failing).toEqual([
      {
        rule: 'a_check',
        control: 'CT.X.PR.1',
        description: 'Require X',
        fix: 'Do X.',
        resources: { One: ['Check was not compliant as property [X] is missing.'], Two: ['Two is wrong'] },
      },
      { rule: 'b_check', resources: { Three: ['no'] } },
    ]);
    expect(parsed.passing).toEqual(['c_check']);
    expect(parsed.notApplicable).toEqual(['d_check']);
    expect(() => parseGuardOutput('Error occurred')).toThrow(/no JSON/);
  });

  it('a suppression covers its rule (or only the resources it names); one that no longer fails is stale', () => {
    const failing: RuleFailure[] = [
      { rule: 'a_check', resources: { One: ['why'] } },
      { rule: 'b_check', resources: { Bucket: ['why'], Other: ['why'] } },
      { rule: 'c_check', resources: { X: [] } },
    ];
    const result = checkSuppressions(failing, [
      { rule: 'a_check', reason: 'r' },
      { rule: 'b_check', resources: ['Bucket', 'Gone'], reason: 'r' },
      { rule: 'z_check', reason: 'r' },
    ]);
    expect(result.unsuppressed).toEqual([
      { rule: 'b_check', resources: { Other: ['why'] } },
      { rule: 'c_check', resources: { X: [] } },
    ]);
    expect(result.stale).toEqual(['b_check: suppressed for Gone, which no longer fails it', 'z_check: suppressed, but it no longer fails']);
  });
});
