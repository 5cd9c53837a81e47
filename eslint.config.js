// Lint: typescript-eslint's recommended rules, plus the house's one structural rule: the doors
// (CLI, Lambda handlers) and the adapters (AWS, local) reach the engine and the jobs only through
// their entries, so what lies behind an entry can move without touching them.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

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
    files: ['shared/cli/**/*.ts', 'shared/aws/**/*.ts', 'shared/local/**/*.ts', 'functions/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', throughEntries] },
  },
  {
    // Tests and benchmarks reach into any module on purpose, and type registry answers loosely.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
