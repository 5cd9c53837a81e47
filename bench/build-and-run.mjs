#!/usr/bin/env node
// `npm run bench`: rebuilds the CLI (scripts/build.mjs, so the binary measured is the current
// source), bundles bench/main.ts to dist/bench.mjs, bundles the AWS side's fan-out pieces for
// the fan-out hook when they exist, then runs the benchmark. Extra arguments go to the bench.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const common = { bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20', sourcemap: true, logLevel: 'warning' };

if (process.env.BENCH_SKIP_CLI_BUILD !== '1') {
  const cli = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  if (cli.status !== 0) {
    if (!existsSync('dist/cli.mjs')) process.exit(cli.status ?? 1);
    process.stderr.write('bench: scripts/build.mjs failed; measuring the existing dist/cli.mjs, which may be stale\n');
  }
}

// test/support/referrers-registry.ts and its build step (referrers-registry/build.mjs) find the Go
// source (and build cache) beside themselves through import.meta.url; bundled, that would be dist/.
// Each keeps its own file's URL.
const ownUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /test[\\/]support[\\/]referrers-registry(\.ts|[\\/]build\.mjs)$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
      loader: args.path.endsWith('.ts') ? 'ts' : 'js',
    }));
  },
};

await build({ ...common, entryPoints: { bench: 'bench/main.ts' }, outdir: 'dist', outExtension: { '.js': '.mjs' }, plugins: [ownUrl] });

// The fan-out hook: the AWS side's fan-out job, SQS adapter and local SQS server, bundled apart so
// that the bench still builds and runs (and says why it skipped) when they are absent or broken.
const FAN_OUT_BUNDLE = 'dist/bench-fan-out.mjs';
rmSync(FAN_OUT_BUNDLE, { force: true });
const fanOutParts = { fanOut: 'shared/jobs/index.ts', SqsQueue: 'shared/aws/sqs-queue.ts', startLocalAws: 'test/aws/support/local-aws.ts' };
const absent = Object.values(fanOutParts).filter((path) => !existsSync(path));
if (absent.length > 0) {
  process.env.BENCH_FAN_OUT_SKIPPED = `absent: ${absent.join(', ')}`;
} else {
  try {
    await build({
      ...common,
      logLevel: 'silent',
      stdin: {
        contents: Object.entries(fanOutParts)
          .map(([name, path]) => `export { ${name} } from './${path}';`)
          .join('\n'),
        resolveDir: root,
        loader: 'ts',
        sourcefile: 'bench-fan-out-entry.ts',
      },
      outfile: FAN_OUT_BUNDLE,
    });
  } catch (error) {
    process.env.BENCH_FAN_OUT_SKIPPED = `the AWS side did not build: ${String(error?.message ?? error).split('\n')[0]}`;
  }
}

const run = spawnSync(process.execPath, ['dist/bench.mjs', ...process.argv.slice(2)], { stdio: 'inherit', env: process.env });
process.exit(run.status ?? 1);
