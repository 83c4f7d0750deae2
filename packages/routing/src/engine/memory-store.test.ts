import { describe, it } from 'vitest';
import { MemoryMessageStore } from './memory-store.js';
import { describeMessageStore } from './message-store.contract.js';

describeMessageStore('MemoryMessageStore', () => Promise.resolve({ store: new MemoryMessageStore() }), { describe, it });
