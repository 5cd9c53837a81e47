// Bundles each Lambda function into one self-contained ESM file: dist/functions/<name>/index.mjs.
// Everything is bundled (AWS SDK included) so the deployed code runs exactly the versions we test.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';

const names = readdirSync('functions', { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

await Promise.all(
  names.map((name) =>
    build({
      entryPoints: [`functions/${name}/handler.ts`],
      outfile: `dist/functions/${name}/index.mjs`,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      minify: true,
      sourcemap: true,
      sourcesContent: false,
      // Some bundled CommonJS dependencies call require() for Node built-ins; ESM has none, so provide it.
      banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
      logLevel: 'warning',
    }),
  ),
);
