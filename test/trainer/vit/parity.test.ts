// The seed's PyTorch model and ours agree: same weights (saved by PyTorch under the seed's names),
// same inputs, logits and every attention map within 1e-4, on the interpreter and on the exported ONNX.

import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { interpret } from '../../../trainer/autograd/interpreter.js';
import { nd } from '../../../trainer/autograd/ndarray.js';
import { input } from '../../../trainer/autograd/ops.js';
import { exportModel, CIFAR10_LABELS } from '../../../trainer/export.js';
import { readSafetensors } from '../../../trainer/io/safetensors.js';
import { GraphContext } from '../../../trainer/nn/module.js';
import { SEED_CONFIG } from '../../../trainer/vit/config.js';
import { BATCH, ViT } from '../../../trainer/vit/model.js';
import { loadWeightsFile } from '../../../trainer/vit/weights.js';
import { createSession, runSession } from '../../../runtime/ort.js';
import { assertClose } from '../../helpers/opcheck.js';

const fixtures = path.join(import.meta.dirname, '..', '..', 'fixtures');

t.test('seed ViT matches the PyTorch reference', async (t) => {
  const io = (await readSafetensors(path.join(fixtures, 'seed-io.safetensors'))).tensors;
  const pixels = io.get('pixel_values')!;
  const model = new ViT(SEED_CONFIG, 123);
  await loadWeightsFile(model, path.join(fixtures, 'seed-weights.safetensors'));
  t.equal(model.parameterCount(), 119098, 'the seed config has 119,098 parameters');

  const ctx = new GraphContext(false);
  const out = model.forward(ctx, input('pixel_values', [BATCH, 3, 32, 32]));
  const feeds: Record<string, ReturnType<typeof nd>> = { pixel_values: nd(pixels.data, pixels.shape) };
  for (const [name, p] of model.namedParameters()) feeds[name] = nd(p.data, p.shape);
  const [logits, ...attentions] = interpret([out.logits, ...out.attentions], feeds);
  assertClose(t, logits.data, io.get('logits')!.data, 0, 1e-4, 'interpreter logits');
  attentions.forEach((a, i) => assertClose(t, a.data, io.get(`attentions.${i}`)!.data, 0, 1e-4, `interpreter attentions.${i}`));

  const dir = await mkdtemp(path.join(os.tmpdir(), 'vitrine-parity-'));
  const { modelFile } = await exportModel(model, CIFAR10_LABELS, dir);
  const s = await createSession(modelFile);
  const r = await runSession(s, { pixel_values: { data: pixels.data, dims: pixels.shape } });
  t.same([...r.logits.dims], [2, 10], 'exported logits shape');
  assertClose(t, r.logits.data, io.get('logits')!.data, 0, 1e-4, 'exported ONNX logits');
  for (let i = 0; i < 4; i++) {
    t.same([...r[`attentions.${i}`].dims], [2, 4, 65, 65], `exported attentions.${i} shape`);
    assertClose(t, r[`attentions.${i}`].data, io.get(`attentions.${i}`)!.data, 0, 1e-4, `exported ONNX attentions.${i}`);
  }
});

t.test('weights saved with the fused qkv_projection load to the same model', async (t) => {
  const a = new ViT(SEED_CONFIG);
  const b = new ViT(SEED_CONFIG);
  await loadWeightsFile(a, path.join(fixtures, 'seed-weights.safetensors'));
  await loadWeightsFile(b, path.join(fixtures, 'seed-weights-fused.safetensors'));
  const pa = new Map(a.namedParameters());
  for (const [name, p] of b.namedParameters()) t.same(p.data, pa.get(name)!.data, name);
});
