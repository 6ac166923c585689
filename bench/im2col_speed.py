"""Time the im2col reference solution against torch's conv2d on the CPU.

Runs ``Convolution.forward`` + ``Convolution.backward`` of ``solutions/im2col/im2col.py`` (numpy) and
``torch.nn.functional.conv2d`` forward + backward (autograd) on the same input, with the same number of
threads, alternating between the two, and prints the median of each and their ratio. The target for the
reference is a ratio of at most 5 on the default problem (a batch of 64 images of 16 channels, 32x32, 32
filters of 3x3, stride 1, pad 1).

    python bench/im2col_speed.py                  # float32, 1 thread
    python bench/im2col_speed.py --dtype float64 --repeats 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parent.parent
SOLUTION_DIR = KIT_ROOT / "solutions" / "im2col"
TARGET_RATIO = 5.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per batch, N (default: 64)")
    parser.add_argument("--channels", type=int, default=16, help="input channels, C (default: 16)")
    parser.add_argument("--size", type=int, default=32, help="image height and width, H = W (default: 32)")
    parser.add_argument("--filters", type=int, default=32, help="number of filters, FN (default: 32)")
    parser.add_argument("--kernel", type=int, default=3, help="filter height and width (default: 3)")
    parser.add_argument("--stride", type=int, default=1, help="stride (default: 1)")
    parser.add_argument("--pad", type=int, default=1, help="zero padding on every side (default: 1)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="dtype of the data, the same for numpy and torch (default: float32)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for numpy's BLAS and for torch (default: 1)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each, after one warm-up (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input (default: 0)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # BLAS reads its thread count when numpy is imported, so set it before the first import.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(SOLUTION_DIR))
    from im2col import Convolution  # the reference solution

    rng = np.random.default_rng(args.seed)
    dtype = np.dtype(args.dtype)
    x = rng.standard_normal((args.batch, args.channels, args.size, args.size)).astype(dtype)
    W = (rng.standard_normal((args.filters, args.channels, args.kernel, args.kernel)) * 0.1).astype(dtype)
    b = rng.standard_normal(args.filters).astype(dtype)
    layer = Convolution(W, b, stride=args.stride, pad=args.pad)
    dout = rng.standard_normal(layer.forward(x).shape).astype(dtype)

    xt, Wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, W, b))
    doutt = torch.from_numpy(dout)

    def run_numpy():
        layer.forward(x)
        layer.backward(dout)

    def run_torch():
        for t in (xt, Wt, bt):
            t.grad = None
        torch.nn.functional.conv2d(xt, Wt, bt, stride=args.stride, padding=args.pad).backward(doutt)

    # Same answer first (a benchmark of a wrong result is worthless).
    run_numpy()
    run_torch()
    tolerance = 1e-3 if dtype == np.float32 else 1e-9
    dx = layer.backward(dout)
    for name, mine, theirs in (("dx", dx, xt.grad), ("dW", layer.dW, Wt.grad), ("db", layer.db, bt.grad)):
        theirs = theirs.numpy()
        error = np.abs(mine - theirs).max() / max(np.abs(theirs).max(), 1e-12)
        if not error < tolerance:
            print(f"error: the reference's {name} differs from torch's by a relative {error:.1e}", file=sys.stderr)
            return 1

    times = {"numpy reference": [], "torch conv2d": []}
    for _ in range(args.repeats):  # alternate so that both see the same machine load
        for name, fn in (("numpy reference", run_numpy), ("torch conv2d", run_torch)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    print(f"forward + backward of x {x.shape}, {args.filters} filters {args.kernel}x{args.kernel}, stride "
          f"{args.stride}, pad {args.pad}, {args.dtype}, {args.threads} thread(s), median of {args.repeats}:")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        spread = f"min {min(times[name]) * 1e3:.1f} ms, max {max(times[name]) * 1e3:.1f} ms"
        print(f"  {name:16s} {value * 1e3:8.1f} ms   ({spread})")
    ratio = medians["numpy reference"] / medians["torch conv2d"]
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"ratio numpy / torch: {ratio:.2f}x ({verdict} the {TARGET_RATIO:g}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
