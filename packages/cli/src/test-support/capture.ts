import { Command } from 'commander';
import { afterEach, beforeEach, vi } from 'vitest';

/** What a CLI command printed during one test. */
export interface Captured {
  readonly out: string;
  readonly err: string;
  /** Forgets what was captured so far (between two commands of one test). */
  reset(): void;
}

/**
 * Captures `process.stdout`/`process.stderr` writes and resets `process.exitCode` around every test of the calling
 * file, so commands can run in-process. Read `captured.out` / `captured.err` after running a command.
 */
export function captureOutput(): Captured {
  const state = { out: '', err: '' };
  beforeEach(() => {
    state.out = '';
    state.err = '';
    process.exitCode = undefined;
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      state.out += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      state.err += String(chunk);
      return true;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });
  return {
    get out() {
      return state.out;
    },
    get err() {
      return state.err;
    },
    reset() {
      state.out = '';
      state.err = '';
    },
  };
}

/**
 * A `kedge` that runs in-process with only the commands `register` adds: `await kedge('route', 'test', …)` resolves
 * to the exit code (`process.exitCode`, reset before each run). Pair it with {@link captureOutput}.
 */
export function inProcessKedge(register: (program: Command) => void): (...args: string[]) => Promise<number> {
  return async (...args) => {
    process.exitCode = undefined;
    const program = new Command('kedge').exitOverride();
    register(program);
    await program.parseAsync(['node', 'kedge', ...args]);
    return Number(process.exitCode ?? 0);
  };
}
