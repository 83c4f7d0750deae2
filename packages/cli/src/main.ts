#!/usr/bin/env node
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`kedge: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
