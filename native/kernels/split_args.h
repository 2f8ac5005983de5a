// The interface of the split-phase kernels (SyncBatchNorm): the pieces of a
// training forward and backward on each rank, around the exchange of
// statistics between ranks (lib/splitphase.ts). Plain C++, like args.h.
// Statistics and sums are double whatever T is: they travel between ranks
// and are combined there (Chan et al.), and float would lose what that keeps.
#pragma once
#include "args.h"

namespace batchnorm {

// Per channel over the slice: mean and m2 = sum((x - mean)^2), written.
template <class T>
struct LocalMomentsArgs {
  Shape shape;
  const T* x;
  double* mean;
  double* m2;
};

// y = (x - mean) * invstd * weight + bias from given (combined) statistics.
template <class T>
struct NormalizeArgs {
  Shape shape;
  const T* x;
  T* y;             // may be x
  const T* weight;  // nullable: 1
  const T* bias;    // nullable: 0
  const double* mean;
  const double* invstd;
};

// Per channel over the slice: sum_dy = sum(dy), sum_dy_xmu = sum(dy * (x - mean)), written.
template <class T>
struct BackwardReduceArgs {
  Shape shape;
  const T* x;
  const T* dy;
  const double* mean;
  double* sum_dy;
  double* sum_dy_xmu;
};

// dx from the sums over the whole batch (count values per channel):
//   dx = weight * invstd * (dy - sum_dy / count - (x - mean) * invstd^2 * sum_dy_xmu / count)
template <class T>
struct BackwardElemtArgs {
  Shape shape;
  const T* x;
  const T* dy;
  T* dx;            // may be dy or x
  const T* weight;  // nullable: 1
  const double* mean;
  const double* invstd;
  const double* sum_dy;
  const double* sum_dy_xmu;
  double count;
};

struct SplitTable {
  void (*local_moments_f32)(const LocalMomentsArgs<float>&);
  void (*local_moments_f64)(const LocalMomentsArgs<double>&);
  void (*normalize_f32)(const NormalizeArgs<float>&);
  void (*normalize_f64)(const NormalizeArgs<double>&);
  void (*backward_reduce_f32)(const BackwardReduceArgs<float>&);
  void (*backward_reduce_f64)(const BackwardReduceArgs<double>&);
  void (*backward_elemt_f32)(const BackwardElemtArgs<float>&);
  void (*backward_elemt_f64)(const BackwardElemtArgs<double>&);
};

}  // namespace batchnorm
