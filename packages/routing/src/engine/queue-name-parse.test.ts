import { describe, expect, it } from 'vitest';
import { parseQueueName, queueName } from './queue-name.js';

describe('queue names', () => {
  it('round-trips upstream and module queues', () => {
    expect(parseQueueName(queueName('$upstream', 0))).toStrictEqual({ sink: { kind: 'upstream' }, endpointId: '$upstream', priority: 0 });
    expect(queueName('/modules/filter/inputs/in', 2000000000)).toBe('/modules/filter/inputs/in@2000000000');
    expect(parseQueueName('/modules/filter/inputs/in@2000000000')).toStrictEqual({
      sink: { kind: 'module', module: 'filter', input: 'in' },
      endpointId: '/modules/filter/inputs/in',
      priority: 2000000000,
    });
    expect(parseQueueName('$upstream@12')?.priority).toBe(12);
    expect(parseQueueName('/modules/a@b/inputs/c@d@7')).toStrictEqual({ sink: { kind: 'module', module: 'a@b', input: 'c@d' }, endpointId: '/modules/a@b/inputs/c@d', priority: 7 });
  });

  it('refuses names that are not an endpoint id and a 1-10 digit priority', () => {
    for (const q of ['$upstream', '$upstream@', '$upstream@x', '$upstream@a1', '$upstream@1a', '$upstream@-1', '$upstream@12345678901', '$upstreamx@1', '@1', '/modules/a/inputs/b/c@1', 'x/modules/a/inputs/b@1', '/modules//inputs/b@1', '/modules/a/outputs/b@1'])
      expect(parseQueueName(q), q).toBeUndefined();
    expect(parseQueueName('$upstream@1234567890')?.priority).toBe(1234567890);
  });
});
