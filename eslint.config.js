// Lint: typescript-eslint's recommended rules, plus the house's structural rules: the doors
// (CLI, Lambda handlers) and the adapters (AWS, local) reach the engine and the jobs only through
// their entries, so what lies behind an entry can move without touching them; and no product file
// or function grows past what a reader takes in at once.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Every line counts, blank and comment lines too: the limits then read as `wc -l` and an editor's
// line numbers do, and a long comment is as much to read as code.
const everyLine = { skipBlankLines: false, skipComments: false };
const productFiles = ['shared/**/*.ts', 'functions/**/*.ts', 'scripts/**/*.{js,mjs,ts}', 'bin/**/*.mjs'];

const throughEntries = {
  patterns: [
    { group: ['**/engine/*', '**/engine/**/*', '!**/engine/index.js'], message: 'import the engine through shared/engine/index.js' },
    { group: ['**/jobs/*', '**/jobs/**/*', '!**/jobs/index.js'], message: 'import the jobs (and their events) through shared/jobs/index.js' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.serverless/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // Unused names are errors, except those deliberately discarded with a leading underscore.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // A file says one thing and a function does one step: past these, split by what the parts do.
    files: [...productFiles, 'test/**/support/**/*.{ts,mjs}'],
    rules: {
      'max-lines': ['error', { max: 450, ...everyLine }],
      'max-lines-per-function': ['error', { max: 80, ...everyLine, IIFEs: true }],
    },
  },
  {
    // A test file is a list of cases inside describe blocks, and a describe block is one function
    // however many cases it holds: the file limit is looser and there is no function limit.
    files: ['test/**/*.test.ts'],
    rules: { 'max-lines': ['error', { max: 700, ...everyLine }] },
  },
  {
    // A bench scenario reads top to bottom as one measurement (seed, time, tabulate): split, the
    // order of what is timed is harder to see. Files keep the product's limit.
    files: ['bench/**/*.{ts,mjs}'],
    rules: { 'max-lines': ['error', { max: 450, ...everyLine }] },
  },
  {
    files: ['shared/cli/**/*.ts', 'shared/aws/**/*.ts', 'shared/local/**/*.ts', 'functions/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', throughEntries] },
  },
  {
    // Tests and benchmarks reach into any module on purpose, and type registry answers loosely.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
