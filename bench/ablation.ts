// The ablation of issue 11: each recipe in bench/ablation/ trained at the same short budget, one run
// folder each under runs/ablation/, then a table of what each ingredient adds.
//   npm run bench:ablation [-- --only 3-ema] [--table] [--runs runs/ablation] [--set budget]
// A run that has a checkpoint and no exported model is resumed (runs span sittings; Ctrl-C saves);
// a finished run is not trained again. --table only prints the table from the runs there are.
// Training goes through the vitrine command itself (tsx bin/vitrine.ts train), as a user would run it.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseViTConfig } from '../trainer/vit/config.js';
import { ViT } from '../trainer/vit/model.js';
import { benchArgs } from './common.js';

const { arg, flag } = benchArgs('npm run bench:ablation [-- --only 3-ema] [--table] [--runs runs/ablation] [--set budget]', {
  strings: ['only', 'runs', 'set'],
  booleans: ['table'],
});

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// --set <name>: the recipes of bench/ablation/<name>/ instead (budget: the budget-training keys on
// cct-cifar10's recipe), their runs under runs/ablation/<name>/.
const set = arg('set', '');
if (set && !/^[a-z0-9-]+$/.test(set)) throw new Error(`--set ${set}: a folder name under bench/ablation`);
const runsDir = path.resolve(arg('runs', path.join(root, 'runs', 'ablation', set)));
const only = arg('only', '');
const recipesDir = path.join(root, 'bench', 'ablation', set);
const recipes = readdirSync(recipesDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f.slice(0, -5), file: path.join(recipesDir, f) }));
if (only && !recipes.some((r) => r.name === only))
  throw new Error(`--only ${only}: no such recipe in bench/ablation (${recipes.map((r) => r.name).join(', ')})`);

if (!flag('table')) {
  for (const r of recipes) {
    if (only && r.name !== only) continue;
    const out = path.join(runsDir, r.name);
    if (existsSync(path.join(out, 'model', 'config.json'))) continue;
    const resume = existsSync(path.join(out, 'checkpoint.json'));
    const args = ['tsx', path.join(root, 'bin', 'vitrine.ts'), 'train', ...(resume ? ['--resume'] : ['--recipe', r.file]), '--out', out];
    process.stderr.write(`\n== ${r.name}${resume ? ' (resumed)' : ''}\n`);
    const res = spawnSync('npx', args, { stdio: 'inherit', cwd: root });
    if (res.status !== 0) process.exit(res.status ?? 1);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const pct = (v: number | undefined) => (v === undefined ? '–' : `${(100 * v).toFixed(2)}%`);
const clock = (s: number) =>
  `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(Math.round(s % 60)).padStart(2, '0')}`;

console.log('| recipe | what it adds | parameters | epochs | test accuracy | weight average | training images/s (median) | wall time |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of recipes) {
  const recipe = JSON.parse(readFileSync(r.file, 'utf8'));
  const params = new ViT(parseViTConfig(recipe.model ?? {})).parameterCount();
  const metrics = path.join(runsDir, r.name, 'metrics.jsonl');
  const lines = existsSync(metrics)
    ? readFileSync(metrics, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
  const last = lines.at(-1);
  const done = last && last.epoch === recipe.epochs;
  const status = !last ? 'not run' : done ? `${last.epoch}` : `${last.epoch} of ${recipe.epochs}`;
  const desc = String(recipe['//'] ?? '').split(/ One row of the (budget )?ablation/)[0];
  console.log(
    `| ${r.name} | ${desc} | ${params.toLocaleString('en')} | ${status} | ` +
      `${pct(last?.test_accuracy)} | ${pct(last?.ema_test_accuracy)} | ` +
      `${last ? median(lines.map((l) => l.images_per_s)) : '–'} | ` +
      `${last ? clock(last.elapsed_s) : '–'} |`,
  );
}
