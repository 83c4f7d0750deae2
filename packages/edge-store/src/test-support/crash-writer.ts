/**
 * The writer of the crash test (`crash.test.ts`), run as a child process and killed with SIGKILL mid-stream:
 * `node crash-writer.js <dir> <first index> <concurrency>`. Adds messages to queues `a` and `b` (as a route to two
 * endpoints would) without end, and prints `<index>\n` after both adds of a message resolved, so every printed
 * index is acknowledged. Commits queue `b`'s checkpoint now and then, as a delivering executor would.
 */
import { openMessageStore } from '../index.js';
import { crashMessage } from './crash-message.js';

const [dir, firstArg, concurrencyArg] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: crash-writer <dir> <first index> <concurrency>');
const first = Number(firstArg ?? '0');
const concurrency = Number(concurrencyArg ?? '64');
// Checkpoints are flushed lazily (1 s by default); 10 ms here, so one is on disk well before the test kills the writer
// (3000 acknowledged messages take hundreds of milliseconds even on a fast machine), whatever the machine's speed.
const store = await openMessageStore(dir, { checkpointFlushMs: 10 });
await store.addQueue('a');
await store.addQueue('b');
const b = await store.checkpointer('b');
let next = first;
process.stdout.write('ready\n');

async function worker(): Promise<void> {
  for (;;) {
    const i = next++;
    const m = crashMessage(i);
    const [, sb] = await Promise.all([store.add('a', m, -1), store.add('b', m, -1)]);
    process.stdout.write(`${i}\n`);
    if (i % 500 === 0) await b.commit(sb.offset - 200n);
  }
}
await Promise.all(Array.from({ length: concurrency }, () => worker()));
