/**
 * The WebAssembly kernels: the C++ kernels of native/kernels/ compiled to
 * wasm32 with SIMD128 (`scripts/build-wasm.sh` → `wasm/batchnorm.wasm`), on
 * one thread. The tier between the native addon and pure JS, for where no
 * addon loads.
 *
 * Arguments are checked as on the JS path (the binding's words, validate.ts).
 * The arrays are then copied into the module's memory (one block, reused and
 * grown as calls need, never given back), the kernel runs there in place (y
 * over x, dx over dy) and the outputs are copied back: a call that throws,
 * even from inside the module, writes nothing (large NCHW tensors go a
 * channel at a time, see CHUNK_FROM, with all their memory reserved first, so
 * that nothing can fail once the first channel is written). The async forms
 * run on the calling thread after the current turn of the event loop, as the
 * JS path's do.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { FloatArray, Kernels } from './kernels.js';
import {
  checkBackwardArgs,
  checkForwardEvalArgs,
  checkForwardTrainingArgs,
  checkGroupNormBackwardArgs,
  checkGroupNormForwardArgs,
  deferredForm,
  syncForm,
} from './validate.js';

type Ptr = number;

/**
 * The pieces of the WebAssembly JS API used here (the package's TypeScript
 * libraries, ES2022 and Node's, do not declare them); absent in an engine
 * without WebAssembly (`node --jitless`).
 */
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
  RuntimeError: new () => Error;
}
type WasmModule = { readonly __brand: 'WebAssembly.Module' };
const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/** What wasm/batchnorm.wasm exports (native/wasm/exports.cc, memory.cc): pointers are byte offsets, 0 for null. */
interface Exports {
  memory: { readonly buffer: ArrayBuffer };
  bn_reserve(bytes: number): Ptr;
  forward_training_f32(
    x: Ptr,
    y: Ptr,
    w: Ptr,
    b: Ptr,
    rm: Ptr,
    rv: Ptr,
    sm: Ptr,
    si: Ptr,
    n: number,
    c: number,
    s: number,
    channelsLast: number,
    eps: number,
    momentum: number,
    unbiased: number,
    residual: Ptr,
    relu: number,
  ): void;
  forward_training_f64(
    x: Ptr,
    y: Ptr,
    w: Ptr,
    b: Ptr,
    rm: Ptr,
    rv: Ptr,
    sm: Ptr,
    si: Ptr,
    n: number,
    c: number,
    s: number,
    channelsLast: number,
    eps: number,
    momentum: number,
    unbiased: number,
    residual: Ptr,
    relu: number,
  ): void;
  forward_eval_f32(
    x: Ptr,
    y: Ptr,
    w: Ptr,
    b: Ptr,
    mean: Ptr,
    variance: Ptr,
    n: number,
    c: number,
    s: number,
    channelsLast: number,
    eps: number,
    residual: Ptr,
    relu: number,
  ): void;
  forward_eval_f64(
    x: Ptr,
    y: Ptr,
    w: Ptr,
    b: Ptr,
    mean: Ptr,
    variance: Ptr,
    n: number,
    c: number,
    s: number,
    channelsLast: number,
    eps: number,
    residual: Ptr,
    relu: number,
  ): void;
  backward_f32(
    x: Ptr,
    dy: Ptr,
    dx: Ptr,
    w: Ptr,
    mean: Ptr,
    invstd: Ptr,
    gw: Ptr,
    gb: Ptr,
    n: number,
    c: number,
    s: number,
    channelsLast: number,
    useBatchStats: number,
    output: Ptr,
    gradResidual: Ptr,
  ): void;
  backward_f64(
    x: Ptr,
    dy: Ptr,
    dx: Ptr,
    w: Ptr,
    mean: Ptr,
    invstd: Ptr,
    gw: Ptr,
    gb: Ptr,
    n: number,
    c: number,
    s: number,
    channelsLast: number,
    useBatchStats: number,
    output: Ptr,
    gradResidual: Ptr,
  ): void;
  group_norm_forward_f32(
    x: Ptr,
    y: Ptr,
    w: Ptr,
    b: Ptr,
    sm: Ptr,
    si: Ptr,
    n: number,
    c: number,
    s: number,
    groups: number,
    channelsLast: number,
    eps: number,
    rms: number,
  ): void;
  group_norm_forward_f64(
    x: Ptr,
    y: Ptr,
    w: Ptr,
    b: Ptr,
    sm: Ptr,
    si: Ptr,
    n: number,
    c: number,
    s: number,
    groups: number,
    channelsLast: number,
    eps: number,
    rms: number,
  ): void;
  group_norm_backward_f32(
    x: Ptr,
    dy: Ptr,
    dx: Ptr,
    w: Ptr,
    mean: Ptr,
    invstd: Ptr,
    gw: Ptr,
    gb: Ptr,
    n: number,
    c: number,
    s: number,
    groups: number,
    channelsLast: number,
    rms: number,
  ): void;
  group_norm_backward_f64(
    x: Ptr,
    dy: Ptr,
    dx: Ptr,
    w: Ptr,
    mean: Ptr,
    invstd: Ptr,
    gw: Ptr,
    gb: Ptr,
    n: number,
    c: number,
    s: number,
    groups: number,
    channelsLast: number,
    rms: number,
  ): void;
}

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
/** The plain array type of `a` (a subclass's constructor may take other arguments). */
const ctorOf = (a: FloatArray): Ctor => (a.BYTES_PER_ELEMENT === 4 ? Float32Array : Float64Array);

/**
 * NCHW tensors from this many bytes go through the module a channel at a
 * time (forward-training, backward) or a group of samples at a time (eval),
 * so that what is copied in is still in cache when the kernel reads it, and
 * what the kernel writes is when it is copied out: memory then sees about one
 * read of each input and one write of each output, as with the addon, instead
 * of those plus a copy of every array. Below it, one copy each way.
 */
const CHUNK_FROM = 4 << 20;
/** About the L2 cache: the size of one group of samples (eval). */
const CHUNK_BYTES = 256 << 10;
/** Planes shorter than this are copied whole-tensor: the copies of a channel go plane by plane. */
const MIN_PLANE_BYTES = 2048;
/**
 * Room kept above a call's arrays for the kernels' scratch (a few arrays of
 * C entries), reserved with them: a chunked call then never grows memory, so
 * it cannot fail once its first chunk is written.
 */
const SCRATCH_BYTES = 1 << 20;

/** One call's arrays in the module's memory: each placed 16-byte aligned after the last. */
class Frame {
  bytes = 0;

  /** Room for `length` elements of `bpe` bytes; returns its offset from the block's start. */
  take(length: number, bpe: number): number {
    const at = this.bytes;
    this.bytes = at + Math.ceil((length * bpe) / 16) * 16;
    return at;
  }

  /** Room for `a` (nothing for null: -1). */
  place(a: FloatArray | null): number {
    return a ? this.take(a.length, a.BYTES_PER_ELEMENT) : -1;
  }
}

export class WasmKernels {
  private exports: Exports;

  constructor(private readonly module: WasmModule) {
    this.exports = this.instantiate();
  }

  private instantiate(): Exports {
    return new WA!.Instance(this.module, {}).exports as Exports;
  }

  /** The block for a frame, and a function from frame offsets to addresses (0 for -1: null). */
  private reserve(frame: Frame): { e: Exports; at: (offset: number) => Ptr } {
    const e = this.exports;
    const base = e.bn_reserve(frame.bytes + SCRATCH_BYTES);
    if (base === 0)
      throw new RangeError(
        `batchnorm: out of memory: the WebAssembly kernels cannot hold this call's ${(frame.bytes / 2 ** 20).toFixed(0)} MiB (their memory ends at 4 GiB); the native addon has no such limit`,
      );
    return { e, at: (offset) => (offset < 0 ? 0 : base + offset) };
  }

  /** Runs kernel calls; a trap (the instance's stack pointer left mid-call) restarts the instance. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      this.exports = this.instantiate();
      if (err instanceof WA!.RuntimeError && /unreachable/.test(err.message))
        throw new RangeError('batchnorm: out of memory: the WebAssembly kernel could not allocate its scratch space (its memory ends at 4 GiB)');
      throw err;
    }
  }

  /** Copies `a` (if given) into the module's memory at `ptr`. Views are made at each use: memory can grow. */
  private static put(e: Exports, ptr: Ptr, a: FloatArray | null): void {
    if (a) new (ctorOf(a))(e.memory.buffer, ptr, a.length).set(a);
  }
  private static get(e: Exports, ptr: Ptr, a: FloatArray | null): void {
    if (a) a.set(new (ctorOf(a))(e.memory.buffer, ptr, a.length));
  }

  /** Channel ch of NCHW `a` (n planes of s) into the module at `ptr`, plane after plane; `back` copies the other way. */
  private static channel(e: Exports, ptr: Ptr, a: FloatArray, n: number, c: number, s: number, ch: number, back: boolean): void {
    const m = new (ctorOf(a))(e.memory.buffer, ptr, n * s);
    for (let i = 0, o = ch * s; i < n; i++, o += c * s) {
      if (back) a.set(m.subarray(i * s, i * s + s), o);
      else m.set(a.subarray(o, o + s), i * s);
    }
  }

  private static byChannel(x: FloatArray, s: number, channelsLast: boolean): boolean {
    return !channelsLast && x.byteLength >= CHUNK_FROM && s * x.BYTES_PER_ELEMENT >= MIN_PLANE_BYTES;
  }

  forwardTraining(
    async: boolean,
    x: FloatArray,
    y: FloatArray,
    weight: FloatArray | null,
    bias: FloatArray | null,
    runningMean: FloatArray | null,
    runningVar: FloatArray | null,
    saveMean: FloatArray,
    saveInvstd: FloatArray,
    n: number,
    c: number,
    s: number,
    channelsLast: boolean,
    eps: number,
    momentum: number,
    unbiased = true,
    residual: FloatArray | null = null,
    relu = false,
  ): void {
    const numel = checkForwardTrainingArgs(
      async,
      x,
      y,
      weight,
      bias,
      runningMean,
      runningVar,
      saveMean,
      saveInvstd,
      n,
      c,
      s,
      channelsLast,
      eps,
      momentum,
      unbiased,
      residual,
      relu,
    );

    // y is computed over x's copy (in place), one channel at a time or all at once; the residual beside it.
    const bpe = x.BYTES_PER_ELEMENT,
      chunked = WasmKernels.byChannel(x, s, channelsLast);
    const f = new Frame();
    const px = f.take(chunked ? n * s : numel, bpe),
      pr = residual ? f.take(chunked ? n * s : numel, bpe) : -1,
      pw = f.place(weight),
      pb = f.place(bias),
      prm = f.place(runningMean),
      prv = f.place(runningVar);
    const psm = f.place(saveMean),
      psi = f.place(saveInvstd);
    const { e, at } = this.reserve(f);
    const run = bpe === 4 ? e.forward_training_f32 : e.forward_training_f64;
    const cl = channelsLast ? 1 : 0,
      ub = unbiased ? 1 : 0,
      rl = relu ? 1 : 0;
    for (const [p, a] of [
      [pw, weight],
      [pb, bias],
      [prm, runningMean],
      [prv, runningVar],
    ] as const)
      WasmKernels.put(e, at(p), a);
    this.guard(() => {
      if (!chunked) {
        WasmKernels.put(e, at(px), x);
        WasmKernels.put(e, at(pr), residual);
        run(at(px), at(px), at(pw), at(pb), at(prm), at(prv), at(psm), at(psi), n, c, s, cl, eps, momentum, ub, at(pr), rl);
        WasmKernels.get(e, at(px), y);
        return;
      }
      // Channel ch as a tensor of its own, (n, 1, s): the same units, blocks and merges as in the whole tensor.
      const k = (p: number, ch: number) => (p < 0 ? 0 : at(p) + ch * bpe);
      for (let ch = 0; ch < c; ch++) {
        WasmKernels.channel(e, at(px), x, n, c, s, ch, false);
        if (residual) WasmKernels.channel(e, at(pr), residual, n, c, s, ch, false);
        run(at(px), at(px), k(pw, ch), k(pb, ch), k(prm, ch), k(prv, ch), k(psm, ch), k(psi, ch), n, 1, s, 0, eps, momentum, ub, at(pr), rl);
        WasmKernels.channel(e, at(px), y, n, c, s, ch, true);
      }
    });
    for (const [p, a] of [
      [prm, runningMean],
      [prv, runningVar],
      [psm, saveMean],
      [psi, saveInvstd],
    ] as const)
      WasmKernels.get(e, at(p), a);
  }

  forwardEval(
    async: boolean,
    x: FloatArray,
    y: FloatArray,
    weight: FloatArray | null,
    bias: FloatArray | null,
    mean: FloatArray,
    variance: FloatArray,
    n: number,
    c: number,
    s: number,
    channelsLast: boolean,
    eps: number,
    residual: FloatArray | null = null,
    relu = false,
  ): void {
    checkForwardEvalArgs(async, x, y, weight, bias, mean, variance, n, c, s, channelsLast, eps, residual, relu);

    // Elementwise: groups of whole samples (contiguous in either layout), each a tensor of its own.
    const bpe = x.BYTES_PER_ELEMENT,
      sample = c * s;
    const group = x.byteLength >= CHUNK_FROM ? Math.max(1, Math.floor(CHUNK_BYTES / (sample * bpe))) : n;
    const f = new Frame();
    const px = f.take(Math.min(group, n) * sample, bpe),
      pr = residual ? f.take(Math.min(group, n) * sample, bpe) : -1,
      pw = f.place(weight),
      pb = f.place(bias),
      pm = f.place(mean),
      pv = f.place(variance);
    const { e, at } = this.reserve(f);
    const run = bpe === 4 ? e.forward_eval_f32 : e.forward_eval_f64;
    for (const [p, a] of [
      [pw, weight],
      [pb, bias],
      [pm, mean],
      [pv, variance],
    ] as const)
      WasmKernels.put(e, at(p), a);
    this.guard(() => {
      for (let i = 0; i < n; i += group) {
        const k = Math.min(group, n - i),
          a = i * sample,
          b = a + k * sample;
        WasmKernels.put(e, at(px), group < n ? x.subarray(a, b) : x);
        if (residual) WasmKernels.put(e, at(pr), group < n ? residual.subarray(a, b) : residual);
        run(at(px), at(px), at(pw), at(pb), at(pm), at(pv), k, c, s, channelsLast ? 1 : 0, eps, at(pr), relu ? 1 : 0);
        if (group < n) y.set(new (ctorOf(x))(e.memory.buffer, at(px), k * sample), a);
        else WasmKernels.get(e, at(px), y);
      }
    });
  }

  backward(
    async: boolean,
    x: FloatArray,
    dy: FloatArray,
    dx: FloatArray | null,
    weight: FloatArray | null,
    mean: FloatArray,
    invstd: FloatArray,
    gradWeight: FloatArray | null,
    gradBias: FloatArray | null,
    n: number,
    c: number,
    s: number,
    channelsLast: boolean,
    useBatchStats: boolean,
    output: FloatArray | null = null,
    gradResidual: FloatArray | null = null,
  ): void {
    const numel = checkBackwardArgs(async, x, dy, dx, weight, mean, invstd, gradWeight, gradBias, n, c, s, channelsLast, useBatchStats, output, gradResidual);

    // dx is computed over dy's copy (in place), one channel at a time or all at once; a fused ReLU's output and
    // the residual's gradient beside them.
    const bpe = x.BYTES_PER_ELEMENT,
      chunked = WasmKernels.byChannel(x, s, channelsLast),
      len = chunked ? n * s : numel;
    const f = new Frame();
    const px = f.take(len, bpe),
      pdy = f.take(len, bpe),
      pout = output ? f.take(len, bpe) : -1,
      pgr = gradResidual ? f.take(len, bpe) : -1,
      pw = f.place(weight),
      pm = f.place(mean),
      pi = f.place(invstd);
    const pgw = f.place(gradWeight),
      pgb = f.place(gradBias),
      pdx = dx ? pdy : -1;
    const { e, at } = this.reserve(f);
    const run = bpe === 4 ? e.backward_f32 : e.backward_f64;
    const cl = channelsLast ? 1 : 0,
      ubs = useBatchStats ? 1 : 0;
    for (const [p, a] of [
      [pw, weight],
      [pm, mean],
      [pi, invstd],
    ] as const)
      WasmKernels.put(e, at(p), a);
    this.guard(() => {
      if (!chunked) {
        WasmKernels.put(e, at(px), x);
        WasmKernels.put(e, at(pdy), dy);
        WasmKernels.put(e, at(pout), output);
        run(at(px), at(pdy), at(pdx), at(pw), at(pm), at(pi), at(pgw), at(pgb), n, c, s, cl, ubs, at(pout), at(pgr));
        WasmKernels.get(e, at(pdx), dx);
        WasmKernels.get(e, at(pgr), gradResidual);
        return;
      }
      const k = (p: number, ch: number) => (p < 0 ? 0 : at(p) + ch * bpe);
      for (let ch = 0; ch < c; ch++) {
        WasmKernels.channel(e, at(px), x, n, c, s, ch, false);
        WasmKernels.channel(e, at(pdy), dy, n, c, s, ch, false);
        if (output) WasmKernels.channel(e, at(pout), output, n, c, s, ch, false);
        run(at(px), at(pdy), at(pdx), k(pw, ch), k(pm, ch), k(pi, ch), k(pgw, ch), k(pgb, ch), n, 1, s, 0, ubs, at(pout), at(pgr));
        if (dx) WasmKernels.channel(e, at(pdy), dx, n, c, s, ch, true);
        if (gradResidual) WasmKernels.channel(e, at(pgr), gradResidual, n, c, s, ch, true);
      }
    });
    for (const [p, a] of [
      [pgw, gradWeight],
      [pgb, gradBias],
    ] as const)
      WasmKernels.get(e, at(p), a);
  }

  /**
   * LayerNorm, RMSNorm and GroupNorm (norm-kernels.ts). Their statistics are
   * per sample (a LayerNorm row, a GroupNorm sample), so from CHUNK_FROM
   * bytes the calls go a group of whole samples at a time (about
   * CHUNK_BYTES), as forwardEval: what is copied in is still in cache when
   * the kernel reads it. y, dx and the statistics are bitwise those of one
   * whole call; the weight and bias gradients of a chunked backward are the
   * groups' sums added up in float64, in order.
   */
  private static samplesPerGroup(x: FloatArray, n: number, sample: number): number {
    return x.byteLength >= CHUNK_FROM ? Math.min(n, Math.max(1, Math.floor(CHUNK_BYTES / (sample * x.BYTES_PER_ELEMENT)))) : n;
  }

  groupNormForward(
    async: boolean,
    x: FloatArray,
    y: FloatArray,
    weight: FloatArray | null,
    bias: FloatArray | null,
    saveMean: FloatArray,
    saveInvstd: FloatArray,
    n: number,
    c: number,
    s: number,
    groups: number,
    channelsLast: boolean,
    eps: number,
    rms: boolean,
  ): void {
    checkGroupNormForwardArgs(async, x, y, weight, bias, saveMean, saveInvstd, n, c, s, groups, channelsLast, eps, rms);
    const bpe = x.BYTES_PER_ELEMENT,
      sample = c * s,
      group = WasmKernels.samplesPerGroup(x, n, sample),
      T = ctorOf(x),
      f = new Frame();
    const px = f.take(group * sample, bpe),
      pw = f.place(weight),
      pb = f.place(bias),
      psm = f.take(group * groups, bpe),
      psi = f.take(group * groups, bpe);
    const { e, at } = this.reserve(f);
    const run = bpe === 4 ? e.group_norm_forward_f32 : e.group_norm_forward_f64;
    WasmKernels.put(e, at(pw), weight);
    WasmKernels.put(e, at(pb), bias);
    this.guard(() => {
      for (let i = 0; i < n; i += group) {
        const k = Math.min(group, n - i);
        WasmKernels.put(e, at(px), group < n ? x.subarray(i * sample, (i + k) * sample) : x);
        run(at(px), at(px), at(pw), at(pb), at(psm), at(psi), k, c, s, groups, channelsLast ? 1 : 0, eps, rms ? 1 : 0);
        y.set(new T(e.memory.buffer, at(px), k * sample), i * sample);
        saveMean.set(new T(e.memory.buffer, at(psm), k * groups), i * groups);
        saveInvstd.set(new T(e.memory.buffer, at(psi), k * groups), i * groups);
      }
    });
  }

  groupNormBackward(
    async: boolean,
    x: FloatArray,
    dy: FloatArray,
    dx: FloatArray | null,
    weight: FloatArray | null,
    saveMean: FloatArray,
    saveInvstd: FloatArray,
    gradWeight: FloatArray | null,
    gradBias: FloatArray | null,
    n: number,
    c: number,
    s: number,
    groups: number,
    channelsLast: boolean,
    rms: boolean,
  ): void {
    checkGroupNormBackwardArgs(async, x, dy, dx, weight, saveMean, saveInvstd, gradWeight, gradBias, n, c, s, groups, channelsLast, rms);
    const bpe = x.BYTES_PER_ELEMENT,
      sample = c * s,
      group = WasmKernels.samplesPerGroup(x, n, sample),
      T = ctorOf(x),
      f = new Frame();
    const px = f.take(group * sample, bpe),
      pdy = f.take(group * sample, bpe),
      pw = f.place(weight),
      pm = f.take(group * groups, bpe),
      pi = f.take(group * groups, bpe);
    const pgw = f.place(gradWeight),
      pgb = f.place(gradBias),
      pdx = dx ? pdy : -1;
    const { e, at } = this.reserve(f);
    const run = bpe === 4 ? e.group_norm_backward_f32 : e.group_norm_backward_f64;
    WasmKernels.put(e, at(pw), weight);
    // Chunked: each group's parameter gradients, added up here in float64.
    const sums = group < n ? [gradWeight ? new Float64Array(c) : null, gradBias ? new Float64Array(c) : null] : null;
    this.guard(() => {
      for (let i = 0; i < n; i += group) {
        const k = Math.min(group, n - i),
          a = i * sample,
          b = (i + k) * sample;
        WasmKernels.put(e, at(px), group < n ? x.subarray(a, b) : x);
        WasmKernels.put(e, at(pdy), group < n ? dy.subarray(a, b) : dy);
        WasmKernels.put(e, at(pm), group < n ? saveMean.subarray(i * groups, (i + k) * groups) : saveMean);
        WasmKernels.put(e, at(pi), group < n ? saveInvstd.subarray(i * groups, (i + k) * groups) : saveInvstd);
        run(at(px), at(pdy), at(pdx), at(pw), at(pm), at(pi), at(pgw), at(pgb), k, c, s, groups, channelsLast ? 1 : 0, rms ? 1 : 0);
        if (dx) dx.set(new T(e.memory.buffer, at(pdx), k * sample), a);
        if (sums)
          for (const [p, acc] of [
            [pgw, sums[0]],
            [pgb, sums[1]],
          ] as const) {
            if (!acc) continue;
            const g = new T(e.memory.buffer, at(p), c);
            for (let ch = 0; ch < c; ch++) acc[ch] += g[ch];
          }
      }
    });
    if (sums) {
      if (gradWeight) gradWeight.set(sums[0]!);
      if (gradBias) gradBias.set(sums[1]!);
      return;
    }
    WasmKernels.get(e, at(pgw), gradWeight);
    WasmKernels.get(e, at(pgb), gradBias);
  }
}

/**
 * The kernels of the module at `path`, or why they cannot run here: no file,
 * no WebAssembly in this engine (`node --jitless`), or no SIMD128 in it (the
 * module does not compile).
 */
export function loadWasm(path: string): { kernels: Kernels; why: '' } | { kernels: null; why: string } {
  if (!WA) return { kernels: null, why: 'this JavaScript engine runs no WebAssembly' };
  if (!existsSync(path)) return { kernels: null, why: `no WebAssembly module at ${path}` };
  let k: WasmKernels;
  try {
    k = new WasmKernels(new WA.Module(readFileSync(path)));
  } catch (e) {
    return { kernels: null, why: `${path} failed to load (it needs WebAssembly SIMD128): ${(e as Error).message}` };
  }
  const forwardTraining = k.forwardTraining.bind(k),
    forwardEval = k.forwardEval.bind(k),
    backward = k.backward.bind(k);
  const groupNormForward = k.groupNormForward.bind(k),
    groupNormBackward = k.groupNormBackward.bind(k);
  return {
    kernels: {
      forwardTraining: syncForm(forwardTraining),
      forwardEval: syncForm(forwardEval),
      backward: syncForm(backward),
      forwardTrainingAsync: deferredForm(forwardTraining),
      forwardEvalAsync: deferredForm(forwardEval),
      backwardAsync: deferredForm(backward),
      groupNormForward: syncForm(groupNormForward),
      groupNormBackward: syncForm(groupNormBackward),
      groupNormForwardAsync: deferredForm(groupNormForward),
      groupNormBackwardAsync: deferredForm(groupNormBackward),
    },
    why: '',
  };
}
