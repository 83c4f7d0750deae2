import { describe, expect, it } from 'vitest';
import { parseBodyPath, type PathSegment } from './condition/json-path.js';
import { MessageContext, messageSourcePath, type RouteMessage } from './message.js';

const path = (p: string): PathSegment[] => {
  const r = parseBodyPath(p);
  if (typeof r === 'string') throw new Error(r);
  return r;
};
const json = (body: RouteMessage['body'], contentEncoding = 'utf-8'): MessageContext =>
  new MessageContext({ source: { deviceId: 'd' }, contentType: 'application/json', contentEncoding, body });

function utf32(text: string): Uint8Array {
  const cps = [...text].map((c) => c.codePointAt(0) as number);
  return utf32cps(cps);
}
function utf32cps(cps: number[]): Uint8Array {
  const out = new Uint8Array(cps.length * 4);
  cps.forEach((cp, i) => new DataView(out.buffer).setUint32(i * 4, cp, true));
  return out;
}

describe('messageSourcePath', () => {
  it('treats an empty module id or output as absent', () => {
    expect(messageSourcePath({ deviceId: 'd', moduleId: '', output: 'o' })).toBe('/messages/');
    expect(messageSourcePath({ deviceId: 'd', moduleId: 'm', output: '' })).toBe('/messages/modules/m/');
    expect(messageSourcePath({ deviceId: 'd', moduleId: 'm' })).toBe('/messages/modules/m/');
  });
});

describe('MessageContext', () => {
  it('hasApp tells a null-valued property from an absent one, case-insensitively', () => {
    const ctx = new MessageContext({ source: { deviceId: 'd' }, properties: { Nothing: null, A: 'x' } });
    expect([ctx.hasApp('nothing'), ctx.hasApp('a'), ctx.hasApp('b')]).toEqual([true, true, false]);
    expect([ctx.app('nothing'), ctx.app('a'), ctx.app('b')]).toEqual([null, 'x', undefined]);
  });

  it('derives system properties from the source and content fields', () => {
    const twin = new MessageContext({ source: { kind: 'twinChangeNotification', deviceId: 'd', moduleId: 'm' } });
    expect([twin.sys('connectiondeviceid'), twin.sys('connectionmoduleid'), twin.sys('messagetype')]).toEqual(['d', 'm', 'twinChangeNotification']);
    // A twin-change source has no output even when the object carries one.
    const odd = new MessageContext({ source: { kind: 'twinChangeNotification', deviceId: 'd', output: 'o' } as unknown as RouteMessage['source'] });
    expect(odd.sys('outputname')).toBeUndefined();
    const tel = new MessageContext({ source: { deviceId: 'd', moduleId: 'm', output: 'o' }, contentType: 'ct', contentEncoding: 'ce' });
    expect([tel.sys('outputname'), tel.sys('messagetype'), tel.sys('contenttype'), tel.sys('contentencoding')]).toEqual(['o', undefined, 'ct', 'ce']);
  });

  it('body() with a wildcard path: a leaf, null when nothing matches, undefined for objects, dates and unqueryable bodies', () => {
    const ctx = json({ a: { x: 1 }, b: { y: { z: 2 } }, d: { t: '2020-01-02T03:04:05Z' } });
    expect(ctx.body(path('a.*'))).toBe(1);
    expect(ctx.body(path('q.*'))).toBeNull();
    expect(ctx.body(path('b.*'))).toBeUndefined();
    expect(ctx.body(path('d.*'))).toBeUndefined();
    expect(ctx.bodyIncludes(path('a.*'))).toBe(true);
    const text = new MessageContext({ source: { deviceId: 'd' }, contentType: 'text/plain', contentEncoding: 'utf-8', body: { a: { x: 1 } } });
    expect(text.body(path('a.*'))).toBeUndefined();
    expect(text.bodySimple(path('a.x'))).toBeUndefined();
    expect(text.bodyIncludes(path('a.x'))).toBeUndefined();
  });

  it('needs a supported encoding: none or an unknown one makes the body unqueryable', () => {
    const noEnc = new MessageContext({ source: { deviceId: 'd' }, contentType: 'application/json', body: { a: 1 } });
    expect(noEnc.bodySimple(path('a'))).toBeUndefined();
    expect(json({ a: 1 }, 'latin1').bodySimple(path('a'))).toBeUndefined();
    expect(json({ a: 1 }, 'UTF-8').bodySimple(path('a'))).toBe(1);
  });

  it('queries only object documents', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(json(enc('{"a": 1}')).bodySimple(path('a'))).toBe(1);
    expect(json(enc('{"a": 1}')).bodySimple(path('b'))).toBeNull();
    for (const doc of ['null', '5', '"a"', '[1]', '{bad']) expect(json(enc(doc)).bodySimple(path('a')), doc).toBeUndefined();
    expect(json(null).bodySimple(path('a'))).toBeUndefined();
    expect(json(5).bodySimple(path('a'))).toBeUndefined();
  });

  it('decodes UTF-32 (LE) four bytes at a time, ignoring a trailing partial unit', () => {
    const body = utf32('{"a": "xy"}');
    expect(json(body, 'utf-32').bodySimple(path('a'))).toBe('xy');
    const tail = new Uint8Array(body.length + 3);
    tail.set(body);
    tail.set([0x78, 0, 0], body.length); // an 'x' if read as a unit: the JSON would not parse
    expect(json(tail, 'utf-32').bodySimple(path('a'))).toBe('xy');
  });

  it('replaces UTF-32 units that are surrogates or beyond U+10FFFF', () => {
    const q = 0x22;
    const pre = [...'{"a":"'].map((c) => c.codePointAt(0) as number);
    const of = (cp: number) => json(utf32cps([...pre, cp, q, 0x7d]), 'utf-32').bodySimple(path('a'));
    expect(of(0x41)).toBe('A');
    expect(of(0xd7ff)).toBe('\ud7ff');
    expect(of(0xd800)).toBe('\ufffd');
    expect(of(0xdfff)).toBe('\ufffd');
    expect(of(0xe000)).toBe('\ue000');
    expect(of(0x10ffff)).toBe(String.fromCodePoint(0x10ffff));
    expect(of(0x110000)).toBe('\ufffd');
  });
});
