// Two versions of the server under the same load, alternately: bench:serve against checkout A, then B,
// N times each (A B A B ...), so that whatever else the machine does falls on both alike. Prints every
// run's JSON lines, then per load and concurrency the median requests/s and p50 of each and B's gain.
//   npx tsx bench/alternate.ts --a <checkout> --b <checkout> [--runs 5] [-- <bench:serve flags>]
// e.g. the kept-result path: git worktree add /tmp/slab <commit>; ln -s $PWD/node_modules /tmp/slab/;
//   npx tsx bench/alternate.ts --a /tmp/slab --b . -- --seconds 10
//   npx tsx bench/alternate.ts --a /tmp/slab --b . -- --seconds 10 --draw

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStrict } from '../runtime/args.js';

const argv = process.argv.slice(2);
const split = argv.indexOf('--');
const own = split >= 0 ? argv.slice(0, split) : argv;
const passed = split >= 0 ? argv.slice(split + 1) : [];
const flags = parseStrict(own, { a: { type: 'string' }, b: { type: 'string' }, runs: { type: 'string', default: '5' } });
const opt = (name: 'a' | 'b' | 'runs', fallback?: string) => {
  const v = flags[name] ?? fallback;
  if (v === undefined) throw new Error(`--${name} is required (see the header of bench/alternate.ts)`);
  return v;
};
const a = path.resolve(opt('a'));
const b = path.resolve(opt('b'));
const runs = Number(opt('runs', '5'));
const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Line {
  bench: string;
  concurrency: number;
  requests_per_s: number;
  p50_ms: number;
  errors: number;
}
const seen: Record<'a' | 'b', Line[]> = { a: [], b: [] };
for (let i = 0; i < runs; i++) {
  for (const [key, root] of [
    ['a', a],
    ['b', b],
  ] as const) {
    const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'bench', 'serve.ts'), '--root', root, ...passed], {
      cwd: here,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (res.status !== 0) throw new Error(`bench:serve on ${root} exited with ${res.status}`);
    for (const line of res.stdout.trim().split('\n')) {
      console.log(JSON.stringify({ run: i + 1, version: key, ...JSON.parse(line) }));
      const l = JSON.parse(line) as Line;
      if (l.bench === 'serve') seen[key].push(l);
    }
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
for (const c of [...new Set(seen.a.map((l) => l.concurrency))]) {
  const of = (k: 'a' | 'b') => seen[k].filter((l) => l.concurrency === c);
  const rpsA = median(of('a').map((l) => l.requests_per_s));
  const rpsB = median(of('b').map((l) => l.requests_per_s));
  console.log(
    JSON.stringify({
      bench: 'alternate',
      concurrency: c,
      runs,
      a,
      b,
      a_requests_per_s: of('a').map((l) => l.requests_per_s),
      b_requests_per_s: of('b').map((l) => l.requests_per_s),
      a_median: rpsA,
      b_median: rpsB,
      b_gain_pct: +((100 * (rpsB - rpsA)) / rpsA).toFixed(1),
      a_p50_ms: median(of('a').map((l) => l.p50_ms)),
      b_p50_ms: median(of('b').map((l) => l.p50_ms)),
      errors: [...of('a'), ...of('b')].reduce((n, l) => n + l.errors, 0),
      passed: passed.join(' '),
    }),
  );
}
