// Prints, per Lambda function, the size of its bundle, of the source map beside it and of its
// packaged zip, and the median time to import the bundle in a fresh Node.js process (cold import).
// Not part of `npm test`. Run it after `node scripts/build-functions.mjs`:
//
//   node scripts/measure-cold-start.mjs [--runs 10] [--package-dir DIR]
//
// Without --package-dir it runs `osls package` (offline, dummy credentials) into a temporary
// folder. Each import runs with the NODE_OPTIONS that the packaged template gives the function,
// and with dummy values for what the handler reads from its environment at module scope; the
// handler calls no AWS service at import. Numbers are for this machine: compare them with each
// other, not with a cold start in Lambda (which adds the runtime's own start and the layer).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, 'package-dir': { type: 'string' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a positive integer');

const DUMMY_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'x',
  AWS_SECRET_ACCESS_KEY: 'x',
  GEO_SYNC_TABLE: 'geo-registry-sync-dummy',
  GEO_SYNC_PRIMARY_URL: 'https://registry.example.com',
  GEO_SYNC_SECONDARIES: '[{"name":"secondary","url":"https://secondary.registry.example.com"}]',
  GEO_SYNC_CREDENTIALS_SECRET: 'geo-registry-sync/registries',
  GEO_SYNC_SYNC_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/sync',
  GEO_SYNC_VERIFY_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/verify',
  GEO_SYNC_FAN_OUT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/fan-out',
  POWERTOOLS_SERVICE_NAME: 'geo-registry-sync',
  POWERTOOLS_METRICS_NAMESPACE: 'GeoRegistrySync',
};

let packageDir = values['package-dir'] && resolve(values['package-dir']);
let scratch;
if (!packageDir) {
  // osls stages its output in the service's .serverless/ folder: package a copy, so that a test
  // run packaging at the same time cannot collide with this one.
  scratch = mkdtempSync(join(tmpdir(), 'osls-package-'));
  cpSync('serverless.yml', join(scratch, 'service', 'serverless.yml'));
  cpSync('dist/functions', join(scratch, 'service', 'dist', 'functions'), { recursive: true });
  packageDir = join(scratch, 'package');
  execFileSync(process.execPath, [resolve('node_modules/osls/bin/serverless.js'), 'package', '--package', packageDir], {
    cwd: join(scratch, 'service'),
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'x',
      AWS_REGION: 'us-east-1',
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
    },
    stdio: 'pipe',
  });
}

try {
  const template = JSON.parse(readFileSync(join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8'));
  const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
  const rows = [];
  for (const fn of functions) {
    const { Handler, Environment } = fn.Properties;
    const bundle = Handler.replace(/\.[^.]+$/, '.mjs');
    const name = fn.Properties.Code.S3Key.split('/').pop();
    const nodeOptions = Environment?.Variables?.NODE_OPTIONS ?? '';
    const ms = [];
    for (let i = 0; i < runs; i++) ms.push(coldImport(resolve(bundle), nodeOptions));
    rows.push({
      zip: name,
      bundle: statSync(bundle).size,
      map: existsSync(`${bundle}.map`) ? statSync(`${bundle}.map`).size : 0,
      zipBytes: statSync(join(packageDir, name)).size,
      nodeOptions,
      median: median(ms),
      min: Math.min(...ms),
    });
  }

  console.log(`Node.js ${process.version} on ${process.platform}/${process.arch}, ${runs} fresh processes per function\n`);
  console.log('| function zip | bundle (bytes) | map beside it (bytes) | zip (bytes) | NODE_OPTIONS | cold import, median (ms) | min (ms) |');
  console.log('| --- | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${r.zip} | ${r.bundle} | ${r.map} | ${r.zipBytes} | ${r.nodeOptions ? `\`${r.nodeOptions}\`` : 'none'} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} |`,
    );
  }
} finally {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}

/** Milliseconds from just before `import()` to the module (and everything it imports) evaluated. */
function coldImport(file, nodeOptions) {
  const script = `const t = process.hrtime.bigint(); const m = await import(${JSON.stringify(pathToFileURL(file).href)});
if (typeof m.handler !== 'function') throw new Error('no handler export');
process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH, ...DUMMY_ENV, NODE_OPTIONS: nodeOptions },
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(`importing ${file} failed: ${child.stderr}`);
  return Number(child.stdout);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
