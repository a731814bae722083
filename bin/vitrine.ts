#!/usr/bin/env node
import { nodeVersionProblem } from './node-check.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
// loaded once the version is known to do
const { main } = await import('./main.js');
const code = await main(process.argv.slice(2));
// A failed command exits now, whatever it left behind (timers, threads); a served one keeps running.
if (code !== 0) process.exit(code);
