// Incremental mutation state: committed gzipped in stryker/incremental/<target>.json.gz (Stryker's JSON holds every
// mutant's covering tests: 36 MB for manifest, 0.5 MB packed); Stryker reads and writes the plain JSON in
// reports/mutation/incremental/ (not committed). stryker/run.mjs unpacks before a target's run and packs after.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

/** The plain JSON Stryker reads and writes (its `incrementalFile`). */
export const workingStateFile = (name) => `reports/mutation/incremental/${name}.json`;

/** The committed, gzipped state. */
export const committedStateFile = (name) => `stryker/incremental/${name}.json.gz`;

/** Writes the committed state (if any) to the working file; without it Stryker starts from nothing. */
export function unpackState(name) {
  const from = committedStateFile(name);
  if (!existsSync(from)) return;
  const to = workingStateFile(name);
  mkdirSync(dirname(to), { recursive: true });
  writeFileSync(to, gunzipSync(readFileSync(from)));
}

/** Packs the state the run left back into the committed file (gzip without a timestamp: the same JSON, the same bytes). */
export function packState(name) {
  const from = workingStateFile(name);
  if (!existsSync(from)) return;
  writeFileSync(committedStateFile(name), gzipSync(readFileSync(from), { level: 9 }));
}
