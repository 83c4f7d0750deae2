import { workingStateFile } from './state.mjs';
import { targets } from './targets.mjs';

/**
 * The Stryker configuration of one target (see targets.mjs): vitest runner over that target's unit tests only,
 * per-test coverage (each mutant runs only the tests that reach it), incremental mode with its state committed in
 * stryker/incremental/ as gzip (so CI and the next developer re-test only what changed; stryker/run.mjs unpacks it to
 * reports/mutation/incremental/ before a run and packs it back after), scores per file on the console.
 * @param {keyof typeof targets} name
 * @returns {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export function strykerConfig(name) {
  const t = targets[name];
  if (!t) throw new Error(`unknown mutation target ${name}; known: ${Object.keys(targets).join(', ')}`);
  // Read by stryker/vitest.config.ts in the test-runner processes, which inherit this environment.
  process.env.KEDGE_MUTATION_TESTS = t.tests.join(',');
  return {
    $schema: '../node_modules/@stryker-mutator/core/schema/stryker-schema.json',
    packageManager: 'npm',
    testRunner: 'vitest',
    vitest: { configFile: 'stryker/vitest.config.ts', related: false },
    plugins: ['@stryker-mutator/vitest-runner'],
    coverageAnalysis: 'perTest',
    mutate: t.mutate,
    ignorePatterns: ['**/dist', 'bench', 'docs', 'testenv', 'reports', 'coverage', '.kedge', 'stryker/incremental'],
    // A target may leave out static mutants (module-level code: per-test coverage sees no test for them, so each
    // would run every test of the target, and any test change re-runs them all in incremental mode).
    ignoreStatic: t.ignoreStatic ?? false,
    incremental: true,
    incrementalFile: workingStateFile(name),
    concurrency: Number(process.env.KEDGE_MUTATION_CONCURRENCY ?? 2),
    timeoutMS: 10_000,
    // The instrumented initial run of a large target (routing: 566 tests, inputs of 100,000 tokens) takes over 4
    // minutes on the shared machine; Stryker's default limit is 5.
    dryRunTimeoutMinutes: 20,
    // progress-append-only: a line every 10 s (mutants tested, survived, timed out, time left) that a log file keeps.
    reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
    clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: true },
    jsonReporter: { fileName: `reports/mutation/${name}.json` },
    htmlReporter: { fileName: `reports/mutation/${name}.html` },
    thresholds: { high: 90, low: 80, break: t.break },
    tempDirName: '.stryker-tmp',
    cleanTempDir: 'always',
  };
}
