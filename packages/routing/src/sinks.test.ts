import { describe, expect, it } from 'vitest';
import { compileRoute, formatSink, sinkKey } from './route.js';

const sinkOf = (endpoint: string) => {
  const r = compileRoute(`FROM /messages/* INTO ${endpoint}`);
  return r.ok ? r.value.sink : r.error.message;
};

describe('route sinks', () => {
  it('reads BrokeredEndpoint addresses with optional leading and trailing slashes, in any letter case', () => {
    const want = { kind: 'module', module: 'filter', input: 'input1' };
    for (const a of ['/modules/filter/inputs/input1', 'modules/filter/inputs/input1', '/modules/filter/inputs/input1/', 'modules/filter/inputs/input1/', '/MODULES/filter/Inputs/input1']) {
      expect(sinkOf(`BrokeredEndpoint("${a}")`), a).toEqual(want);
    }
    expect(sinkOf("brokeredendpoint('/modules/filter/inputs/input1')")).toEqual(want);
    expect(sinkOf('$UPSTREAM')).toEqual({ kind: 'upstream' });
  });

  it.each([
    '/modules/filter/inputs/input1/extra',
    '/extra/modules/filter/inputs/input1',
    '/modules/filter/inputs',
    '/modules/filter',
    '/module/filter/inputs/input1',
    '/modules/filter/input/input1',
    '/modules/filter/outputs/input1',
    '/modules//inputs/input1',
    '/modules/filter/inputs/',
    '//modules/filter/inputs/input1',
    '/modules/filter/inputs/input1//',
    '',
  ])('refuses the address %j', (address) => {
    expect(sinkOf(`BrokeredEndpoint("${address}")`)).toBe(`Invalid BrokeredEndpoint address '${address}': expected "/modules/<module>/inputs/<input>"`);
  });

  it('refuses other endpoint functions and malformed calls', () => {
    expect(sinkOf('Endpoint("/modules/a/inputs/b")')).toBe("Unknown endpoint function 'Endpoint': only BrokeredEndpoint is supported");
    expect(compileRoute('FROM /* INTO BrokeredEndpoint "/modules/a/inputs/b"').ok).toBe(false);
    expect(compileRoute('FROM /* INTO BrokeredEndpoint(/modules/a/inputs/b)').ok).toBe(false);
    expect(compileRoute('FROM /* INTO BrokeredEndpoint("/modules/a/inputs/b"').ok).toBe(false);
  });

  it('names sinks for keys and messages', () => {
    expect(sinkKey({ kind: 'upstream' })).toBe('$upstream');
    expect(sinkKey({ kind: 'module', module: 'm', input: 'i' })).toBe('/modules/m/inputs/i');
    expect(formatSink({ kind: 'upstream' })).toBe('$upstream');
    expect(formatSink({ kind: 'module', module: 'm', input: 'i' })).toBe('BrokeredEndpoint("/modules/m/inputs/i")');
  });
});
