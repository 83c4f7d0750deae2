/**
 * Layering of the Kedge packages: imports only point down. The packages and layers come from architecture.json.
 * `testing` is for tests only and never a production dependency.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- dependency-cruiser loads this file as CommonJS
const { packages } = require('./architecture.json');
const layer = Object.fromEntries(packages.map((p) => [p.name, p.layer]));
// A package's tests may import the higher-layer packages it lists in testsImport (a client tested against the real server).
const testsImport = Object.fromEntries(packages.map((p) => [p.name, p.testsImport ?? []]));
const names = Object.keys(layer);
const forbidden = [];
for (const from of names) {
  for (const to of names) {
    if (from === to) continue;
    const tooHigh = layer[to] >= layer[from];
    if (tooHigh) {
      forbidden.push({
        name: `layer-${from}-must-not-import-${to}`,
        comment: `${from} (L${layer[from]}) may not import ${to} (L${layer[to]}): imports only point down`,
        severity: 'error',
        from: testsImport[from].includes(to) ? { path: `^packages/${from}/src/`, pathNot: '\\.test\\.ts$' } : { path: `^packages/${from}/src/` },
        to: { path: `^packages/${to}/` },
      });
    }
  }
}
forbidden.push(
  {
    name: 'testing-only-in-tests',
    comment: '@kedge/testing is a test harness: production code must not import it',
    severity: 'error',
    from: { path: '^packages/[^/]+/src/', pathNot: ['\\.test\\.ts$', '^packages/testing/'] },
    to: { path: '^packages/testing/' },
  },
  {
    name: 'contracts-is-pure',
    comment: 'contracts holds types and schemas only: no I/O modules',
    severity: 'error',
    from: { path: '^packages/(contracts|routing|protocol|manifest)/src/', pathNot: '\\.test\\.ts$' },
    to: { dependencyTypes: ['core'], path: '^(fs|net|http|https|tls|child_process|dgram|node:fs|node:net|node:http|node:https|node:tls|node:child_process)$' },
  },
  {
    name: 'no-deep-imports',
    comment: 'packages export through src/index.ts only',
    severity: 'error',
    from: { path: '^packages/([^/]+)/' },
    to: { path: '^packages/([^/]+)/(src|dist)/(?!index\\.)', pathNot: '^packages/$1/' },
  },
  { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
);
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'types', 'default'] },
  },
};
