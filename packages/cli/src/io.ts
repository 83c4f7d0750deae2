import { readFile } from 'node:fs/promises';

/** Reads a JSON (or YAML, by extension) file; a clear message on failure. */
export async function readDocument(file: string): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return { ok: false, message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  try {
    if (/\.ya?ml$/i.test(file)) {
      const { parse } = await import('yaml');
      return { ok: true, value: parse(text) as unknown };
    }
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, message: `${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message}` };
  }
}

/** Reads a document for a command; on failure prints why, sets exit code 2 and returns undefined. */
export async function loadDocument(file: string): Promise<{ value: unknown } | undefined> {
  const doc = await readDocument(file);
  if (doc.ok) return { value: doc.value };
  process.stderr.write(`${doc.message}\n`);
  process.exitCode = 2;
  return undefined;
}

/** Resolves at the first SIGINT or SIGTERM, then stops listening: long-running commands close gracefully after it. */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
