// The kernel interface: plain C++ (no Node-API), so that the same kernels link
// into the addon and into standalone test drivers (x86 and arm64 under qemu).
//
// A tensor is seen as (N, C, S): N samples, C channels, S = spatial size
// (H*W, D*H*W, L or 1). Two memory orders:
//   channels_last == false  NCHW:  x[(n*C + c)*S + s]
//   channels_last == true   NHWC:  x[(n*S + s)*C + c]   (and (N, C) input)
// All arrays of one call share one element type T (float or double). Optional
// arrays are nullptr. The caller (addon.cc) has checked every length.
#pragma once
#include <cstdint>

namespace batchnorm {

struct Shape {
  int64_t n = 0, c = 0, s = 0;
  bool channels_last = false;
  int64_t numel() const { return n * c * s; }
  int64_t count_per_channel() const { return n * s; }
};

// Training forward: batch statistics, y = (x - mean) * invstd * weight + bias,
// save_mean / save_invstd written, running statistics (if given) updated:
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * n / (n - 1)
// (or momentum * var when `unbiased` is false: Keras' and TF.js' convention)
template <class T>
struct ForwardTrainingArgs {
  Shape shape;
  const T* x;
  T* y;
  const T* weight;  // nullable: 1
  const T* bias;    // nullable: 0
  T* running_mean;  // nullable (then running_var is too): no update
  T* running_var;
  T* save_mean;
  T* save_invstd;
  double eps;
  double momentum;
  bool unbiased = true;
  // Fused after the normalization (issue 21), in the pass that writes y:
  // y = relu(y + residual), y + residual, or relu(y).
  const T* residual = nullptr;  // nullable: none; may not overlap y
  bool relu = false;
};

// Inference forward from given statistics, one pass: y = (x - mean) * a + bias,
// a = weight / sqrt(var + eps).
template <class T>
struct ForwardEvalArgs {
  Shape shape;
  const T* x;
  T* y;
  const T* weight;  // nullable
  const T* bias;    // nullable
  const T* mean;
  const T* var;
  double eps;
  const T* residual = nullptr;  // as ForwardTrainingArgs
  bool relu = false;
};

// Backward from the statistics the forward used (mean, invstd), with
// xhat = (x - mean) * invstd:
//   grad_bias   = sum(dy)             grad_weight = sum(dy * xhat)
//   use_batch_stats:  dx = weight * invstd * (dy - grad_bias / n - xhat * grad_weight / n)
//   otherwise (frozen statistics): dx = dy * weight * invstd
// With `output` (the forward's y, which a fused ReLU wrote), every dy above
// is dy' = output > 0 ? dy : 0, the ReLU's gradient (the mask recomputed from
// y, no workspace: kernels/fused.h), and grad_residual, if given, gets dy'.
template <class T>
struct BackwardArgs {
  Shape shape;
  const T* x;
  const T* dy;
  T* dx;            // nullable: no input gradient
  const T* weight;  // nullable: 1
  const T* mean;
  const T* invstd;
  T* grad_weight;  // nullable; written, not accumulated
  T* grad_bias;    // nullable; written, not accumulated
  bool use_batch_stats;
  const T* output = nullptr;   // nullable: no ReLU to differentiate
  T* grad_residual = nullptr;  // nullable: needs `output`
};

struct SplitTable;  // split_args.h: the split-phase kernels (SyncBatchNorm)

// One ISA's kernels; the dispatcher picks one table at load.
struct KernelTable {
  const char* isa;
  void (*forward_training_f32)(const ForwardTrainingArgs<float>&);
  void (*forward_training_f64)(const ForwardTrainingArgs<double>&);
  void (*forward_eval_f32)(const ForwardEvalArgs<float>&);
  void (*forward_eval_f64)(const ForwardEvalArgs<double>&);
  void (*backward_f32)(const BackwardArgs<float>&);
  void (*backward_f64)(const BackwardArgs<double>&);
  const SplitTable* split = nullptr;
};

}  // namespace batchnorm
