// Runs every benchmark (`bench/*.bench.mjs`, each a standalone script against the built packages) one after the
// other, or only those named by the arguments (the file name without `.bench.mjs`): `npm run bench -- routing hub`
// runs routing and hub, not edge-hub or hub-amqp. `edge-hub` (the edge
// hub against a Kedge hub and Debian's Mosquitto, fetched by bench/mosquitto.sh) needs apt-get and the network once.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => filters.length === 0 || filters.includes(f.slice(0, -'.bench.mjs'.length)))
  .sort();
const known = new Set(files.map((f) => f.slice(0, -'.bench.mjs'.length)));
const unknown = filters.filter((x) => !known.has(x));
if (unknown.length > 0) {
  const all = readdirSync(dir).filter((f) => f.endsWith('.bench.mjs')).map((f) => f.slice(0, -'.bench.mjs'.length));
  console.error(`bench: no benchmark named ${unknown.join(', ')} (there are: ${all.join(', ')})`);
  process.exit(2);
}
let failed = 0;
for (const f of files) {
  console.log(`\n### ${f}`);
  const r = spawnSync(process.execPath, ['--expose-gc', `${dir}${f}`], { stdio: 'inherit' });
  if (r.status !== 0) { failed++; console.log(`### ${f} failed (exit ${r.status ?? r.signal})`); }
}
process.exit(failed ? 1 : 0);
