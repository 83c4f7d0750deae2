import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// architecture.json is the one list of packages and layers (dependency-cruiser and vitest read it). The root
// package.json and tsconfig.json cannot read it, so this test keeps them in step, and no package exists outside it.
const root = new URL('../../../', import.meta.url);
const read = (p: string): unknown => JSON.parse(readFileSync(new URL(p, root), 'utf8'));
const architecture = read('architecture.json') as { packages: { name: string; layer: number; testOnly?: boolean }[] };
const names = architecture.packages.map((p) => p.name);

describe('architecture.json', () => {
  it('lists every directory under packages/', () => {
    const dirs = readdirSync(new URL('packages/', root), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect([...dirs].sort()).toEqual([...names].sort());
  });
  it('matches the npm workspaces, in the same order', () => {
    const pkg = read('package.json') as { workspaces: string[] };
    expect(pkg.workspaces).toEqual(names.map((n) => `packages/${n}`));
  });
  it('matches the root tsconfig references', () => {
    const ts = read('tsconfig.json') as { references: { path: string }[] };
    expect(ts.references.map((r) => r.path)).toEqual(names.map((n) => `packages/${n}`));
  });
  it('gives each package a layer no lower than the packages it depends on', () => {
    const layer = new Map(architecture.packages.map((p) => [`@kedge/${p.name}`, p.layer]));
    for (const p of architecture.packages) {
      const pj = read(`packages/${p.name}/package.json`) as { dependencies?: Record<string, string> };
      for (const dep of Object.keys(pj.dependencies ?? {})) {
        const l = layer.get(dep);
        if (l !== undefined) expect(l, `${p.name} depends on ${dep}`).toBeLessThan(p.layer);
      }
    }
  });
  // Vitest transforms modules and lends CommonJS packages named exports that plain Node ESM refuses (an
  // `import { x } from 'a-cjs-package'` passes every test and crashes `kedge` at start): load each package's built
  // entry point the way the CLI does. `npm test` builds first.
  it('loads every package\'s built entry point under plain Node ESM', () => {
    for (const p of architecture.packages) {
      const entry = fileURLToPath(new URL(`packages/${p.name}/dist/index.js`, root));
      expect(() => execFileSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(entry)})`], { stdio: 'pipe', timeout: 60_000 }), p.name).not.toThrow();
    }
  }, 120_000);
});
