"""Compares a distributed run's metrics.json with the single-process run's.

usage: python3 compare.py ONE.json MANY.json --world N --per-rank A,B[,..]
           [--steps 20] [--rtol 1e-5] [--rmse-rtol 0.01] [--exact]

Checks: world_size and per_rank_batch as given; the first --steps step
losses within --rtol relative (--exact: equal); the test RMSE within
--rmse-rtol relative (rnn train), or the NTM's held-out evaluations.
"""
import argparse
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("one")
ap.add_argument("many")
ap.add_argument("--world", type=int, required=True)
ap.add_argument("--per-rank", required=True)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--rtol", type=float, default=1e-5)
ap.add_argument("--rmse-rtol", type=float, default=0.01)
ap.add_argument("--exact", action="store_true")
a = ap.parse_args()

one, many = json.load(open(a.one)), json.load(open(a.many))
fail = []
if many.get("world_size") != a.world:
    fail.append(f"world_size {many.get('world_size')} != {a.world}")
want = [int(v) for v in a.per_rank.split(",")]
if many.get("per_rank_batch") != want:
    fail.append(f"per_rank_batch {many.get('per_rank_batch')} != {want}")
s1, s2 = one["training"]["step_loss"], many["training"]["step_loss"]
if len(s1) < a.steps or len(s2) < a.steps:
    fail.append(f"fewer than {a.steps} steps: {len(s1)}, {len(s2)}")
worst = 0.0
for k, (x, y) in enumerate(zip(s1[: a.steps], s2[: a.steps])):
    rel = abs(x - y) / max(abs(x), 1e-30)
    worst = max(worst, rel)
    if (a.exact and x != y) or rel > a.rtol:
        fail.append(f"step {k + 1}: loss {y!r} vs {x!r} (relative {rel:.2e})")
if "test" in one:
    r1, r2 = one["test"]["rmse"], many["test"]["rmse"]
    rel = abs(r1 - r2) / r1
    if rel > a.rmse_rtol or (a.exact and r1 != r2):
        fail.append(f"test RMSE {r2} vs {r1} (relative {rel:.2e})")
    tail = f"test RMSE {r2:.6f} vs {r1:.6f}"
else:
    e1, e2 = one["evaluations"], many["evaluations"]
    if [e["sequences"] for e in e1] != [e["sequences"] for e in e2]:
        fail.append("evaluations at different sequence counts")
    for x, y in zip(e1, e2):
        rel = abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-30)
        if rel > 1e-3:
            fail.append(f"held-out loss at {x['sequences']}: {y['loss']} vs {x['loss']}")
    tail = f"held-out loss {e2[-1]['loss']:.6f} vs {e1[-1]['loss']:.6f}"
if fail:
    print("compare.py: " + "; ".join(fail[:5]), file=sys.stderr)
    sys.exit(1)
print(f"  {a.world} ranks {want}: first {a.steps} step losses within {worst:.1e}; {tail}")
