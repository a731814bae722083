// The default rollout as a graph output (trainer/rollout-graph.ts): the numbers of the server's own
// rollout (rolloutMeanInto) at every opset form it is written in, with one and two prefix tokens and a
// batch; on our export and on an imported PyTorch export; and the graphs it refuses.

import path from 'node:path';
import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { readModelConfig } from '../../runtime/model-config.js';
import { createSession, runSession } from '../../runtime/ort.js';
import { rolloutMeanInto } from '../../server/engine/attention.js';
import { DataType, type IModelProto, decodeModel, onnx, serializeModel } from '../../trainer/autograd/onnx-proto.js';
import { ROLLOUT_OUTPUT, appendRolloutOutput } from '../../trainer/rollout-graph.js';
import { Rng } from '../../trainer/nn/random.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { testModels } from '../helpers/server.js';

/** A graph that passes `layers` attentions [batch, heads, T, T] from its inputs to outputs. */
function passThrough(layers: number, heads: number, T: number, opset: number): IModelProto {
  const info = (name: string) => ({
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: [{ dimParam: 'batch' }, { dimValue: heads }, { dimValue: T }, { dimValue: T }] },
      },
    },
  });
  const names = Array.from({ length: layers }, (_, l) => `attentions.${l}`);
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'attentions',
      node: names.map((n, l) => ({ opType: 'Identity', input: [`in${l}`], output: [n] })),
      input: names.map((_n, l) => info(`in${l}`)),
      output: names.map(info),
    },
  });
}

/** Row-stochastic attentions, as a softmax gives them. */
function attentions(rng: Rng, batch: number, heads: number, T: number): Float32Array {
  const a = new Float32Array(batch * heads * T * T);
  for (let r = 0; r < batch * heads * T; r++) {
    let sum = 0;
    for (let j = 0; j < T; j++) sum += a[r * T + j] = Math.exp(2 * rng.normal());
    for (let j = 0; j < T; j++) a[r * T + j] /= sum;
  }
  return a;
}

function jsRollouts(layers: Float32Array[], batch: number, heads: number, T: number, prefix: number): Float32Array {
  const out = new Float32Array(batch * (T - prefix));
  for (let i = 0; i < batch; i++) rolloutMeanInto(layers, i, heads, T, out, i * (T - prefix), prefix);
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

t.test("the graph's rollout is the server's, at every opset form and prefix", async (t) => {
  const [layers, heads, T, batch] = [3, 4, 10, 2];
  for (const opset of [13, 17, 18])
    for (const prefix of [1, 2]) {
      const model = passThrough(layers, heads, T, opset);
      const name = appendRolloutOutput(model, { attentionOutputs: model.graph!.output!.map((o) => o.name!), tokens: T, prefix });
      t.equal(name, ROLLOUT_OUTPUT);
      const s = await createSession(serializeModel(model), { device: 'cpu' });
      const rng = new Rng(opset * 10 + prefix);
      const given = Array.from({ length: layers }, () => attentions(rng, batch, heads, T));
      const feed = Object.fromEntries(given.map((a, l) => [`in${l}`, { data: a, dims: [batch, heads, T, T] }]));
      const out = await runSession(s, feed, [name]);
      t.same(out[name].dims, [batch, T - prefix]);
      const want = jsRollouts(given, batch, heads, T, prefix);
      t.ok(maxDiff(out[name].data, want) < 1e-6, `opset ${opset}, prefix ${prefix}: within 1e-6 (${maxDiff(out[name].data, want)})`);
      t.not(maxDiff(out[name].data.subarray(0, T - prefix), out[name].data.subarray(T - prefix)), 0, 'each image its own');
    }
});

t.test('refused: a name taken, an attention no node makes, an opset before 13', async (t) => {
  const spec = { attentionOutputs: ['attentions.0'], tokens: 5, prefix: 1 };
  const taken = passThrough(1, 2, 5, 17);
  t.throws(() => appendRolloutOutput(taken, { ...spec, name: 'attentions.0' }), /has an output named attentions.0 already/);
  t.throws(
    () => appendRolloutOutput(passThrough(1, 2, 5, 17), { ...spec, attentionOutputs: ['nope'] }),
    /no node makes the attention output nope/,
  );
  t.throws(() => appendRolloutOutput(passThrough(1, 2, 5, 12), spec), /opset 12: the rollout output needs opset 13/);
});

/** A folder's graph on images: its rollout output against the JS rollout of its own attentions. */
async function checkFolder(t: Test, dir: string, batch: number) {
  const c = await readModelConfig(dir);
  t.equal(c.rollout_output, ROLLOUT_OUTPUT, 'config.json names it');
  const [h, w] = c.image_size;
  const images = Float32Array.from({ length: batch * 3 * h * w }, (_, i) => Math.sin(i * 0.017) * 1.3);
  const s = await createSession(path.join(dir, 'onnx', 'model.onnx'), { device: 'cpu' });
  const out = await runSession(s, { [c.input_name]: { data: images, dims: [batch, 3, h, w] } }, [
    ...c.attention_outputs,
    c.rollout_output!,
  ]);
  const [, heads, T] = out[c.attention_outputs[0]].dims as number[];
  const want = jsRollouts(
    c.attention_outputs.map((n) => out[n].data),
    batch,
    heads,
    T,
    c.prefix_tokens ?? 1,
  );
  t.ok(
    maxDiff(out[c.rollout_output!].data, want) < 1e-6,
    `within 1e-6 of the server's rollout (${maxDiff(out[c.rollout_output!].data, want)})`,
  );
}

t.test('our export gives it', async (t) => {
  await checkFolder(t, path.join(await testModels(), 'vit-cifar10'), 3);
});

t.test('an imported PyTorch export gives it', async (t) => {
  const imported = path.join(await tmpDir(), 'tv');
  const { importCommand } = await import('../../bin/import.js');
  await importCommand([path.join(ROOT, 'test', 'fixtures', 'foreign', 'tv-o17'), '--out', imported], () => {});
  await checkFolder(t, imported, 2);
  const graph = decodeModel(await readFile(path.join(imported, 'onnx', 'model.onnx'))).graph!;
  t.ok(
    graph.output!.some((o) => o.name === ROLLOUT_OUTPUT),
    'the output is in the graph',
  );
  // a graph vitrine wrote, imported again: its added outputs are made anew, each once
  const again = path.join(path.dirname(imported), 'again');
  await importCommand([path.join(imported, 'onnx', 'model.onnx'), '--out', again], () => {});
  const names = decodeModel(await readFile(path.join(again, 'onnx', 'model.onnx'))).graph!.output!.map((o) => o.name);
  t.same(names, ['logits', 'attentions.0', 'attentions.1', ROLLOUT_OUTPUT]);
  await checkFolder(t, again, 2);
});
