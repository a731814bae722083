// Forward throughput of the seed ViT: the exported model on ONNX Runtime (CPU) at batch 1 and 64, and
// the reference interpreter at batch 1. One JSON line per measurement.
//   npm run bench:forward [-- --seconds 3] [--sweep] [--device cpu|webgpu|cuda|auto]
// --sweep: instead, one intra-op thread (as each server worker runs) at batch 1, 4, 8, 16 and 64, with
// logits only and with logits + every layer's attention (what the server fetches).

import os from 'node:os';
import { interpret } from '../trainer/autograd/interpreter.js';
import { nd } from '../trainer/autograd/ndarray.js';
import { input } from '../trainer/autograd/ops.js';
import { exportOnnx, modelConfigFor, defaultLabels } from '../trainer/export.js';
import { GraphContext } from '../trainer/nn/module.js';
import { SEED_CONFIG } from '../trainer/vit/config.js';
import { BATCH, ViT } from '../trainer/vit/model.js';
import { DEVICES, type Device, createSession, runSession } from '../runtime/ort.js';
import { Results, benchFlags } from './common.js';

const flags = benchFlags('npm run bench:forward [-- --seconds 3] [--sweep] [--device cpu|webgpu|cuda|auto]', {
  seconds: { type: 'string', default: '3' },
  sweep: { type: 'boolean', default: false },
  device: { type: 'string', default: 'cpu' },
});
const seconds = Number(flags.seconds) || 3;
const device = flags.device as Device;
if (!DEVICES.includes(device)) {
  console.error(`--device must be one of ${DEVICES.join(', ')}`);
  process.exit(2);
}

async function timeIt(fn: () => Promise<unknown> | unknown, budgetS: number): Promise<{ runs: number; s: number }> {
  for (let i = 0; i < 3; i++) await fn(); // warm up
  const start = process.hrtime.bigint();
  let runs = 0;
  let s = 0;
  while (s < budgetS || runs < 3) {
    await fn();
    runs++;
    s = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return { runs, s };
}

const model = new ViT(SEED_CONFIG, 0);
const bytes = exportOnnx(model, modelConfigFor(model, defaultLabels(10)));
const session = await createSession(bytes, { device, log: (l) => console.error(l) });
const common = { model: 'seed', parameters: model.parameterCount(), cores: os.cpus().length };

const results = new Results(
  'forward',
  flags.sweep
    ? 'Forward of the seed ViT on one intra-op thread (as a server worker), logits only and with every attention'
    : 'Forward of the exported seed ViT on ONNX Runtime at batch 1 and 64, and on the reference interpreter',
);

if (flags.sweep) {
  const one = await createSession(bytes, { device, threads: 1 });
  const attentions = one.outputNames.filter((n) => n.startsWith('attentions.'));
  for (const outputs of [['logits'], ['logits', ...attentions]]) {
    for (const batch of [1, 4, 8, 16, 64]) {
      const data = Float32Array.from({ length: batch * 3 * 32 * 32 }, () => Math.random() * 2 - 1);
      const { runs, s } = await timeIt(() => runSession(one, { pixel_values: { data, dims: [batch, 3, 32, 32] } }, outputs), seconds);
      results.add({
        runner: `onnxruntime-${session.provider}`,
        threads: 1,
        batch,
        outputs: outputs.length > 1 ? 'logits+attentions' : 'logits',
        images_per_s: Math.round((runs * batch) / s),
        ...common,
      });
    }
  }
  results.save();
  process.exit(0);
}

for (const batch of [1, 64]) {
  const data = Float32Array.from({ length: batch * 3 * 32 * 32 }, () => Math.random() * 2 - 1);
  const { runs, s } = await timeIt(() => runSession(session, { pixel_values: { data, dims: [batch, 3, 32, 32] } }), seconds);
  results.add({
    runner: `onnxruntime-${session.provider}`,
    batch,
    images_per_s: Math.round((runs * batch) / s),
    ms_per_batch: +((s / runs) * 1000).toFixed(3),
    ...common,
  });
}

const ctx = new GraphContext(false);
const out = model.forward(ctx, input('pixel_values', [BATCH, 3, 32, 32]));
const feeds: Record<string, ReturnType<typeof nd>> = {
  pixel_values: nd(
    Float64Array.from({ length: 3 * 32 * 32 }, () => Math.random() * 2 - 1),
    [1, 3, 32, 32],
  ),
};
for (const [name, p] of model.namedParameters()) feeds[name] = nd(p.data, p.shape);
const { runs, s } = await timeIt(() => interpret([out.logits, ...out.attentions], feeds), seconds);
results.add({
  runner: 'interpreter',
  batch: 1,
  images_per_s: +(runs / s).toFixed(1),
  ms_per_batch: +((s / runs) * 1000).toFixed(3),
  ...common,
});
results.save();
