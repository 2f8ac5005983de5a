/**
 * The kernel interface: one contract, implemented three times — by the native
 * addon (`native.ts`), by its kernels compiled to WebAssembly (`wasm.ts`) and by
 * plain JavaScript (`js.ts`). Semantics (modes, running
 * statistic policy, shapes) live above it, in `../batchnorm.ts` and
 * `../functional.ts`; a kernel only does arithmetic on caller-allocated arrays.
 *
 * A tensor is seen as (n, c, s): n samples, c channels, s spatial positions
 * (H·W, D·H·W, L, or 1). `channelsLast: false` is NCHW memory,
 * `x[(i·c + ch)·s + j]`; `channelsLast: true` is NHWC, `x[(i·s + j)·c + ch]`.
 * All arrays of one call share x's element type (Float32Array or Float64Array).
 * Every argument is checked before anything is written: a call that throws
 * leaves every array as it was.
 */
import type { NormKernels } from './norm-kernels.js';

export type FloatArray = Float32Array | Float64Array;

/** BatchNorm's three (and their async forms) below; LayerNorm's, RMSNorm's and GroupNorm's in NormKernels. */
export interface Kernels extends NormKernels {
  /**
   * Training forward with batch statistics (biased variance):
   * `y = (x − mean)·invstd·weight + bias`, `invstd = 1/√(var + eps)` (eps ≥ 0:
   * a constant channel with eps 0 gives invstd = inf and NaN outputs, as PyTorch);
   * writes saveMean and saveInvstd; if runningMean/runningVar are given, updates them:
   * `running_mean ← (1−momentum)·running_mean + momentum·mean`,
   * `running_var ← (1−momentum)·running_var + momentum·var·m/(m−1)` with m = n·s.
   * (`unbiased: false`: `momentum·var`, Keras' and TF.js' convention).
   * weight/bias null mean 1 and 0. y may be x itself (in place).
   * Fused in the pass that writes y (issue 21): `residual` (null: none; not
   * sharing memory with y) is added, then `relu` takes max(·, 0) (a NaN stays NaN).
   */
  forwardTraining(
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
    unbiased?: boolean,
    residual?: FloatArray | null,
    relu?: boolean,
  ): void;
  /** Inference forward from given statistics, one pass: `y = (x − mean)·weight/√(var + eps) + bias`; residual and relu as forwardTraining. */
  forwardEval(
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
    residual?: FloatArray | null,
    relu?: boolean,
  ): void;
  /**
   * Backward from the statistics the forward used, `x̂ = (x − mean)·invstd`:
   * gradBias = Σdy, gradWeight = Σdy·x̂ (written, not accumulated; null to skip).
   * useBatchStats: `dx = weight·invstd·(dy − gradBias/m − x̂·gradWeight/m)`;
   * otherwise (frozen statistics, eval): `dx = dy·weight·invstd`. dx null to skip;
   * dx may be dy or x itself.
   * With `output` (the forward's y under a fused ReLU), every dy above is
   * `dy' = output > 0 ? dy : 0` (the mask recomputed from y: no workspace),
   * and `gradResidual`, if given (it needs output), receives dy'. dx may be output itself.
   */
  backward(
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
    output?: FloatArray | null,
    gradResidual?: FloatArray | null,
  ): void;

  /**
   * The same three, off the event loop on the native path; rejects on bad
   * input (and refuses resizable buffers). The caller must keep the buffers
   * from being detached until the promise settles: the public functions make
   * them untransferable first (functional.ts, execute).
   */
  forwardTrainingAsync(...args: Parameters<Kernels['forwardTraining']>): Promise<void>;
  forwardEvalAsync(...args: Parameters<Kernels['forwardEval']>): Promise<void>;
  backwardAsync(...args: Parameters<Kernels['backward']>): Promise<void>;
}

/** Which implementation runs, as `backendInfo()` reports it. */
export interface BackendInfo {
  /** `'native'` (the C++ addon), `'wasm'` (its kernels compiled to WebAssembly) or `'js'` (the pure-JavaScript path). */
  backend: 'native' | 'wasm' | 'js';
  /** The instruction set the kernels use: `'avx512' | 'avx2' | 'neon' | 'scalar'`, `'simd128'` (wasm), or `'js'`. */
  isa: string;
  /** Threads a call may use (always 1 on the wasm and JS paths). */
  threads: number;
  /** This package's version. */
  version: string;
}
