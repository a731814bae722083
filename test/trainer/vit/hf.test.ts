// Hugging Face ViT and DeiT checkpoints load into our ViT: the fixtures' weights under transformers'
// names (test/fixtures/make-foreign-vits.py writes them from a faithful copy of modeling_vit.py and
// modeling_deit.py; make-hf-checkpoints.py the F16, BF16 and sharded folders) give PyTorch's logits and
// every attention map within 1e-4 through the interpreter and the exported ONNX, and the position
// embeddings resize as transformers' interpolate_pos_encoding. What cannot be loaded is refused by name.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { interpret } from '../../../trainer/autograd/interpreter.js';
import { nd } from '../../../trainer/autograd/ndarray.js';
import { exportModel } from '../../../trainer/export.js';
import { readSafetensors } from '../../../trainer/io/safetensors.js';
import { GraphContext } from '../../../trainer/nn/module.js';
import { bicubicResize, hfViTConfig, readHfCheckpoint } from '../../../trainer/vit/hf.js';
import { initConfig, initModel, readInit } from '../../../trainer/vit/init.js';
import { type ViT, pixelInput } from '../../../trainer/vit/model.js';
import { createSession, runSession } from '../../../runtime/ort.js';
import { maxAbsDiff } from '../../helpers/opcheck.js';

const fixtures = path.join(import.meta.dirname, '..', '..', 'fixtures');
const foreign = (name: string) => path.join(fixtures, 'foreign', name);
const variant = (name: string) => path.join(fixtures, 'hf-checkpoints', name);
const LABELS = ['apple', 'boat', 'cloud', 'door', 'eagle'];

function interpreted(model: ViT, pixels: { data: Float32Array; shape: readonly number[] }) {
  const out = model.forward(new GraphContext(false), pixelInput(model.config));
  const feeds: Record<string, ReturnType<typeof nd>> = { pixel_values: nd(pixels.data, pixels.shape) };
  for (const [name, p] of model.namedParameters()) feeds[name] = nd(p.data, p.shape);
  const [logits, ...attentions] = interpret([out.logits, ...out.attentions], feeds);
  return { logits: logits.data, attentions: attentions.map((a) => a.data) };
}

/** The worst difference from the reference's logits and attentions, interpreter and exported ONNX. */
async function worstDifference(model: ViT, reference: string) {
  const ref = (await readSafetensors(reference)).tensors;
  const pixels = ref.get('pixel_values')!;
  const mine = interpreted(model, pixels);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vitrine-hf-'));
  const { modelFile } = await exportModel(model, LABELS, dir);
  const r = await runSession(await createSession(modelFile), { pixel_values: { data: pixels.data, dims: pixels.shape } });
  const layers = model.config.num_hidden_layers;
  const worst = {
    interpreter: maxAbsDiff(mine.logits, ref.get('logits')!.data),
    onnx: maxAbsDiff(r.logits.data, ref.get('logits')!.data),
    layers: 0,
  };
  for (let l = 0; l < layers; l++) {
    const want = ref.get(`attentions.${l}`)!.data;
    worst.interpreter = Math.max(worst.interpreter, maxAbsDiff(mine.attentions[l], want));
    worst.onnx = Math.max(worst.onnx, maxAbsDiff(r[`attentions.${l}`].data, want));
    worst.layers++;
  }
  rmSync(dir, { recursive: true, force: true });
  return worst;
}

for (const [name, folder, reference, heads, prefix] of [
  ['ViTForImageClassification', foreign('hf-vit'), path.join(foreign('hf-vit'), 'reference.safetensors'), 4, 1],
  ['DeiTForImageClassificationWithTeacher', foreign('hf-deit'), path.join(foreign('hf-deit'), 'reference.safetensors'), 2, 2],
  ['ViT saved as F16', variant('vit-fp16'), path.join(variant('vit-fp16'), 'reference.safetensors'), 4, 1],
  ['DeiT saved as BF16', variant('deit-bf16'), path.join(variant('deit-bf16'), 'reference.safetensors'), 2, 2],
  ['ViT in two shards', variant('vit-sharded'), path.join(variant('vit-sharded'), 'reference.safetensors'), 4, 1],
] as const) {
  t.test(`${name}: PyTorch's logits and attentions within 1e-4, interpreted and exported`, async (t) => {
    const ck = await readHfCheckpoint(folder);
    t.same(ck.labels, LABELS, 'labels from id2label');
    t.equal(ck.vit.num_attention_heads, heads);
    t.equal(ck.vit.hidden_act, 'gelu', 'exact GELU');
    t.equal(ck.vit.layer_norm_eps, 1e-12, "transformers' default epsilon");
    t.ok(ck.vit.final_layernorm, 'the final LayerNorm');
    t.equal(ck.vit.distillation_token, prefix === 2);
    t.same(ck.vit.mean, [0.485, 0.456, 0.406], "mean and std from the folder's processor");
    const src = await readInit(folder);
    const { model, said } = initModel(src, initConfig(src, LABELS.length), LABELS, 0);
    t.match(said.join('\n'), /kept the classifier/);
    const worst = await worstDifference(model, reference);
    t.equal(worst.layers, 2, 'both layers compared');
    t.ok(worst.interpreter <= 1e-4, `interpreter: worst ${worst.interpreter.toExponential(2)}`);
    t.ok(worst.onnx <= 1e-4, `exported ONNX: worst ${worst.onnx.toExponential(2)}`);
  });
}

t.test(
  'the F16 checkpoint is the F32 one rounded: its logits differ from the F32 reference by what rounding makes, not more',
  async (t) => {
    const exact = (await readSafetensors(path.join(foreign('hf-vit'), 'reference.safetensors'))).tensors.get('logits')!.data;
    const src = await readInit(variant('vit-fp16'));
    const { model } = initModel(src, initConfig(src, 5), LABELS, 0);
    const pixels = (await readSafetensors(path.join(foreign('hf-vit'), 'reference.safetensors'))).tensors.get('pixel_values')!;
    const d = maxAbsDiff(interpreted(model, pixels).logits, exact);
    t.ok(d > 0 && d < 0.05, `F16 weights move the logits by ${d.toExponential(2)} (a relative rounding of 2^-11 per weight)`);
  },
);

t.test('position embeddings at another image size: as interpolate_pos_encoding (bicubic, align_corners=False)', async (t) => {
  const ref = (await readSafetensors(path.join(variant(''), 'interpolated.safetensors'))).tensors;
  for (const [kind, folder, size] of [
    ['vit', foreign('hf-vit'), 48],
    ['deit', foreign('hf-deit'), 24],
  ] as const) {
    const src = await readInit(folder);
    const vit = initConfig(src, 5, { image_size: size });
    const { model, said } = initModel(src, vit, LABELS, 0);
    t.match(said.join('\n'), new RegExp(`resized bicubically from a 4x4 to a ${size / 8}x${size / 8} patch grid`));
    const pos = model.stateDict().get('embedding.position_embeddings')!;
    const want = ref.get(`${kind}.position_embeddings`)!;
    t.same(pos.shape, want.shape, `${kind}: [1, ${want.shape[1]}, 32]`);
    t.ok(
      maxAbsDiff(pos.data, want.data) < 1e-5,
      `${kind}: torch's interpolate within 1e-5 (${maxAbsDiff(pos.data, want.data).toExponential(2)})`,
    );
    const logits = interpreted(model, ref.get(`${kind}.pixel_values`)!).logits;
    t.ok(maxAbsDiff(logits, ref.get(`${kind}.logits`)!.data) < 1e-4, `${kind}: logits of ${size}px images within 1e-4 of PyTorch's`);
  }
  t.equal(
    bicubicResize(Float32Array.of(5, 5, 5, 5), 2, 2, 1, 3, 3).every((v) => Math.abs(v - 5) < 1e-6),
    true,
    'a constant stays constant (the weights sum to 1)',
  );
});

t.test("DeiT's processor (resize, then a center crop): the crop is the input, cover-cropped, and said", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vitrine-hf-crop-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(foreign('hf-deit'), dir, { recursive: true });
  const p = JSON.parse(readFileSync(path.join(dir, 'preprocessor_config.json'), 'utf8'));
  writeFileSync(
    path.join(dir, 'preprocessor_config.json'),
    JSON.stringify({ ...p, size: 36, do_center_crop: true, crop_size: { height: 32, width: 32 }, resample: 3 }),
  );
  const ck = await readHfCheckpoint(dir);
  t.same(ck.preprocessing?.image_size, [32, 32]);
  t.equal(ck.preprocessing?.fit, 'cover');
  t.equal(ck.preprocessing?.resample, 'cubic');
  t.match(
    ck.notes.join('\n'),
    /the processor resizes to 36 and center-crops to \{"height":32,"width":32\}: served cover-cropped to the 32x32 input/,
  );
});

t.test('what cannot be loaded is refused with the names', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vitrine-hf-bad-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const copy = (name: string) => {
    const to = path.join(dir, name);
    cpSync(foreign('hf-vit'), to, { recursive: true });
    return to;
  };
  const config = (folder: string, edit: (c: Record<string, unknown>) => void) => {
    const c = JSON.parse(readFileSync(path.join(folder, 'config.json'), 'utf8'));
    edit(c);
    writeFileSync(path.join(folder, 'config.json'), JSON.stringify(c));
  };
  const swin = copy('swin');
  config(swin, (c) => {
    c.model_type = 'swin';
    c.architectures = ['SwinForImageClassification'];
  });
  await t.rejects(readHfCheckpoint(swin), /model_type "swin" is not a ViT: vitrine loads transformers' ViT and DeiT checkpoints/);
  const beit = copy('beit');
  config(beit, (c) => (c.architectures = ['ViTForMaskedImageModeling']));
  await t.rejects(
    readHfCheckpoint(beit),
    /architecture ViTForMaskedImageModeling is not one vitrine loads \(known: ViTForImageClassification, ViTModel/,
  );
  const odd = copy('odd');
  config(odd, (c) => (c.use_relative_position_bias = true));
  await t.rejects(readHfCheckpoint(odd), /config keys vitrine does not know for a ViTForImageClassification: use_relative_position_bias/);
  const act = copy('act');
  config(act, (c) => (c.hidden_act = 'quick_gelu'));
  await t.rejects(readHfCheckpoint(act), /hidden_act "quick_gelu" is not one vitrine runs/);
  // a tensor of another model: named
  const extra = copy('extra');
  const { tensors } = await readSafetensors(path.join(extra, 'model.safetensors'));
  const { writeSafetensors } = await import('../../../trainer/io/safetensors.js');
  await writeSafetensors(
    path.join(extra, 'model.safetensors'),
    new Map([...tensors, ['vit.encoder.layer.0.attention.attention.relative_position_bias', { shape: [2], data: new Float32Array(2) }]]),
  );
  await t.rejects(
    readHfCheckpoint(extra),
    /tensors a ViT\/DeiT checkpoint does not have: vit\.encoder\.layer\.0\.attention\.attention\.relative_position_bias/,
  );
  // a missing one: named
  const missing = copy('missing');
  await writeSafetensors(path.join(missing, 'model.safetensors'), new Map([...tensors].filter(([n]) => n !== 'vit.layernorm.weight')));
  const src = await readInit(missing);
  t.throws(() => initModel(src, initConfig(src, 5), LABELS, 0), /no tensor for layernorm\.weight/);
  // a shard that is not there
  const sharded = path.join(dir, 'sharded');
  cpSync(variant('vit-sharded'), sharded, { recursive: true });
  rmSync(path.join(sharded, 'model-00002-of-00002.safetensors'));
  await t.rejects(readHfCheckpoint(sharded), /shard model-00002-of-00002\.safetensors is missing/);
  // pytorch_model.bin only
  const bin = path.join(dir, 'bin');
  cpSync(foreign('hf-vit'), bin, { recursive: true });
  rmSync(path.join(bin, 'model.safetensors'));
  writeFileSync(path.join(bin, 'pytorch_model.bin'), 'x');
  await t.rejects(
    readInit(bin),
    new RegExp(
      /no model\.safetensors or model\.safetensors\.index\.json \(it has pytorch_model\.bin: /.source +
        /vitrine reads safetensors; save the model again with safe_serialization=True\)/.source,
    ),
  );
  t.throws(() => hfViTConfig({ model_type: 'vit', image_size: [224, 160] }, 'c.json'), /'image_size' must be one side \(square images\)/);
});

t.test("a vitrine model folder and a run's weights start a model too, the head kept or made anew", async (t) => {
  const src = await readInit(foreign('hf-deit'));
  const { model } = initModel(src, initConfig(src, 5), LABELS, 0);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vitrine-init-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await exportModel(model, LABELS, path.join(dir, 'm'));
  const again = await readInit(path.join(dir, 'm'));
  t.equal(again.kind, 'vitrine model');
  const same = initModel(again, initConfig(again, 5), LABELS, 1).model;
  const before = model.stateDict();
  t.ok(
    [...same.stateDict()].every(([k, v]) => maxAbsDiff(v.data, before.get(k)!.data) === 0),
    'every tensor as exported, heads included',
  );
  const other = initModel(again, initConfig(again, 3), ['x', 'y', 'z'], 1);
  t.match(other.said.join('\n'), /new classifiers for the 3 classes \(x, y, z\): the checkpoint has its 5 classes/);
  const after = other.model.stateDict();
  t.same(after.get('classifier.weight')!.shape, [3, 32]);
  t.same(after.get('distillation_classifier.weight')!.shape, [3, 32]);
  t.equal(
    maxAbsDiff(after.get('encoder.blocks.1.mlp.dense_2.weight')!.data, before.get('encoder.blocks.1.mlp.dense_2.weight')!.data),
    0,
    'the encoder kept',
  );
  t.throws(
    () => initConfig(again, 3, { hidden_size: 64 }),
    /--model hidden_size 64: starting from .* the architecture is its own \(hidden_size 32\)/,
  );
});
