// vitrine predict against POST /classify, in the same run: for each set of images (the 10,000 CIFAR-10
// test images as PNG files, and 500 larger JPEGs made from them), the service is driven at
// concurrency 32 by autocannon over the set's files, then `vitrine predict` labels the whole set;
// both with their defaults. Prints one JSON line each: requests/s against images/s (the command's own
// figure, and the whole command's wall time with start-up), and predict's memory (RSS sampled every
// 200 ms: at a quarter, half, three quarters of the run, the end and the peak).
//   npm run bench:predict [-- --seconds 15 --model cct-cifar10 --jpegs 500 --jpeg-size 640x480 --sets png,jpeg --maps rollout]
// The image files are written once under data/bench/predict/ (git-ignored) from data/cifar10.

import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';
import { waitReady } from './ready.js';
import { Results, type Value, benchArgs } from './common.js';

const { arg: opt } = benchArgs(
  'npm run bench:predict [-- --seconds 15 --model cct-cifar10 --jpegs 500 --jpeg-size 640x480 --sets png,jpeg --maps rollout]',
  { strings: ['jpeg-size', 'jpegs', 'maps', 'model', 'seconds', 'sets'] },
);
const results = new Results('predict', 'vitrine predict against POST /classify at 32 clients, same run, same images');

const seconds = Number(opt('seconds', '15'));
const model = opt('model', 'cct-cifar10');
const jpegs = Number(opt('jpegs', '500'));
const [jpegW, jpegH] = opt('jpeg-size', '640x480').split('x').map(Number);
const sets = opt('sets', 'png,jpeg').split(',');
const maps = opt('maps', '');
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.join(root, 'data', 'bench', 'predict');
const entry = ['--import', 'tsx', path.join(root, 'bin', 'vitrine.ts')];

/** The 10,000 test images as PNG files, and `jpegs` of them upscaled to jpegW x jpegH as JPEG (quality 90). */
async function imageSets(): Promise<Record<string, string>> {
  const png = path.join(dataDir, 'cifar10-test-png');
  const jpeg = path.join(dataDir, `cifar10-test-jpeg-${jpegs}-${jpegW}x${jpegH}`);
  const needPng = !existsSync(path.join(png, 'done'));
  const needJpeg = !existsSync(path.join(jpeg, 'done'));
  if (needPng || needJpeg) {
    const test = await readCifarBinaryFolder(await ensureCifar10(path.join(root, 'data', 'cifar10')), 'test');
    const plane = test.height * test.width;
    const hwc = (i: number) => {
      const out = Buffer.alloc(plane * 3);
      for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = test.images[i * 3 * plane + c * plane + p];
      return sharp(out, { raw: { width: test.width, height: test.height, channels: 3 } });
    };
    const name = (i: number) => path.join(test.classes[test.labels[i]], `${String(i).padStart(5, '0')}`);
    for (const c of test.classes) {
      await fs.mkdir(path.join(png, c), { recursive: true });
      await fs.mkdir(path.join(jpeg, c), { recursive: true });
    }
    if (needPng) {
      for (let i = 0; i < test.count; i++)
        await hwc(i)
          .png()
          .toFile(path.join(png, `${name(i)}.png`));
      await fs.writeFile(path.join(png, 'done'), '');
    }
    if (needJpeg) {
      for (let i = 0; i < jpegs; i++)
        await hwc(i)
          .resize(jpegW, jpegH, { fit: 'fill', kernel: 'lanczos3' })
          .jpeg({ quality: 90 })
          .toFile(path.join(jpeg, `${name(i)}.jpg`));
      await fs.writeFile(path.join(jpeg, 'done'), '');
    }
  }
  return { png, jpeg };
}

async function filesOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile() && /\.(png|jpg)$/.test(e.name)) out.push(path.join(e.parentPath, e.name));
  return out.sort();
}

/** POST /classify at concurrency 32 for `seconds`, the requests cycling over (up to 256 of) the set's files. */
async function classifyLoad(files: string[]): Promise<{ requests_per_s: number; errors: number; p99_ms: number }> {
  const port = 18000 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(
    process.execPath,
    [
      '--initial-old-space-size=128',
      ...entry,
      'serve',
      '--default-model',
      model,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--log-level',
      'warn',
    ],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  try {
    await waitReady(base, 60);
    const bodies = await Promise.all(files.slice(0, 256).map((f) => fs.readFile(f)));
    const type = files[0].endsWith('.png') ? 'image/png' : 'image/jpeg';
    const requests = bodies.map((body) => ({
      method: 'POST' as const,
      path: `/classify${maps ? `?attention=${maps}` : ''}`,
      headers: { 'content-type': type },
      body,
    }));
    const result = await autocannon({ url: base, requests, connections: 32, duration: seconds });
    return {
      requests_per_s: Math.round(result.requests.average),
      errors: result.errors + result.timeouts + result.non2xx,
      p99_ms: result.latency.p99,
    };
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
}

function rssOf(pid: number): Promise<number> {
  return fs.readFile(`/proc/${pid}/status`, 'utf8').then(
    (s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN) / 1024,
    () => NaN,
  );
}

/** `vitrine predict` over the folder: its own images/s, the wall time, and its RSS over the run. */
async function predictRun(dir: string, count: number): Promise<Record<string, unknown>> {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'vitrine-bench-predict-'));
  const started = performance.now();
  const child = spawn(process.execPath, [...entry, 'predict', dir, '--model', model, '--out', out, ...(maps ? ['--maps', maps] : [])], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const samples: { done: number; rss: number }[] = [];
  const sampler = setInterval(async () => {
    const rss = await rssOf(child.pid!);
    const done = (await fs.readFile(path.join(out, 'predictions.jsonl'), 'utf8').catch(() => '')).split('\n').length - 1;
    if (Number.isFinite(rss)) samples.push({ done, rss });
  }, 200);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(sampler);
  const wall = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`vitrine predict exited ${code}: ${stderr.trim().split('\n').at(-1)}`);
  const m = /([\d,]+) images in ([\d.]+) s \(([\d,]+) images\/s\)/.exec(stdout);
  const at = (share: number) => samples.find((s) => s.done >= share * count)?.rss;
  const mb = (v: number | undefined) => (v === undefined ? null : Math.round(v));
  await fs.rm(out, { recursive: true, force: true });
  return {
    images: Number(m?.[1].replace(/,/g, '')),
    images_per_s: Number(m?.[3].replace(/,/g, '')),
    wall_s: +wall.toFixed(2),
    images_per_s_with_startup: Math.round(count / wall),
    rss_mb: {
      '25%': mb(at(0.25)),
      '50%': mb(at(0.5)),
      '75%': mb(at(0.75)),
      end: mb(samples.at(-1)?.rss),
      peak: mb(Math.max(...samples.map((s) => s.rss))),
    },
  };
}

const dirs = await imageSets();
for (const set of sets) {
  const files = await filesOf(dirs[set]);
  const classify = await classifyLoad(files);
  const predicted = await predictRun(dirs[set], files.length);
  results.add({
    set:
      set === 'png' ? `${files.length} CIFAR-10 test PNGs (32x32)` : `${files.length} JPEGs (${jpegW}x${jpegH}, from CIFAR-10 test images)`,
    model,
    maps: maps || 'none',
    classify_c32: classify,
    predict: predicted as Record<string, Value>,
    predict_over_classify: +((predicted.images_per_s as number) / classify.requests_per_s).toFixed(2),
    classify_requests_per_s: classify.requests_per_s,
    predict_images_per_s: predicted.images_per_s as number,
    seconds,
    cores: os.cpus().length,
  });
}
results.save();
