import { describe, expect, it } from 'vitest';
import { compileCondition } from './condition.js';
import { messageSourcePath } from './message.js';
import { messageFromJson } from './message-json.js';

describe('messageFromJson', () => {
  it('builds leaf, module and twin-change messages', () => {
    const leaf = messageFromJson({ source: { deviceId: 'd1' } });
    const mod = messageFromJson({ source: { deviceId: 'd1', moduleId: 'm', output: 'o' } });
    const twin = messageFromJson({ source: { deviceId: 'd1' }, systemProperties: { messageType: 'twinChangeNotification' } });
    expect([leaf, mod, twin].map((r) => r.ok && messageSourcePath(r.value.source))).toEqual(['/messages/', '/messages/modules/m/outputs/o/', '/twinChangeNotifications/']);
  });

  it('reads string bodies as UTF-8 text, bodyBase64 as bytes, other JSON as a document', () => {
    const cond = compileCondition('$body.a = 1');
    if (!cond.ok) throw new Error('compile');
    const base = { source: { deviceId: 'd' }, contentType: 'application/json', contentEncoding: 'utf-8' };
    for (const extra of [{ body: '{"a": 1}' }, { body: { a: 1 } }, { body: null, bodyBase64: Buffer.from('{"a":1}').toString('base64') }]) {
      const m = messageFromJson({ ...base, ...extra });
      expect(m.ok && cond.value.evaluate(m.value)).toBe(true);
    }
    const fromSys = messageFromJson({ source: { deviceId: 'd' }, systemProperties: { contentType: 'application/json', contentEncoding: 'utf-8' }, body: { a: 1 } });
    expect(fromSys.ok && cond.value.evaluate(fromSys.value)).toBe(true);
  });

  it('reports malformed fields', () => {
    const r = messageFromJson({ source: 'd1', properties: { a: { b: 1 } }, contentType: 3, bodyBase64: '***' });
    expect(!r.ok && r.error.map((i) => i.path)).toEqual(['$.properties.a', '$.source', '$.contentType', '$.bodyBase64']);
    expect(messageFromJson([]).ok).toBe(false);
  });
});
