// `osls package` runs offline with dummy credentials: the CloudFormation template and one zip per
// function, exactly as `osls deploy` would upload them. The function bundles were built by the
// global test setup (scripts/build.mjs -> build-functions.mjs). osls stages its output in the
// service's own .serverless/ folder, so two runs in one folder race: each run packages a copy of
// the service (serverless.yml and the bundles) in a temporary folder of its own.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export interface PackagedService {
  /** The folder holding the template and the zips. */
  dir: string;
  templatePath: string;
  template: { Resources: Record<string, { Type: string; Properties: Record<string, any>; Condition?: string }>; [key: string]: unknown };
  remove(): void;
}

export async function packageService(extraArgs: string[] = []): Promise<PackagedService> {
  const root = mkdtempSync(join(tmpdir(), 'osls-package-'));
  const service = join(root, 'service');
  const dir = join(root, 'package');
  cpSync('serverless.yml', join(service, 'serverless.yml'));
  cpSync('dist/functions', join(service, 'dist', 'functions'), { recursive: true });
  try {
    await promisify(execFile)(process.execPath, [resolve('node_modules/osls/bin/serverless.js'), 'package', '--package', dir, ...extraArgs], {
      cwd: service,
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: 'x',
        AWS_SECRET_ACCESS_KEY: 'x',
        AWS_REGION: 'us-east-1',
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
      },
      timeout: 120_000,
    });
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  const templatePath = join(dir, 'cloudformation-template-update-stack.json');
  return { dir, templatePath, template: JSON.parse(readFileSync(templatePath, 'utf8')), remove: () => rmSync(root, { recursive: true, force: true }) };
}
