// The WebGPU provider in tests: Mesa's lavapipe (a Vulkan device on the CPU) stands in for a GPU.
// .ci/run installs it; under CI a machine without it fails the test that needs it, elsewhere the
// test is skipped with the line that says how to install it.

import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { gpuProbe } from '../../runtime/gpu.js';
import { missingProgram } from './services.js';

// Dawn's Vulkan backend wants a runtime directory; a container shell often has none.
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = path.join(os.tmpdir(), `vitrine-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

export const INSTALL_LAVAPIPE =
  'apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1 ' +
  "(the bookworm-backports suite added; bookworm's own Mesa 22.3 is " +
  'refused by Dawn)';

/** Whether a Vulkan adapter is here for the WebGPU provider; without one, fails under CI and skips elsewhere. */
export function haveWebGpu(t: Test): boolean {
  const p = gpuProbe();
  if (!p.loaderMissing && p.adapters.length > 0) return true;
  const why = `no Vulkan adapter for the WebGPU provider (${p.loaderMissing ?? 'no driver'}): ${INSTALL_LAVAPIPE}`;
  missingProgram(t, why);
  return false;
}

/** Largest |a - b| over the largest |a|, or over `floor` where that is larger (values that are zero in
 *  exact arithmetic, such as the key biases' gradients under softmax, are rounding noise on both
 *  sides); the lengths must agree and not be zero. */
export function relativeDiff(a: ArrayLike<number>, b: ArrayLike<number>, floor = 0): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  if (a.length === 0) throw new Error('nothing to compare');
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  if (!Number.isFinite(diff)) return Infinity;
  return diff / Math.max(scale, floor, 1e-30);
}
