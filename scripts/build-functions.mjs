// Bundles each Lambda function into one self-contained, minified ESM file: dist/functions/<name>/index.mjs.
// Everything is bundled (AWS SDK included) so the deployed code runs exactly the versions we test.
// No code splitting here (unlike the CLI's build): each function's zip holds its index.mjs alone
// (serverless.yml), so the ECR SDK that the engine import()s on first use is inlined into it.
// The source map is written beside the bundle (index.mjs.map) for local debugging
// (`node --enable-source-maps`); serverless.yml keeps it out of the deployment zip, so the
// functions load less code and read no map at start.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';

const names = readdirSync('functions', { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);

await Promise.all(
  names.map((name) =>
    build({
      entryPoints: [`functions/${name}/handler.ts`],
      outfile: `dist/functions/${name}/index.mjs`,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      // Prefer the ES module builds (the AWS SDK ships both): they tree-shake better than CommonJS.
      mainFields: ['module', 'main'],
      minify: true,
      sourcemap: 'linked',
      sourcesContent: false,
      // Some bundled CommonJS dependencies call require() for Node built-ins; ESM has none, so provide it.
      banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
      logLevel: 'warning',
    }),
  ),
);
