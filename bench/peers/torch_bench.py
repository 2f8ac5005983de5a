#!/usr/bin/python3
"""PyTorch peer harness for the batchnorm benchmark suite.

Times one BatchNorm op (ATen native_batch_norm / native_batch_norm_backward)
on CPU, float32, and prints ONE JSON line on stdout. Run with the system
interpreter that has Debian's python3-torch: /usr/bin/python3.

  /usr/bin/python3 bench/peers/torch_bench.py --shape 32,64,56,56 \
      --op forward-training --threads 2 --layout nchw [--iters 50] [--warmup 5] [--cold]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

OPS = ("forward-training", "forward-eval", "backward")
LAYOUTS = ("nchw", "nhwc", "blocked")
MOMENTUM = 0.1
EPS = 1e-5
COLD_BYTES = 128 << 20


def die(msg, code=2):
    print(f"torch_bench: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", required=True, help="comma-separated dims: N,C (BatchNorm1d) or N,C,H,W")
    p.add_argument("--op", required=True, choices=OPS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layout", default="nchw", choices=LAYOUTS)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--cold", action="store_true", help="evict caches (~128 MiB write) before each timed call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alloc", choices=("warm", "default"), default="warm",
                   help="warm (default): run under GLIBC_TUNABLES mmap_max=0 + huge trim_threshold so the "
                        "outputs torch allocates each call reuse already-faulted heap pages (deterministic, "
                        "closest to preallocated outputs); default: glibc's defaults, where big outputs may be "
                        "mmap'ed/trimmed and page-faulted on some calls, run-to-run nondeterministically")
    p.add_argument("--keep-outputs", action="store_true",
                   help="keep the previous call's outputs alive during the next call (naive `y = f(x)` loop); "
                        "default frees them first so the allocator reuses warm pages")
    a = p.parse_args()
    try:
        a.shape = [int(s) for s in a.shape.split(",") if s.strip() != ""]
    except ValueError:
        die(f"bad --shape {a.shape!r}")
    if len(a.shape) not in (2, 3, 4, 5) or any(d <= 0 for d in a.shape):
        die(f"--shape must have 2 (N,C) or 4 (N,C,H,W) positive dims (3/5 also accepted), got {a.shape}")
    if a.threads < 1 or a.iters < 1 or a.warmup < 0:
        die("--threads and --iters must be >= 1, --warmup >= 0")
    return a


WARM_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
REEXEC_ENV = "BATCHNORM_TORCH_BENCH_ALLOC"


def maybe_reexec(a):
    """glibc reads GLIBC_TUNABLES only at startup: re-exec ourselves once with them set."""
    if a.alloc != "warm" or os.environ.get(REEXEC_ENV) == "warm":
        return
    env = dict(os.environ)
    old = env.get("GLIBC_TUNABLES")
    env["GLIBC_TUNABLES"] = f"{old}:{WARM_TUNABLES}" if old else WARM_TUNABLES
    env[REEXEC_ENV] = "warm"
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


def main():
    a = parse_args()
    maybe_reexec(a)
    try:
        import torch
    except ImportError as e:  # wrong interpreter
        die(f"cannot import torch ({e}); run with /usr/bin/python3 (Debian python3-torch)")

    if a.layout == "blocked":
        die("layout 'blocked' (nChw16c) is a oneDNN-only layout; PyTorch CPU tensors have no equivalent", 3)
    if a.layout == "nhwc" and len(a.shape) != 4:
        die("layout 'nhwc' (torch.channels_last) needs a 4-D N,C,H,W shape; "
            "(N,C) is already channel-innermost - use --layout nchw", 3)

    torch.set_num_threads(a.threads)
    if torch.get_num_threads() != a.threads:
        die(f"torch.set_num_threads({a.threads}) -> {torch.get_num_threads()}", 3)
    torch.manual_seed(a.seed)

    mf = torch.channels_last if a.layout == "nhwc" else torch.contiguous_format
    C = a.shape[1]
    x = torch.randn(a.shape, dtype=torch.float32).contiguous(memory_format=mf)
    w = torch.rand(C) + 0.5
    b = torch.randn(C)
    rm = torch.randn(C) * 0.1
    rv = torch.rand(C) + 0.5
    notes = []

    aten = torch.ops.aten
    if a.op == "forward-training":
        def call():
            return aten.native_batch_norm(x, w, b, rm, rv, True, MOMENTUM, EPS)
        notes.append("native_batch_norm(training=True, momentum=0.1): batch stats + normalize + affine + "
                     "running_mean/var update (unbiased var); outputs y, save_mean, save_invstd")
    elif a.op == "forward-eval":
        def call():
            return aten.native_batch_norm(x, w, b, rm, rv, False, MOMENTUM, EPS)
        notes.append("native_batch_norm(training=False): normalize with running stats + affine")
    else:
        dy = torch.randn(a.shape, dtype=torch.float32).contiguous(memory_format=mf)
        with torch.no_grad():
            _, save_mean, save_invstd = aten.native_batch_norm(x, w, b, rm.clone(), rv.clone(), True, MOMENTUM, EPS)
        mask = [True, True, True]

        def call():
            return aten.native_batch_norm_backward(dy, x, w, rm, rv, save_mean, save_invstd, True, EPS, mask)
        notes.append("native_batch_norm_backward(train=True) from saved mean/invstd -> dx, dweight, dbias")

    # Output allocation: in torch 1.13 native_batch_norm.out has no CPU kernel, and
    # native_batch_norm_backward.out is a CompositeExplicitAutograd wrapper (functional + copy_),
    # so the functional ops (which allocate their outputs each call) are the fastest option.
    notes.append("outputs allocated per call (torch 1.13: native_batch_norm.out has no CPU kernel; "
                 "native_batch_norm_backward.out is a functional+copy wrapper); previous outputs "
                 + ("kept alive during the next call" if a.keep_outputs else "freed before the next call"))
    if a.layout == "nhwc":
        notes.append("channels_last input/output")
    if len(a.shape) == 2:
        notes.append("(N,C) BatchNorm1d input: ATen treats stride(1)==1 as channels-last (image_size=1)")

    with torch.no_grad():
        # sanity: output memory format follows the input
        y0 = call()[0]
        if a.layout == "nhwc" and not y0.is_contiguous(memory_format=torch.channels_last):
            notes.append("WARNING: output not channels_last")
        del y0

        cold_buf = torch.empty(COLD_BYTES // 4, dtype=torch.float32).fill_(1.0) if a.cold else None

        for _ in range(a.warmup):
            call()

        clock = time.perf_counter_ns  # monotonic, high resolution
        samples = []
        out = None
        flt0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(a.iters):
            if cold_buf is not None:
                cold_buf.add_(1.0)  # read+write 128 MiB with all torch threads (not timed)
            t0 = clock()
            out = call()
            t1 = clock()
            samples.append((t1 - t0) / 1e6)
            if not a.keep_outputs:
                out = None  # free before the next call: glibc reuses the same (warm, faulted-in) chunk
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - flt0) / a.iters
    notes.append("allocator: " + ("warm (GLIBC_TUNABLES " + WARM_TUNABLES + ")" if a.alloc == "warm"
                                  else "glibc defaults"))
    notes.append(f"minor page faults per timed call: {faults:.0f}")

    res = {
        "impl": "pytorch",
        "version": torch.__version__,
        "shape": a.shape,
        "op": a.op,
        "layout": a.layout,
        "threads": a.threads,
        "cold": bool(a.cold),
        "median_ms": round(statistics.median(samples), 6),
        "min_ms": round(min(samples), 6),
        "samples": len(samples),
        "notes": "; ".join(notes),
    }
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
