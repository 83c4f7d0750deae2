import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The vitest config Stryker runs: the unit tests of one package (`KEDGE_MUTATION_TESTS`, a glob set by
 * stryker/run.mjs), with the workspace packages resolved from source like the root config. No projects: the
 * Stryker vitest runner wants one flat config.
 */
const root = new URL('../', import.meta.url);
const architecture = JSON.parse(readFileSync(new URL('architecture.json', root), 'utf8')) as { packages: { name: string }[] };
const alias = Object.fromEntries(architecture.packages.map((p) => [`@kedge/${p.name}`, fileURLToPath(new URL(`packages/${p.name}/src/index.ts`, root))]));
const include = (process.env['KEDGE_MUTATION_TESTS'] ?? 'packages/*/src/**/*.test.ts').split(',');

export default defineConfig({
  root: fileURLToPath(root),
  resolve: { alias },
  test: {
    include,
    exclude: ['**/*.int.test.ts', '**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
