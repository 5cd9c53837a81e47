// Bundles the CLI with its dependencies (one file loads faster than node_modules) and the Lambda functions.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';

await build({
  entryPoints: { cli: 'shared/cli/index.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  // CommonJS dependencies (commander) call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as geoSyncRequire } from 'node:module'; const require = geoSyncRequire(import.meta.url);" },
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
});

if (existsSync('scripts/build-functions.mjs')) await import('./build-functions.mjs');
