#!/usr/bin/env node
// Committed launcher, so npm links `kedge` on install even before `tsc -b` has produced dist/.
import '../dist/main.js';
