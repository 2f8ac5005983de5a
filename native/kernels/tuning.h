// The tuning constants of the kernels: each says the rule it sets and why.
// The measurements behind them are in bench/TUNING.md (bench/ab.mjs A/Bs).
// Plain constants, no ISA code (the two functions are static: no copy built
// with ISA flags can be shared across translation units): kernels_test.cc
// includes this file on its own to size shapes that reach every path.
#pragma once
#include <cstdint>

namespace batchnorm {
namespace tuning {

// Values per float32 partial sum before it is handed to double: bounded, so
// the float32 rounding stays at the level of a few ulps of one block.
constexpr int64_t kBlock = 512;

// Values per NCHW block for vectors of `lanes` lanes: kBlock with 8 lanes or
// more (a lane sums at most 64 values: AVX2 float, AVX-512 double), 32 a lane
// below that (NEON, AVX2 double, the scalar path): with fewer lanes each lane
// sums more terms, and an outlier sample among small values then costs the
// float32 sums their accuracy (the kernel test's outlier cases).
static constexpr int64_t block_values(int lanes) { return lanes >= 8 ? kBlock : 32 * int64_t(lanes); }

// Contiguous values per unit of work in NCHW; in NHWC a unit is a block of
// rows (about kRowBlockValues values, at most kRowBlockMax rows). Units are
// fixed by the shape alone (never by the thread count) and merged in order,
// which makes every result bitwise independent of the thread count.
constexpr int64_t kUnit = 16 * 1024;
constexpr int64_t kRowBlockValues = 64 * 1024;
constexpr int64_t kRowBlockMax = 256;

// Rows per block of channels-last rows of C values: a few tens of KB, so that
// a block's second pass reads from cache; at least 16 rows, so that a block
// is worth a unit of work; at most kRowBlockMax, so that a lane's float32
// sums stay short.
static constexpr int64_t rows_per_block(int64_t C) {
  return kRowBlockValues / C < 16             ? 16
         : kRowBlockValues / C > kRowBlockMax ? kRowBlockMax
                                              : kRowBlockValues / C;
}

// Rows a lane's float32 sums take before they add into the block's: a lane's
// rounding then spans at most kRowStretch + rows / kRowStretch terms, not a
// block's up to kRowBlockMax, about as few as a lane of an NCHW block sums.
constexpr int64_t kRowStretch = 16;

// Values per tile of rows in the channels-last elementwise passes (16 KB of
// float): memory sees the rows nearly in order, and each sweep's coefficients
// load once per tile.
constexpr int64_t kTileValues = 4096;

// Channels whose per-channel math (the row blocks' finish, forward-eval's
// coefficients) runs as one batch of double vectors, over arrays on the stack:
// one channel at a time, that math took about a fifth of (256,512)
// forward-training.
constexpr int kFinishChannels = 64;

// NCHW planes of at most this many bytes (a cache line) are short: the
// forward's statistics and the backward's sums go through memory in order,
// sample by sample (short_planes.h). Channel by channel, such planes are runs
// too short to stream, one every C * HW values, all in the same cache sets.
// Longer planes measured slower that way.
constexpr int64_t kShortPlaneBytes = 64;

// Below this many elements a call runs on the calling thread: handing work to
// a worker costs more than it saves.
constexpr int64_t kSerialBelow = 1 << 16;

// NCHW forward-training (and backward, from kPrefetchBytes) work channel by
// channel (statistics, then the elementwise pass while the channel is in
// cache) from this many elements: below it the tensor stays in L2 anyway, and
// the strided runs of one channel of a small tensor measured slower than
// plain passes.
constexpr int64_t kFuseFrom = 1 << 18;

// The elementwise passes over whole planes or rows (eval, NHWC, the plain
// backward) write with non-temporal stores when the arrays they stream through
// (x and y; x, dy and dx) add up to at least this many bytes, about the share
// of the 32 MB L3 this shared host gives one process: below it, plain stores
// leave y in cache for whoever reads it next; above it, streaming stores keep
// the input from being evicted.
constexpr int64_t kStreamBytes = int64_t(24) << 20;

// NCHW forward-training prefetches the next channel, and backward goes channel
// by channel (its sums prefetching the next sample's run), when x and y (x and
// dy) add up to this many bytes: runs of a few KB are too short for the
// hardware prefetcher, and from about half the L3 on, the tensor is not all in
// it. Below, prefetching only costs. From here the channel-by-channel paths
// also write with streaming stores: the input, which a loop of calls reads
// again, then keeps its place in the L3.
constexpr int64_t kPrefetchBytes = int64_t(16) << 20;

// ---- LayerNorm, RMSNorm and GroupNorm (groupnorm.h)

// Values a row's rough mean (the shift of its sums) is taken from: its first
// ones, rounded to T, so that a constant row's deviations are exactly 0.
constexpr int64_t kShiftValues = 64;
// Rows whose weight-gradient column sums one unit of the S = 1 backward adds
// up in T before it hands them to double: few, so that T's rounding stays at
// a few ulps; fixed by the shape, never by the thread count.
constexpr int64_t kGradRows = 16;
// Blocks of those units, at most: each adds its units' sums in double, and
// the blocks are the units of work of the S = 1 backward.
constexpr int64_t kGradBlocks = 32;
// Channels-last rows a sample's column sums take in T before double.
constexpr int64_t kColumnRows = 16;

}  // namespace tuning
}  // namespace batchnorm
