/**
 * The kernel interface of the group-statistics norms (LayerNorm, RMSNorm,
 * GroupNorm), the part of `Kernels` beside BatchNorm's three. InstanceNorm
 * needs none of its own: as in PyTorch, it is BatchNorm over (1, N·C, S).
 *
 * A tensor is (n, c, s) as for BatchNorm, its c channels split into `groups`
 * groups of c/groups consecutive channels. Statistics are taken per (sample,
 * group) over its (c/groups)·s values; weight and bias are per channel:
 *
 *   y = (x − mean[i, g])·invstd[i, g]·weight[ch] + bias[ch]
 *
 * LayerNorm over a normalized shape of D values is (rows, D, 1) with one
 * group; GroupNorm is (N, C, S) with its groups; `rms: true` is RMSNorm's
 * statistic: no mean (mean 0, saved as 0) and invstd = 1/√(mean(x²) + eps).
 * In NCHW memory each (sample, group) is one contiguous row of (c/groups)·s
 * values; channels-last groups are columns of rows.
 */
import type { FloatArray } from './kernels.js';

export interface NormKernels {
  /**
   * Forward with per-(sample, group) statistics (biased variance); writes
   * saveMean and saveInvstd (n·groups values each, index i·groups + g).
   * weight/bias null mean 1 and 0. y may be x itself (in place).
   */
  groupNormForward(
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
  ): void;
  /**
   * Backward from the forward's statistics, x̂ = (x − mean)·invstd, g = dy·weight,
   * over the m = (c/groups)·s values of a group:
   * `dx = invstd·(g − Σg/m − x̂·Σ(g·x̂)/m)` (rms: without the Σg/m term);
   * gradWeight[ch] = Σ dy·x̂, gradBias[ch] = Σ dy over samples and positions
   * (written, not accumulated; null to skip). dx null to skip; dx may be dy or x.
   */
  groupNormBackward(
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
  ): void;

  /** The same two, off the event loop on the native path; rejects on bad input. */
  groupNormForwardAsync(...args: Parameters<NormKernels['groupNormForward']>): Promise<void>;
  groupNormBackwardAsync(...args: Parameters<NormKernels['groupNormBackward']>): Promise<void>;
}
