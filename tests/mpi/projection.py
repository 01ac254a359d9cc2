"""Projects data-parallel efficiency to N nodes from a measured step time.

Model (stated, not measured): each of N nodes computes 1/N of the global
batch, so compute per step is t1 / N (t1 = the measured one-rank step);
the gradients (P float32 values) are summed by a ring all-reduce of
2(N - 1) messages of latency alpha each, moving 2(N - 1)/N x 4P bytes per
node at bandwidth beta:

    t_ar(N) = 2 (N - 1) alpha + 2 (N - 1) / N x 4 P / beta
    efficiency(N) = (t1 / N) / (t1 / N + t_ar(N))

usage: python3 projection.py NAME T1_MS PARAMS GLOBAL_BATCH [ALPHA_US]
Prints the efficiency at N = 2, 4, 8, ... up to the global batch (one row
per node at least) for 10 and 100 Gb/s, and the largest N above 80%.
"""
import sys

name, t1_ms, params, batch = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
alpha = float(sys.argv[5]) * 1e-6 if len(sys.argv) > 5 else 20e-6
t1 = t1_ms * 1e-3


def efficiency(n, beta):
    compute = t1 / n
    t_ar = 2 * (n - 1) * alpha + 2 * (n - 1) / n * 4 * params / beta
    return compute / (compute + t_ar), t_ar


print(f"{name}: one-rank step {t1_ms:.3f} ms, {params} parameters, global batch {batch}, "
      f"alpha {alpha * 1e6:.0f} us")
for gbps in (10, 100):
    beta = gbps * 1e9 / 8
    ns = [n for n in (2, 4, 8, 16, 32, 64, 128) if n <= batch]
    row = "  ".join(f"N={n}: {100 * efficiency(n, beta)[0]:.0f}%" for n in ns)
    best = max((n for n in range(1, batch + 1) if efficiency(n, beta)[0] >= 0.8), default=1)
    print(f"  {gbps:>3} Gb/s: {row}; efficiency >= 80% up to N = {best} "
          f"(all-reduce {efficiency(2, beta)[1] * 1e6:.0f} us at N = 2)")
