// Runs every benchmark (`bench/*.bench.mjs`, each a standalone script against the built packages) one after the
// other, or only those whose name contains one of the arguments: `npm run bench -- routing hub`. `edge-hub` (the edge
// hub against a Kedge hub and Debian's Mosquitto, fetched by bench/mosquitto.sh) needs apt-get and the network once.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n### ${f}`);
  const r = spawnSync(process.execPath, ['--expose-gc', `${dir}${f}`], { stdio: 'inherit' });
  if (r.status !== 0) { failed++; console.log(`### ${f} failed (exit ${r.status ?? r.signal})`); }
}
process.exit(failed ? 1 : 0);
