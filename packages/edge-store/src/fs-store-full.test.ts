/** What a full store says when it refuses an add: the policy's reason, not the other policy's. */
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { sized, tempDirs } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-full-');
afterEach(tmp.cleanup);

// maxBytes 512 KiB: 64 KiB segments (an eighth), a records' budget of 512 - 2 * 64 KiB.
const maxBytes = 512 * 1024;
const budget = maxBytes - 2 * 64 * 1024;

describe('FsMessageStore: a refused add says why', () => {
  for (const [onFull, why] of [
    ['rejectNew', 'its policy is rejectNew'],
    ['evictOldest', 'nothing older is left to evict (the rest is being written)'],
  ] as const) {
    it(`${onFull}: a burst past the quota with nothing written yet`, async () => {
      const store = await openMessageStore(await tmp.make(), { maxBytes, onFull });
      await store.addQueue('q');
      // Six 60000-byte records still being written, then one that does not fit beside them.
      const fits = Array.from({ length: 6 }, () => store.add('q', sized(60_000), 3600));
      const used = store.stats().bytes;
      expect(budget - used).toBeLessThan(34_000);
      await expect(store.add('q', sized(34_000), 3600)).rejects.toMatchObject({ name: 'StoreFullError', code: 'EDGE_ERR_STORE_FULL', message: `Message store is full (${used} of ${maxBytes} bytes) and ${why}` });
      expect((await Promise.all(fits)).map((m) => m.offset)).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
      expect(store.stats().rejected).toBe(1);
      await store.close();
    });
  }
});
