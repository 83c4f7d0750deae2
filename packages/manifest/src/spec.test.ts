import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec } from './spec.js';

describe('parseEdgeDeploymentSpec', () => {
  it('checks route names and compiles routes with the same rules and wording as a manifest', () => {
    const r = parseEdgeDeploymentSpec({
      routes: { 'a.b': { route: 'FROM /* INTO $upstream' }, bad: { route: 'FROM /* INTO nowhere', priority: 1 } },
    });
    expect(r.ok ? [] : r.error).toEqual([
      { path: 'spec.routes.a.b', message: 'route name "a.b" contains "."; route names must not contain ".", "$", "#" or space' },
      { path: 'spec.routes.bad.route', message: "line 1, column 21: Syntax error: expected '(' after nowhere" },
    ]);
  });
});
