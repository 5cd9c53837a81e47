#!/usr/bin/env node
// `npm test` after the type check: every test file on the Node that runs npm (the machine's; the
// CLI supports Node 20 and later), then the handler and pipeline tests again on Node 22, the Lambda
// runtime (scripts/test-node22.mjs). Arguments go to the first run (`npm test -- --reporter=json …`,
// as .ci/run passes them). Both runs always happen; the exit code is the first run's failure, else
// the second's.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const run = (script, args) => {
  const result = spawnSync(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], { stdio: 'inherit' });
  return result.status ?? 1;
};

const machine = run('../node_modules/vitest/vitest.mjs', ['run', ...process.argv.slice(2)]);
const node22 = run('./test-node22.mjs', []);
process.exit(machine || node22);
