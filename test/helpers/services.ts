// Programs a test needs from the machine (redis-server, nginx, chromium). .ci/run installs them. Where
// one is missing the test is skipped with the line that says how to install it, except under CI
// (`CI` set): there the test fails, naming what is missing, so that a run without the program never
// reports a pass for code it did not run.

import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Test } from 'tap';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const runs = (program: string, args: string[]) => spawnSync(program, args).status === 0;

/** What is missing of the programs named, with how to install it; false when all are here. */
export function missingOf(...programs: Program[]): string | false {
  for (const p of programs) {
    if (p === 'redis-server' && !runs('redis-server', ['--version']))
      return 'redis-server is not installed (apt-get install redis-server; .ci/run does)';
    if (p === 'nginx' && !runs('nginx', ['-v'])) return 'nginx is not installed (apt-get install nginx; .ci/run does)';
    if (p === 'chromium' && !existsSync(CHROMIUM)) return `no browser at ${CHROMIUM} (apt-get install chromium; .ci/run does)`;
  }
  return false;
}

export type Program = 'redis-server' | 'nginx' | 'chromium';

/** Inside a test, something it needs found missing (`why` says how to install it): under CI a
 *  failure naming it, elsewhere the test is skipped with that line. */
export function missingProgram(t: Test, why: string): void {
  if (process.env.CI) t.fail(`${why}; CI is set, so this is a failure, not a skip`);
  else t.plan(0, why);
}

/** A subtest that needs programs: run where they are; where one is missing, `missingProgram`. */
export function testWith(t: Test, name: string, programs: Program[], fn: (t: Test) => Promise<void>): Promise<unknown> {
  const missing = missingOf(...programs);
  return t.test(name, async (t) => (missing ? missingProgram(t, missing) : fn(t)));
}
