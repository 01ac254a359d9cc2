#!/usr/bin/env python3
"""The README's NTM table: runs `rnn ntm TASK --seed S` (the defaults) for
seeds 1-5, one run at a time, then prints one markdown row per run from its
metrics.json and draws the learning curves with `rnn ntm-curves`.

    python3 docs/ntm_table.py copy recall repeat-copy [--rnn ./target/release/rnn]
        [--out runs/ntm-table] [--report-only] [-- extra rnn ntm flags]

Standard library only. Runs go to OUT/TASK-sS (replaced when rerun); the
curves to OUT/TASK-curves.png.
"""

import argparse
import json
import pathlib
import subprocess
import sys


def run(rnn, task, seed, folder, extra):
    cmd = [rnn, "ntm", task, "--seed", str(seed), "--quiet", "--out", str(folder), "--overwrite"]
    subprocess.run(cmd + extra, check=True, stdout=subprocess.DEVNULL)


def row(task, seed, m):
    conv = m["converged_at"]
    table = m["generalisation"]

    def rate(size, repeats=None):
        for r in table:
            if r["size"] == size and r.get("repeats") == repeats:
                return f"{100 * r['bit_error_rate']:.2f}%"
        return "-"

    if task == "copy":
        gen = f"length 120: {rate(120)}"
    elif task == "repeat-copy":
        mx = m["task_config"]["max_repeats"]
        gen = f"length 20: {rate(20)}; length 10 x {2 * mx} repeats: {rate(10, 2 * mx)}"
    elif task == "recall":
        gen = f"12 items: {rate(12)}"
    else:
        gen = f"40 items: {rate(40)}"
    # The held-out evaluation of the machine the run ended with: the
    # selected one, or the last.
    evals = m["evaluations"]
    at = m.get("selected_at") or (evals[-1]["sequences"] if evals else None)
    final = next((e["bit_errors"] for e in evals if e["sequences"] == at), float("nan"))
    sel = m.get("selected_at")
    sel = f"{sel:,}" if sel is not None else "-"
    return (
        f"| {task} | {seed} | {f'{conv:,}' if conv is not None else 'not converged'} "
        f"| {m['sequences']:,} | {sel} | {m['seconds']:.1f} s | {m['wall_seconds']:.1f} s "
        f"| {final:.3f} | {gen} |"
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tasks", nargs="+")
    p.add_argument("--rnn", default="./target/release/rnn")
    p.add_argument("--out", default="runs/ntm-table")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--report-only", action="store_true")
    args, extra = p.parse_known_args()
    extra = [e for e in extra if e != "--"]
    out = pathlib.Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(
        "| task | seed | sequences to < 0.1 (held-out) | trained | selected | training | "
        "whole run | final machine: held-out bit errors/seq | "
        "generalisation (% bit errors) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for task in args.tasks:
        folders = []
        for seed in seeds:
            folder = out / f"{task}-s{seed}"
            if not args.report_only:
                run(args.rnn, task, seed, folder, extra)
            m = json.loads((folder / "metrics.json").read_text())
            print(row(task, seed, m), flush=True)
            folders.append(str(folder))
        subprocess.run(
            [args.rnn, "ntm-curves", *folders, "--out", str(out / f"{task}-curves.png"), "--overwrite"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


if __name__ == "__main__":
    sys.exit(main())
