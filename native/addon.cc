// The Node-API binding: unwrap and validate typed arrays, call the kernel
// table, return. No policy here (that lives in lib/); only the checks that keep
// the process safe and the promise that nothing is written when a call throws.
//
// Every op exists twice: `name(...)` runs on the calling thread, and
// `nameAsync(...)` runs on the libuv pool and returns a Promise that rejects on
// bad input. Both share one parser.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "kernels/split_args.h"
#include "threads.h"

namespace batchnorm {
namespace {

// ------------------------------------------------------------ describing values

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    auto a = v.As<Napi::TypedArray>();
    static const char* names[] = {"Int8Array",    "Uint8Array",    "Uint8ClampedArray", "Int16Array",
                                  "Uint16Array",  "Int32Array",    "Uint32Array",       "Float32Array",
                                  "Float64Array", "BigInt64Array", "BigUint64Array"};
    const int t = int(a.TypedArrayType());
    const std::string name = t >= 0 && t < 11 ? names[t] : "TypedArray";
    // "an Int8Array", "a Uint8Array" (a "you" sound)
    return "a" + std::string(name[0] == 'I' ? "n " : " ") + name + " of length " +
           std::to_string(a.ElementLength());
  }
  if (v.IsArray()) return "an Array";
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    std::string s = std::isnan(d)   ? "NaN"
                    : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity")
                                    : Napi::Value(v).ToString().Utf8Value();
    return "the number " + s;
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "a string";
  if (v.IsFunction()) return "a function";
  if (v.IsArrayBuffer()) return "an ArrayBuffer";
  if (v.IsObject()) return "an object";
  return "a value of another type";
}

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void range_error(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

// ------------------------------------------------------------------- the parser

template <class T>
constexpr napi_typedarray_type dtype_of() {
  return sizeof(T) == 4 ? napi_float32_array : napi_float64_array;
}
template <class T>
constexpr const char* dtype_name() {
  return sizeof(T) == 4 ? "Float32Array" : "Float64Array";
}

// What an array argument is to its call: read or written by the kernel, and
// whether it may be null (then the kernel gets nullptr). Written arrays may
// not overlap any other array (Reader::check_overlaps).
enum class Arg {
  input,            // read; required
  optional_input,   // read; null or undefined allowed
  output,           // written; required
  optional_output,  // written; null or undefined allowed
};
constexpr bool is_optional(Arg k) { return k == Arg::optional_input || k == Arg::optional_output; }
constexpr bool is_written(Arg k) { return k == Arg::output || k == Arg::optional_output; }

// One call's arguments, read in order; keeps a reference to every array so
// that an async call holds its buffers until it is done.
template <class T>
class Reader {
 public:
  // `async`: the call outlives this JS turn, so it refuses buffers that JS
  // could shrink meanwhile (resizable ArrayBuffers).
  Reader(const Napi::CallbackInfo& info, bool async) : info_(info), env_(info.Env()), async_(async) {}

  // A positive integer (a dimension).
  int64_t dim(size_t i, const char* name) {
    const Napi::Value v = info_[i];
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!v.IsNumber())
      type_error(env_,
                 std::string("Expected a positive integer for ") + name + " but received " + describe(v));
    if (!(d >= 1) || d != std::floor(d) || d > 9007199254740991.0)
      range_error(env_,
                  std::string("Expected a positive integer for ") + name + " but received " + describe(v));
    return int64_t(d);
  }

  double number(size_t i, const char* name, double lo, double hi, bool open_lo) {
    const Napi::Value v = info_[i];
    if (!v.IsNumber())
      type_error(env_, std::string("Expected a number for ") + name + " but received " + describe(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(open_lo ? d > lo : d >= lo) || !(d <= hi))
      range_error(env_, std::string("Expected ") + name + " to be a number in " + (open_lo ? "(" : "[") +
                            num(lo) + ", " + num(hi) + "] but received " + describe(v));
    return d;
  }

  // n, c, s and channelsLast at positions i .. i + 3, with n * c * s checked.
  Shape shape(size_t i) {
    Shape sh;
    sh.n = dim(i, "n"), sh.c = dim(i + 1, "c"), sh.s = dim(i + 2, "s");
    sh.channels_last = boolean(i + 3, "channelsLast");
    int64_t nc = 0, ncs = 0;
    if (__builtin_mul_overflow(sh.n, sh.c, &nc) || __builtin_mul_overflow(nc, sh.s, &ncs) ||
        ncs > (int64_t(1) << 53))
      range_error(env_, "Expected n * c * s to be at most 2^53 but received " + std::to_string(sh.n) + " * " +
                            std::to_string(sh.c) + " * " + std::to_string(sh.s));
    return sh;
  }

  bool boolean(size_t i, const char* name) {
    const Napi::Value v = info_[i];
    if (!v.IsBoolean())
      type_error(env_, std::string("Expected a boolean for ") + name + " but received " + describe(v));
    return v.As<Napi::Boolean>().Value();
  }

  // A typed array of T (or of U: the split-phase statistics are double for
  // either T) with `len` elements; nullptr when optional and null/undefined.
  // A good array costs one Node-API call: napi_get_typedarray_info fails on
  // anything but a typed array and gives the type and length (data comes
  // adjusted by the view's byte offset, SharedArrayBuffer-backed views
  // included). A detached buffer's views have length 0. The messages are
  // built only on the way to an error.
  template <class U = T>
  U* array(size_t i, const char* name, int64_t len, Arg kind) {
    const Napi::Value v = info_[i];
    const bool nullable = is_optional(kind), written = is_written(kind);
    auto want = [&] { return std::string("a ") + dtype_name<U>() + " of length " + std::to_string(len); };
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value buffer;
    size_t offset = 0;
    if (napi_get_typedarray_info(env_, v, &type, &length, &data, &buffer, &offset) != napi_ok ||
        type != dtype_of<U>()) {
      if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
      type_error(env_, "Expected " + want() + (nullable ? " or null" : "") + " for " + name +
                           " but received " + describe(v));
    }
    if (int64_t(length) != len) {
      bool detached = false;
      if (napi_is_detached_arraybuffer(env_, buffer, &detached) == napi_ok && detached)
        type_error(env_,
                   "Expected " + want() + " for " + name + " but received one whose buffer is detached");
      range_error(env_, "Expected " + want() + " for " + name + " but received " + describe(v));
    }
    if (async_ && Napi::Value(env_, buffer)
                      .As<Napi::Object>()
                      .Get("resizable")
                      .StrictEquals(Napi::Boolean::New(env_, true)))
      type_error(env_, "Expected " + want() + " for " + name +
                           " but received one backed by a resizable ArrayBuffer, which an async call cannot "
                           "hold (use the sync form)");
    if (views_n_ == kMaxViews) throw Napi::Error::New(env_, "batchnorm: more arrays than Reader::kMaxViews");
    views_[views_n_++] = View{name, reinterpret_cast<uintptr_t>(data), size_t(len) * sizeof(U), written};
    if (async_)
      refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));  // a sync call's arguments live through it
    return static_cast<U*>(data);
  }

  // Outputs may not overlap anything, except an elementwise output that is
  // exactly one of `in_place` (y === x; dx === dy or dx === x).
  void check_overlaps(std::initializer_list<std::pair<const char*, const char*>> in_place) {
    for (int i = 0; i < views_n_; ++i)
      for (int j = 0; j < views_n_; ++j) {
        const View &a = views_[i], &b = views_[j];
        if (i == j || !a.written || (b.written && j < i)) continue;
        if (a.begin >= b.begin + b.bytes || b.begin >= a.begin + a.bytes) continue;
        const bool same = a.begin == b.begin && a.bytes == b.bytes;
        bool allowed = false;
        for (const auto& p : in_place)
          allowed = allowed || (std::strcmp(p.first, a.name) == 0 && std::strcmp(p.second, b.name) == 0);
        if (!(same && allowed))
          range_error(env_, std::string("Expected ") + a.name + " not to share memory with " + b.name +
                                (allowed ? " unless it is the same array (in place)" : "") +
                                ", but it overlaps it");
      }
  }

  std::vector<Napi::ObjectReference> take_refs() { return std::move(refs_); }

 private:
  static std::string num(double d) {
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    char buf[32];
    snprintf(buf, sizeof buf, "%g", d);
    return buf;
  }
  struct View {
    const char* name;
    uintptr_t begin;
    size_t bytes;
    bool written;
  };
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  bool async_;
  static constexpr int kMaxViews = 10;  // the most arrays an op takes (backward with its fused ReLU)
  View views_[kMaxViews];
  int views_n_ = 0;
  std::vector<Napi::ObjectReference> refs_;
};

// A validated call, ready to run on any thread.
struct Job {
  std::function<void()> run;
  std::vector<Napi::ObjectReference> refs;
};

const KernelTable& table(Napi::Env env) {
  std::string error;
  const KernelTable* t = kernels(&error);
  if (!t) throw Napi::Error::New(env, error);
  return *t;
}

// The element type is x's; every other array must match it.
bool is_f64(const Napi::CallbackInfo& info) {
  const Napi::Value x = info[0];
  if (x.IsTypedArray()) {
    const auto t = x.As<Napi::TypedArray>().TypedArrayType();
    if (t == napi_float32_array) return false;
    if (t == napi_float64_array) return true;
  }
  type_error(info.Env(), "Expected a Float32Array or Float64Array for x but received " + describe(x));
}

void expect_args(const Napi::CallbackInfo& info, size_t n, const char* op) {
  if (info.Length() < n)
    type_error(info.Env(), std::string("Expected ") + std::to_string(n) + " arguments for " + op +
                               " but received " + std::to_string(info.Length()));
}

// The fused post-op of a forward (args.h): residual (null: none) and relu, at
// positions i and i + 1, both optional.
template <class T, class A>
void post_ops(const Napi::CallbackInfo& info, Reader<T>& r, size_t i, int64_t numel, A& a) {
  a.residual = info.Length() > i ? r.array(i, "residual", numel, Arg::optional_input) : nullptr;
  a.relu = info.Length() > i + 1 && !info[i + 1].IsUndefined() ? r.boolean(i + 1, "relu") : false;
}

// forwardTraining(x, y, weight, bias, runningMean, runningVar, saveMean, saveInvstd,
//                 n, c, s, channelsLast, eps, momentum[, unbiased = true[, residual = null[, relu = false]]])
template <class T>
Job parse_forward_training(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  Napi::Env env = info.Env();
  expect_args(info, 14, "forwardTraining");
  Reader<T> r(info, async);
  const Shape sh = r.shape(8);
  const int64_t numel = sh.numel(), C = sh.c;
  ForwardTrainingArgs<T> a;
  a.shape = sh;
  a.eps = r.number(12, "eps", 0, INFINITY, false);
  a.momentum = r.number(13, "momentum", 0, 1, false);
  a.unbiased = info[14].IsUndefined() ? true : r.boolean(14, "unbiased");
  a.x = r.array(0, "x", numel, Arg::input);
  a.y = r.array(1, "y", numel, Arg::output);
  a.weight = r.array(2, "weight", C, Arg::optional_input);
  a.bias = r.array(3, "bias", C, Arg::optional_input);
  a.running_mean = r.array(4, "runningMean", C, Arg::optional_output);
  a.running_var = r.array(5, "runningVar", C, Arg::optional_output);
  if (!a.running_mean != !a.running_var)
    type_error(
        env, std::string("Expected runningMean and runningVar to be both arrays or both null but received ") +
                 (a.running_mean ? "an array and null" : "null and an array"));
  a.save_mean = r.array(6, "saveMean", C, Arg::output);
  a.save_invstd = r.array(7, "saveInvstd", C, Arg::output);
  post_ops(info, r, 15, numel, a);
  r.check_overlaps({{"y", "x"}});
  void (*fn)(const ForwardTrainingArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = kt.forward_training_f32;
  else
    fn = kt.forward_training_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// forwardEval(x, y, weight, bias, mean, var, n, c, s, channelsLast, eps[, residual = null[, relu = false]])
template <class T>
Job parse_forward_eval(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  expect_args(info, 11, "forwardEval");
  Reader<T> r(info, async);
  const Shape sh = r.shape(6);
  const int64_t numel = sh.numel(), C = sh.c;
  ForwardEvalArgs<T> a;
  a.shape = sh;
  a.eps = r.number(10, "eps", 0, INFINITY, false);
  a.x = r.array(0, "x", numel, Arg::input);
  a.y = r.array(1, "y", numel, Arg::output);
  a.weight = r.array(2, "weight", C, Arg::optional_input);
  a.bias = r.array(3, "bias", C, Arg::optional_input);
  a.mean = r.array(4, "mean", C, Arg::input);
  a.var = r.array(5, "var", C, Arg::input);
  post_ops(info, r, 11, numel, a);
  r.check_overlaps({{"y", "x"}});
  void (*fn)(const ForwardEvalArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = kt.forward_eval_f32;
  else
    fn = kt.forward_eval_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// backward(x, dy, dx, weight, mean, invstd, gradWeight, gradBias, n, c, s,
//          channelsLast, useBatchStats[, output = null[, gradResidual = null]])
// output: the forward's y under a fused ReLU (dy masked by output > 0);
// gradResidual: written with the masked dy, needs output. dx may be output
// itself: every pass reads a value's x, dy and output before it writes its dx.
template <class T>
Job parse_backward(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  expect_args(info, 13, "backward");
  Reader<T> r(info, async);
  const Shape sh = r.shape(8);
  const int64_t numel = sh.numel(), C = sh.c;
  BackwardArgs<T> a;
  a.shape = sh;
  a.use_batch_stats = r.boolean(12, "useBatchStats");
  a.x = r.array(0, "x", numel, Arg::input);
  a.dy = r.array(1, "dy", numel, Arg::input);
  a.dx = r.array(2, "dx", numel, Arg::optional_output);
  a.weight = r.array(3, "weight", C, Arg::optional_input);
  a.mean = r.array(4, "mean", C, Arg::input);
  a.invstd = r.array(5, "invstd", C, Arg::input);
  a.grad_weight = r.array(6, "gradWeight", C, Arg::optional_output);
  a.grad_bias = r.array(7, "gradBias", C, Arg::optional_output);
  a.output = info.Length() > 13 ? r.array(13, "output", numel, Arg::optional_input) : nullptr;
  a.grad_residual = info.Length() > 14 ? r.array(14, "gradResidual", numel, Arg::optional_output) : nullptr;
  if (a.grad_residual && !a.output)
    type_error(info.Env(), "Expected output (the forward's y under a ReLU) with gradResidual but received " +
                               describe(info[13]));
  r.check_overlaps({{"dx", "dy"}, {"dx", "x"}, {"dx", "output"}});
  void (*fn)(const BackwardArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = kt.backward_f32;
  else
    fn = kt.backward_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// ------------------------------------------------- split phases (SyncBatchNorm)
// The statistics and sums are Float64Arrays whatever x's type is. Sync forms
// only: SyncBatchNorm's time goes to waiting for the other ranks, and its
// elementwise passes are those of one slice.

const SplitTable& split_of(Napi::Env env, const KernelTable& kt) {
  if (!kt.split)
    throw Napi::Error::New(env,
                           std::string("batchnorm: the ") + kt.isa + " kernels have no split-phase entries");
  return *kt.split;
}

// localMoments(x, mean, m2, n, c, s, channelsLast)
template <class T>
Job parse_local_moments(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  expect_args(info, 7, "localMoments");
  Reader<T> r(info, async);
  const Shape sh = r.shape(3);
  LocalMomentsArgs<T> a;
  a.shape = sh;
  a.x = r.array(0, "x", sh.numel(), Arg::input);
  a.mean = r.template array<double>(1, "mean", sh.c, Arg::output);
  a.m2 = r.template array<double>(2, "m2", sh.c, Arg::output);
  r.check_overlaps({});
  const SplitTable& st = split_of(info.Env(), kt);
  void (*fn)(const LocalMomentsArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = st.local_moments_f32;
  else
    fn = st.local_moments_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// normalize(x, y, weight, bias, mean, invstd, n, c, s, channelsLast)
template <class T>
Job parse_normalize(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  expect_args(info, 10, "normalize");
  Reader<T> r(info, async);
  const Shape sh = r.shape(6);
  const int64_t numel = sh.numel(), C = sh.c;
  NormalizeArgs<T> a;
  a.shape = sh;
  a.x = r.array(0, "x", numel, Arg::input);
  a.y = r.array(1, "y", numel, Arg::output);
  a.weight = r.array(2, "weight", C, Arg::optional_input);
  a.bias = r.array(3, "bias", C, Arg::optional_input);
  a.mean = r.template array<double>(4, "mean", C, Arg::input);
  a.invstd = r.template array<double>(5, "invstd", C, Arg::input);
  r.check_overlaps({{"y", "x"}});
  const SplitTable& st = split_of(info.Env(), kt);
  void (*fn)(const NormalizeArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = st.normalize_f32;
  else
    fn = st.normalize_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// backwardReduce(x, dy, mean, sumDy, sumDyXmu, n, c, s, channelsLast)
template <class T>
Job parse_backward_reduce(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  expect_args(info, 9, "backwardReduce");
  Reader<T> r(info, async);
  const Shape sh = r.shape(5);
  const int64_t numel = sh.numel(), C = sh.c;
  BackwardReduceArgs<T> a;
  a.shape = sh;
  a.x = r.array(0, "x", numel, Arg::input);
  a.dy = r.array(1, "dy", numel, Arg::input);
  a.mean = r.template array<double>(2, "mean", C, Arg::input);
  a.sum_dy = r.template array<double>(3, "sumDy", C, Arg::output);
  a.sum_dy_xmu = r.template array<double>(4, "sumDyXmu", C, Arg::output);
  r.check_overlaps({});
  const SplitTable& st = split_of(info.Env(), kt);
  void (*fn)(const BackwardReduceArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = st.backward_reduce_f32;
  else
    fn = st.backward_reduce_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// backwardElemt(x, dy, dx, weight, mean, invstd, sumDy, sumDyXmu, count, n, c, s, channelsLast)
template <class T>
Job parse_backward_elemt(const Napi::CallbackInfo& info, const KernelTable& kt, bool async) {
  expect_args(info, 13, "backwardElemt");
  Reader<T> r(info, async);
  const Shape sh = r.shape(9);
  const int64_t numel = sh.numel(), C = sh.c;
  BackwardElemtArgs<T> a;
  a.shape = sh;
  a.count = double(r.dim(8, "count"));
  if (a.count < double(sh.n * sh.s))
    range_error(info.Env(),
                "Expected count (the values per channel of the whole batch) to be at least n * s = " +
                    std::to_string(sh.n * sh.s) + " but received " + describe(info[8]));
  a.x = r.array(0, "x", numel, Arg::input);
  a.dy = r.array(1, "dy", numel, Arg::input);
  a.dx = r.array(2, "dx", numel, Arg::output);
  a.weight = r.array(3, "weight", C, Arg::optional_input);
  a.mean = r.template array<double>(4, "mean", C, Arg::input);
  a.invstd = r.template array<double>(5, "invstd", C, Arg::input);
  a.sum_dy = r.template array<double>(6, "sumDy", C, Arg::input);
  a.sum_dy_xmu = r.template array<double>(7, "sumDyXmu", C, Arg::input);
  r.check_overlaps({{"dx", "dy"}, {"dx", "x"}});
  const SplitTable& st = split_of(info.Env(), kt);
  void (*fn)(const BackwardElemtArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = st.backward_elemt_f32;
  else
    fn = st.backward_elemt_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// ------------------------------------------------ LayerNorm, RMSNorm, GroupNorm

const NormKernelTable& norm_table(Napi::Env env) {
  table(env);  // the same error when BATCHNORM_ISA cannot run
  return *norm_kernels();
}

// n, c, s, groups and channelsLast at positions i .. i + 4, in the JS path's order.
template <class T>
GroupShape group_shape(Reader<T>& r, const Napi::CallbackInfo& info, size_t i) {
  GroupShape g;
  g.n = r.dim(i, "n"), g.c = r.dim(i + 1, "c"), g.s = r.dim(i + 2, "s");
  g.channels_last = r.boolean(i + 4, "channelsLast");
  int64_t nc = 0, ncs = 0;
  if (__builtin_mul_overflow(g.n, g.c, &nc) || __builtin_mul_overflow(nc, g.s, &ncs) ||
      ncs > (int64_t(1) << 53))
    range_error(info.Env(), "Expected n * c * s to be at most 2^53 but received " + std::to_string(g.n) +
                                " * " + std::to_string(g.c) + " * " + std::to_string(g.s));
  g.groups = r.dim(i + 3, "groups");
  if (g.c % g.groups != 0)
    range_error(info.Env(), "Expected groups to divide c (" + std::to_string(g.c) + ") but received " +
                                std::to_string(g.groups));
  return g;
}

// groupNormForward(x, y, weight, bias, saveMean, saveInvstd, n, c, s, groups, channelsLast, eps, rms)
template <class T>
Job parse_group_norm_forward(const Napi::CallbackInfo& info, const NormKernelTable& kt, bool async) {
  expect_args(info, 13, "groupNormForward");
  Reader<T> r(info, async);
  GroupNormForwardArgs<T> a;
  a.shape = group_shape(r, info, 6);
  const int64_t numel = a.shape.numel(), C = a.shape.c, rows = a.shape.rows();
  a.eps = r.number(11, "eps", 0, INFINITY, false);
  if (std::isinf(a.eps))
    range_error(info.Env(), "Expected a finite number \u2265 0 for eps but received " + describe(info[11]));
  a.rms = r.boolean(12, "rms");
  a.x = r.array(0, "x", numel, Arg::input);
  a.y = r.array(1, "y", numel, Arg::output);
  a.weight = r.array(2, "weight", C, Arg::optional_input);
  a.bias = r.array(3, "bias", C, Arg::optional_input);
  a.save_mean = r.array(4, "saveMean", rows, Arg::output);
  a.save_invstd = r.array(5, "saveInvstd", rows, Arg::output);
  r.check_overlaps({{"y", "x"}});
  void (*fn)(const GroupNormForwardArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = kt.group_norm_forward_f32;
  else
    fn = kt.group_norm_forward_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

// groupNormBackward(x, dy, dx, weight, saveMean, saveInvstd, gradWeight, gradBias, n, c, s, groups,
// channelsLast, rms)
template <class T>
Job parse_group_norm_backward(const Napi::CallbackInfo& info, const NormKernelTable& kt, bool async) {
  expect_args(info, 14, "groupNormBackward");
  Reader<T> r(info, async);
  GroupNormBackwardArgs<T> a;
  a.shape = group_shape(r, info, 8);
  const int64_t numel = a.shape.numel(), C = a.shape.c, rows = a.shape.rows();
  a.rms = r.boolean(13, "rms");
  a.x = r.array(0, "x", numel, Arg::input);
  a.dy = r.array(1, "dy", numel, Arg::input);
  a.dx = r.array(2, "dx", numel, Arg::optional_output);
  a.weight = r.array(3, "weight", C, Arg::optional_input);
  a.mean = r.array(4, "saveMean", rows, Arg::input);
  a.invstd = r.array(5, "saveInvstd", rows, Arg::input);
  a.grad_weight = r.array(6, "gradWeight", C, Arg::optional_output);
  a.grad_bias = r.array(7, "gradBias", C, Arg::optional_output);
  r.check_overlaps({{"dx", "dy"}, {"dx", "x"}});
  void (*fn)(const GroupNormBackwardArgs<T>&);
  if constexpr (std::is_same_v<T, float>)
    fn = kt.group_norm_backward_f32;
  else
    fn = kt.group_norm_backward_f64;
  return Job{[fn, a] { fn(a); }, r.take_refs()};
}

using NormParser = Job (*)(const Napi::CallbackInfo&, const NormKernelTable&, bool);

template <NormParser F32, NormParser F64>
Job parse_norm(const Napi::CallbackInfo& info, bool async) {
  const NormKernelTable& kt = norm_table(info.Env());
  return is_f64(info) ? F64(info, kt, async) : F32(info, kt, async);
}

using Parser = Job (*)(const Napi::CallbackInfo&, const KernelTable&, bool);

template <Parser F32, Parser F64>
Job parse(const Napi::CallbackInfo& info, bool async) {
  const KernelTable& kt = table(info.Env());
  return is_f64(info) ? F64(info, kt, async) : F32(info, kt, async);
}

// ---------------------------------------------------------- sync and async

// A kernel's scratch that cannot be allocated (std::bad_alloc) is a JS
// RangeError, as a typed array too large to allocate is, not an abort. Any
// other C++ exception becomes a JS Error too (NODE_ADDON_API_CPP_EXCEPTIONS_ALL
// in both build files); the async form rejects with it (AsyncWorker).
template <Job (*Parse)(const Napi::CallbackInfo&, bool)>
Napi::Value run_sync(const Napi::CallbackInfo& info) {
  Job job = Parse(info, false);
  try {
    job.run();
  } catch (const std::bad_alloc&) {
    range_error(info.Env(), "batchnorm: out of memory: the kernel could not allocate its scratch space");
  }
  return info.Env().Undefined();
}

class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, Job job)
      : Napi::AsyncWorker(env, "batchnorm"),
        job_(std::move(job)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override { job_.run(); }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Job job_;  // its references keep every buffer alive until the worker is destroyed
  Napi::Promise::Deferred deferred_;
};

template <Job (*Parse)(const Napi::CallbackInfo&, bool)>
Napi::Value run_async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    auto* w = new Worker(env, Parse(info, true));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

// ------------------------------------------------------------------- module

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& kt = table(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", kt.isa);
  o.Set("threads", get_num_threads());
  Napi::Array caps = Napi::Array::New(env);
  uint32_t i = 0;
  for (const std::string& c : capabilities()) caps.Set(i++, c);
  o.Set("capabilities", caps);
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Reader<float> r(info, false);
  const int64_t n = r.dim(0, "n");
  if (n > 1024)
    range_error(info.Env(),
                "Expected a positive integer of at most 1024 for n but received " + describe(info[0]));
  set_num_threads(int(n));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), get_num_threads());
}

constexpr Job (*kForwardTraining)(const Napi::CallbackInfo&, bool) =
    parse<parse_forward_training<float>, parse_forward_training<double>>;
constexpr Job (*kForwardEval)(const Napi::CallbackInfo&,
                              bool) = parse<parse_forward_eval<float>, parse_forward_eval<double>>;
constexpr Job (*kBackward)(const Napi::CallbackInfo&,
                           bool) = parse<parse_backward<float>, parse_backward<double>>;

constexpr Job (*kLocalMoments)(const Napi::CallbackInfo&,
                               bool) = parse<parse_local_moments<float>, parse_local_moments<double>>;
constexpr Job (*kNormalize)(const Napi::CallbackInfo&,
                            bool) = parse<parse_normalize<float>, parse_normalize<double>>;
constexpr Job (*kBackwardReduce)(const Napi::CallbackInfo&,
                                 bool) = parse<parse_backward_reduce<float>, parse_backward_reduce<double>>;
constexpr Job (*kBackwardElemt)(const Napi::CallbackInfo&,
                                bool) = parse<parse_backward_elemt<float>, parse_backward_elemt<double>>;

constexpr Job (*kGroupNormForward)(const Napi::CallbackInfo&, bool) =
    parse_norm<parse_group_norm_forward<float>, parse_group_norm_forward<double>>;
constexpr Job (*kGroupNormBackward)(const Napi::CallbackInfo&, bool) =
    parse_norm<parse_group_norm_backward<float>, parse_group_norm_backward<double>>;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::string error;
  if (!kernels(&error)) throw Napi::Error::New(env, error);  // BATCHNORM_ISA names an ISA that cannot run
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("forwardTraining", Napi::Function::New(env, run_sync<kForwardTraining>, "forwardTraining"));
  exports.Set("forwardEval", Napi::Function::New(env, run_sync<kForwardEval>, "forwardEval"));
  exports.Set("backward", Napi::Function::New(env, run_sync<kBackward>, "backward"));
  exports.Set("forwardTrainingAsync",
              Napi::Function::New(env, run_async<kForwardTraining>, "forwardTrainingAsync"));
  exports.Set("forwardEvalAsync", Napi::Function::New(env, run_async<kForwardEval>, "forwardEvalAsync"));
  exports.Set("backwardAsync", Napi::Function::New(env, run_async<kBackward>, "backwardAsync"));
  exports.Set("localMoments", Napi::Function::New(env, run_sync<kLocalMoments>, "localMoments"));
  exports.Set("normalize", Napi::Function::New(env, run_sync<kNormalize>, "normalize"));
  exports.Set("backwardReduce", Napi::Function::New(env, run_sync<kBackwardReduce>, "backwardReduce"));
  exports.Set("backwardElemt", Napi::Function::New(env, run_sync<kBackwardElemt>, "backwardElemt"));
  exports.Set("groupNormForward", Napi::Function::New(env, run_sync<kGroupNormForward>, "groupNormForward"));
  exports.Set("groupNormBackward",
              Napi::Function::New(env, run_sync<kGroupNormBackward>, "groupNormBackward"));
  exports.Set("groupNormForwardAsync",
              Napi::Function::New(env, run_async<kGroupNormForward>, "groupNormForwardAsync"));
  exports.Set("groupNormBackwardAsync",
              Napi::Function::New(env, run_async<kGroupNormBackward>, "groupNormBackwardAsync"));
  return exports;
}

}  // namespace
}  // namespace batchnorm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return batchnorm::Init(env, exports); }
NODE_API_MODULE(batchnorm, InitModule)
