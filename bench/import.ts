// A big foreign ViT end to end: torchvision's vit_b_16 (86M parameters, 224 px, 197 tokens, 12 layers
// of 12 heads; random weights) exported by torch.onnx, imported with `vitrine import`, and served.
//   npm run bench:import [-- --source data/bench/vit-b16 --seconds 20 --skip-import]
// Prints one JSON line per figure:
//   import     wall time and peak RSS of `vitrine import`, the sizes of what it wrote;
//   bare       the original model.onnx on a bare ONNX Runtime session in this process (batch 1, and
//              batch 4, logits only, intra-op threads = cores): images/s and p50, the anchor;
//   serve      `vitrine serve` on the imported folder, with its defaults (a single-threaded worker per
//              core) and with one worker of every core (--workers 1 --threads <cores>): POST /classify
//              of a 224x224 JPEG (autocannon) at concurrency 1 and 4: images/s, p50, and the ratio to
//              the anchor at batch 1 and 4;
//   explain    for each: GET /attention/:id, one request at a time: the rollout PNG and the relevance
//              map (through relevance.onnx) p50, and the server's peak RSS.
// The source folder is made by bench/import/make-vit-b16.py (Debian's python3-torch) when missing.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { createSession, runSession } from '../runtime/ort.js';
import { waitReady } from './ready.js';
import { benchArgs } from './common.js';

const { arg: opt, flag } = benchArgs('npm run bench:import [-- --source data/bench/vit-b16 --seconds 20 --skip-import]', {
  strings: ['seconds', 'source'],
  booleans: ['skip-import'],
});

const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.resolve(opt('source', path.join(here, 'data', 'bench', 'vit-b16')));
const seconds = Number(opt('seconds', '20'));
const served = path.join(path.dirname(source), 'served');
const out = path.join(served, path.basename(source));
const print = (o: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'import', ...o }));

if (!existsSync(path.join(source, 'model.onnx'))) {
  console.error(`making ${source} with bench/import/make-vit-b16.py (torch.onnx, about a minute)`);
  const r = spawnSync('/usr/bin/python3', [path.join(here, 'bench', 'import', 'make-vit-b16.py'), source], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('make-vit-b16.py failed (it needs Debian python3-torch and python3-torchvision)');
}

// ---- import, in a process of its own (its peak RSS is its own) ----
if (!flag('skip-import')) {
  const t0 = performance.now();
  const r = spawnSync(
    '/usr/bin/time',
    ['-f', 'maxrss_kb %M', process.execPath, '--import', 'tsx', path.join(here, 'bin', 'vitrine.ts'), 'import', source, '--out', out],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`vitrine import failed: ${r.stderr}`);
  const wall = (performance.now() - t0) / 1000;
  const rss = Number(/maxrss_kb (\d+)/.exec(r.stderr)?.[1]) * 1024;
  const size = (f: string) => +(statSync(path.join(out, f)).size / 1e6).toFixed(1);
  print({
    what: 'import',
    wall_s: +wall.toFixed(1),
    peak_rss_mb: Math.round(rss / 1e6),
    source_mb: +(statSync(path.join(source, 'model.onnx')).size / 1e6).toFixed(1),
    model_onnx_mb: size('onnx/model.onnx'),
    relevance_onnx_mb: size('onnx/relevance.onnx'),
    weights_mb: size('onnx/model.onnx_data'),
    said: r.stdout.trim().split('\n')[0],
  });
}

// ---- the anchor: the original graph on a bare session ----
const cores = os.cpus().length;
const percentile = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor((p / 100) * v.length))];
async function bare(batch: number): Promise<{ images_per_s: number; p50_ms: number }> {
  const s = await createSession(path.join(source, 'model.onnx'), { device: 'cpu', threads: cores });
  const x = { pixel_values: { data: new Float32Array(batch * 3 * 224 * 224).fill(0.1), dims: [batch, 3, 224, 224] } };
  await runSession(s, x);
  const times: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const t = performance.now();
    await runSession(s, x);
    times.push(performance.now() - t);
  }
  await s.session.release();
  return {
    images_per_s: +((times.length * batch) / ((performance.now() - t0) / 1000)).toFixed(2),
    p50_ms: Math.round(percentile(times, 50)),
  };
}
const anchors: Record<number, { images_per_s: number; p50_ms: number }> = {};
for (const batch of [1, 4]) {
  anchors[batch] = await bare(batch);
  print({ what: 'bare', runner: `onnxruntime-node, ${cores} intra-op threads`, batch, ...anchors[batch], cores });
}

// ---- the service: its defaults (one single-threaded worker per core), then one worker with every core ----
const image = await sharp(path.join(here, 'server', 'web', 'examples', 'cat.png'))
  .resize(224, 224)
  .jpeg({ quality: 90 })
  .toBuffer();
const percentileOf = percentile;
for (const setting of [[], ['--workers', '1', '--threads', String(cores)]]) {
  const label = setting.length ? setting.join(' ') : 'serve defaults';
  const port = 19000 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(here, 'bin', 'vitrine.ts'),
      'serve',
      '--models',
      served,
      '--default-model',
      path.basename(out),
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--log-level',
      'warn',
      '--timeout-ms',
      '60000',
      ...setting,
    ],
    { cwd: here, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const stop = () => server.kill('SIGTERM');
  process.on('exit', stop);
  await waitReady(base, 120);
  const peakRss = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1]) * 1024;
  const rssAtStart = peakRss();
  const classify = { url: `${base}/classify`, method: 'POST' as const, headers: { 'content-type': 'image/jpeg' }, body: image };
  await fetch(classify.url, classify); // warm
  for (const connections of [1, 4]) {
    const r = await autocannon({ ...classify, connections, duration: seconds });
    const anchor = anchors[connections === 1 ? 1 : 4];
    print({
      what: 'serve',
      server: label,
      load: 'POST /classify (224x224 JPEG, rollout)',
      concurrency: connections,
      images_per_s: +r.requests.average.toFixed(2),
      p50_ms: r.latency.p50,
      p99_ms: r.latency.p99,
      errors: r.errors + r.timeouts + r.non2xx,
      vs_bare: +(r.requests.average / anchor.images_per_s).toFixed(3),
      bare_batch: connections === 1 ? 1 : 4,
    });
  }
  // maps of one kept result, one request at a time
  const kept = ((await (await fetch(classify.url, classify)).json()) as { id: string }).id;
  const timed = async (url: string, n: number): Promise<number> => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const r = await fetch(url);
      await r.arrayBuffer();
      if (!r.ok) throw new Error(`${url}: ${r.status}`);
      times.push(performance.now() - t);
    }
    return Math.round(percentileOf(times, 50));
  };
  const full = await fetch(`${base}/classify?attention=full`, classify);
  print({
    what: 'explain',
    server: label,
    rollout_png_p50_ms: await timed(`${base}/attention/${kept}`, 10),
    relevance_json_p50_ms: await timed(`${base}/attention/${kept}?method=relevance&format=json`, 10),
    relevance_png_p50_ms: await timed(`${base}/attention/${kept}?method=relevance`, 5),
    grid: ((await (await fetch(`${base}/attention/${kept}?format=json`)).json()) as { grid: number[] }).grid,
    full_attention_status: full.status,
    server_rss_at_start_mb: Math.round(rssAtStart / 1e6),
    server_peak_rss_mb: Math.round(peakRss() / 1e6),
  });
  stop();
  await new Promise((r) => server.once('exit', r));
}
