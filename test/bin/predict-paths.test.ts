// vitrine predict's other paths, run in this process (the command's own function, the built command's
// code): a CSV run cut short and resumed equals the uninterrupted one; --overwrite starts again; --tta
// flip gives the logits POST /classify?tta=flip gives; and --merge refuses shard files it cannot join.

import { cp, mkdir, readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { predictCommand } from '../../bin/predict.js';
import { mergeShards, parseCsv } from '../../bin/predict/results.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp } from '../helpers/server.js';
import { maxAbsDiff } from '../helpers/opcheck.js';

const EXAMPLES = path.join(ROOT, 'server', 'web', 'examples');
const MODEL = path.join(ROOT, 'models', 'vit-cifar10');

async function examples(): Promise<string> {
  const dir = path.join(await tmpDir('vitrine-predict-paths-'), 'in');
  await mkdir(dir);
  for (const f of (await readdir(EXAMPLES)).filter((f) => f.endsWith('.png'))) await cp(path.join(EXAMPLES, f), path.join(dir, f));
  return dir;
}
const run = (args: string[]) => predictCommand([...args, '--model', MODEL, '--workers', '1', '--decoders', '1'], () => {});
/** The CSV's rows without the timings columns (which differ from run to run), sorted. */
async function csvRows(file: string): Promise<string[]> {
  const { rows } = parseCsv(await readFile(file, 'utf8'));
  const header = rows[0].fields;
  const keep = header.map((h, i) => (h.startsWith('timings') || h.endsWith('_ms') ? -1 : i)).filter((i) => i >= 0);
  return rows
    .slice(1)
    .map((r) => keep.map((i) => r.fields[i]).join(','))
    .sort();
}

t.test('CSV: a run cut short and resumed is the uninterrupted run; --overwrite starts again', async (t) => {
  const dir = await examples();
  const whole = path.join(path.dirname(dir), 'whole');
  t.equal(await run([dir, '--out', whole, '--format', 'csv', '--logits']), 0);
  const expected = await csvRows(path.join(whole, 'predictions.csv'));
  t.equal(expected.length, 10);

  const cut = path.join(path.dirname(dir), 'cut');
  t.equal(await run([dir, '--out', cut, '--format', 'csv', '--logits']), 0);
  const file = path.join(cut, 'predictions.csv');
  const text = await readFile(file, 'utf8');
  // four records and part of the fifth, as a run stopped while writing would leave it
  const ends = [...text.matchAll(/\n/g)].map((m) => m.index!);
  await truncate(file, ends[4] + 12);
  t.equal(await run([dir, '--out', cut, '--format', 'csv', '--logits', '--resume']), 0);
  t.same(await csvRows(file), expected, "resumed: the uninterrupted run's rows, each once");

  await writeFile(file, (await readFile(file, 'utf8')) + (await readFile(file, 'utf8')).split('\n')[1] + '\n'); // a row twice
  t.equal(await run([dir, '--out', cut, '--format', 'csv', '--logits', '--overwrite']), 0);
  t.same(await csvRows(file), expected, '--overwrite: the file written again from nothing');
});

t.test('--tta flip: the logits of POST /classify?tta=flip', async (t) => {
  const dir = await examples();
  const out = path.join(path.dirname(dir), 'tta');
  t.equal(await run([dir, '--out', out, '--tta', 'flip', '--logits']), 0);
  const records = (await readFile(path.join(out, 'predictions.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.equal(records.length, 10);
  const app = await testApp(t, { models: path.join(ROOT, 'models') });
  for (const r of records) {
    const png = await readFile(r.path);
    const flip = (
      await app.inject({ method: 'POST', url: '/classify?model=vit-cifar10&attention=none&tta=flip', ...multipart('image', png) })
    ).json();
    const plain = (
      await app.inject({ method: 'POST', url: '/classify?model=vit-cifar10&attention=none', ...multipart('image', png) })
    ).json();
    t.ok(maxAbsDiff(r.logits, flip.logits) < 1e-5, `${path.basename(r.path)}: the flipped mean's logits`);
    t.ok(maxAbsDiff(r.logits, plain.logits) > 1e-3, `${path.basename(r.path)}: not the plain logits`);
  }
});

t.test('--merge refuses shard files it cannot join, naming why', async (t) => {
  const rec = (p: string) => JSON.stringify({ path: p, size: 1, mtime_ms: 1, predictions: [] }) + '\n';
  const cases: [string, Record<string, string>, RegExp][] = [
    ['nothing', { 'notes.txt': 'x' }, /holds no shard files/],
    [
      'two runs',
      { 'predictions-1-of-2.jsonl': rec('/a'), 'predictions-2-of-2.jsonl': rec('/b'), 'predictions-1-of-3.jsonl': rec('/c') },
      /mixes shard files of several runs/,
    ],
    [
      'two formats',
      { 'predictions-1-of-2.jsonl': rec('/a'), 'predictions-2-of-2.csv': 'path,size,mtime_ms\n/b,1,1\n' },
      /mixes shard files of several runs/,
    ],
    ['a missing shard', { 'predictions-1-of-3.jsonl': rec('/a'), 'predictions-3-of-3.jsonl': rec('/c') }, /shard 2 of 3 missing/],
    [
      'a shard cut short',
      { 'predictions-1-of-2.jsonl': rec('/a'), 'predictions-2-of-2.jsonl': rec('/b') + '{"path":"/c' },
      /predictions-2-of-2\.jsonl ends with a record cut short: .*--resume/,
    ],
    [
      'an input in two shards',
      { 'predictions-1-of-2.jsonl': rec('/a'), 'predictions-2-of-2.jsonl': rec('/a') },
      /\/a is in more than one shard/,
    ],
    [
      'a file predict did not write',
      { 'predictions-1-of-2.jsonl': rec('/a'), 'predictions-2-of-2.jsonl': '{"score": 1}\n' },
      /has no path, size and mtime_ms/,
    ],
  ];
  for (const [what, files, reason] of cases) {
    const dir = await tmpDir('vitrine-merge-');
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    await t.rejects(mergeShards(dir), reason, what);
  }
  const dir = await tmpDir('vitrine-merge-');
  await writeFile(path.join(dir, 'predictions-1-of-2.jsonl'), rec('/a'));
  await writeFile(path.join(dir, 'predictions-2-of-2.jsonl'), rec('/b'));
  const merged = await mergeShards(dir);
  t.same([merged.shards, merged.records.length], [2, 2], 'two good shards merge');
});
