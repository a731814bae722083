// Serving on the WebGPU provider (lavapipe here): the bundled models answer with the CPU provider's
// logits and maps for every method, their explanation graphs included (cct-cifar10's full graph has
// MaxPool nodes with indices, which run on the CPU); an imported foreign ViT and a Hugging Face
// checkpoint answer with PyTorch's logits and maps, as they do on the CPU.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { exportCommand } from '../../bin/export.js';
import { importCommand } from '../../bin/import.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp } from '../helpers/server.js';
import { assertServedAsPyTorch } from '../helpers/served.js';
import { haveWebGpu, relativeDiff } from '../helpers/webgpu.js';
import { maxAbsDiff } from '../helpers/opcheck.js';

const MODELS = path.join(ROOT, 'models');
const EXAMPLES = path.join(ROOT, 'server', 'web', 'examples');
const FOREIGN = path.join(ROOT, 'test', 'fixtures', 'foreign');

t.test('the bundled models on webgpu: the CPU provider logits and every map', async (t) => {
  if (!haveWebGpu(t)) return;
  const lines: string[] = [];
  const cpu = await testApp(t, { models: MODELS, defaultModel: 'vit-cifar10', device: 'cpu' });
  const gpu = await testApp(
    t,
    { models: MODELS, defaultModel: 'vit-cifar10', device: 'webgpu', workers: 2, logLevel: 'info' },
    { logger: { level: 'info', stream: { write: (l: string) => lines.push(JSON.parse(l).msg) } } },
  );
  const said = lines.join('\n');
  t.match(said, /device webgpu: one inference worker instead of 2/, 'one worker on the GPU, and why');
  t.match(
    said,
    new RegExp(
      /model cct-cifar10: .*relevance\.onnx has 2 node\(s\) that the webgpu provider cannot run; /.source +
        /they run on the CPU \(MaxPool_\d+, MaxPool_\d+\)/.source,
    ),
  );
  t.equal(gpu.vitrine.pool.size, 1);
  const listed = (await gpu.inject('/models')).json().models as {
    name: string;
    provider: string;
    adapter: { software: boolean } | null;
    methods: string[];
  }[];
  for (const m of listed) {
    t.equal(m.provider, 'webgpu', `${m.name}: /models says webgpu`);
    t.equal(m.adapter?.software, true, `${m.name}: on a software adapter, and /models says so`);
  }
  const ready = (await gpu.inject('/readyz')).json();
  t.equal(ready.devices['vit-cifar10'].provider, 'webgpu');
  t.match(
    (await gpu.inject('/metrics')).body,
    /vitrine_provider_info\{model="cct-cifar10",provider="webgpu",adapter="[^"]+",software="true"\} 1/,
  );

  for (const m of listed) {
    for (const image of ['cat.png', 'ship.png']) {
      const bytes = await readFile(path.join(EXAMPLES, image));
      const [a, b] = await Promise.all(
        [cpu, gpu].map((app) => app.inject({ method: 'POST', url: `/classify?model=${m.name}`, ...multipart('image', bytes) })),
      );
      t.equal(b.statusCode, 200, b.body);
      const d = maxAbsDiff(a.json().logits, b.json().logits);
      t.ok(d <= 1e-4, `${m.name} ${image}: logits within 1e-4 of the CPU's (${d.toExponential(1)})`);
      for (const method of m.methods) {
        const [ma, mb] = await Promise.all(
          [
            [cpu, a],
            [gpu, b],
          ].map(([app, r]) => (app as typeof cpu).inject(`/attention/${(r as typeof a).json().id}?method=${method}&format=json`)),
        );
        t.equal(mb.statusCode, 200, mb.body);
        const [va, vb] = [ma, mb].map((r) => (r.json().values as number[][]).flat());
        const spread = Math.max(...va) - Math.min(...va);
        const dm = relativeDiff(va, vb);
        t.ok(
          dm <= 1e-3 && spread > 0.1,
          `${m.name} ${image} ${method}: the map within 1e-3 of the CPU's after ` +
            `scaling (${dm.toExponential(1)}, values spread over ` +
            `${spread.toFixed(2)})`,
        );
      }
    }
  }
});

t.test('an imported ViT and a Hugging Face checkpoint on webgpu: PyTorch logits and maps', async (t) => {
  if (!haveWebGpu(t)) return;
  const root = await tmpDir('vitrine-webgpu-foreign-');
  await importCommand([path.join(FOREIGN, 'tv-o17'), '--out', path.join(root, 'tv-o17')], () => {});
  await exportCommand(['--checkpoint', path.join(FOREIGN, 'hf-deit'), '--out', path.join(root, 'hf-deit')], () => {});
  const app = await testApp(t, { models: root, defaultModel: 'tv-o17', device: 'webgpu' });
  t.same(Object.values(app.vitrine.pool.providers), ['webgpu', 'webgpu']);
  for (const name of ['hf-deit', 'tv-o17']) await assertServedAsPyTorch(t, app, name, path.join(FOREIGN, name));
});

t.test('--device auto where the only Vulkan adapter is a software one: served on the CPU, and the log says why', async (t) => {
  if (!haveWebGpu(t)) return;
  const lines: string[] = [];
  const app = await testApp(
    t,
    { models: MODELS, defaultModel: 'vit-cifar10', device: 'auto', workers: 2, logLevel: 'info' },
    { logger: { level: 'info', stream: { write: (l: string) => lines.push(JSON.parse(l).msg) } } },
  );
  t.same(Object.values(app.vitrine.pool.providers), ['cpu', 'cpu']);
  t.equal(app.vitrine.pool.size, 2, 'the CPU keeps its workers');
  t.match(
    lines.join('\n'),
    new RegExp(
      /device auto: the CPU \(CUDA unavailable: onnxruntime-node was installed without it; /.source +
        /WebGPU: .*the only Vulkan adapter is llvmpipe \(Mesa lavapipe\), a software one\)/.source,
    ),
  );
  t.equal((await app.inject('/models')).json().models[0].adapter, null);
});
