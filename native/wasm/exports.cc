// The WebAssembly module's entry points, called by lib/backend/wasm.ts. It has
// checked every argument and copied the arrays into this module's memory
// (bn_reserve); here they are pointers into it. Dimensions come as doubles
// (exact integers: WebAssembly's i64 would be a BigInt in JS), pointers as
// offsets, nullable arrays as 0, booleans as 0 or 1.
#include <cstdint>

#include "../kernels/args.h"
#include "../kernels/norm_args.h"

namespace batchnorm {
const KernelTable* wasm_kernels();
const NormKernelTable* wasm_norm_kernels();
void drop_scratch();  // memory.cc: the previous kernel call's scratch is free again

namespace {

Shape shape(double n, double c, double s, int channels_last) {
  Shape sh;
  sh.n = int64_t(n), sh.c = int64_t(c), sh.s = int64_t(s), sh.channels_last = channels_last != 0;
  return sh;
}

template <class T>
void forward_training(uintptr_t x, uintptr_t y, uintptr_t weight, uintptr_t bias, uintptr_t running_mean,
                      uintptr_t running_var, uintptr_t save_mean, uintptr_t save_invstd, double n, double c,
                      double s, int channels_last, double eps, double momentum, int unbiased,
                      uintptr_t residual, int relu) {
  ForwardTrainingArgs<T> a;
  a.shape = shape(n, c, s, channels_last);
  a.x = reinterpret_cast<const T*>(x), a.y = reinterpret_cast<T*>(y);
  a.weight = reinterpret_cast<const T*>(weight), a.bias = reinterpret_cast<const T*>(bias);
  a.running_mean = reinterpret_cast<T*>(running_mean), a.running_var = reinterpret_cast<T*>(running_var);
  a.save_mean = reinterpret_cast<T*>(save_mean), a.save_invstd = reinterpret_cast<T*>(save_invstd);
  a.eps = eps, a.momentum = momentum, a.unbiased = unbiased != 0;
  a.residual = reinterpret_cast<const T*>(residual), a.relu = relu != 0;
  drop_scratch();
  if constexpr (sizeof(T) == 4)
    wasm_kernels()->forward_training_f32(a);
  else
    wasm_kernels()->forward_training_f64(a);
}

template <class T>
void forward_eval(uintptr_t x, uintptr_t y, uintptr_t weight, uintptr_t bias, uintptr_t mean, uintptr_t var,
                  double n, double c, double s, int channels_last, double eps, uintptr_t residual, int relu) {
  ForwardEvalArgs<T> a;
  a.shape = shape(n, c, s, channels_last);
  a.x = reinterpret_cast<const T*>(x), a.y = reinterpret_cast<T*>(y);
  a.weight = reinterpret_cast<const T*>(weight), a.bias = reinterpret_cast<const T*>(bias);
  a.mean = reinterpret_cast<const T*>(mean), a.var = reinterpret_cast<const T*>(var);
  a.eps = eps;
  a.residual = reinterpret_cast<const T*>(residual), a.relu = relu != 0;
  drop_scratch();
  if constexpr (sizeof(T) == 4)
    wasm_kernels()->forward_eval_f32(a);
  else
    wasm_kernels()->forward_eval_f64(a);
}

template <class T>
void backward(uintptr_t x, uintptr_t dy, uintptr_t dx, uintptr_t weight, uintptr_t mean, uintptr_t invstd,
              uintptr_t grad_weight, uintptr_t grad_bias, double n, double c, double s, int channels_last,
              int use_batch_stats, uintptr_t output, uintptr_t grad_residual) {
  BackwardArgs<T> a;
  a.shape = shape(n, c, s, channels_last);
  a.x = reinterpret_cast<const T*>(x), a.dy = reinterpret_cast<const T*>(dy), a.dx = reinterpret_cast<T*>(dx);
  a.weight = reinterpret_cast<const T*>(weight), a.mean = reinterpret_cast<const T*>(mean),
  a.invstd = reinterpret_cast<const T*>(invstd);
  a.grad_weight = reinterpret_cast<T*>(grad_weight), a.grad_bias = reinterpret_cast<T*>(grad_bias);
  a.use_batch_stats = use_batch_stats != 0;
  a.output = reinterpret_cast<const T*>(output), a.grad_residual = reinterpret_cast<T*>(grad_residual);
  drop_scratch();
  if constexpr (sizeof(T) == 4)
    wasm_kernels()->backward_f32(a);
  else
    wasm_kernels()->backward_f64(a);
}

GroupShape group_shape(double n, double c, double s, double groups, int channels_last) {
  GroupShape sh;
  sh.n = int64_t(n), sh.c = int64_t(c), sh.s = int64_t(s), sh.groups = int64_t(groups),
  sh.channels_last = channels_last != 0;
  return sh;
}

template <class T>
void group_norm_forward(uintptr_t x, uintptr_t y, uintptr_t weight, uintptr_t bias, uintptr_t save_mean,
                        uintptr_t save_invstd, double n, double c, double s, double groups, int channels_last,
                        double eps, int rms) {
  GroupNormForwardArgs<T> a;
  a.shape = group_shape(n, c, s, groups, channels_last);
  a.x = reinterpret_cast<const T*>(x), a.y = reinterpret_cast<T*>(y);
  a.weight = reinterpret_cast<const T*>(weight), a.bias = reinterpret_cast<const T*>(bias);
  a.save_mean = reinterpret_cast<T*>(save_mean), a.save_invstd = reinterpret_cast<T*>(save_invstd);
  a.eps = eps, a.rms = rms != 0;
  drop_scratch();
  if constexpr (sizeof(T) == 4)
    wasm_norm_kernels()->group_norm_forward_f32(a);
  else
    wasm_norm_kernels()->group_norm_forward_f64(a);
}

template <class T>
void group_norm_backward(uintptr_t x, uintptr_t dy, uintptr_t dx, uintptr_t weight, uintptr_t mean,
                         uintptr_t invstd, uintptr_t grad_weight, uintptr_t grad_bias, double n, double c,
                         double s, double groups, int channels_last, int rms) {
  GroupNormBackwardArgs<T> a;
  a.shape = group_shape(n, c, s, groups, channels_last);
  a.x = reinterpret_cast<const T*>(x), a.dy = reinterpret_cast<const T*>(dy), a.dx = reinterpret_cast<T*>(dx);
  a.weight = reinterpret_cast<const T*>(weight), a.mean = reinterpret_cast<const T*>(mean),
  a.invstd = reinterpret_cast<const T*>(invstd);
  a.grad_weight = reinterpret_cast<T*>(grad_weight), a.grad_bias = reinterpret_cast<T*>(grad_bias);
  a.rms = rms != 0;
  drop_scratch();
  if constexpr (sizeof(T) == 4)
    wasm_norm_kernels()->group_norm_backward_f32(a);
  else
    wasm_norm_kernels()->group_norm_backward_f64(a);
}

}  // namespace
}  // namespace batchnorm

#define BN_EXPORT(name) extern "C" __attribute__((export_name(#name))) void name
using batchnorm::backward;
using batchnorm::forward_eval;
using batchnorm::forward_training;
using batchnorm::group_norm_backward;
using batchnorm::group_norm_forward;

BN_EXPORT(forward_training_f32)
(uintptr_t x, uintptr_t y, uintptr_t w, uintptr_t b, uintptr_t rm, uintptr_t rv, uintptr_t sm, uintptr_t si,
 double n, double c, double s, int cl, double eps, double momentum, int unbiased, uintptr_t r, int relu) {
  forward_training<float>(x, y, w, b, rm, rv, sm, si, n, c, s, cl, eps, momentum, unbiased, r, relu);
}
BN_EXPORT(forward_training_f64)
(uintptr_t x, uintptr_t y, uintptr_t w, uintptr_t b, uintptr_t rm, uintptr_t rv, uintptr_t sm, uintptr_t si,
 double n, double c, double s, int cl, double eps, double momentum, int unbiased, uintptr_t r, int relu) {
  forward_training<double>(x, y, w, b, rm, rv, sm, si, n, c, s, cl, eps, momentum, unbiased, r, relu);
}
BN_EXPORT(forward_eval_f32)
(uintptr_t x, uintptr_t y, uintptr_t w, uintptr_t b, uintptr_t mean, uintptr_t var, double n, double c,
 double s, int cl, double eps, uintptr_t r, int relu) {
  forward_eval<float>(x, y, w, b, mean, var, n, c, s, cl, eps, r, relu);
}
BN_EXPORT(forward_eval_f64)
(uintptr_t x, uintptr_t y, uintptr_t w, uintptr_t b, uintptr_t mean, uintptr_t var, double n, double c,
 double s, int cl, double eps, uintptr_t r, int relu) {
  forward_eval<double>(x, y, w, b, mean, var, n, c, s, cl, eps, r, relu);
}
BN_EXPORT(backward_f32)
(uintptr_t x, uintptr_t dy, uintptr_t dx, uintptr_t w, uintptr_t mean, uintptr_t invstd, uintptr_t gw,
 uintptr_t gb, double n, double c, double s, int cl, int use_batch_stats, uintptr_t out, uintptr_t gr) {
  backward<float>(x, dy, dx, w, mean, invstd, gw, gb, n, c, s, cl, use_batch_stats, out, gr);
}
BN_EXPORT(backward_f64)
(uintptr_t x, uintptr_t dy, uintptr_t dx, uintptr_t w, uintptr_t mean, uintptr_t invstd, uintptr_t gw,
 uintptr_t gb, double n, double c, double s, int cl, int use_batch_stats, uintptr_t out, uintptr_t gr) {
  backward<double>(x, dy, dx, w, mean, invstd, gw, gb, n, c, s, cl, use_batch_stats, out, gr);
}
BN_EXPORT(group_norm_forward_f32)
(uintptr_t x, uintptr_t y, uintptr_t w, uintptr_t b, uintptr_t sm, uintptr_t si, double n, double c, double s,
 double groups, int cl, double eps, int rms) {
  group_norm_forward<float>(x, y, w, b, sm, si, n, c, s, groups, cl, eps, rms);
}
BN_EXPORT(group_norm_forward_f64)
(uintptr_t x, uintptr_t y, uintptr_t w, uintptr_t b, uintptr_t sm, uintptr_t si, double n, double c, double s,
 double groups, int cl, double eps, int rms) {
  group_norm_forward<double>(x, y, w, b, sm, si, n, c, s, groups, cl, eps, rms);
}
BN_EXPORT(group_norm_backward_f32)
(uintptr_t x, uintptr_t dy, uintptr_t dx, uintptr_t w, uintptr_t mean, uintptr_t invstd, uintptr_t gw,
 uintptr_t gb, double n, double c, double s, double groups, int cl, int rms) {
  group_norm_backward<float>(x, dy, dx, w, mean, invstd, gw, gb, n, c, s, groups, cl, rms);
}
BN_EXPORT(group_norm_backward_f64)
(uintptr_t x, uintptr_t dy, uintptr_t dx, uintptr_t w, uintptr_t mean, uintptr_t invstd, uintptr_t gw,
 uintptr_t gb, double n, double c, double s, double groups, int cl, int rms) {
  group_norm_backward<double>(x, dy, dx, w, mean, invstd, gw, gb, n, c, s, groups, cl, rms);
}
