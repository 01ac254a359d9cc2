"""What the Python call adds to a tiny LSTM forward, and PyTorch's time for
the same call.

The model: an LSTM, T = 50, B = 1, I = 32, H = 64 (one layer). Times, in
microseconds (median of 5 x --repeats calls after a warm-up):
  rust    the Rust forward alone, timed inside the extension (no Python)
  python  librnn's LSTM.forward(x) from Python (arrays in and out)
  torch   torch.nn.LSTM(x) under torch.no_grad() (when torch is installed)
Both libraries run with the same number of threads (--threads, default 1).

usage: python3 bindings/python/bench/overhead.py [--repeats N] [--threads N]
"""
import argparse
import os
import statistics
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--repeats", type=int, default=2000)
ap.add_argument("--threads", type=int, default=1)
args = ap.parse_args()
os.environ["RNN_NUM_THREADS"] = str(args.threads)  # read by librnn at its first call

import numpy as np  # noqa: E402

import librnn  # noqa: E402

T, B, I, H = 50, 1, 32, 64
x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
model = librnn.LSTM(I, H, seed=1)


def calls_us(fn):
    """The microseconds of each of --repeats calls of fn, after a warm-up."""
    for _ in range(max(args.repeats // 10, 10)):
        fn()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e3)
    return times


# Five rounds, alternating the two, all calls pooled: the machine is noisy.
rust_times, python_times = [], []
for _ in range(5):
    rust_times += model._time_forward(x, args.repeats)
    python_times += calls_us(lambda: model.forward(x))
rust = statistics.median(rust_times) * 1e6
python = statistics.median(python_times)
print(f"LSTM T={T} B={B} I={I} H={H}, {args.threads} thread(s), median of 5 x {args.repeats} calls")
print(f"  rust    {rust:8.1f} us")
print(f"  python  {python:8.1f} us   (the Python call adds {python - rust:.1f} us)")
try:
    import torch
except ImportError:
    print("  torch   (not installed)")
else:
    torch.set_num_threads(args.threads)
    tm = torch.nn.LSTM(I, H)
    tx = torch.from_numpy(x)
    with torch.no_grad():
        tt = statistics.median(calls_us(lambda: tm(tx)) + calls_us(lambda: tm(tx)))
    print(f"  torch   {tt:8.1f} us   (torch {torch.__version__}; librnn from Python {tt / python:.2f}x faster)")
