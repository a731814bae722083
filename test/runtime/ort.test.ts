// The provider choice: --device cuda fails with what to install when the CUDA provider cannot load,
// and auto falls back to the CPU and says why. The sessions are given an ONNX Runtime whose CUDA provider is
// present but fails to load, so the same happens on a machine with a GPU and on one without.

import * as ort from 'onnxruntime-node';
import t from 'tap';
import { compileToBytes } from '../../trainer/autograd/onnx.js';
import { input, relu } from '../../trainer/autograd/ops.js';
import type { GpuProbe } from '../../runtime/gpu.js';
import { type OnnxRuntime, createSession, runSession } from '../../runtime/ort.js';

/** A machine with the Vulkan loader and no driver: no WebGPU adapter. */
const NO_GPU: GpuProbe = { loaderMissing: null, drivers: [], searched: ['/nowhere'], adapters: [] };

const model = compileToBytes({ outputs: [['y', relu(input('x', ['batch', 3]))]] });

/** onnxruntime-node with a CUDA provider that is listed as installed and fails to load. */
function brokenCuda() {
  const tried: string[][] = [];
  const InferenceSession = {
    create: (m: Uint8Array | string, o: ort.InferenceSession.SessionOptions) => {
      const providers = (o.executionProviders ?? []).map(String);
      tried.push(providers);
      if (providers.includes('cuda')) return Promise.reject(new Error('libcudnn.so.9: cannot open shared object file\nmore detail'));
      return ort.InferenceSession.create(m as Uint8Array, o);
    },
  };
  const runtime = {
    InferenceSession,
    listSupportedBackends: () => [
      { name: 'cpu', bundled: true },
      { name: 'cuda', bundled: true },
    ],
  } as unknown as OnnxRuntime;
  return { tried, runtime };
}

t.test('--device cuda: an error that says why and what to install', async (t) => {
  const { tried, runtime } = brokenCuda();
  await t.rejects(
    createSession(model, { device: 'cuda', runtime }),
    new RegExp(
      /^device cuda: the CUDA execution provider could not be loaded \(libcudnn\.so\.9: cannot /.source +
        /open shared object file\); the CUDA execution provider needs CUDA 12 and cuDNN 9/.source,
    ),
  );
  t.same(tried, [['cuda']], "it never falls back to the CPU behind the user's back");
});

t.test('--device auto: falls back to the CPU, says so once, and runs', async (t) => {
  const { tried, runtime } = brokenCuda();
  const said: string[] = [];
  const s = await createSession(model, { device: 'auto', log: (l) => said.push(l), runtime, gpu: NO_GPU });
  t.equal(s.provider, 'cpu');
  t.same(tried, [['cuda'], ['cpu']]);
  t.same(said, [
    'device auto: the CPU (CUDA unavailable: libcudnn.so.9: cannot open ' +
      'shared object file; WebGPU: no Vulkan driver (no ICD manifest in ' +
      '/nowhere))',
  ]);
  const out = await runSession(s, { x: { data: Float32Array.of(-1, 0, 2), dims: [1, 3] } });
  t.same([...out.y.data], [0, 0, 2]);
});

t.test('without the CUDA provider installed, cuda fails before trying and auto uses the CPU', async (t) => {
  const runtime = {
    InferenceSession: ort.InferenceSession,
    listSupportedBackends: () => [{ name: 'cpu', bundled: true }],
  } as unknown as OnnxRuntime;
  await t.rejects(
    createSession(model, { device: 'cuda', runtime }),
    /device cuda: the CUDA execution provider could not be loaded \(onnxruntime-node was installed without it\)/,
  );
  const said: string[] = [];
  t.equal((await createSession(model, { device: 'auto', log: (l) => said.push(l), runtime, gpu: NO_GPU })).provider, 'cpu');
  t.match(said[0], /^device auto: the CPU \(CUDA unavailable: onnxruntime-node was installed without it; WebGPU: /);
  await t.rejects(
    createSession(model, { device: 'tpu' as never, runtime }),
    /unknown device 'tpu' \(expected one of cpu, webgpu, cuda, auto\)/,
  );
});

t.test("spin: false asks ONNX Runtime's intra-op threads not to spin, and the session runs", async (t) => {
  const seen: ort.InferenceSession.SessionOptions[] = [];
  const runtime = {
    InferenceSession: {
      create: (m: Uint8Array, o: ort.InferenceSession.SessionOptions) => (seen.push(o), ort.InferenceSession.create(m, o)),
    },
    listSupportedBackends: () => [{ name: 'cpu', bundled: true }],
  } as unknown as OnnxRuntime;
  const s = await createSession(model, { runtime, spin: false, threads: 2 });
  await createSession(model, { runtime });
  t.same(seen[0].extra, { session: { intra_op: { allow_spinning: '0' } } });
  t.equal(seen[1].extra, undefined, "ONNX Runtime's default otherwise");
  t.same([...(await runSession(s, { x: { data: Float32Array.of(-1, 0, 2), dims: [1, 3] } })).y.data], [0, 0, 2]);
});
