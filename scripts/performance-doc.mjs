#!/usr/bin/env node
// `npm run docs:performance`: writes docs/performance.md's tables from bench/results.json, each
// between its markers (`<!-- BEGIN GENERATED: name -->` … `<!-- END GENERATED: name -->`), so the
// doc shows what the last bench run measured and nobody keeps those figures by hand. The tables
// are made by the bench's own formatters (bench/report.ts, bench/latency.ts), bundled on the fly
// with esbuild as bench/build-and-run.mjs does: the doc's tables are the ones `npm run bench`
// prints. `--check` writes nothing and exits 1 when the doc differs from what the results give.
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = join(root, 'docs', 'performance.md');
const RESULTS = join(root, 'bench', 'results.json');
// Under dist/ (ignored by git), so that whatever the bundle leaves external resolves from node_modules.
const FORMATTERS = join(root, 'dist', 'performance-doc-formatters.mjs');

await build({
  stdin: {
    contents: "export { formatTable } from './bench/report.ts';\nexport { formatCostTable, formatLatencyTable } from './bench/latency.ts';\n",
    resolveDir: root,
    loader: 'ts',
    sourcefile: 'performance-doc-entry.ts',
  },
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: FORMATTERS,
  logLevel: 'warning',
});
const { formatTable, formatLatencyTable, formatCostTable } = await import(pathToFileURL(FORMATTERS).href);
rmSync(FORMATTERS, { force: true });

const results = JSON.parse(readFileSync(RESULTS, 'utf8'));

/** One line naming the run a table comes from: when, the command, the machine, how long. */
function provenance(run) {
  const env = run.environment ?? {};
  const machine = [env.node, env.skopeo, env.registry, env.cores && `${env.cores} cores`].filter(Boolean).join(', ');
  const seconds = run.totalSeconds === undefined ? '' : `; ${Math.round(run.totalSeconds)} s in all`;
  return `Run of ${run.generatedAt.slice(0, 10)}: \`${run.command}\` (${machine}${seconds}).`;
}

// A note's `<primary>` would read as an HTML tag in Markdown.
const notes = (list) => (list ?? []).map((note) => `- ${note.replaceAll('<', '&lt;')}`).join('\n');

/** The latency rows as the bench keeps them in memory: a peer left out (NaN) is `null` in JSON. */
const latencyRows = (rows) => rows.map((row) => ({ ...row, peer: row.peer ?? Number.NaN, ratio: row.ratio ?? Number.NaN }));

const sections = {
  'repository-size': () => [provenance(results), '', formatTable(results.rows), '', notes(results.notes)].join('\n'),
  referrers: () => [provenance(results.referrers), '', formatTable(results.referrers.rows)].join('\n'),
  ecr: () => [provenance(results.ecr), '', formatTable(results.ecr.rows)].join('\n'),
  'across-regions': () => {
    const { latency } = results;
    const cost = latency.lambdaCost;
    return [
      provenance(latency),
      '',
      formatLatencyTable(latencyRows(latency.rows)),
      '',
      `Lambda cost (serverless.yml: sync ${cost.memoryMb.sync} MB, verify ${cost.memoryMb.verify} MB):`,
      '',
      formatCostTable(cost.perThousandTags, cost.memoryMb),
      '',
      notes(latency.notes),
    ].join('\n');
  },
};

const before = readFileSync(DOC, 'utf8');
let after = before;
for (const [name, render] of Object.entries(sections)) {
  const begin = `<!-- BEGIN GENERATED: ${name} -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const from = after.indexOf(begin);
  const to = after.indexOf(end);
  if (from === -1 || to < from) {
    process.stderr.write(`performance-doc: ${DOC} has no markers for "${name}" (${begin} … ${end})\n`);
    process.exit(2);
  }
  after = `${after.slice(0, from + begin.length)}\n${render()}\n${after.slice(to)}`;
}

if (process.argv.includes('--check')) {
  if (after !== before) {
    process.stderr.write('performance-doc: docs/performance.md is not what bench/results.json gives; run `npm run docs:performance`\n');
    process.exit(1);
  }
} else if (after !== before) {
  writeFileSync(DOC, after);
  process.stdout.write('performance-doc: wrote the tables of docs/performance.md from bench/results.json\n');
}
