// vitrine quantize: the weights' per-column int8 and its error bound; the graph rewrite on our export
// (MatMuls of transposed weights) and on PyTorch's (Gemm with a bias, through Identity nodes), whose
// logits and attention maps stay close to the float graph's and whose attention outputs remain; the
// command's folder (float explanation graphs, config.json's quantization), served with its maps and
// said to be int8; a model with nothing to quantize refused; --check on a folder, and a fall over one
// point refused unless --force.

import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { QUANTIZE, quantizeColumns, quantizeModelFile } from '../../trainer/quantize.js';
import { readModelConfig } from '../../runtime/model-config.js';
import { createSession, runSession } from '../../runtime/ort.js';
import { decodeModel } from '../../trainer/autograd/onnx-proto.js';
import { ROOT, assertOneLineError, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { testApp, testImage, testModels } from '../helpers/server.js';

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0; // biome-ignore format: five sums
  const n = a.length;
  for (let k = 0; k < n; k++) {
    sa += a[k];
    sb += b[k];
    saa += a[k] * a[k];
    sbb += b[k] * b[k];
    sab += a[k] * b[k];
  }
  return (sab - (sa * sb) / n) / Math.sqrt((saa - (sa * sa) / n) * (sbb - (sb * sb) / n));
}

t.test('weights per column in int8: within half a step of each column', async (t) => {
  const k = 7;
  const n = 5;
  const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 1.7) * (1 + (i % n)));
  const { q, scale, maxRelativeError } = quantizeColumns(w, k, n);
  for (let c = 0; c < n; c++) {
    let max = 0;
    for (let r = 0; r < k; r++) max = Math.max(max, Math.abs(w[r * n + c]));
    t.ok(Math.abs(scale[c] - max / 127) < 1e-7, `column ${c}: its scale is its largest weight / 127`);
    for (let r = 0; r < k; r++) t.ok(Math.abs(q[r * n + c] * scale[c] - w[r * n + c]) <= scale[c] / 2 + 1e-7);
  }
  t.ok(maxRelativeError <= 1 / 254 + 1e-9, `the error is at most half a step: ${maxRelativeError}`);
});

/** Float and int8 logits and last attention of a folder's graph and its quantized copy, on images. */
async function compare(floatFile: string, int8File: string, dir: string, images: Float32Array, dims: number[]) {
  const c = await readModelConfig(dir);
  const outs = [c.logits_output, c.attention_outputs.at(-1)!];
  const feed = { [c.input_name]: { data: images, dims } };
  const f = await runSession(await createSession(floatFile, { device: 'cpu' }), feed, outs);
  const q = await runSession(await createSession(int8File, { device: 'cpu' }), feed, outs);
  return { f, q, outs };
}

t.test('our export: its products in int8, logits and attention close to float', async (t) => {
  const dir = path.join(ROOT, 'models', 'vit-cifar10');
  const out = path.join(await tmpDir(), 'model.onnx');
  const report = await quantizeModelFile(path.join(dir, 'onnx', 'model.onnx'), out);
  t.equal(report.products.length, 8, 'qkv and the two MLP products of each of 4 blocks');
  t.equal(report.kept.length, 5, 'the 48x48 products (and the patch embedding) are under the size that gains');
  t.ok(report.int8Bytes < report.floatBytes / 3, `${report.floatBytes} bytes of float weights as ${report.int8Bytes}`);
  const graph = decodeModel(await readFile(out)).graph!;
  t.equal(graph.node!.filter((n) => n.opType === QUANTIZE.op).length, 8);
  t.notOk(
    graph.initializer!.some((i) => report.products.some((p) => p.weight === i.name)),
    'the float weights of the products quantized are gone',
  );
  const n = 16;
  const images = Float32Array.from({ length: n * 3072 }, (_, i) => Math.sin(i * 0.013) * Math.cos(i * 0.0007) * 1.5);
  const { f, q, outs } = await compare(path.join(dir, 'onnx', 'model.onnx'), out, dir, images, [n, 3, 32, 32]);
  const lf = f[outs[0]].data as Float32Array;
  const lq = q[outs[0]].data as Float32Array;
  t.ok(correlation(lf, lq) > 0.995, `logits correlate: ${correlation(lf, lq)}`);
  let agree = 0;
  for (let i = 0; i < n; i++) {
    const top = (l: Float32Array) => l.subarray(i * 10, i * 10 + 10).reduce((b, v, k, a) => (v > a[b] ? k : b), 0);
    if (top(lf) === top(lq)) agree++;
  }
  t.ok(agree >= n - 1, `top-1 agrees on ${agree} of ${n}`);
  t.same(q[outs[1]].dims, f[outs[1]].dims, 'the attention output is still there');
  t.ok(correlation(f[outs[1]].data as Float32Array, q[outs[1]].data as Float32Array) > 0.995, 'and close to float');
});

t.test("PyTorch's export: Gemm with a bias through Identity nodes, and MatMuls", async (t) => {
  const root = await tmpDir();
  const imported = path.join(root, 'tv');
  const { importCommand } = await import('../../bin/import.js');
  await importCommand([path.join(ROOT, 'test', 'fixtures', 'foreign', 'tv-o17'), '--out', imported], () => {});
  const c = await readModelConfig(imported);
  // beside the graph: its other tensors stay in its external data file
  const out = path.join(imported, 'onnx', 'int8.onnx');
  const before = decodeModel(await readFile(path.join(imported, 'onnx', 'model.onnx'))).graph!.node!;
  const count = (nodes: typeof before, op: string) => nodes.filter((x) => x.opType === op).length;
  // the fixture is small: every product is quantized here (the default leaves products under 4,096 weights)
  const report = await quantizeModelFile(path.join(imported, 'onnx', 'model.onnx'), out, 1);
  const after = decodeModel(await readFile(out)).graph!.node!;
  t.ok(count(before, 'Gemm') > 0, `the export has Gemms (${count(before, 'Gemm')})`);
  t.equal(count(after, 'Gemm'), 0, 'every Gemm by a weight, its bias read through Identity, is int8');
  t.equal(count(after, QUANTIZE.op), report.products.length);
  t.equal(
    count(after, 'MatMul'),
    count(before, 'MatMul') - (report.products.length - count(before, 'Gemm')),
    'the rest are the attention products',
  );
  const [h, w] = c.image_size;
  const images = Float32Array.from({ length: 2 * 3 * h * w }, (_, i) => Math.sin(i * 0.011));
  const { f, q, outs } = await compare(path.join(imported, 'onnx', 'model.onnx'), out, imported, images, [2, 3, h, w]);
  t.ok(correlation(f[outs[0]].data as Float32Array, q[outs[0]].data as Float32Array) > 0.99, 'logits correlate');
});

t.test('vitrine quantize writes a folder that serves with maps and says it is int8', async (t) => {
  const dir = await tmpDir();
  const out = path.join(dir, 'vit-int8');
  const r = await runCli(['quantize', 'vit-cifar10', '--out', out]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /8 matrix products in int8 .*5 kept float/);
  t.match(r.stdout, /accuracy not checked: --check cifar10/);
  const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8'));
  t.same(config.quantization.weights, 'int8');
  t.equal(config.quantization.explanation, 'float');
  for (const f of ['relevance.onnx', 'relevance-light.onnx'])
    t.same(
      await readFile(path.join(out, 'onnx', f)),
      await readFile(path.join(ROOT, 'models', 'vit-cifar10', 'onnx', f)),
      `${f}: float, as it was`,
    );
  const app = await testApp(t, { models: dir, defaultModel: 'vit-int8' });
  const models = (await app.inject('/models')).json();
  t.same(models.models[0].precision, { classification: 'int8', explanation: 'float' });
  const res = await app.inject({
    method: 'POST',
    url: '/classify?attention=rollout',
    payload: await testImage(),
    headers: { 'content-type': 'image/png' },
  });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().attention.method, 'rollout', 'rollout from the int8 graph');
  const rel = await app.inject({
    method: 'POST',
    url: '/classify?attention=relevance',
    payload: await testImage(),
    headers: { 'content-type': 'image/png' },
  });
  t.equal(rel.json().attention.method, 'relevance', 'relevance from the float explanation graph');
  const bundled = (await (await testApp(t)).inject('/models')).json();
  t.same(bundled.models[0].precision.classification, 'float', 'a float model says float');

  let again = await runCli(['quantize', out, '--out', path.join(dir, 'twice')]);
  assertOneLineError(t, again.stderr, /is quantized already/);
  again = await runCli(['quantize', 'vit-cifar10', '--out', out]);
  assertOneLineError(t, again.stderr, /already holds a model folder/);
  again = await runCli(['quantize', 'vit-cifar10']);
  t.equal(again.code, 2);
  const { importCommand } = await import('../../bin/import.js');
  await importCommand([path.join(ROOT, 'test', 'fixtures', 'foreign', 'tv-o17'), '--out', path.join(dir, 'tiny')], () => {});
  again = await runCli(['quantize', path.join(dir, 'tiny'), '--out', path.join(dir, 'twice')]);
  assertOneLineError(t, again.stderr, /no matrix product of 4096 weights or more to quantize; the model stays float/);
  t.notOk(existsSync(path.join(dir, 'twice')), 'nothing written for a refusal');

  // export and import quantize what they write with --quantize int8
  const exported = path.join(dir, 'exported');
  const x = await runCli(['export', '--out', exported, '--quantize', 'int8']);
  t.equal(x.code, 0, x.stderr);
  t.match(x.stdout, /8 matrix products in int8/);
  t.equal(JSON.parse(await readFile(path.join(exported, 'config.json'), 'utf8')).quantization.weights, 'int8');
  t.equal(
    decodeModel(await readFile(path.join(exported, 'onnx', 'model.onnx'))).graph!.node!.filter((n) => n.opType === QUANTIZE.op).length,
    8,
  );
  const bad = await runCli(['export', '--out', path.join(dir, 'x2'), '--quantize', 'fp16']);
  t.equal(bad.code, 2);
  assertOneLineError(t, bad.stderr, /--quantize takes int8, got 'fp16'/);
  const imported = await runCli([
    'import',
    path.join(ROOT, 'test', 'fixtures', 'foreign', 'tv-o17'),
    '--out',
    path.join(dir, 'i8'),
    '--quantize',
    'int8',
  ]);
  t.equal(imported.code, 1, 'the fixture is too small to gain');
  assertOneLineError(t, imported.stderr, /no matrix product of 4096 weights or more to quantize; the model stays float/);
  t.ok(await testModels());
});

t.test('--check measures both graphs on a folder of class folders; a fall over one point is refused', async (t) => {
  const root = await tmpDir();
  // the page's ten examples as a folder of class folders, named by CIFAR-10's labels
  const data = path.join(root, 'examples');
  const examples = path.join(ROOT, 'server', 'web', 'examples');
  for (const f of await readdir(examples)) {
    await mkdir(path.join(data, f.replace('.png', '')), { recursive: true });
    await cp(path.join(examples, f), path.join(data, f.replace('.png', ''), f));
  }
  const r = await runCli(['quantize', 'vit-cifar10', '--out', path.join(root, 'checked'), '--check', data]);
  t.equal(r.code, 0, r.stderr);
  t.match(
    r.stdout,
    new RegExp(`accuracy on 10 images of ${data}: float \\d+\\.\\d\\d%, int8 \\d+\\.\\d\\d% \\([-+±]\\d+\\.\\d\\d points\\)`),
  );
  t.ok(existsSync(path.join(root, 'checked', 'config.json')), 'written');

  // the refusal, on figures given in: float 90%, int8 87.5%
  const { quantizeCommand } = await import('../../bin/quantize.js');
  const figures = async (folder: string) => ({ accuracy: folder.includes('int8-') ? 0.875 : 0.9, count: 400 });
  const lines: string[] = [];
  const refused = path.join(root, 'int8-refused');
  await t.rejects(
    quantizeCommand(['vit-cifar10', '--out', refused, '--check', data], (l) => lines.push(l), figures),
    /int8 loses 2\.50 points of accuracy \(more than 1\): not written; --force writes it anyway/,
  );
  t.match(lines.join('\n'), /accuracy on 400 images of .*: float 90\.00%, int8 87\.50% \(-2\.50 points\)/, 'the figures are said');
  t.notOk(existsSync(refused), 'nothing written');
  const forced = path.join(root, 'int8-forced');
  await quantizeCommand(['vit-cifar10', '--out', forced, '--check', data, '--force'], () => {}, figures);
  t.ok(existsSync(path.join(forced, 'config.json')), '--force writes it');
  const fine = path.join(root, 'int8-fine');
  const close = async (folder: string) => ({ accuracy: folder.includes('int8-') ? 0.892 : 0.9, count: 400 });
  await quantizeCommand(['vit-cifar10', '--out', fine, '--check', data], () => {}, close);
  t.ok(existsSync(path.join(fine, 'config.json')), 'a fall of 0.8 points is written');
});
