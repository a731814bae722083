// vitrine predict through the built command, as users run it: a folder with nested folders, a bad
// file and files that are not images; JSON lines and CSV that agree with POST /classify; heatmaps
// equal to GET /attention's PNG; a run killed with SIGKILL and resumed; shards that cover every input
// once and merge into the unsharded run's results.

import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, readdir, stat, truncate, utimes, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import sharp from 'sharp';
import { BUILT_CLI, ROOT, assertOneLineError, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp } from '../helpers/server.js';
import { parseCsv } from '../../bin/predict/results.js';
import { inShard } from '../../bin/predict/inputs.js';

const MODELS = path.join(ROOT, 'models');
const EXAMPLES = path.join(ROOT, 'server', 'web', 'examples');
const predict = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['predict', ...args], { built: true, env, timeoutMs: 120_000 });

type Rec = {
  path: string;
  size: number;
  mtime_ms: number;
  predictions?: { label: string; index: number; probability: number }[];
  logits?: number[];
  map?: Record<string, unknown>;
  error?: { code: string; message: string };
  timings?: unknown;
};
const records = async (file: string): Promise<Rec[]> =>
  (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
/** A record without its timings (which differ from run to run) and its error's wording (libvips words
 *  one bad file differently from run to run: 'vipspng: libpng read error', 'Unknown error'), for comparing runs. */
const stable = (r: Rec) => JSON.stringify({ ...r, timings: undefined, error: r.error?.code });
const byPath = (rs: Rec[]) => rs.map(stable).sort();

/** in/: the ten examples under a/, a larger JPEG and a copy under a/b/c/, a cut PNG, a text file named
 *  .jpg and a notes.txt (not taken from a folder). */
async function folder(): Promise<{ dir: string; images: string[]; bad: string; fake: string }> {
  const dir = path.join(await tmpDir('vitrine-predict-'), 'in');
  await mkdir(path.join(dir, 'a', 'b', 'c'), { recursive: true });
  const images: string[] = [];
  for (const f of (await readdir(EXAMPLES)).filter((f) => f.endsWith('.png')).sort()) {
    await cp(path.join(EXAMPLES, f), path.join(dir, 'a', f));
    images.push(path.join(dir, 'a', f));
  }
  const jpeg = path.join(dir, 'a', 'b', 'big cat, 1.jpg'); // a comma and a space: CSV must quote it
  await sharp(path.join(EXAMPLES, 'cat.png')).resize(160, 120, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(jpeg);
  images.push(jpeg);
  await cp(path.join(EXAMPLES, 'dog.png'), path.join(dir, 'a', 'b', 'c', 'dog-copy.png'));
  images.push(path.join(dir, 'a', 'b', 'c', 'dog-copy.png'));
  const bad = path.join(dir, 'a', 'b', 'cut.png');
  await writeFile(bad, (await readFile(path.join(EXAMPLES, 'frog.png'))).subarray(0, 120));
  const fake = path.join(dir, 'a', 'fake.jpg');
  await writeFile(fake, 'not an image at all');
  await writeFile(path.join(dir, 'notes.txt'), 'these are not images');
  return { dir, images: images.sort(), bad, fake };
}

t.test('a folder: one record per image, errors as records, the same labels and probabilities as /classify', async (t) => {
  const { dir, images, bad, fake } = await folder();
  const out = path.join(path.dirname(dir), 'out');
  const r = await predict([dir, '--out', out, '--logits', '--workers', '1']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /warning: 1 file in the folders not taken.*notes\.txt/);
  t.match(r.stdout, /14 images in .* s \(.* images\/s\): 14 results in .*predictions\.jsonl/);
  const counts = /predicted: ((?:\w+ \d+(?:, )?)+)/.exec(r.stdout);
  t.ok(counts, `a count per predicted label: ${r.stdout}`);
  t.equal(
    counts![1].split(', ').reduce((n, part) => n + Number(part.split(' ')[1]), 0),
    12,
    'the counts add up to the 12 images read',
  );
  t.match(r.stdout, /errors: (VIT_BAD_IMAGE 1, VIT_UNSUPPORTED_MEDIA 1|VIT_UNSUPPORTED_MEDIA 1, VIT_BAD_IMAGE 1)/);
  const got = await records(path.join(out, 'predictions.jsonl'));
  t.same(got.map((x) => x.path).sort(), [...images, bad, fake].sort(), 'every image once, notes.txt left out');
  t.equal(got.find((x) => x.path === bad)!.error!.code, 'VIT_BAD_IMAGE');
  t.equal(got.find((x) => x.path === fake)!.error!.code, 'VIT_UNSUPPORTED_MEDIA');
  const app = await testApp(t, { models: MODELS, defaultModel: 'cct-cifar10', workers: 1 });
  let worst = 0;
  for (const file of images) {
    const rec = got.find((x) => x.path === file)!;
    const s = await stat(file);
    t.equal(rec.size, s.size);
    t.equal(rec.mtime_ms, s.mtimeMs);
    const res = await app.inject({ method: 'POST', url: '/classify?attention=none', ...multipart('image', await readFile(file)) });
    const body = res.json();
    t.same(
      rec.predictions!.map((p) => p.label),
      body.predictions.map((p: { label: string }) => p.label),
      `${path.basename(file)}: the top-5 labels`,
    );
    for (let k = 0; k < 5; k++) worst = Math.max(worst, Math.abs(rec.predictions![k].probability - body.predictions[k].probability));
    for (let i = 0; i < 10; i++) worst = Math.max(worst, Math.abs(rec.logits![i] - body.logits[i]) / 10);
  }
  t.ok(worst < 1e-5, `probabilities (and logits / 10) within 1e-5 of /classify's: worst ${worst.toExponential(2)}`);

  // CSV: the same results, one row each, the path with a comma quoted
  const csvOut = path.join(path.dirname(dir), 'csv');
  const c = await predict([dir, '--out', csvOut, '--format', 'csv', '--topk', '3', '--workers', '1']);
  t.equal(c.code, 0, c.stderr);
  const { rows, complete } = parseCsv(await readFile(path.join(csvOut, 'predictions.csv'), 'utf8'));
  t.ok(complete);
  t.same(rows[0].fields, [
    'path',
    'size',
    'mtime_ms',
    'label_1',
    'probability_1',
    'label_2',
    'probability_2',
    'label_3',
    'probability_3',
    'error',
  ]);
  t.equal(rows.length, 15, 'a header and 14 rows');
  for (const row of rows.slice(1)) {
    const rec = got.find((x) => x.path === row.fields[0])!;
    t.ok(rec, `${row.fields[0]} is a path of the JSON lines`);
    if (rec.error) t.match(row.fields[9], new RegExp(`^${rec.error.code}: `));
    else {
      t.same(
        [row.fields[3], row.fields[5], row.fields[7]],
        rec.predictions!.slice(0, 3).map((p) => p.label),
      );
      t.ok(Math.abs(Number(row.fields[4]) - rec.predictions![0].probability) < 1e-5);
    }
  }
});

t.test('heatmaps: the same PNG as GET /attention for the same image and parameters', async (t) => {
  const { dir } = await folder();
  const app = await testApp(t, { models: MODELS, defaultModel: 'cct-cifar10', workers: 1 });
  const files = [path.join(dir, 'a', 'cat.png'), path.join(dir, 'a', 'b', 'big cat, 1.jpg')];
  for (const [maps, query, extra] of [
    ['relevance', 'method=relevance', []],
    ['relevance', 'method=relevance&class=dog', ['--class', 'dog']],
    ['rollout', 'method=rollout&head=max&size=64&colormap=viridis', ['--head', 'max', '--size', '64', '--colormap', 'viridis']],
    ['cls', 'method=cls&layer=0&alpha=0.8', ['--layer', '0', '--alpha', '0.8']],
  ] as const) {
    const out = await tmpDir('vitrine-predict-maps-');
    const r = await predict([...files, '--out', out, '--maps', maps, '--maps-json', ...extra, '--workers', '1']);
    t.equal(r.code, 0, r.stderr);
    const got = await records(path.join(out, 'predictions.jsonl'));
    for (const file of files) {
      const rec = got.find((x) => x.path === file)!;
      const res = await app.inject({ method: 'POST', url: '/classify?attention=none', ...multipart('image', await readFile(file)) });
      const png = await app.inject(`/attention/${res.json().id}?${query}`);
      const json = await app.inject(`/attention/${res.json().id}?${query.replace(/&(size|alpha|colormap)=[^&]*/g, '')}&format=json`);
      t.equal(png.statusCode, 200);
      const mine = await readFile(path.join(out, rec.map!.file as string));
      t.ok(
        mine.equals(png.rawPayload),
        `${maps} ${extra.join(' ')}: ${path.basename(file)}'s heatmap is GET /attention's PNG, byte for byte`,
      );
      const expected = json.json();
      t.same(rec.map!.values, expected.values, 'and --maps-json holds its map');
      t.equal(rec.map!.method, maps);
      if (maps === 'relevance') t.equal(rec.map!.class, expected.class);
    }
  }
});

t.test('killed with SIGKILL midway and resumed: exactly the uninterrupted run, no duplicates', async (t) => {
  const root = await tmpDir('vitrine-predict-kill-');
  const dir = path.join(root, 'in');
  await mkdir(dir);
  const n = 240;
  for (let i = 0; i < n; i++) {
    const noise = Buffer.alloc(32 * 32 * 3);
    for (let k = 0; k < noise.length; k++) noise[k] = (i * 7919 + k * 104729) % 251;
    await sharp(noise, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(path.join(dir, `${String(i).padStart(3, '0')}.png`));
  }
  // slow enough to be caught midway: one image a batch, a map drawn for each
  const args = [dir, '--maps', 'rollout', '--size', '512', '--workers', '1', '--max-batch', '1', '--decoders', '1'];
  const whole = path.join(root, 'whole');
  t.equal((await predict([...args, '--out', whole])).code, 0);
  const expected = await records(path.join(whole, 'predictions.jsonl'));
  t.equal(expected.length, n);

  const out = path.join(root, 'killed');
  const file = path.join(out, 'predictions.jsonl');
  const child = spawn(process.execPath, [BUILT_CLI, 'predict', ...args, '--out', out], { cwd: ROOT, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let lines = 0;
  for (let waited = 0; lines < 30 && waited < 60_000; waited += 10) {
    await new Promise((r) => setTimeout(r, 10));
    lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').length - 1;
  }
  child.kill('SIGKILL');
  await exited;
  const partial = await records(file);
  t.ok(partial.length >= 30 && partial.length < n, `killed midway: ${partial.length} of ${n} written`);
  // and a record cut short, as a write broken off would leave it
  await appendFile(file, '{"path":"' + path.join(dir, '999.png'));

  const again = await predict([...args, '--out', out]);
  t.equal(again.code, 2, 'without --resume an existing results file is not touched');
  t.match(again.stderr, /predictions\.jsonl exists: --resume continues/);
  const resumed = await predict([...args, '--out', out, '--resume']);
  t.equal(resumed.code, 0, resumed.stderr);
  t.match(resumed.stderr, new RegExp(`${n} inputs, ${partial.length} already in`));
  const final = await records(file);
  t.equal(final.length, n, 'one record per input');
  t.equal(new Set(final.map((r) => r.path)).size, n, 'no duplicates');
  t.same(byPath(final), byPath(expected), "the uninterrupted run's records");

  // a file changed since: its record is done again, the old one dropped
  const changed = path.join(dir, '007.png');
  await utimes(changed, new Date(), new Date(Date.now() + 5000));
  const third = await predict([...args, '--out', out, '--resume']);
  t.equal(third.code, 0, third.stderr);
  t.match(third.stderr, /1 result in .* dropped: their files have changed/);
  const after = await records(file);
  t.equal(after.length, n);
  t.equal(after.filter((r) => r.path === changed).length, 1);
  t.equal(after.find((r) => r.path === changed)!.mtime_ms, (await stat(changed)).mtimeMs);

  // SIGTERM (a pod evicted): the images in flight are finished and written, exit 143, resumable
  const termOut = path.join(root, 'terminated');
  const term = spawn(process.execPath, [BUILT_CLI, 'predict', ...args, '--out', termOut], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let said = '';
  term.stdout.on('data', (d) => (said += d));
  const ended = new Promise<number | null>((resolve) => term.on('exit', resolve));
  for (let waited = 0; waited < 60_000; waited += 10) {
    await new Promise((r) => setTimeout(r, 10));
    if ((await readFile(path.join(termOut, 'predictions.jsonl'), 'utf8').catch(() => '')).split('\n').length > 20) break;
  }
  term.kill('SIGTERM');
  t.equal(await ended, 143);
  t.match(said, /stopped by SIGTERM: \d+ inputs left; run the same command with --resume/);
  const text = await readFile(path.join(termOut, 'predictions.jsonl'), 'utf8');
  t.ok(text.endsWith('\n'), 'every record whole');
  t.equal((await predict([...args, '--out', termOut, '--resume'])).code, 0);
  // the records of a run that was never stopped (007.png's as changed above)
  t.same(
    byPath(await records(path.join(termOut, 'predictions.jsonl'))),
    byPath(after),
    "stopped and resumed: the uninterrupted run's records",
  );
});

t.test('shards: 1/2 and 2/2 cover every input once; the merge is the unsharded run', async (t) => {
  const { dir, images, bad, fake } = await folder();
  const out = path.join(path.dirname(dir), 'sharded');
  const whole = path.join(path.dirname(dir), 'whole');
  t.equal((await predict([dir, '--out', whole, '--workers', '1'])).code, 0);
  const first = await predict([dir, '--out', out, '--shard', '1/2', '--workers', '1']);
  t.equal(first.code, 0, first.stderr);
  const missing = await predict(['--merge', out]);
  t.equal(missing.code, 1);
  assertOneLineError(t, missing.stderr, /shard 2 of 2 missing/);
  // the second shard as a pod of an Indexed Job gets it: index 1 of --shards 2
  const second = await predict([dir, '--out', out, '--shards', '2', '--workers', '1'], { JOB_COMPLETION_INDEX: '1' });
  t.equal(second.code, 0, second.stderr);
  const a = await records(path.join(out, 'predictions-1-of-2.jsonl'));
  const b = await records(path.join(out, 'predictions-2-of-2.jsonl'));
  const all = [...images, bad, fake].sort();
  t.ok(a.length > 0 && b.length > 0, `both shards have work (${a.length} and ${b.length})`);
  t.same([...a, ...b].map((r) => r.path).sort(), all, 'together every input, each once');
  t.ok(a.every((r) => inShard(r.path, { index: 1, count: 2 })) && b.every((r) => inShard(r.path, { index: 2, count: 2 })));
  const merged = await predict(['--merge', out]);
  t.equal(merged.code, 0, merged.stderr);
  t.match(merged.stdout, /merged 2 shards: 14 results/);
  const m = await records(path.join(out, 'predictions.jsonl'));
  t.same(
    m.map((r) => r.path),
    all,
    'sorted by path',
  );
  t.same(byPath(m), byPath(await records(path.join(whole, 'predictions.jsonl'))), 'the unsharded run');
});

t.test('mistakes: one line and exit 2 (usage) or 1', async (t) => {
  const { dir, bad } = await folder();
  const out = await tmpDir('vitrine-predict-err-');
  for (const [args, code, pattern, env] of [
    [[], 2, /no inputs/],
    [[dir, '--head', 'max'], 2, /--head applies to the maps/],
    [[dir, '--maps', 'rollout', '--class', 'cat'], 2, /class applies to method=relevance, chefer, grad-input and combined only/],
    [[dir, '--maps', 'cls', '--layer', '9'], 2, /layer 9 does not exist: the model has 2 layers/],
    [[dir, '--maps', 'heat'], 2, /--maps must be one of rollout, cls, relevance/],
    [[dir, '--size', '8', '--maps', 'rollout'], 2, /--size must be/],
    [[dir, '--maps-json'], 2, /--maps-json adds the map/],
    [[dir, '--format', 'xml'], 2, /--format must be one of jsonl, csv/],
    [[dir, '--shard', '3/2'], 2, /--shard must be i\/n/],
    [[dir, '--shards', '2'], 2, /--shards needs JOB_COMPLETION_INDEX/],
    [[dir, '--shards', '2'], 2, /JOB_COMPLETION_INDEX is '2': with --shards 2 it must be 0-1/, { JOB_COMPLETION_INDEX: '2' }],
    [[dir, '--model', 'no-such-model'], 1, /no model 'no-such-model'.*cct-cifar10/],
    [[path.join(dir, 'nothing-here')], 1, /no such file or folder/],
    [[path.join(dir, '*.webp')], 1, /matches no file/],
    [['--merge', out], 1, /holds no shard files/],
  ] as [string[], number, RegExp, NodeJS.ProcessEnv?][]) {
    const r = await predict(args[0] === '--merge' ? args : [...args, '--out', out], env);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    assertOneLineError(t, r.stderr, pattern);
  }
  const strict = await predict([dir, '--out', path.join(out, 'strict'), '--on-bad-image', 'fail', '--workers', '1']);
  t.equal(strict.code, 1);
  assertOneLineError(t, strict.stderr, /(cut\.png|fake\.jpg): .* \(--on-bad-image fail; what was done is in .*, --resume continues\)/);
  const kept = await records(path.join(out, 'strict', 'predictions.jsonl'));
  t.notOk(
    kept.some((r) => r.error),
    'the bad image has no record, so --resume tries it again',
  );
  t.ok(kept.every((r) => r.path !== bad));
  // a results file of other columns is not resumed into
  const csv = path.join(out, 'csv');
  t.equal((await predict([dir, '--out', csv, '--format', 'csv', '--workers', '1'])).code, 0);
  await truncate(path.join(csv, 'predictions.csv'), 200);
  const other = await predict([dir, '--out', csv, '--format', 'csv', '--topk', '2', '--resume', '--workers', '1']);
  t.equal(other.code, 1);
  assertOneLineError(t, other.stderr, /has the columns .* this run writes .*--topk, --logits, --maps/);
});
