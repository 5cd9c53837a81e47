// Bundles the CLI with its dependencies (one file loads faster than node_modules) and the Lambda functions.
// The CLI is split: what a dynamic import() reaches only (the ECR SDK, STS for an ECR roleArn) goes
// to dist/chunks/, loaded when an ECR registry is first used, so every other run parses none of it.
import { build } from 'esbuild';
import { existsSync, rmSync } from 'node:fs';

// Chunk names carry their content's hash: clear the last build's, so none is left unreferenced.
rmSync('dist/chunks', { recursive: true, force: true });

await build({
  entryPoints: { cli: 'shared/cli/index.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  // The ES module builds of the dependencies that ship both (the AWS SDK): a split chunk made of a
  // CommonJS module gives import() its exports under `default` only, where the ES build gives the names.
  mainFields: ['module', 'main'],
  // CommonJS dependencies (commander) call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as geoSyncRequire } from 'node:module'; const require = geoSyncRequire(import.meta.url);" },
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
});

if (existsSync('scripts/build-functions.mjs')) await import('./build-functions.mjs');
