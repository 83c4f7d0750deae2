import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const architecture = JSON.parse(readFileSync(new URL('./architecture.json', import.meta.url), 'utf8')) as { packages: { name: string }[] };
const packages = architecture.packages.map((p) => p.name);
// Tests import workspace packages from source, so `vitest` never needs a prior build.
const alias = Object.fromEntries(
  packages.map((p) => [`@kedge/${p}`, fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url))]),
);

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', '**/node_modules/**', '**/dist/**'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        resolve: { alias },
        test: {
          // Control-plane tests: one real kube-apiserver + etcd + kcm + scheduler + kwok per run.
          name: 'cluster',
          include: ['packages/*/src/**/*.int.test.ts'],
          globalSetup: ['packages/testing/src/vitest-global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
