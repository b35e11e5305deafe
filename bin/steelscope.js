#!/usr/bin/env node
// `npx steelscope …` from the repository: runs the bundled CLI (build it first with `npm run build`).
require('../dist/cli.js');
