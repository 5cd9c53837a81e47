#!/usr/bin/env node
// The CLI is bundled to dist/ by `npm run build` (run by `npm ci`/`npm install` through "prepare").
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../dist/cli.mjs', import.meta.url));
if (!existsSync(entry)) {
  process.stderr.write('geo-sync: dist/cli.mjs is missing; run `npm ci` (or `npm run build`) in the project first\n');
  process.exit(3);
}
await import(entry);
