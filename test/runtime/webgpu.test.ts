// Choosing WebGPU: what the probe reads of a machine (the Vulkan loader, its driver manifests, the PCI
// display devices), what `auto` takes from it (never a software adapter), and the lines a user gets
// where the GPU cannot be used. Machines are written as folders; the last tests run the command with
// the Vulkan loader made unloadable for that process only.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { probeGpu } from '../../runtime/gpu.js';
import { type OnnxRuntime, createSession, mayUseWebGpu, runSession } from '../../runtime/ort.js';
import { compileToBytes } from '../../trainer/autograd/onnx.js';
import { input, relu } from '../../trainer/autograd/ops.js';
import { assertOneLineError, runCli } from '../helpers/cli.js';
import { colourDataset, tmpDir, writeImageFolder } from '../helpers/data.js';
import { haveWebGpu } from '../helpers/webgpu.js';

const model = compileToBytes({ outputs: [['y', relu(input('x', ['batch', 3]))]] });

/** A machine as folders: ICD manifests (name -> library) and PCI devices (slot -> [class, vendor, device]). */
async function machine(o: {
  drivers: Record<string, string>;
  pci?: Record<string, [number, number, number]>;
  nvidia?: Record<string, string>;
  loader?: boolean;
}) {
  const root = await tmpDir('vitrine-gpu-probe-');
  const icd = path.join(root, 'share', 'vulkan', 'icd.d');
  await mkdir(icd, { recursive: true });
  for (const [name, library] of Object.entries(o.drivers))
    await writeFile(
      path.join(icd, `${name}.json`),
      JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: library, api_version: '1.3.0' } }),
    );
  const pci = path.join(root, 'pci');
  for (const [slot, [cls, vendor, device]] of Object.entries(o.pci ?? {})) {
    await mkdir(path.join(pci, slot), { recursive: true });
    const hex = (v: number, w: number) => `0x${v.toString(16).padStart(w, '0')}\n`;
    await writeFile(path.join(pci, slot, 'class'), hex(cls, 6));
    await writeFile(path.join(pci, slot, 'vendor'), hex(vendor, 4));
    await writeFile(path.join(pci, slot, 'device'), hex(device, 4));
  }
  const nvidia = path.join(root, 'nvidia');
  for (const [slot, info] of Object.entries(o.nvidia ?? {})) {
    await mkdir(path.join(nvidia, slot), { recursive: true });
    await writeFile(path.join(nvidia, slot, 'information'), info);
  }
  const env = { HOME: path.join(root, 'home'), XDG_CONFIG_DIRS: path.join(root, 'etc'), XDG_DATA_DIRS: path.join(root, 'share') };
  const loadLoader = () => {
    if (o.loader === false) throw new Error('libvulkan.so.1: cannot open shared object file: No such file or directory');
  };
  return probeGpu({ env, loadLoader, pciDevices: pci, nvidiaGpus: nvidia });
}

const LAVAPIPE = { lvp_icd: 'libvulkan_lvp.so' };
const MESA = { ...LAVAPIPE, radeon_icd: 'libvulkan_radeon.so', intel_icd: 'libvulkan_intel.so' };

t.test('the probe: hardware adapters where a driver has a device of its vendor, software ones always', async (t) => {
  const lavapipeOnly = await machine({
    drivers: MESA,
    pci: { '0000:00:00.0': [0x060000, 0x8086, 0x1237], '0000:00:02.0': [0x018000, 0x1af4, 0x1001] },
  });
  t.same(
    lavapipeOnly.adapters,
    [{ vendor: 'Mesa', name: 'llvmpipe (Mesa lavapipe)', software: true }],
    "Mesa's AMD and Intel drivers and an Intel bridge (not a display) make no adapter",
  );
  const h100 = await machine({
    drivers: { ...LAVAPIPE, nvidia_icd: 'libGLX_nvidia.so.0' },
    pci: { '0000:1b:00.0': [0x030200, 0x10de, 0x2330] },
    nvidia: { '0000:1b:00.0': 'Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 42\n' },
  });
  t.same(h100.adapters[0], { vendor: 'NVIDIA', name: 'NVIDIA H100 80GB HBM3', software: false }, "NVIDIA's model name, hardware first");
  t.equal(h100.adapters[1].software, true);
  const radeon = await machine({ drivers: MESA, pci: { '0000:03:00.0': [0x030000, 0x1002, 0x73bf] } });
  t.same(radeon.adapters[0], { vendor: 'AMD', name: 'AMD device 1002:73bf', software: false }, 'PCI ids where the system gives no name');
  const noDriver = await machine({ drivers: {}, pci: { '0000:1b:00.0': [0x030200, 0x10de, 0x2330] } });
  t.same(noDriver.adapters, [], 'a GPU without a Vulkan driver is no adapter');
  const noLoader = await machine({ drivers: MESA, loader: false });
  t.match(noLoader.loaderMissing, /libvulkan\.so\.1: cannot open shared object file/);
  t.same(noLoader.adapters, []);
});

/** onnxruntime-node without CUDA, whose WebGPU provider fails to start (or runs where `works`). */
function runtime(webgpu: 'fails' | 'works') {
  const tried: string[] = [];
  const InferenceSession = {
    create: (m: Uint8Array, o: ort.InferenceSession.SessionOptions) => {
      const names = (o.executionProviders ?? []).map((p) => (typeof p === 'string' ? p : p.name));
      tried.push(...names);
      if (names.includes('webgpu')) {
        if (webgpu === 'fails') return Promise.reject(new Error('Failed to get a WebGPU adapter: No supported adapters\ndetail'));
        return ort.InferenceSession.create(m, { ...o, executionProviders: ['cpu'] });
      }
      return ort.InferenceSession.create(m, o);
    },
  };
  return { tried, runtime: { InferenceSession, listSupportedBackends: () => [{ name: 'cpu', bundled: true }] } as unknown as OnnxRuntime };
}

t.test('auto: WebGPU on a hardware adapter, never on a software one, and one line that says why', async (t) => {
  const software = await machine({ drivers: MESA });
  const hardware = await machine({
    drivers: { ...LAVAPIPE, nvidia_icd: 'libGLX_nvidia.so.0' },
    pci: { '0000:1b:00.0': [0x030200, 0x10de, 0x2330] },
    nvidia: { '0000:1b:00.0': 'Model: NVIDIA L4\n' },
  });

  let said: string[] = [];
  const soft = runtime('works');
  const s = await createSession(model, { device: 'auto', runtime: soft.runtime, gpu: software, log: (l) => said.push(l) });
  t.equal(s.provider, 'cpu');
  t.same(soft.tried, ['cpu'], 'the software adapter is not tried');
  t.same(said, [
    'device auto: the CPU (CUDA unavailable: onnxruntime-node was ' +
      'installed without it; WebGPU: no GPU on the PCI bus for the hardware ' +
      'Vulkan drivers installed; the only Vulkan adapter is llvmpipe (Mesa ' +
      'lavapipe), a software one)',
  ]);
  t.notOk(mayUseWebGpu('auto', { runtime: soft.runtime, gpu: software }), 'so the service keeps its workers');

  said = [];
  const hard = runtime('works');
  const h = await createSession(model, { device: 'auto', runtime: hard.runtime, gpu: hardware, log: (l) => said.push(l) });
  t.equal(h.provider, 'webgpu');
  t.same(h.adapter, { vendor: 'NVIDIA', name: 'NVIDIA L4', software: false });
  t.same(said, ['device auto: WebGPU on NVIDIA L4 (CUDA unavailable: onnxruntime-node was installed without it)']);
  t.same([...(await runSession(h, { x: { data: Float32Array.of(-1, 2, 0), dims: [1, 3] } })).y.data], [0, 2, 0]);
  t.ok(mayUseWebGpu('auto', { runtime: hard.runtime, gpu: hardware }), 'so the service keeps to one worker');

  said = [];
  const broken = runtime('fails');
  t.equal(
    (await createSession(model, { device: 'auto', runtime: broken.runtime, gpu: hardware, log: (l) => said.push(l) })).provider,
    'cpu',
  );
  t.same(broken.tried, ['webgpu', 'cpu']);
  t.same(said, [
    'device auto: the CPU (CUDA unavailable: onnxruntime-node was ' +
      'installed without it; WebGPU: NVIDIA L4 failed (no WebGPU adapter: No ' +
      'supported adapters))',
  ]);
  await t.rejects(
    createSession(model, { device: 'webgpu', runtime: broken.runtime, gpu: hardware }),
    new RegExp(
      /^device webgpu: the WebGPU execution provider could not start \(no WebGPU adapter: No /.source +
        /supported adapters; the Vulkan adapters here: NVIDIA L4, llvmpipe \(Mesa lavapipe\), a /.source +
        /software adapter\); the WebGPU execution provider needs a Vulkan loader/.source,
    ),
  );
});

t.test('--device webgpu on a software adapter runs, and says which adapter', async (t) => {
  if (!haveWebGpu(t)) return;
  const s = await createSession(model, { device: 'webgpu' });
  t.equal(s.provider, 'webgpu');
  t.equal(s.adapter?.software, true);
  t.same([...(await runSession(s, { x: { data: Float32Array.of(-1, 2, 0), dims: [1, 3] } })).y.data], [0, 2, 0]);
});

t.test('a machine without the Vulkan loader: auto uses the CPU and says so; --device webgpu is a one-line error', async (t) => {
  // An empty libvulkan.so.1 first on the library path: the dynamic linker stops at it, for Dawn as for the probe.
  const dir = await tmpDir('vitrine-no-vulkan-');
  await writeFile(path.join(dir, 'libvulkan.so.1'), '');
  const data = path.join(dir, 'photos');
  const images = colourDataset(6, 32, 3);
  await writeImageFolder({ ...images, classes: ['cat', 'dog', 'ship'] }, data); // classes the model knows
  const env = { LD_LIBRARY_PATH: dir };
  const gpu = await runCli(['eval', '--model', 'models/cct-cifar10', '--data', data, '--device', 'webgpu'], { env });
  t.equal(gpu.code, 1);
  assertOneLineError(
    t,
    gpu.stderr,
    new RegExp(
      /^vitrine eval: device webgpu: the WebGPU execution provider could not start \(no Vulkan /.source +
        /loader: .*libvulkan\.so\.1: file too short\); the WebGPU execution provider needs a /.source +
        /Vulkan loader \(libvulkan1\)/.source,
    ),
  );
  const auto = await runCli(['eval', '--model', 'models/cct-cifar10', '--data', data, '--device', 'auto'], { env });
  t.equal(auto.code, 0, auto.stderr);
  t.match(
    auto.stderr,
    new RegExp(
      /^device auto: the CPU \(CUDA unavailable: onnxruntime-node was installed without it; /.source +
        /WebGPU: no Vulkan loader: .*libvulkan\.so\.1: file too short\)$/.source,
      'm',
    ),
  );
  t.match(auto.stdout, /\(6 images, cpu\)/);
});
