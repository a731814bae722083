// What a machine offers the WebGPU execution provider, read before any session: onnxruntime-node's
// WebGPU provider is Dawn over Vulkan on Linux, and it says neither which adapter it took nor why it
// found none ("No supported adapters" whether the loader, the driver or the device is missing). So
// this module looks where the Vulkan loader looks: can libvulkan.so.1 be loaded, which drivers (ICD
// manifests) are installed, and which display devices are on the PCI bus for the hardware drivers to
// drive. A software driver (Mesa's lavapipe, SwiftShader) is an adapter on any machine; a hardware
// driver is one only where a device of its vendor is present.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir, platform } from 'node:os';
import { basename, join } from 'node:path';

export interface GpuAdapter {
  /** NVIDIA, AMD, Intel, Mesa, Google, ... */
  vendor: string;
  /** The device's name where the system says it (NVIDIA's driver does), else its PCI ids, or the software driver's name. */
  name: string;
  /** A device that runs on the CPU: right for tests, never chosen by `auto`. */
  software: boolean;
}

export interface VulkanDriver {
  manifest: string;
  library: string;
  /** The adapter a software driver is, by name; null for a hardware driver. */
  software: string | null;
  /** The PCI vendor id the driver serves, where its library name says it. */
  vendorId: number | null;
}

export interface GpuProbe {
  /** null where libvulkan.so.1 loads; else why it does not. */
  loaderMissing: string | null;
  drivers: VulkanDriver[];
  /** Where the drivers were looked for. */
  searched: string[];
  /** Hardware adapters first (the order Dawn prefers them in, asked for high performance), then software ones. */
  adapters: GpuAdapter[];
}

/** Where the probe reads the system; tests point it at folders of their own. */
export interface ProbeSources {
  env: NodeJS.ProcessEnv;
  /** Loads the Vulkan loader, or throws with the dynamic linker's reason. */
  loadLoader: () => void;
  pciDevices: string;
  nvidiaGpus: string;
}

const VENDORS: Readonly<Record<number, string>> = Object.freeze({
  4318: 'NVIDIA',
  4098: 'AMD',
  32902: 'Intel',
  6900: 'virtio',
  5045: 'ARM',
  20803: 'Qualcomm',
});

/** Drivers by the name of their library: the vendor whose devices they drive, or software. */
const DRIVER_NAMES: ReadonlyArray<readonly [RegExp, number | 'software', string?]> = Object.freeze([
  [/lvp|llvmpipe/i, 'software', 'llvmpipe (Mesa lavapipe)'],
  [/swiftshader/i, 'software', 'SwiftShader'],
  [/nvidia/i, 0x10de],
  [/radeon|amdvlk|amdgpu/i, 0x1002],
  [/intel/i, 0x8086],
  [/virtio/i, 0x1af4],
] as const);

const SOFTWARE_VENDOR: Readonly<Record<string, string>> = Object.freeze({ 'llvmpipe (Mesa lavapipe)': 'Mesa', SwiftShader: 'Google' });

function loadVulkanLoader(): void {
  // process.dlopen runs the dynamic linker's own search (LD_LIBRARY_PATH, ld.so.cache), as Dawn's
  // dlopen does. The loader is no Node.js addon, so a library that loads ends in "did not self-register".
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, 'libvulkan.so.1');
  } catch (err) {
    const message = (err as Error).message;
    if (/did not self-register/.test(message)) return;
    throw new Error(message.split('\n')[0]);
  }
}

const defaultSources = (): ProbeSources => ({
  env: process.env,
  loadLoader: loadVulkanLoader,
  pciDevices: '/sys/bus/pci/devices',
  nvidiaGpus: '/proc/driver/nvidia/gpus',
});

/** The folders and files the Vulkan loader reads driver manifests from, in its order. */
export function driverSearchPath(env: NodeJS.ProcessEnv): string[] {
  const split = (v: string | undefined) => (v ?? '').split(':').filter(Boolean);
  const only = split(env.VK_DRIVER_FILES).length > 0 ? split(env.VK_DRIVER_FILES) : split(env.VK_ICD_FILENAMES);
  if (only.length > 0) return [...only, ...split(env.VK_ADD_DRIVER_FILES)];
  const home = env.HOME ?? homedir();
  const configDirs = [
    env.XDG_CONFIG_HOME ?? join(home, '.config'),
    ...(split(env.XDG_CONFIG_DIRS).length ? split(env.XDG_CONFIG_DIRS) : ['/etc/xdg']),
  ];
  const dataDirs = [
    env.XDG_DATA_HOME ?? join(home, '.local/share'),
    ...(split(env.XDG_DATA_DIRS).length ? split(env.XDG_DATA_DIRS) : ['/usr/local/share', '/usr/share']),
  ];
  return [
    ...split(env.VK_ADD_DRIVER_FILES),
    ...configDirs.map((d) => join(d, 'vulkan/icd.d')),
    '/etc/vulkan/icd.d',
    ...dataDirs.map((d) => join(d, 'vulkan/icd.d')),
  ];
}

function manifests(place: string): string[] {
  try {
    if (statSync(place).isDirectory())
      return readdirSync(place)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => join(place, f));
    return [place];
  } catch {
    return [];
  }
}

function readDriver(manifest: string): VulkanDriver | null {
  let library: unknown;
  try {
    library = (JSON.parse(readFileSync(manifest, 'utf8')) as { ICD?: { library_path?: unknown } }).ICD?.library_path;
  } catch {
    return null;
  }
  if (typeof library !== 'string' || library === '') return null;
  const named = DRIVER_NAMES.find(([pattern]) => pattern.test(basename(library)) || pattern.test(basename(manifest)));
  return {
    manifest,
    library,
    software: named?.[1] === 'software' ? (named[2] ?? basename(library)) : null,
    vendorId: typeof named?.[1] === 'number' ? named[1] : null,
  };
}

interface PciDisplay {
  vendorId: number;
  deviceId: number;
  slot: string;
}

function readHex(file: string): number | null {
  try {
    const v = parseInt(readFileSync(file, 'utf8').trim(), 16);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Display controllers (PCI class 0x03) on the bus. */
function pciDisplays(root: string): PciDisplay[] {
  let slots: string[];
  try {
    slots = readdirSync(root).sort();
  } catch {
    return [];
  }
  const found: PciDisplay[] = [];
  for (const slot of slots) {
    const cls = readHex(join(root, slot, 'class'));
    const vendorId = readHex(join(root, slot, 'vendor'));
    const deviceId = readHex(join(root, slot, 'device'));
    if (cls !== null && cls >> 16 === 0x03 && vendorId !== null && deviceId !== null) found.push({ vendorId, deviceId, slot });
  }
  return found;
}

/** The model name NVIDIA's driver gives a GPU in /proc/driver/nvidia/gpus/<slot>/information. */
function nvidiaModel(root: string, slot: string): string | null {
  try {
    const text = readFileSync(join(root, slot, 'information'), 'utf8');
    return /^Model:\s*(.+)$/m.exec(text)?.[1].trim() ?? null;
  } catch {
    return null;
  }
}

const hex4 = (v: number) => v.toString(16).padStart(4, '0');

export function probeGpu(sources: ProbeSources = defaultSources()): GpuProbe {
  let loaderMissing: string | null = null;
  try {
    sources.loadLoader();
  } catch (err) {
    loaderMissing = (err as Error).message;
  }
  const searched = driverSearchPath(sources.env);
  const seen = new Set<string>();
  const drivers: VulkanDriver[] = [];
  for (const file of searched.flatMap(manifests)) {
    const d = readDriver(file);
    if (!d || seen.has(d.library)) continue;
    seen.add(d.library);
    drivers.push(d);
  }
  const hardware: GpuAdapter[] = [];
  if (!loaderMissing) {
    const served = new Set(drivers.filter((d) => !d.software && d.vendorId !== null).map((d) => d.vendorId));
    for (const dev of pciDisplays(sources.pciDevices)) {
      if (!served.has(dev.vendorId)) continue;
      const vendor = VENDORS[dev.vendorId] ?? `PCI vendor ${hex4(dev.vendorId)}`;
      const name =
        (dev.vendorId === 0x10de ? nvidiaModel(sources.nvidiaGpus, dev.slot) : null) ??
        `${vendor} device ${hex4(dev.vendorId)}:${hex4(dev.deviceId)}`;
      hardware.push({ vendor, name, software: false });
    }
  }
  const software: GpuAdapter[] = loaderMissing
    ? []
    : drivers.flatMap((d) => (d.software ? [{ vendor: SOFTWARE_VENDOR[d.software] ?? 'software', name: d.software, software: true }] : []));
  return { loaderMissing, drivers, searched, adapters: [...hardware, ...software] };
}

let cached: GpuProbe | null = null;
/** This process's probe, read once (the machine does not change under a running process). */
export function gpuProbe(): GpuProbe {
  if (platform() !== 'linux') return { loaderMissing: null, drivers: [], searched: [], adapters: [] };
  cached ??= probeGpu();
  return cached;
}

export const describeAdapter = (a: GpuAdapter) => `${a.name}${a.software ? ', a software adapter' : ''}`;

/** Why the WebGPU provider has no hardware adapter here, in a few words (for `auto`'s line and errors). */
export function whyNoHardwareAdapter(p: GpuProbe): string {
  if (p.loaderMissing) return `no Vulkan loader: ${p.loaderMissing}`;
  const software = p.adapters.filter((a) => a.software);
  const hardwareDrivers = p.drivers.filter((d) => !d.software);
  if (p.drivers.length === 0)
    return `no Vulkan driver (no ICD manifest in ${p.searched.filter(existsSync).join(', ') || p.searched.join(', ')})`;
  const devices =
    hardwareDrivers.length === 0 ? 'no hardware Vulkan driver' : 'no GPU on the PCI bus for the hardware Vulkan drivers installed';
  return software.length > 0 ? `${devices}; the only Vulkan adapter is ${software.map((a) => a.name).join(', ')}, a software one` : devices;
}
