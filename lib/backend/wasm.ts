/**
 * The WebAssembly kernels: the C++ kernels of native/kernels/ compiled to
 * wasm32 with SIMD128 (`scripts/build-wasm.sh` → `wasm/batchnorm.wasm`), on
 * one thread. The tier between the native addon and pure JS, for where no
 * addon loads.
 *
 * Arguments are checked as on the JS path (the binding's words, validate.ts).
 * The arrays are then copied into the module's memory (one block, reused and
 * grown as calls need), the kernel runs there in place (y over x, dx over dy)
 * and the outputs are copied back: a call that throws, even from inside the
 * module, writes nothing. The async forms run on the calling thread after
 * the current turn of the event loop, as the JS path's do.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { FloatArray, Kernels } from './kernels.js';
import { ArgReader, asAsyncCall } from './validate.js';

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
  forward_training_f32(x: Ptr, y: Ptr, w: Ptr, b: Ptr, rm: Ptr, rv: Ptr, sm: Ptr, si: Ptr, n: number, c: number, s: number, channelsLast: number, eps: number, momentum: number, unbiased: number): void;
  forward_training_f64(x: Ptr, y: Ptr, w: Ptr, b: Ptr, rm: Ptr, rv: Ptr, sm: Ptr, si: Ptr, n: number, c: number, s: number, channelsLast: number, eps: number, momentum: number, unbiased: number): void;
  forward_eval_f32(x: Ptr, y: Ptr, w: Ptr, b: Ptr, mean: Ptr, variance: Ptr, n: number, c: number, s: number, channelsLast: number, eps: number): void;
  forward_eval_f64(x: Ptr, y: Ptr, w: Ptr, b: Ptr, mean: Ptr, variance: Ptr, n: number, c: number, s: number, channelsLast: number, eps: number): void;
  backward_f32(x: Ptr, dy: Ptr, dx: Ptr, w: Ptr, mean: Ptr, invstd: Ptr, gw: Ptr, gb: Ptr, n: number, c: number, s: number, channelsLast: number, useBatchStats: number): void;
  backward_f64(x: Ptr, dy: Ptr, dx: Ptr, w: Ptr, mean: Ptr, invstd: Ptr, gw: Ptr, gb: Ptr, n: number, c: number, s: number, channelsLast: number, useBatchStats: number): void;
}

/** One call's arrays in the module's memory: each placed 16-byte aligned after the last. */
class Frame {
  bytes = 0;

  /** Reserves room for `a` (nothing for null); returns its offset from the block's start, or -1. */
  place(a: FloatArray | null): number {
    if (!a) return -1;
    const at = this.bytes;
    this.bytes = at + Math.ceil(a.byteLength / 16) * 16;
    return at;
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

  /**
   * Copies the frame's arrays in, runs `kernel` with their addresses (0 for
   * null), copies `outputs` back. The module's memory can grow during the
   * kernel (its scratch), so views are made after it returns.
   */
  private call(frame: Frame, ctor: Float32ArrayConstructor | Float64ArrayConstructor, inputs: Array<[number, FloatArray | null]>,
    outputs: Array<[number, FloatArray | null]>, kernel: (e: Exports, at: (offset: number) => Ptr) => void): void {
    const e = this.exports;
    const base = e.bn_reserve(frame.bytes);
    if (base === 0)
      throw new RangeError(`batchnorm: out of memory: the WebAssembly kernels cannot hold this call's ${(frame.bytes / 2 ** 20).toFixed(0)} MiB (their memory ends at 4 GiB); the native addon has no such limit`);
    for (const [offset, a] of inputs) if (a) new ctor(e.memory.buffer, base + offset, a.length).set(a);
    try {
      kernel(e, (offset) => (offset < 0 ? 0 : base + offset));
    } catch (err) {
      // A trap leaves the instance's stack pointer mid-call: start afresh.
      this.exports = this.instantiate();
      if (err instanceof WA!.RuntimeError && /unreachable/.test(err.message))
        throw new RangeError('batchnorm: out of memory: the WebAssembly kernel could not allocate its scratch space (its memory ends at 4 GiB)');
      throw err;
    }
    const buffer = e.memory.buffer;
    for (const [offset, a] of outputs) if (a) a.set(new ctor(buffer, base + offset, a.length));
  }

  forwardTraining(
    x: FloatArray, y: FloatArray, weight: FloatArray | null, bias: FloatArray | null,
    runningMean: FloatArray | null, runningVar: FloatArray | null, saveMean: FloatArray, saveInvstd: FloatArray,
    n: number, c: number, s: number, channelsLast: boolean, eps: number, momentum: number, unbiased = true,
  ): void {
    const r = ArgReader.forX(x);
    const { numel } = r.shape(n, c, s, channelsLast);
    eps = r.number(eps, 'eps', 0, Infinity, true);
    momentum = r.number(momentum, 'momentum', 0, 1, false);
    unbiased = r.boolean(unbiased, 'unbiased');
    r.array(x, 'x', numel, false, false);
    r.array(y, 'y', numel, false, true);
    r.array(weight, 'weight', c, true, false);
    r.array(bias, 'bias', c, true, false);
    r.array(runningMean, 'runningMean', c, true, true);
    r.array(runningVar, 'runningVar', c, true, true);
    if (!runningMean !== !runningVar)
      throw new TypeError(`Expected runningMean and runningVar to be both arrays or both null but received ${runningMean ? 'an array and null' : 'null and an array'}`);
    r.array(saveMean, 'saveMean', c, false, true);
    r.array(saveInvstd, 'saveInvstd', c, false, true);
    r.checkOverlaps([['y', 'x']]);

    const f = new Frame();
    const px = f.place(x), pw = f.place(weight), pb = f.place(bias), prm = f.place(runningMean), prv = f.place(runningVar);
    const psm = f.place(saveMean), psi = f.place(saveInvstd);
    const f32 = x instanceof Float32Array;
    this.call(f, f32 ? Float32Array : Float64Array,
      [[px, x], [pw, weight], [pb, bias], [prm, runningMean], [prv, runningVar]],
      [[px, y], [prm, runningMean], [prv, runningVar], [psm, saveMean], [psi, saveInvstd]],
      (e, at) => (f32 ? e.forward_training_f32 : e.forward_training_f64)(
        at(px), at(px), at(pw), at(pb), at(prm), at(prv), at(psm), at(psi), n, c, s, channelsLast ? 1 : 0, eps, momentum, unbiased ? 1 : 0));
  }

  forwardEval(
    x: FloatArray, y: FloatArray, weight: FloatArray | null, bias: FloatArray | null,
    mean: FloatArray, variance: FloatArray, n: number, c: number, s: number, channelsLast: boolean, eps: number,
  ): void {
    const r = ArgReader.forX(x);
    const { numel } = r.shape(n, c, s, channelsLast);
    eps = r.number(eps, 'eps', 0, Infinity, true);
    r.array(x, 'x', numel, false, false);
    r.array(y, 'y', numel, false, true);
    r.array(weight, 'weight', c, true, false);
    r.array(bias, 'bias', c, true, false);
    r.array(mean, 'mean', c, false, false);
    r.array(variance, 'var', c, false, false);
    r.checkOverlaps([['y', 'x']]);

    const f = new Frame();
    const px = f.place(x), pw = f.place(weight), pb = f.place(bias), pm = f.place(mean), pv = f.place(variance);
    const f32 = x instanceof Float32Array;
    this.call(f, f32 ? Float32Array : Float64Array, [[px, x], [pw, weight], [pb, bias], [pm, mean], [pv, variance]], [[px, y]],
      (e, at) => (f32 ? e.forward_eval_f32 : e.forward_eval_f64)(at(px), at(px), at(pw), at(pb), at(pm), at(pv), n, c, s, channelsLast ? 1 : 0, eps));
  }

  backward(
    x: FloatArray, dy: FloatArray, dx: FloatArray | null, weight: FloatArray | null,
    mean: FloatArray, invstd: FloatArray, gradWeight: FloatArray | null, gradBias: FloatArray | null,
    n: number, c: number, s: number, channelsLast: boolean, useBatchStats: boolean,
  ): void {
    const r = ArgReader.forX(x);
    const { numel } = r.shape(n, c, s, channelsLast);
    useBatchStats = r.boolean(useBatchStats, 'useBatchStats');
    r.array(x, 'x', numel, false, false);
    r.array(dy, 'dy', numel, false, false);
    r.array(dx, 'dx', numel, true, true);
    r.array(weight, 'weight', c, true, false);
    r.array(mean, 'mean', c, false, false);
    r.array(invstd, 'invstd', c, false, false);
    r.array(gradWeight, 'gradWeight', c, true, true);
    r.array(gradBias, 'gradBias', c, true, true);
    r.checkOverlaps([['dx', 'dy'], ['dx', 'x']]);

    const f = new Frame();
    const px = f.place(x), pdy = f.place(dy), pw = f.place(weight), pm = f.place(mean), pi = f.place(invstd);
    const pgw = f.place(gradWeight), pgb = f.place(gradBias), pdx = dx ? pdy : -1;
    const f32 = x instanceof Float32Array;
    this.call(f, f32 ? Float32Array : Float64Array, [[px, x], [pdy, dy], [pw, weight], [pm, mean], [pi, invstd]],
      [[pdx, dx], [pgw, gradWeight], [pgb, gradBias]],
      (e, at) => (f32 ? e.backward_f32 : e.backward_f64)(at(px), at(pdy), at(pdx), at(pw), at(pm), at(pi), at(pgw), at(pgb), n, c, s, channelsLast ? 1 : 0, useBatchStats ? 1 : 0));
  }
}

/** The async forms: on the calling thread, after the current turn of the event loop (as the JS path's). */
function deferred<A extends unknown[]>(f: (...args: A) => void): (...args: A) => Promise<void> {
  return (...args: A) => new Promise<void>((resolve, reject) => {
    setImmediate(() => {
      try {
        asAsyncCall(() => f(...args));
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
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
  const forwardTraining = k.forwardTraining.bind(k), forwardEval = k.forwardEval.bind(k), backward = k.backward.bind(k);
  return {
    kernels: {
      forwardTraining,
      forwardEval,
      backward,
      forwardTrainingAsync: deferred(forwardTraining),
      forwardEvalAsync: deferred(forwardEval),
      backwardAsync: deferred(backward),
    },
    why: '',
  };
}
