// vitrine import on graphs PyTorch's exporter wrote (test/fixtures/make-foreign-vits.py): the folder it
// writes against the original graph on ONNX Runtime and against PyTorch's own numbers.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { decodeModel } from '../../trainer/autograd/onnx-proto.js';
import { readSafetensors } from '../../trainer/io/safetensors.js';
import { readModelConfig } from '../../runtime/model-config.js';
import { createSession, runSession } from '../../runtime/ort.js';
import { relevanceInto } from '../../server/engine/relevance.js';
import { ROOT, assertOneLineError, runCli } from '../helpers/cli.js';
import { maxAbsDiff } from '../helpers/opcheck.js';

const FOREIGN = path.join(ROOT, 'test', 'fixtures', 'foreign');
const CASES = [
  { name: 'tv-o14', what: 'torchvision ViT, opset 14 (LayerNorm decomposed, [batch*heads, T, T] attention)', heads: 2, prefix: 1 },
  { name: 'tv-o17', what: 'torchvision ViT, opset 17 (LayerNormalization)', heads: 2, prefix: 1 },
  { name: 'hf-vit', what: "transformers' ViTForImageClassification, opset 17", heads: 4, prefix: 1 },
  { name: 'hf-deit', what: "transformers' DeiTForImageClassificationWithTeacher (distillation token), opset 14", heads: 2, prefix: 2 },
];

const tmp = async (t: { teardown: (f: () => unknown) => void }) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vitrine-import-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

/** |a - b| / max|b|: the worst difference relative to the reference's scale. */
const scaledDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => maxAbsDiff(a, b) / Math.max(...Array.from(b, Math.abs));

for (const c of CASES) {
  t.test(`imports ${c.what}`, async (t) => {
    const src = path.join(FOREIGN, c.name);
    const out = path.join(await tmp(t), c.name);
    const r = await runCli(['import', src, '--out', out]);
    t.equal(r.code, 0, r.stderr);
    t.match(
      r.stdout,
      new RegExp(`2 attentions of ${c.heads} heads over ${16 + c.prefix} tokens \\(${c.prefix} before a 4x4 grid of 8-pixel patches\\)`),
    );

    const config = await readModelConfig(out);
    t.same(config.labels, ['apple', 'boat', 'cloud', 'door', 'eagle'], 'labels from id2label');
    t.same(
      [config.mean, config.std, config.image_size],
      [
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
        [32, 32],
      ],
      'preprocessing from the processor',
    );
    t.equal(config.fit, 'fill', "the processor's stretch is kept");
    t.equal(config.resample, 'linear');
    t.equal(config.prefix_tokens, c.prefix);
    t.equal(config.attention_heads, c.heads);
    t.equal(config.patch_size, 8);

    // Both graphs read their weights from the one external file.
    const source = decodeModel(await readFile(path.join(src, 'model.onnx')));
    const weights = source.graph!.initializer!.filter((i) => i.dataType === 1).map((i) => i.name!);
    for (const file of ['model.onnx', 'relevance.onnx']) {
      const m = decodeModel(await readFile(path.join(out, 'onnx', file)));
      const external = new Set(
        m
          .graph!.initializer!.filter((i) => i.externalData?.some((e) => e.key === 'location' && e.value === 'model.onnx_data'))
          .map((i) => i.name!),
      );
      const inline = m.graph!.initializer!.filter((i) => weights.includes(i.name!) && !external.has(i.name!)).map((i) => i.name);
      t.same(
        inline,
        [],
        `${file}: every weight of the source (${weights.length}) that it uses lies in model.onnx_data (${external.size} there)`,
      );
      const inlineBytes = m.graph!.initializer!.reduce((n, i) => n + (i.rawData?.length ?? 0), 0);
      t.ok(inlineBytes < 4096, `${file}: ${inlineBytes} bytes of constants held inline`);
    }
    const stored = (await readFile(path.join(out, 'onnx', 'model.onnx_data'))).length;
    const sourceBytes = source.graph!.initializer!.filter((i) => i.dataType === 1).reduce((n, i) => n + i.rawData!.length, 0);
    t.ok(
      stored >= sourceBytes && stored < sourceBytes + 64 * weights.length,
      `model.onnx_data holds the weights once (${stored} bytes for ${sourceBytes})`,
    );

    const ref = (await readSafetensors(path.join(src, 'reference.safetensors'))).tensors;
    const pixels = ref.get('pixel_values')!;
    const feed = { pixel_values: { data: pixels.data, dims: pixels.shape } };
    const original = await runSession(await createSession(path.join(src, 'model.onnx')), feed);
    const imported = await runSession(await createSession(path.join(out, 'onnx', 'model.onnx')), feed);
    t.same([...imported.logits.dims], [3, 5], 'logits are [batch, labels]');
    t.same([...original.logits.dims], [3, 5]);
    const dLogits = maxAbsDiff(imported.logits.data, original.logits.data);
    t.ok(dLogits <= 1e-6, `model.onnx's logits equal the original graph's (worst difference ${dLogits.toExponential(2)})`);
    const dTorch = maxAbsDiff(imported.logits.data, ref.get('logits')!.data);
    t.ok(dTorch <= 1e-4, `and PyTorch's within 1e-4 (${dTorch.toExponential(2)})`);
    for (let l = 0; l < 2; l++) {
      const a = imported[`attentions.${l}`];
      t.same([...a.dims], [3, c.heads, 16 + c.prefix, 16 + c.prefix], `attentions.${l} is [batch, heads, tokens, tokens]`);
      const want = ref.get(`attentions.${l}`)!.data;
      const spread = Math.max(...want) - Math.min(...want);
      t.ok(spread > 0.3, `layer ${l}: PyTorch's attention is far from uniform (values spread over ${spread.toFixed(2)})`);
      const d = maxAbsDiff(a.data, want);
      t.ok(d <= 1e-5, `attentions.${l} equals PyTorch's per-head probabilities (worst ${d.toExponential(2)})`);
    }

    // The explanation graph: the autograd's gradient over the imported graph.
    const target = ref.get('target_class')!;
    const rel = await runSession(await createSession(path.join(out, config.relevance!.file)), {
      ...feed,
      target_class: { data: target.data, dims: [3] },
    });
    t.same([...rel.logits.dims], [3, 5]);
    for (let l = 0; l < 2; l++)
      t.same(
        [...rel[`attention_grads.${l}`].dims],
        [3, c.heads, 16 + c.prefix, 16 + c.prefix],
        `attention_grads.${l} is [batch, heads, tokens, tokens]`,
      );
    const dRelLogits = maxAbsDiff(rel.logits.data, original.logits.data);
    t.ok(dRelLogits <= 1e-5, `the imported autograd graph's logits equal the original's within 1e-5 (${dRelLogits.toExponential(2)})`);
    const layers = [0, 1].map((l) => rel[`attentions.${l}`].data);
    const grads = [0, 1].map((l) => rel[`attention_grads.${l}`].data);
    for (let l = 0; l < 2; l++) {
      const want = ref.get(`attention_grads.${l}`)!.data;
      const d = scaledDiff(grads[l], want);
      t.ok(
        d <= 1e-4,
        `attention_grads.${l} equals torch.autograd.grad within 1e-4 of its ` +
          `scale (${d.toExponential(2)}, max |grad| ` +
          `${Math.max(...Array.from(want, Math.abs)).toExponential(2)})`,
      );
    }
    const maps = new Float32Array(3 * 16);
    for (let i = 0; i < 3; i++) relevanceInto(layers, grads, i, c.heads, 16 + c.prefix, maps, i * 16, c.prefix);
    const want = ref.get('relevance')!.data;
    for (let i = 0; i < 3; i++) {
      const d = scaledDiff(maps.subarray(i * 16, (i + 1) * 16), want.subarray(i * 16, (i + 1) * 16));
      t.ok(d <= 1e-4, `image ${i}: the relevance map equals Chefer's rule in PyTorch within 1e-4 of its maximum (${d.toExponential(2)})`);
    }
  });
}

t.test('import refuses what it cannot read, in one line naming the op, the node and the opset', async (t) => {
  const dir = await tmp(t);
  const { compileToBytes } = await import('../../trainer/autograd/onnx.js');
  const O = await import('../../trainer/autograd/ops.js');
  const { writeFile } = await import('node:fs/promises');
  // A graph with an op the importer has no lowering for (MaxPool stands in for anything unknown).
  const x = O.input('pixel_values', ['batch', 3, 8, 8]);
  const pooled = compileToBytes({ outputs: [['logits', O.reshape(O.maxPool(x, 2, 2, 0), [0, -1])]] });
  const unknown = path.join(dir, 'pool.onnx');
  await writeFile(unknown, pooled);
  let r = await runCli(['import', unknown, '--out', path.join(dir, 'a')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /no lowering for op MaxPool at node 'MaxPool_\d+' \(MaxPool, opset 17\); the ops imported are .*Conv/);

  // No attention at all: a linear classifier.
  const linear = path.join(dir, 'linear.onnx');
  await writeFile(
    linear,
    compileToBytes({ outputs: [['logits', O.matmul(O.reshape(x, [0, -1]), O.constant(new Float64Array(192 * 4), [192, 4]))]] }),
  );
  r = await runCli(['import', linear, '--out', path.join(dir, 'b')]);
  assertOneLineError(t, r.stderr, /no attention was found \(a Softmax over the last axis whose output is multiplied into the values\)/);

  // Not ONNX, a missing file, and flags that do not fit.
  const junk = path.join(dir, 'junk.onnx');
  await writeFile(junk, 'not a model');
  r = await runCli(['import', junk, '--out', path.join(dir, 'c')]);
  assertOneLineError(t, r.stderr, /junk.onnx is not an ONNX model/);
  r = await runCli(['import', path.join(dir, 'nothing.onnx'), '--out', path.join(dir, 'd')]);
  assertOneLineError(t, r.stderr, /nothing.onnx does not exist/);
  r = await runCli(['import', path.join(FOREIGN, 'tv-o17'), '--out', path.join(dir, 'e'), '--labels', 'a,b']);
  assertOneLineError(t, r.stderr, /2 labels for a model of 5 classes/);
  r = await runCli(['import', path.join(FOREIGN, 'tv-o17'), '--out', path.join(dir, 'f'), '--fit', 'crop']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--fit must be cover or fill, got 'crop'/);
  r = await runCli(['import', '--out', path.join(dir, 'g')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /name the model to import first/);
});

t.test('a bare model.onnx without configs: flags and stated assumptions', async (t) => {
  const dir = await tmp(t);
  const { copyFile } = await import('node:fs/promises');
  const bare = path.join(dir, 'vit.onnx');
  await copyFile(path.join(FOREIGN, 'tv-o17', 'model.onnx'), bare);
  const out = path.join(dir, 'm');
  let r = await runCli(['import', bare, '--out', out]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /assumed ImageNet's mean and std \(--mean, --std\); cover-crop \(--fit\); labels class_0…class_4 \(--labels\)/);
  let config = await readModelConfig(out);
  t.same(config.labels, ['class_0', 'class_1', 'class_2', 'class_3', 'class_4']);
  t.equal(config.fit ?? 'cover', 'cover');
  r = await runCli([
    'import',
    bare,
    '--out',
    out,
    '--labels',
    'v,w,x,y,z',
    '--mean',
    '0.5,0.5,0.5',
    '--std',
    '0.25,0.25,0.25',
    '--fit',
    'fill',
    '--resample',
    'cubic',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, /assumed/);
  config = await readModelConfig(out);
  t.same(
    [config.labels[4], config.mean, config.std, config.fit, config.resample],
    ['z', [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], 'fill', 'cubic'],
  );
});
