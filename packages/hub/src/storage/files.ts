import { chmodSync, closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';

/**
 * Files at rest that hold secrets (the database with every device key, TLS private keys) are readable by the hub's
 * user only: directories 0700, files 0600. Modes are enforced on every start, so a file or directory that already
 * exists with wider permissions (an older release, a restored backup) is tightened too.
 */

/** Creates `dir` (and missing parents) and makes it 0700. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Makes `path` 0600 when it exists. */
export function tightenFile(path: string): void {
  if (existsSync(path)) chmodSync(path, 0o600);
}

/** Creates `path` empty with mode 0600 unless it exists, and makes it 0600 either way. */
export function ensurePrivateFile(path: string): void {
  // 'a' never truncates; the mode only applies when the file is created.
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}

/** Writes a secret file with mode 0600 (also when it already existed with another mode). */
export function writePrivateFile(path: string, data: string): void {
  writeFileSync(path, data, { mode: 0o600 });
  chmodSync(path, 0o600);
}
