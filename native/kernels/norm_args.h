// The kernel interface of the group-statistics norms (LayerNorm, RMSNorm,
// GroupNorm), beside args.h's BatchNorm: plain C++, no Node-API.
//
// A tensor is (N, C, S) as for BatchNorm, its C channels in `groups` groups of
// C/groups consecutive channels. Statistics per (sample n, group g), over
// its (C/groups)*S values; weight and bias per channel:
//   y = (x - mean[n, g]) * invstd[n, g] * weight[c] + bias[c]
// LayerNorm over D values is (rows, D, 1) with one group; `rms` is RMSNorm's
// statistic (mean 0, invstd = 1 / sqrt(mean(x^2) + eps)). In NCHW (and with
// S = 1 in either order) a group is one contiguous row of (C/groups)*S values.
#pragma once
#include <cstdint>

namespace batchnorm {

struct GroupShape {
  int64_t n = 0, c = 0, s = 0, groups = 1;
  bool channels_last = false;
  int64_t numel() const { return n * c * s; }
  int64_t rows() const { return n * groups; }
  int64_t per_group() const { return c / groups; }
  int64_t row_length() const { return c / groups * s; }
};

// Forward: save_mean and save_invstd (N*groups values, index n*groups + g) written.
template <class T>
struct GroupNormForwardArgs {
  GroupShape shape;
  const T* x;
  T* y;
  const T* weight;  // nullable: 1
  const T* bias;    // nullable: 0
  T* save_mean;
  T* save_invstd;
  double eps;
  bool rms;
};

// Backward from the forward's statistics, over the m values of a group,
// xhat = (x - mean) * invstd, g = dy * weight:
//   dx = invstd * (g - sum(g) / m - xhat * sum(g * xhat) / m)   (rms: no sum(g) / m term)
//   grad_weight[c] = sum(dy * xhat), grad_bias[c] = sum(dy)  over samples and positions
template <class T>
struct GroupNormBackwardArgs {
  GroupShape shape;
  const T* x;
  const T* dy;
  T* dx;            // nullable: no input gradient
  const T* weight;  // nullable: 1
  const T* mean;
  const T* invstd;
  T* grad_weight;  // nullable; written, not accumulated
  T* grad_bias;    // nullable; written, not accumulated
  bool rms;
};

// One ISA's norm kernels, picked with its KernelTable.
struct NormKernelTable {
  const char* isa;
  void (*group_norm_forward_f32)(const GroupNormForwardArgs<float>&);
  void (*group_norm_forward_f64)(const GroupNormForwardArgs<double>&);
  void (*group_norm_backward_f32)(const GroupNormBackwardArgs<float>&);
  void (*group_norm_backward_f64)(const GroupNormBackwardArgs<double>&);
};

}  // namespace batchnorm
