// Bundles the CLI (dependencies stay in node_modules) and, when present, the Lambda functions.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';

await build({
  entryPoints: { cli: 'shared/cli/index.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
});

if (existsSync('scripts/build-functions.mjs')) await import('./build-functions.mjs');
