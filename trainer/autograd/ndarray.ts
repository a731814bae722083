// Concrete arrays for the reference interpreter: float64 data in row-major order with a numeric shape.
// Float64 so that finite-difference gradient checks are meaningful; the kernels favour clarity over speed.

export interface NDArray {
  readonly data: Float64Array;
  readonly shape: readonly number[];
}

export function nd(data: ArrayLike<number>, shape: readonly number[]): NDArray {
  const size = shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new Error(`array of ${data.length} values does not fit shape [${shape.join(', ')}]`);
  return { data: data instanceof Float64Array ? data : Float64Array.from(data), shape: [...shape] };
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function broadcastNumeric(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` seen from a broadcast `outShape`: 0 where the dim is broadcast. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = stridesOf(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((d, i) => (i < lead || shape[i - lead] === 1 ? 0 : strides[i - lead]));
}

/** Calls fn(outIndex, offsetA, offsetB) over every element of outShape. */
export function forEachBroadcast(
  outShape: readonly number[],
  sa: readonly number[],
  sb: readonly number[],
  fn: (i: number, a: number, b: number) => void,
): void {
  const rank = outShape.length;
  const size = sizeOf(outShape);
  const idx = new Array<number>(rank).fill(0);
  let oa = 0;
  let ob = 0;
  for (let i = 0; i < size; i++) {
    fn(i, oa, ob);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < outShape[d]) break;
      oa -= sa[d] * outShape[d];
      ob -= sb[d] * outShape[d];
      idx[d] = 0;
    }
  }
}

export function binary(a: NDArray, b: NDArray, f: (x: number, y: number) => number): NDArray {
  const shape = broadcastNumeric(a.shape, b.shape);
  const out = new Float64Array(sizeOf(shape));
  const ad = a.data;
  const bd = b.data;
  forEachBroadcast(shape, broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape), (i, ia, ib) => {
    out[i] = f(ad[ia], bd[ib]);
  });
  return { data: out, shape };
}

export function unary(a: NDArray, f: (x: number) => number): NDArray {
  return { data: a.data.map(f), shape: a.shape };
}

export function broadcastTo(a: NDArray, shape: readonly number[]): NDArray {
  const out = new Float64Array(sizeOf(shape));
  const zero = new Array<number>(shape.length).fill(0);
  forEachBroadcast(shape, broadcastStrides(a.shape, shape), zero, (i, ia) => {
    out[i] = a.data[ia];
  });
  return { data: out, shape: [...shape] };
}

export function transpose(a: NDArray, perm: readonly number[]): NDArray {
  const shape = perm.map((p) => a.shape[p]);
  const inStrides = stridesOf(a.shape);
  const permuted = perm.map((p) => inStrides[p]);
  const out = new Float64Array(a.data.length);
  const zero = new Array<number>(shape.length).fill(0);
  forEachBroadcast(shape, permuted, zero, (i, ia) => {
    out[i] = a.data[ia];
  });
  return { data: out, shape };
}

/** Sums over `axes`, keeping them as size-1 dims. */
export function reduceSumKeep(a: NDArray, axes: readonly number[]): NDArray {
  const shape = a.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(sizeOf(shape));
  const zero = new Array<number>(a.shape.length).fill(0);
  forEachBroadcast(a.shape, zero, broadcastStrides(shape, a.shape), (i, _z, io) => {
    out[io] += a.data[i];
  });
  return { data: out, shape };
}

/** Batched matmul with numpy broadcasting of the leading dims; both operands have rank >= 2. */
export function matmul(a: NDArray, b: NDArray): NDArray {
  const [m, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k !== k2) throw new Error(`matmul: inner dims ${k} and ${k2} differ`);
  const batch = broadcastNumeric(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const sa = broadcastStrides(a.shape.slice(0, -2), batch).map((s) => s * m * k);
  const sb = broadcastStrides(b.shape.slice(0, -2), batch).map((s) => s * k * n);
  const out = new Float64Array(sizeOf(batch) * m * n);
  const ad = a.data;
  const bd = b.data;
  forEachBroadcast(batch, sa, sb, (bi, oa, ob) => {
    const oo = bi * m * n;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const av = ad[oa + i * k + p];
        if (av === 0) continue;
        const rowB = ob + p * n;
        const rowO = oo + i * n;
        for (let j = 0; j < n; j++) out[rowO + j] += av * bd[rowB + j];
      }
    }
  });
  return { data: out, shape: [...batch, m, n] };
}

/** Applies fn to each contiguous row of the last axis (length n), writing into a new array. */
export function mapRows(a: NDArray, fn: (src: Float64Array, dst: Float64Array) => void): NDArray {
  const n = a.shape[a.shape.length - 1] ?? 1;
  const out = new Float64Array(a.data.length);
  for (let o = 0; o < a.data.length; o += n) fn(a.data.subarray(o, o + n), out.subarray(o, o + n));
  return { data: out, shape: a.shape };
}

/** Copies a [start, end) range along one axis. */
export function sliceAxis(a: NDArray, axis: number, start: number, end: number): NDArray {
  const outer = sizeOf(a.shape.slice(0, axis));
  const inner = sizeOf(a.shape.slice(axis + 1));
  const len = a.shape[axis];
  const shape = a.shape.map((d, i) => (i === axis ? end - start : d));
  const out = new Float64Array(sizeOf(shape));
  for (let o = 0; o < outer; o++) {
    out.set(a.data.subarray((o * len + start) * inner, (o * len + end) * inner), o * (end - start) * inner);
  }
  return { data: out, shape };
}

export function concatAxis(parts: readonly NDArray[], axis: number): NDArray {
  const first = parts[0].shape;
  const outer = sizeOf(first.slice(0, axis));
  const inner = sizeOf(first.slice(axis + 1));
  const total = parts.reduce((s, p) => s + p.shape[axis], 0);
  const shape = first.map((d, i) => (i === axis ? total : d));
  const out = new Float64Array(sizeOf(shape));
  let offset = 0;
  for (const p of parts) {
    const len = p.shape[axis];
    for (let o = 0; o < outer; o++) out.set(p.data.subarray(o * len * inner, (o + 1) * len * inner), (o * total + offset) * inner);
    offset += len;
  }
  return { data: out, shape };
}

export function padAxis(a: NDArray, axis: number, before: number, after: number): NDArray {
  const outer = sizeOf(a.shape.slice(0, axis));
  const inner = sizeOf(a.shape.slice(axis + 1));
  const len = a.shape[axis];
  const total = before + len + after;
  const shape = a.shape.map((d, i) => (i === axis ? total : d));
  const out = new Float64Array(sizeOf(shape));
  for (let o = 0; o < outer; o++) out.set(a.data.subarray(o * len * inner, (o + 1) * len * inner), (o * total + before) * inner);
  return { data: out, shape };
}

/** Cross-correlation as torch.nn.functional.conv2d (stride 1, zero padding `pad`): x [B, Ci, H, W],
 *  w [Co, Ci, kh, kw] -> [B, Co, H + 2 pad - kh + 1, W + 2 pad - kw + 1]. */
export function conv2d(x: NDArray, w: NDArray, pad: number): NDArray {
  const [B, Ci, H, W] = x.shape;
  const [Co, Ci2, kh, kw] = w.shape;
  if (Ci !== Ci2) throw new Error(`conv2d: ${Ci} input channels, weights for ${Ci2}`);
  const Ho = H + 2 * pad - kh + 1;
  const Wo = W + 2 * pad - kw + 1;
  const out = new Float64Array(B * Co * Ho * Wo);
  for (let b = 0; b < B; b++)
    for (let o = 0; o < Co; o++)
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++) {
          let s = 0;
          for (let c = 0; c < Ci; c++)
            for (let u = 0; u < kh; u++) {
              const y = i + u - pad;
              if (y < 0 || y >= H) continue;
              for (let v = 0; v < kw; v++) {
                const xx = j + v - pad;
                if (xx < 0 || xx >= W) continue;
                s += x.data[((b * Ci + c) * H + y) * W + xx] * w.data[((o * Ci + c) * kh + u) * kw + v];
              }
            }
          out[((b * Co + o) * Ho + i) * Wo + j] = s;
        }
  return nd(out, [B, Co, Ho, Wo]);
}

/** Where each max-pooling window of x [B, C, H, W] takes its maximum (the first, in row-major order,
 *  on ties; padding never wins): the flat index into x per output element, and the output's shape. */
export function maxPoolArgmax(x: NDArray, kernel: number, stride: number, pad: number): { index: Int32Array; shape: number[] } {
  const [B, C, H, W] = x.shape;
  const Ho = Math.floor((H + 2 * pad - kernel) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - kernel) / stride) + 1;
  const index = new Int32Array(B * C * Ho * Wo);
  for (let p = 0; p < B * C; p++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        let best = -1;
        for (let u = 0; u < kernel; u++) {
          const y = i * stride + u - pad;
          if (y < 0 || y >= H) continue;
          for (let v = 0; v < kernel; v++) {
            const xx = j * stride + v - pad;
            if (xx < 0 || xx >= W) continue;
            const k = (p * H + y) * W + xx;
            if (best < 0 || x.data[k] > x.data[best]) best = k;
          }
        }
        index[(p * Ho + i) * Wo + j] = best;
      }
  return { index, shape: [B, C, Ho, Wo] };
}

/** Reverses the given axes. */
export function flip(a: NDArray, axes: readonly number[]): NDArray {
  const strides = stridesOf(a.shape);
  const out = new Float64Array(a.data.length);
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    let rest = i;
    let src = 0;
    for (let d = 0; d < a.shape.length; d++) {
      idx[d] = Math.floor(rest / strides[d]);
      rest -= idx[d] * strides[d];
      src += (axes.includes(d) ? a.shape[d] - 1 - idx[d] : idx[d]) * strides[d];
    }
    out[i] = a.data[src];
  }
  return nd(out, a.shape);
}

/** The Gauss error function in float64 (JavaScript has none): its Maclaurin series below |x| = 2.5,
 *  else 1 - erfc(x) with erfc from Laplace's continued fraction, evaluated from the 60th term back.
 *  Both agree with the exact values to about 1e-15. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (Number.isNaN(x)) return NaN;
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let frac = ax;
  for (let k = 60; k >= 1; k--) frac = ax + k / 2 / frac;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / frac;
  return Math.sign(x) * (1 - erfc);
}

/** A weight [k, n] as symmetric int8 per output column: w ≈ q * scale[c], q in [-127, 127]. */
export function quantizeColumns(
  w: ArrayLike<number>,
  k: number,
  n: number,
): { q: Int8Array; scale: Float32Array; maxRelativeError: number } {
  const scale = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    let max = 0;
    for (let r = 0; r < k; r++) max = Math.max(max, Math.abs(w[r * n + c]));
    scale[c] = max > 0 ? max / 127 : 1;
  }
  const q = new Int8Array(k * n);
  let worst = 0;
  for (let r = 0; r < k; r++)
    for (let c = 0; c < n; c++) {
      const v = Math.max(-127, Math.min(127, Math.round(w[r * n + c] / scale[c])));
      q[r * n + c] = v;
      worst = Math.max(worst, Math.abs(v * scale[c] - w[r * n + c]) / (scale[c] * 127));
    }
  return { q, scale, maxRelativeError: worst };
}

/** Rounds half to even, as ONNX's quantizers do. */
const roundEven = (v: number) => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/**
 * x [..., k] by an int8 weight (q [k, n], scale [n]) with the activations quantized at run time, as
 * ONNX Runtime's DynamicQuantizeMatMul computes it: x to uint8 over the whole tensor (ONNX
 * DynamicQuantizeLinear: the range [min(0, min x), max(0, max x)] in 255 steps, the zero point rounded
 * and saturated, each value rounded half to even), the integer products summed exactly, then scaled by
 * both scales, plus the bias. The scales are float32 as the runtime keeps them.
 */
export function quantizedMatmul(x: NDArray, q: Int8Array, scale: Float32Array, bias: NDArray | null): NDArray {
  const n = scale.length;
  const k = q.length / n;
  const rows = x.data.length / k;
  let lo = 0;
  let hi = 0;
  for (const v of x.data) {
    lo = Math.min(lo, Math.fround(v));
    hi = Math.max(hi, Math.fround(v));
  }
  const xScale = Math.fround((hi - lo) / 255);
  const zero = xScale > 0 ? Math.max(0, Math.min(255, roundEven(-lo / xScale))) : 0;
  const xq = new Int32Array(x.data.length);
  if (xScale > 0)
    for (let i = 0; i < xq.length; i++) xq[i] = Math.max(0, Math.min(255, roundEven(Math.fround(x.data[i]) / xScale) + zero)) - zero;
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += xq[r * k + p] * q[p * n + c];
      out[r * n + c] = acc * xScale * scale[c] + (bias ? bias.data[c] : 0);
    }
  return { data: out, shape: [...x.shape.slice(0, -1), n] };
}
