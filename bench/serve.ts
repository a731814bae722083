// Load on the service: starts `vitrine serve` on the bundled model, drives POST /classify with a 32x32
// PNG at concurrency 1 and 32 (autocannon), polls /healthz meanwhile, and prints one JSON line per
// measurement; then the in-process ONNX Runtime ceiling at batch 64 (no HTTP) in the same run.
// The server runs with its defaults unless flags say otherwise.
//   npm run bench:serve [-- --seconds 15 --models models --workers N --threads N --decoders N --drawers N
//                          --worker-nice N --max-batch N --max-queue N --max-delay-ms N --results-capacity N
//                          --log-level warn --image-size N --image-format png|jpeg | --image FILE
//                          --node-flags "..." --gc --attention rollout|relevance|full|none
//                          --draw [--draw-method relevance] [--draw-format json] --tta flip --concurrency 1,32 --root DIR]
// --attention relevance: each request also asks for the relevance map of its top class (one run of
// the light explanation graph instead of the model), for the cost of explanations beside plain
// classification.
// --draw: the load is what the page does, pairs of POST /classify (with attention=relevance
// when the map is relevance, as the page asks) and one GET /attention/:id heatmap PNG of that result
// (--draw-method relevance, the page's default; or rollout, cls, chefer, grad-input, combined), for the top
// class; requests_per_s counts both, pairs_per_s the pairs. --draw-only: one kept result drawn over
// and over (rollout), the draw alone. --root DIR: serve that checkout's code (e.g. a worktree of an
// earlier commit) with this bench, to compare two versions with the same load.
// --reload-every S: the server runs with --model-control explicit, and each load runs twice, without
// and then with the model reloaded (POST /v2/repository/models/<model>/load) every S seconds.
// --grpc: the server also serves gRPC (--grpc-port), and after each POST /classify load the same
// concurrency runs the Open Inference Protocol's infer for the logits, in this order: REST
// (POST /v2/models/<model>/infer, the image's normalized pixels as binary FP32), gRPC ModelInfer with
// those pixels as raw FP32 contents, and gRPC ModelInfer with the PNG file as a BYTES input (decoded
// by the server, as /classify does). --grpc-only skips the /classify loads.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { modelFileIn, readModelConfig } from '../runtime/model-config.js';
import { createSession, runSession } from '../runtime/ort.js';
import { CLASS_METHODS } from '../server/engine/maps.js';
import { waitReady } from './ready.js';
import { grpcLoad } from './grpc-load.js';
import { prepareImage } from '../runtime/image.js';
import { Results, benchFlags } from './common.js';

const SERVER_FLAGS = [
  'workers',
  'threads',
  'decoders',
  'drawers',
  'worker-nice',
  'max-batch',
  'max-delay-ms',
  'max-queue',
  'results-capacity',
];
const text = (fallback?: string) => ({ type: 'string' as const, ...(fallback === undefined ? {} : { default: fallback }) });
const flags = benchFlags(
  'npm run bench:serve [-- --seconds 15 --models models --model vit-cifar10 --concurrency 1,32 --attention … --tta flip --draw …]',
  {
    seconds: text('15'),
    models: text('models'),
    model: text('vit-cifar10'),
    root: text(),
    'draw-only': { type: 'boolean', default: false },
    draw: { type: 'boolean', default: false },
    'draw-method': text('relevance'),
    'draw-format': text('png'),
    tta: text(''),
    'log-level': text('warn'),
    attention: text(''),
    image: text(''),
    'image-size': text('32'),
    'image-format': text('png'),
    'node-flags': text(),
    gc: { type: 'boolean', default: false },
    concurrency: text('1,32'),
    'reload-every': text(),
    grpc: { type: 'boolean', default: false },
    'grpc-only': { type: 'boolean', default: false },
    ...Object.fromEntries(SERVER_FLAGS.map((f) => [f, text()])),
  },
);
const opt = (name: string, fallback: string): string => (flags as unknown as Record<string, string | undefined>)[name] ?? fallback;
const seconds = Number(opt('seconds', '15'));
const models = opt('models', 'models');
const model = opt('model', 'vit-cifar10');
const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const root = path.resolve(opt('root', here));
const drawOnly = flags['draw-only'];
// --tta flip: each classification also runs the mirrored image (with --attention relevance, the
// heaviest answer: three images' runs per request)
const tta = opt('tta', '');
const draw = flags.draw && !drawOnly;
// --draw-format json: the same pairs with the map asked as JSON, nothing drawn: what the pairs reach with a draw that cost nothing
const drawFormat = opt('draw-format', 'png');
if (drawFormat !== 'png' && drawFormat !== 'json') {
  console.error(`bench:serve: --draw-format takes png or json, not ${drawFormat}`);
  process.exit(2);
}
const drawMethod = opt('draw-method', 'relevance');
const reloadEvery = Number(opt('reload-every', '0'));
const serverFlags = [
  ...SERVER_FLAGS.flatMap((f) => (opt(f, '') !== '' ? [`--${f}`, opt(f, '')] : [])),
  ...(reloadEvery > 0 ? ['--model-control', 'explicit'] : []),
];
const grpcOnly = flags['grpc-only'];
const withGrpc = flags.grpc || grpcOnly;
const logLevel = opt('log-level', 'warn');
const attention = opt('attention', '');
const imagePath = opt('image', '');

const results = new Results(
  'serve',
  `The service under load: POST /classify (${model}), /healthz polled meanwhile; then one session's ceiling in-process`,
);

const port = 18000 + Math.floor(Math.random() * 1000);
const base = `http://127.0.0.1:${port}`;
const grpcPort = port + 1000;
// Node flags as `npm start` gives them (package.json), so the server runs as users run it.
const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
// --node-flags "..." replaces them (e.g. --node-flags "" to compare without); --gc also counts the
// event loop's full collections (V8's --trace-gc lines) during each load.
const nodeFlags =
  flags['node-flags'] !== undefined
    ? flags['node-flags'].split(/\s+/).filter(Boolean)
    : pkg.scripts.start.split(/\s+/).filter((a) => a.startsWith('--'));
const countGc = flags.gc;
const server = spawn(
  process.execPath,
  [
    ...nodeFlags,
    ...(countGc ? ['--trace-gc'] : []),
    '--import',
    'tsx',
    path.join(root, 'bin', 'vitrine.ts'),
    'serve',
    '--models',
    models,
    '--default-model',
    model,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--log-level',
    logLevel,
    ...(withGrpc ? ['--grpc-port', String(grpcPort)] : []),
    ...serverFlags,
  ],
  {
    cwd: root,
    stdio: ['ignore', countGc ? 'pipe' : 'ignore', 'inherit'], // its JSON logs would mix with these lines
  },
);
// The main isolate is the first to collect (while loading modules); workers' isolates have other ids.
let mainIsolate: string | null = null;
let fullCollections = 0;
if (countGc) {
  let rest = '';
  server.stdout!.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const m = /^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Mark-Compact|Mark-Sweep)/.exec(line);
      if (!m) continue;
      mainIsolate ??= m[1];
      if (m[1] === mainIsolate && m[2] !== 'Scavenge') fullCollections++;
    }
  });
}
const stop = () => server.kill('SIGTERM');
// The server's CPU time so far (all its threads; Linux's /proc), to give each load's cost per request
// on the server whatever the client costs on the same cores: null where /proc is absent.
const TICK_MS = 10; // USER_HZ is 100 on Linux
function serverCpuMs(): number | null {
  try {
    const fields = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime
  } catch {
    return null;
  }
}
const cpuPerRequest = (before: number | null, requests: number) => {
  const after = serverCpuMs();
  return before === null || after === null || requests === 0 ? null : +((after - before) / requests).toFixed(3);
};
process.on('exit', stop);

await waitReady(base, 60);

// A real CIFAR-10 example from the page's examples.
// (or --image-size N and --image-format png|jpeg: the same example resized to N x N and encoded so,
// e.g. a 300x300 JPEG that takes sharp's general path; or --image FILE: any file, sent as it is)
const imageSize = Number(opt('image-size', '32'));
const imageFormat = opt('image-format', 'png') as 'png' | 'jpeg';
const example = sharp(path.join(here, 'server', 'web', 'examples', 'cat.png'));
const image = imagePath
  ? await readFile(imagePath)
  : await (imageSize === 32 ? example : example.resize(imageSize, imageSize)).toFormat(imageFormat).toBuffer();
const imageLabel = imagePath || `examples/cat.png as ${imageSize}x${imageSize} ${imageFormat.toUpperCase()}`;

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

// /healthz is polled from a process of its own: polled from this one, its latency would include the
// time autocannon holds this event loop, not the server's.
const POLLER = `
const [url, ms] = process.argv.slice(1);
const out = [];
const end = Date.now() + Number(ms);
while (Date.now() < end) {
  const t0 = performance.now();
  await fetch(url).then((r) => r.arrayBuffer());
  out.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 20));
}
process.stdout.write(JSON.stringify(out));`;

function pollHealth(ms: number): Promise<number[]> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', POLLER, `${base}/healthz`, String(ms)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(text) as number[]) : reject(new Error(`the /healthz poller exited with ${code}`)),
    ),
  );
}

/** A load run with /healthz polled meanwhile and the server's CPU counted: its result, and the
 *  figures every row gives (server CPU per request, /healthz p50 and p99 and how many samples). */
async function measured<T>(run: () => Promise<T>, requests: (result: T) => number) {
  const polled = pollHealth(seconds * 1000);
  const cpuBefore = serverCpuMs();
  const result = await run();
  const serverCpu = cpuPerRequest(cpuBefore, requests(result));
  const health = (await polled).sort((a, b) => a - b);
  return {
    result,
    figures: {
      server_cpu_ms_per_request: serverCpu,
      healthz_p50_ms: +percentile(health, 50).toFixed(2),
      healthz_p99_ms: +percentile(health, 99).toFixed(2),
      healthz_samples: health.length,
    },
  };
}

const classifyRequest = {
  url: `${base}/classify?${new URLSearchParams({ ...(attention ? { attention } : {}), ...(tta ? { tta } : {}) })}`,
  method: 'POST' as const,
  headers: { 'content-type': imagePath ? 'application/octet-stream' : 'image/png' },
  body: image,
};
// --draw-only: one result, kept, drawn over and over.
const kept = drawOnly ? ((await (await fetch(classifyRequest.url, classifyRequest)).json()) as { id: string }).id : '';
// --draw: each connection classifies, then draws that result (the id taken from the answer).
type Context = { id?: string; top?: number };
const pair = {
  url: base,
  requests: [
    // as the page asks: a class map shown first comes with the classification (one run, kept with the result)
    {
      method: 'POST' as const,
      path: `/classify${drawMethod === 'relevance' ? '?attention=relevance' : ''}`,
      headers: classifyRequest.headers,
      body: classifyRequest.body,
      onResponse: (_s: number, body: string, context: object) => {
        const c = context as Context;
        const b = JSON.parse(body) as { id: string; predictions: { index: number }[] };
        c.id = b.id;
        c.top = b.predictions[0].index;
      },
    },
    {
      method: 'GET' as const,
      setupRequest: (req: autocannon.Request, context: object) => ({
        ...req,
        path: `/attention/${(context as Context).id}?${new URLSearchParams({
          method: drawMethod,
          ...((CLASS_METHODS as readonly string[]).includes(drawMethod) ? { class: String((context as Context).top) } : {}),
          size: '256',
          ...(drawFormat === 'png' ? {} : { format: drawFormat }),
        })}`,
      }),
    },
  ],
};
const request = drawOnly ? { url: `${base}/attention/${kept}`, method: 'GET' as const } : draw ? pair : classifyRequest;

/** Reloads the model every reloadEvery seconds until stopped; counts the reloads and their failures. */
function reloading(): { stop: () => Promise<{ reloads: number; reload_failures: number }> } {
  let reloads = 0;
  let failures = 0;
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = fetch(`${base}/v2/repository/models/${model}/load`, { method: 'POST' }).then(
      (r) => void (r.ok ? reloads++ : failures++),
      () => void failures++,
    );
  }, reloadEvery * 1000);
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
      return { reloads, reload_failures: failures };
    },
  };
}

async function load(connections: number, reload = false) {
  const collectionsBefore = fullCollections;
  const reloader = reload ? reloading() : null;
  const { result, figures } = await measured(
    () => autocannon({ ...request, connections, duration: seconds }),
    (r) => r.requests.total,
  );
  const reloads = reloader ? await reloader.stop() : {};
  const errors = result.errors + result.timeouts + result.non2xx;
  results.add({
    concurrency: connections,
    ...reloads,
    requests_per_s: Math.round(result.requests.average),
    ...(draw ? { pairs_per_s: Math.round(result.requests.average / 2) } : {}),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    ...figures,
    ...(countGc ? { full_collections: fullCollections - collectionsBefore } : {}),
    node_flags: nodeFlags.join(' '),
    errors,
    seconds,
    cores: os.cpus().length,
    image: imageLabel,
    load: drawOnly
      ? 'GET /attention/:id (png, rollout)'
      : draw
        ? `POST /classify, then GET /attention/:id (${drawFormat}, ${drawMethod})`
        : 'POST /classify',
    attention: attention || 'rollout (default)',
    ...(tta ? { tta } : {}),
    ...(root !== here ? { root } : {}),
    log_level: logLevel,
  });
}

// The Open Inference Protocol's infer for the logits of the same image, over REST and over gRPC.
async function protocolLoads(connections: number) {
  const c = await readModelConfig(path.join(models, model));
  const [height, width] = c.image_size;
  const { pixels } = await prepareImage(image, { height, width, mean: c.mean, std: c.std }, { maxPixels: 1e8 });
  const raw = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const shape = [1, c.mean.length, height, width];
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: c.input_name, datatype: 'FP32', shape, parameters: { binary_data_size: raw.length } }],
      outputs: [{ name: c.logits_output, parameters: { binary_data: true } }],
    }),
  );
  const common = { concurrency: connections, seconds, cores: os.cpus().length, image: imageLabel, log_level: logLevel };
  const { result: rest, figures } = await measured(
    () =>
      autocannon({
        url: `${base}/v2/models/${model}/infer`,
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
        body: Buffer.concat([header, raw]),
        connections,
        duration: seconds,
      }),
    (r) => r.requests.total,
  );
  results.add({
    ...common,
    load: 'REST POST /v2/models/:name/infer, binary FP32 pixels, logits out (binary)',
    requests_per_s: Math.round(rest.requests.average),
    p50_ms: rest.latency.p50,
    p99_ms: rest.latency.p99,
    ...figures,
    errors: rest.errors + rest.timeouts + rest.non2xx,
  });
  const outputs = [{ name: c.logits_output }];
  const asks = [
    [
      'gRPC ModelInfer, raw FP32 pixels, logits out (raw)',
      { inputs: [{ name: c.input_name, datatype: 'FP32', shape }], raw_input_contents: [raw] },
    ],
    [
      'gRPC ModelInfer, the image file as BYTES, logits out',
      { inputs: [{ name: c.input_name, datatype: 'BYTES', shape: [1], contents: { bytes_contents: [image] } }] },
    ],
  ] as const;
  for (const [load, ask] of asks) {
    const { result: g, figures: measuredFigures } = await measured(
      () => grpcLoad(`127.0.0.1:${grpcPort}`, { model_name: model, outputs, ...ask }, connections, seconds),
      (r) => r.requests,
    );
    const { requests: _, ...figures } = g;
    results.add({ ...common, load, ...figures, ...measuredFigures });
  }
}

// --concurrency 1,32 (the default) or other levels, e.g. 64 with --attention full (the heavy answers)
for (const c of opt('concurrency', '1,32').split(',').map(Number)) {
  if (!grpcOnly) await load(c);
  if (reloadEvery > 0) await load(c, true);
  if (withGrpc) await protocolLoads(c);
}
const metrics = await (await fetch(`${base}/metrics`)).text();
const sum = Number(/vitrine_batch_size_sum\{model="[^"]+"\} ([\d.e+]+)/.exec(metrics)?.[1]);
const count = Number(/vitrine_batch_size_count\{model="[^"]+"\} ([\d.e+]+)/.exec(metrics)?.[1]);
results.add({ mean_batch_size: +(sum / count).toFixed(2), batches: count });
stop();
await new Promise((r) => server.once('exit', r));

// The ceiling: the same model in this process, batch 64, no HTTP, no decoding.
const config = await readModelConfig(path.join(models, model));
const session = await createSession(modelFileIn(path.join(models, model))!, { device: 'cpu' });
const [h, w] = config.image_size;
const pixels = new Float32Array(64 * 3 * h * w).fill(0.1);
const outputs = [config.logits_output, ...config.attention_outputs];
for (let i = 0; i < 3; i++) await runSession(session, { [config.input_name]: { data: pixels, dims: [64, 3, h, w] } }, outputs);
const t0 = performance.now();
let runs = 0;
while (performance.now() - t0 < 3000) {
  await runSession(session, { [config.input_name]: { data: pixels, dims: [64, 3, h, w] } }, outputs);
  runs++;
}
results.add({
  ceiling: 'one ONNX Runtime session in this process, no HTTP, logits+attentions',
  batch: 64,
  images_per_s: Math.round((runs * 64) / ((performance.now() - t0) / 1000)),
});
results.save();
