#!/usr/bin/env node
import { main } from './main.js';

const code = await main(process.argv.slice(2));
// A failed command exits now, whatever it left behind (timers, threads); a served one keeps running.
if (code !== 0) process.exit(code);
