// The one place where our parameter names meet the seed's saved state dicts. Per-head tensors
// (`attention.heads.{h}.query.weight`, the seed's MultiHeadAttention) are our names; the seed's
// FasterMultiHeadAttention saves one `attention.qkv_projection` of shape [3*hidden, hidden] (q of all
// heads, then k, then v), which is split here on load and written back when the config asks for it.

import { type NamedTensor, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { StateDict } from '../nn/module.js';
import { type ViTConfig, headSize } from './config.js';
import type { ViT } from './model.js';

const KINDS = ['query', 'key', 'value'] as const;

function rows(t: NamedTensor, start: number, count: number, cols: number): NamedTensor {
  return { shape: cols === 1 ? [count] : [count, cols], data: t.data.slice(start * cols, (start + count) * cols) };
}

/** Rewrites fused qkv_projection tensors as per-head tensors; other names pass through. */
export function splitFusedAttention(tensors: ReadonlyMap<string, NamedTensor>, c: ViTConfig): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  const hs = headSize(c);
  for (const [name, t] of tensors) {
    const m = /^(encoder\.blocks\.\d+\.attention)\.qkv_projection\.(weight|bias)$/.exec(name);
    if (!m) {
      out.set(name, t);
      continue;
    }
    const [, prefix, kind] = m;
    const cols = kind === 'weight' ? c.hidden_size : 1;
    if (t.shape[0] !== 3 * c.hidden_size || t.data.length !== 3 * c.hidden_size * cols) {
      throw new Error(
        `tensor '${name}' has shape [${t.shape.join(', ')}], expected ` +
          `[${kind === 'weight' ? `${3 * c.hidden_size}, ${c.hidden_size}` : 3 * c.hidden_size}]`,
      );
    }
    KINDS.forEach((k, ki) => {
      for (let h = 0; h < c.num_attention_heads; h++)
        out.set(`${prefix}.heads.${h}.${k}.${kind}`, rows(t, ki * c.hidden_size + h * hs, hs, cols));
    });
  }
  return out;
}

/** The inverse of splitFusedAttention, for configs with use_faster_attention. */
export function fuseAttention(state: StateDict, c: ViTConfig): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const [name, t] of state) {
    const m = /^(encoder\.blocks\.\d+\.attention)\.heads\.(\d+)\.(query|key|value)\.(weight|bias)$/.exec(name);
    if (!m) {
      out.set(name, t);
      continue;
    }
    const [, prefix, head, k, kind] = m;
    if (head !== '0' || k !== 'query') continue; // the whole fused tensor is written once
    const parts = KINDS.flatMap((kk) =>
      Array.from({ length: c.num_attention_heads }, (_, h) => state.get(`${prefix}.heads.${h}.${kk}.${kind}`)!.data),
    );
    const data = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    out.set(`${prefix}.qkv_projection.${kind}`, {
      shape: kind === 'weight' ? [3 * c.hidden_size, c.hidden_size] : [3 * c.hidden_size],
      data,
    });
  }
  return out;
}

/** The model's tensors of a saved file, under our names: a training checkpoint's optimizer state
 *  (`optimizer.*`, the weight average included) passed over, fused attention split per head. */
export function modelTensors(tensors: ReadonlyMap<string, NamedTensor>, c: ViTConfig, source: string): Map<string, NamedTensor> {
  const weights = new Map([...tensors].filter(([name]) => !name.startsWith('optimizer.')));
  try {
    return splitFusedAttention(weights, c);
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`);
  }
}

/** Loads model weights from a saved file's tensors (modelTensors). */
export function loadWeights(model: ViT, tensors: ReadonlyMap<string, NamedTensor>, source: string): void {
  model.loadStateDict(modelTensors(tensors, model.config, source), source);
}

export async function loadWeightsFile(model: ViT, file: string): Promise<Record<string, string>> {
  const { tensors, metadata } = await readSafetensors(file);
  loadWeights(model, tensors, file);
  return metadata;
}

export function weightsToSave(model: ViT): Map<string, NamedTensor> {
  const state = model.stateDict();
  return model.config.use_faster_attention ? fuseAttention(state, model.config) : new Map(state);
}

export async function saveWeightsFile(model: ViT, file: string, metadata: Record<string, string> = {}): Promise<void> {
  await writeSafetensors(file, weightsToSave(model), { format: 'pt', ...metadata });
}
