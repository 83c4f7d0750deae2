/**
 * What `npm run test:mutation` covers: one entry per target (a package, or part of one), with the code Stryker
 * mutates, the unit tests that may kill the mutants, and `break`, the recorded mutation score below which the run
 * fails. Raise `break` when a target's score rises; a new package joins with an entry and a threshold.
 */
export const targets = {
  routing: {
    // Test support that ships in src (fake endpoints, the store contract suite, the engine's test helpers) is not
    // mutated: it is test code, and what kills its mutants is itself.
    mutate: [
      'packages/routing/src/**/*.ts',
      '!packages/routing/src/**/*.test.ts',
      '!packages/routing/src/index.ts',
      '!packages/routing/src/engine/fake-endpoints.ts',
      '!packages/routing/src/engine/message-store.contract.ts',
      '!packages/routing/src/engine/test-support.ts',
    ],
    // 1379 of its 5237 mutants are static (lookup tables, patterns and code the tests reach while files load): each
    // would run all 566 tests (4 min instrumented on the shared machine), and every test change would re-run them all.
    ignoreStatic: true,
    tests: ['packages/routing/src/**/*.test.ts'],
    break: 87,
  },
  manifest: {
    mutate: ['packages/manifest/src/**/*.ts', '!packages/manifest/src/**/*.test.ts', '!packages/manifest/src/index.ts'],
    tests: ['packages/manifest/src/**/*.test.ts'],
    break: 95,
  },
  agent: {
    mutate: ['packages/agent/src/{render,names,status}.ts'],
    // The unit tests of that code (and of what renders and reports through it): the process-runtime and SDK tests
    // reach status.ts too, but start processes, so every static mutant would rerun them for nothing they pin.
    // (One glob per entry: stryker/base.mjs passes them to vitest joined by commas.)
    tests: ['render', 'names', 'status', 'events', 'hostile-keys'].map((f) => `packages/agent/src/${f}*.test.ts`),
    break: 96,
  },
  protocol: {
    mutate: ['packages/protocol/src/**/*.ts', '!packages/protocol/src/**/*.test.ts', '!packages/protocol/src/index.ts'],
    tests: ['packages/protocol/src/**/*.test.ts'],
    break: 94,
  },
  'hub-auth': {
    mutate: ['packages/hub/src/auth/**/*.ts', '!packages/hub/src/auth/**/*.test.ts'],
    // Its own unit tests only: the other hub tests reach auth on every request (so every mutant would rerun them),
    // and several drive the Python SDKs, whose testenv/ scripts the Stryker sandbox does not copy.
    tests: ['packages/hub/src/auth/**/*.test.ts'],
    break: 99,
  },
  'edge-store': {
    mutate: ['packages/edge-store/src/**/*.ts', '!packages/edge-store/src/**/*.test.ts', '!packages/edge-store/src/index.ts', '!packages/edge-store/src/test-support/**'],
    // Its unit tests, not crash.test.ts: that one spawns writer processes and kills them (-9), which a mutant run
    // in Stryker's sandbox does not fit (minutes per mutant, children outside the runner's timeout).
    tests: ['fs-store', 'fs-store-edges', 'fs-store-cache', 'fs-store-reclaim', 'fs-store-recovery', 'fs-store-segments', 'fs-store-checkpoints', 'fs-store-lifecycle', 'fs-store-unlogged', 'fs-store-reads', 'fs-store-pipeline', 'fs-store-kept', 'fs-store-full', 'router-store', 'record', 'record-shape', 'state-file', 'state-file-handles'].map((t) => `packages/edge-store/src/${t}.test.ts`),
    break: 85,
  },
  'hub-twins': {
    mutate: ['packages/hub/src/twins/**/*.ts', '!packages/hub/src/twins/**/*.test.ts'],
    // The twins' own unit tests (twins.ts on an in-memory SQLite store, the routes on one hub): the other hub tests
    // reach twins through whole-hub flows (hostile-keys.test.ts is a property test over a hub, every mutant would
    // rerun it), and several drive the Python SDKs, whose testenv/ scripts the Stryker sandbox does not copy.
    tests: ['packages/hub/src/twins/twins.test.ts', 'packages/hub/src/twins/routes.test.ts'],
    break: 96,
  },
};
