#!/usr/bin/python3
"""PyTorch peer harness for bench/norms.mjs: times LayerNorm, RMSNorm (composed
from PyTorch 1.13's ops: it has no RMSNorm), GroupNorm and InstanceNorm2d on
CPU in float32, forward (ATen native_layer_norm / native_group_norm, or the
functional form) and backward (native_layer_norm_backward /
native_group_norm_backward, or autograd for the composed ones), and prints ONE
JSON line {rows: [...]} on stdout. Run with Debian's /usr/bin/python3.

  /usr/bin/python3 bench/peers/torch_norms.py --threads 2 [--iters 15] [--filter REGEX]
"""
import argparse
import json
import re
import statistics
import time

import torch
import torch.nn.functional as F

ROWS = [
    ("layerNorm", (4096, 768), 768),
    ("layerNorm", (4096, 4096), 4096),
    ("layerNorm", (64, 64), 64),
    ("layerNorm", (2, 1 << 22), 1 << 22),
    ("rmsNorm", (4096, 4096), 4096),
    ("groupNorm", (32, 64, 56, 56), 32),
    ("groupNorm", (8, 256, 28, 28), 32),
    ("instanceNorm", (8, 32, 128, 128), None),
]
EPS = 1e-5


def timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter_ns()
        fn()
        ms.append((time.perf_counter_ns() - t0) / 1e6)
    return ms


def calls(norm, shape, arg):
    """(forward, backward) closures on fixed tensors."""
    torch.manual_seed(0)
    x = torch.rand(shape) * 4 - 2
    dy = torch.rand(shape) * 2 - 1
    c = shape[-1] if norm in ("layerNorm", "rmsNorm") else shape[1]
    w = torch.rand(c) * 3 - 1.5
    b = torch.rand(c) * 2 - 1
    if norm == "layerNorm":
        _, mean, rstd = torch.ops.aten.native_layer_norm(x, [arg], w, b, EPS)
        return (lambda: torch.ops.aten.native_layer_norm(x, [arg], w, b, EPS),
                lambda: torch.ops.aten.native_layer_norm_backward(dy, x, [arg], mean, rstd, w, b, [True, True, True]))
    if norm == "groupNorm":
        n, hw = shape[0], shape[2] * shape[3]
        _, mean, rstd = torch.ops.aten.native_group_norm(x, w, b, n, c, hw, arg, EPS)
        return (lambda: torch.ops.aten.native_group_norm(x, w, b, n, c, hw, arg, EPS),
                lambda: torch.ops.aten.native_group_norm_backward(dy, x, mean, rstd, w, n, c, hw, arg, [True, True, True]))
    if norm == "rmsNorm":
        def fwd(xx):
            return xx * torch.rsqrt(xx.pow(2).mean(-1, keepdim=True) + EPS) * w
        xg = x.clone().requires_grad_(True)
        with torch.no_grad():
            f = lambda: fwd(x)
        def bwd():
            y = fwd(xg)
            return torch.autograd.grad(y, xg, dy)
        return f, bwd  # backward includes its forward (autograd keeps no graph between calls)
    if norm == "instanceNorm":
        xg = x.clone().requires_grad_(True)
        wg = w.clone().requires_grad_(True)
        def f():
            with torch.no_grad():
                return F.instance_norm(x, weight=w, bias=b, eps=EPS)
        def bwd():
            y = F.instance_norm(xg, weight=wg, bias=b, eps=EPS)
            return torch.autograd.grad(y, (xg, wg), dy)
        return f, bwd  # backward includes its forward
    raise ValueError(norm)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--filter", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for norm, shape, arg in ROWS:
        fwd, bwd = calls(norm, shape, arg)
        for op, fn in (("forward", fwd), ("backward", bwd)):
            key = f"pytorch/{norm}/{op}/{'x'.join(map(str, shape))}/t{a.threads}"
            if a.filter and not re.search(a.filter, key):
                continue
            with torch.no_grad() if op == "forward" else torch.enable_grad():
                ms = timed(fn, a.iters, a.warmup)
            rows.append({"key": key, "impl": "pytorch", "norm": norm, "op": op, "shape": list(shape), "threads": a.threads,
                         "medianMs": statistics.median(ms), "minMs": min(ms), "iters": a.iters,
                         "note": "backward includes a forward (autograd)" if norm in ("rmsNorm", "instanceNorm") and op == "backward" else ""})
    print(json.dumps({"torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
