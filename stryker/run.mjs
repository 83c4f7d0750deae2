#!/usr/bin/env node
// `npm run test:mutation [-- <target>… ] [-- --full]`: runs Stryker on each target of stryker/targets.mjs, one at a
// time (the machine has 2 cores), in incremental mode unless --full, and prints each target's score and time. Exits
// non-zero when any target's score is below its `break` threshold (Stryker's own exit code) or Stryker fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { packState, unpackState } from './state.mjs';
import { targets } from './targets.mjs';

const args = process.argv.slice(2);
const full = args.includes('--full');
const chosen = args.filter((a) => !a.startsWith('--'));
for (const t of chosen) if (!(t in targets)) { console.error(`unknown target ${t}; known: ${Object.keys(targets).join(', ')}`); process.exit(2); }
const names = chosen.length ? chosen : Object.keys(targets);

const summary = [];
let failed = false;
for (const name of names) {
  const started = Date.now();
  unpackState(name);
  const r = spawnSync('npx', ['stryker', 'run', `stryker/${name}.config.mjs`, ...(full ? ['--force'] : [])], { stdio: 'inherit' });
  packState(name);
  const secs = Math.round((Date.now() - started) / 1000);
  const report = `reports/mutation/${name}.json`;
  let score = 'n/a';
  if (r.status === 0 || r.status === 1) {
    if (existsSync(report)) {
      const files = Object.values(JSON.parse(readFileSync(report, 'utf8')).files);
      const mutants = files.flatMap((f) => f.mutants);
      const detected = mutants.filter((m) => m.status === 'Killed' || m.status === 'Timeout').length;
      const valid = mutants.filter((m) => !['CompileError', 'RuntimeError', 'Ignored'].includes(m.status)).length;
      score = valid ? `${((100 * detected) / valid).toFixed(2)} %` : 'n/a';
    }
  }
  if (r.status !== 0) failed = true;
  summary.push(`${name.padEnd(10)} score ${score.padStart(8)}  break ${String(targets[name].break).padStart(3)} %  ${secs} s  ${r.status === 0 ? 'ok' : 'FAILED'}`);
}
console.log(`\nmutation testing (${full ? 'full' : 'incremental'}):\n${summary.join('\n')}`);
process.exit(failed ? 1 : 0);
