// Float against int8 (vitrine quantize) in one run, on torchvision's vit_b_16 (made and imported as
// bench:import makes it: random weights, 224 px) and on the bundled 32 px models: the graph files'
// sizes; a bare ONNX Runtime session at batch 1 (every core, and one thread as a server worker runs
// it, fetching what the server fetches for /classify); and POST /classify through `vitrine serve <folder>` at 1 and 4 clients (the
// serve defaults), requests/s, p50 and the server's peak RSS. Float and int8 take turns (--rounds
// windows each), so that a shared machine's drift falls on both. The quantized folders are written
// to data/bench/quantized/ (their accuracy and agreement with float through the service:
// npm run bench:accuracy -- --model-folder float=models/vit-cifar10 --model-folder
// int8=data/bench/quantized/vit-cifar10 --model float --model int8 --agreement).
// --models torch-vit: the ViT bench/import/train-torch-vit.py trains in PyTorch, imported into
// data/bench/served/torch-vit (float accuracy: bench:accuracy -- --models data/bench/served --model torch-vit).
//   npm run bench:quantize [-- --seconds 20 --rounds 5 --models vit-b16,vit-cifar10,cct-cifar10|torch-vit]

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { modelFileIn, readModelConfig } from '../runtime/model-config.js';
import { createSession, runSession } from '../runtime/ort.js';
import { BENCH_ROOT, Results, type Row, benchFlags } from './common.js';
import { waitReady } from './ready.js';

const flags = benchFlags('npm run bench:quantize [-- --seconds 20 --rounds 5 --models vit-b16,vit-cifar10,cct-cifar10]', {
  seconds: { type: 'string', default: '20' },
  models: { type: 'string', default: 'vit-b16,vit-cifar10,cct-cifar10' },
  rounds: { type: 'string', default: '5' },
});
const seconds = Number(flags.seconds);
/** Turns each graph gets in every measurement (the seconds are shared among them). */
const ROUNDS = Number(flags.rounds);
const here = BENCH_ROOT;
const quantized = path.join(here, 'data', 'bench', 'quantized');
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'bin', 'vitrine.ts'), ...args], { encoding: 'utf8' });
const results = new Results(
  'quantize',
  'Float against int8 (vitrine quantize): file sizes, a bare session at batch 1, POST /classify at 1 and 4 clients',
);

/** The float folder of a model: vit-b16 as bench:import makes it; torch-vit, the ViT that
 *  bench/import/train-torch-vit.py trains in PyTorch, imported; the bundled ones as they ship. */
function floatFolder(name: string): string {
  if (name === 'torch-vit') {
    const source = path.join(here, 'data', 'bench', 'torch-vit-o17');
    const served = path.join(here, 'data', 'bench', 'served', 'torch-vit');
    if (!existsSync(path.join(source, 'model.onnx')))
      throw new Error(
        `${source} is missing: train it first (about 25 minutes on two cores): /usr/bin/python3 ` +
          'bench/import/train-torch-vit.py data/cifar10/cifar-10-batches-bin data/bench/torch-vit',
      );
    if (!existsSync(path.join(served, 'config.json'))) {
      const r = cli(['import', source, '--out', served]);
      if (r.status !== 0) throw new Error(`vitrine import failed: ${r.stderr}`);
    }
    return served;
  }
  if (name !== 'vit-b16') return path.join(here, 'models', name);
  const source = path.join(here, 'data', 'bench', 'vit-b16');
  const served = path.join(here, 'data', 'bench', 'served', 'vit-b16');
  if (!existsSync(path.join(source, 'model.onnx'))) {
    const r = spawnSync('/usr/bin/python3', [path.join(here, 'bench', 'import', 'make-vit-b16.py'), source], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('make-vit-b16.py failed (it needs Debian python3-torch and python3-torchvision)');
  }
  if (!existsSync(path.join(served, 'config.json'))) {
    const r = cli(['import', source, '--out', served]);
    if (r.status !== 0) throw new Error(`vitrine import failed: ${r.stderr}`);
  }
  return served;
}

const mb = (bytes: number) => +(bytes / 1e6).toFixed(1);
async function sizeOf(dir: string): Promise<{ graph_mb: number; external_mb: number }> {
  const file = modelFileIn(dir)!;
  const data = path.join(path.dirname(file), 'model.onnx_data');
  return { graph_mb: mb((await fs.stat(file)).size), external_mb: existsSync(data) ? mb((await fs.stat(data)).size) : 0 };
}

/** Float and int8 take turns (`rounds` windows each, float first), so that what the machine does
 *  meanwhile (a shared VM's neighbours, the clock) falls on both alike. */
async function alternate<T>(rounds: number, turn: (graph: 0 | 1, round: number) => Promise<T>): Promise<[T[], T[]]> {
  const out: [T[], T[]] = [[], []];
  for (let r = 0; r < rounds; r++) for (const g of [0, 1] as const) out[g].push(await turn(g, r));
  return out;
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

/** One session per graph (`threads` intra-op threads), batch 1, in turns: images/s and p50 over
 *  `seconds` each. */
async function bare(dirs: [string, string], threads: number) {
  const sessions = await Promise.all(
    dirs.map(async (dir) => {
      const c = await readModelConfig(dir);
      const [h, w] = c.image_size;
      const session = await createSession(modelFileIn(dir)!, { device: 'cpu', threads });
      const feed = { [c.input_name]: { data: Float32Array.from({ length: 3 * h * w }, (_, i) => Math.sin(i * 0.37)), dims: [1, 3, h, w] } };
      // what the server fetches for /classify's default map: the graph's rollout, else every attention
      const outs = [c.logits_output, ...(c.rollout_output ? [c.rollout_output] : c.attention_outputs)];
      for (let i = 0; i < 3; i++) await runSession(session, feed, outs);
      return { session, feed, outs };
    }),
  );
  const [float, int8] = await alternate(ROUNDS, async (g) => {
    const { session, feed, outs } = sessions[g];
    const times: number[] = [];
    const end = performance.now() + (seconds * 1000) / ROUNDS;
    while (performance.now() < end) {
      const t0 = performance.now();
      await runSession(session, feed, outs);
      times.push(performance.now() - t0);
    }
    return times;
  });
  for (const s of sessions) await s.session.session.release();
  return [float, int8].map((rounds) => {
    const times = rounds.flat().sort((a, b) => a - b);
    return {
      images_per_s: +(times.length / (times.reduce((a, b) => a + b, 0) / 1000)).toFixed(1),
      p50_ms: +times[times.length >> 1].toFixed(1),
    };
  });
}

/** `vitrine serve <dir>` on a free port, ready. */
async function serve(dir: string) {
  const port = 19000 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const args = [path.join(here, 'bin', 'vitrine.ts'), 'serve', dir, '--port', String(port), '--host', '127.0.0.1'];
  const server = spawn(process.execPath, ['--import', 'tsx', ...args, '--log-level', 'warn', '--timeout-ms', '60000'], {
    cwd: here,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stop = () => server.kill('SIGTERM');
  process.on('exit', stop);
  await waitReady(base, 180);
  return {
    base,
    peakRssMb: () => mb(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1]) * 1024),
    async close() {
      stop();
      await new Promise((r) => server.once('exit', r));
      process.off('exit', stop);
    },
  };
}

/** POST /classify through `vitrine serve <dir>` (the serve defaults) for both graphs, both servers up,
 *  at 1 and 4 clients, in turns: requests/s over all turns, and the median of the turns' p50s. */
async function served(dirs: [string, string], image: Buffer, type: string) {
  const servers = [await serve(dirs[0]), await serve(dirs[1])];
  const classify = (g: number) => ({
    url: `${servers[g].base}/classify`,
    method: 'POST' as const,
    headers: { 'content-type': type },
    body: image,
  });
  for (const g of [0, 1]) await fetch(classify(g).url, classify(g));
  const out: Record<string, number>[] = [{}, {}];
  for (const connections of [1, 4]) {
    const turns = await alternate(ROUNDS, async (g) => {
      const r = await autocannon({ ...classify(g), connections, duration: Math.max(1, Math.round(seconds / ROUNDS)) });
      if (r.non2xx + r.errors + r.timeouts > 0) throw new Error(`${dirs[g]}: ${r.non2xx + r.errors + r.timeouts} failed requests`);
      return { requests: r.requests.total, seconds: r.duration, p50: r.latency.p50 };
    });
    // each round's int8 over float: how far the ratio moves within the run
    const ratios = turns[1].map((t, i) => t.requests / t.seconds / (turns[0][i].requests / turns[0][i].seconds));
    out[1][`classify_c${connections}_round_ratio_min`] = +Math.min(...ratios).toFixed(2);
    out[1][`classify_c${connections}_round_ratio_max`] = +Math.max(...ratios).toFixed(2);
    turns.forEach((rounds, g) => {
      out[g][`classify_c${connections}_per_s`] = +(
        rounds.reduce((n, t) => n + t.requests, 0) / rounds.reduce((n, t) => n + t.seconds, 0)
      ).toFixed(1);
      out[g][`classify_c${connections}_p50_ms`] = median(rounds.map((t) => t.p50));
    });
  }
  for (const g of [0, 1]) out[g].server_peak_rss_mb = servers[g].peakRssMb();
  for (const s of servers) await s.close();
  return out;
}

const cat = path.join(here, 'server', 'web', 'examples', 'cat.png');
for (const name of flags.models.split(',')) {
  const float = floatFolder(name);
  const int8 = path.join(quantized, name);
  await fs.rm(int8, { recursive: true, force: true });
  await fs.mkdir(quantized, { recursive: true });
  const q = cli(['quantize', float, '--out', int8]);
  if (q.status !== 0) throw new Error(`vitrine quantize failed: ${q.stderr}`);
  const [h] = (await readModelConfig(float)).image_size;
  const image = h > 32 ? await sharp(cat).resize(h, h).jpeg({ quality: 90 }).toBuffer() : await fs.readFile(cat);
  const label = h > 32 ? `cat.png as ${h}x${h} JPEG` : 'cat.png (32x32 PNG)';
  const b = await bare([float, int8], os.availableParallelism());
  // one thread, as each server worker runs a graph: the graphs' own ratio, without the service
  const one = await bare([float, int8], 1);
  const c = await served([float, int8], image, h > 32 ? 'image/jpeg' : 'image/png');
  const measured: Record<string, Row & Record<string, number>> = {};
  for (const [g, graph, dir] of [
    [0, 'float', float],
    [1, 'int8', int8],
  ] as const) {
    measured[graph] = {
      ...(await sizeOf(dir)),
      bare_b1_images_per_s: b[g].images_per_s,
      bare_b1_p50_ms: b[g].p50_ms,
      bare_1_thread_b1_images_per_s: one[g].images_per_s,
      ...c[g],
    };
    results.add({ model: name, graph, ...measured[graph], image: label });
  }
  const f = measured.float;
  const i = measured.int8;
  results.add({
    model: name,
    int8_over_float_classify_c1: +(i.classify_c1_per_s / f.classify_c1_per_s).toFixed(2),
    int8_over_float_classify_c4: +(i.classify_c4_per_s / f.classify_c4_per_s).toFixed(2),
    int8_over_float_bare_1_thread: +(i.bare_1_thread_b1_images_per_s / f.bare_1_thread_b1_images_per_s).toFixed(2),
    quantize_log: q.stdout.split('\n')[0],
  });
}
results.save();
