#!/usr/bin/env python3
"""The PyTorch side of `rnn bench`.

Times PyTorch's nn.RNN / nn.LSTM / nn.GRU on the same weights and inputs as
librnn, with the same thread count, and writes PyTorch's outputs and gradients
so that `rnn bench` can report the max abs difference.

Two ways to run it:

* as a server for `rnn bench --pytorch` (the Rust side interleaves its own
  timings with this process's, A B A B, so machine drift cancels):

      python3 benches/pytorch/bench.py --server --threads 2

  reads one command per line on stdin and answers one line on stdout:

      time <mode> <model.safetensors> <inputs.safetensors> <iters>  -> ms per iteration
      check <mode> <model.safetensors> <inputs.safetensors> <out.safetensors> -> "ok"

  <mode> is `forward` (no grad) or `train` (forward + backward of
  sum(y * g) w.r.t. the input and every parameter, no optimizer). The model
  file is a librnn model (safetensors, PyTorch parameter names, metadata
  `cell`, `input_size`, `hidden_size`, `num_layers`, `bias`,
  `bidirectional`) or a librnn NTM file (metadata `model = ntm` and the keys
  of docs/ntm.md; the model is benches/pytorch/ntm.py's); the inputs file holds `x` [T, B, I] and `g` [T, B, D*H],
  and for a variable-length row `lengths` [B] (float32 values of integers):
  then the model runs as its users must write it, pack_padded_sequence(x,
  lengths, enforce_sorted=False) -> module -> pad_packed_sequence.
  `check` writes `y` (forward) or `y`, `grad.x` and `grad.<param>` (train).

* standalone, on a grid given as JSON (or the default grid), printing medians:

      python3 benches/pytorch/bench.py --threads 2 [--grid grid.json] [--repeats 5]

Needs `pip install torch safetensors` (CI does not run it).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DEFAULT_GRID = [
    {"name": "tiny", "T": 50, "B": 1, "I": 32, "H": 64},
    {"name": "finance", "T": 20, "B": 64, "I": 6, "H": 64},
    {"name": "medium", "T": 100, "B": 32, "I": 128, "H": 256},
    {"name": "large", "T": 50, "B": 64, "I": 512, "H": 1024},
]

_cache = {}


def build(cell, i, h, layers, bias, bidirectional, proj_size=0):
    kw = dict(num_layers=layers, bias=bias, bidirectional=bidirectional, batch_first=False)
    if proj_size:
        kw["proj_size"] = proj_size
    if cell in ("rnn_tanh", "rnn_relu"):
        return torch.nn.RNN(i, h, nonlinearity=cell[4:], **kw)
    if cell == "lstm":
        return torch.nn.LSTM(i, h, **kw)
    if cell == "gru":
        return torch.nn.GRU(i, h, **kw)
    raise SystemExit(f"bench.py: cell {cell!r} has no PyTorch module")


def build_ntm(meta):
    """The NTM of docs/ntm.md (benches/pytorch/ntm.py) from librnn metadata."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ntm import NTM

    sizes = ("input_size", "output_size", "controller_size", "memory_rows", "memory_width",
             "read_heads", "write_heads", "shift_range")
    return NTM(controller=meta["controller"], memory=meta["memory"],
               memory_init=float(meta["memory_init"]), **{k: int(meta[k]) for k in sizes})


def output(out):
    """The output sequence: nn.RNN/LSTM/GRU return (y, state), the NTM y."""
    return out[0] if isinstance(out, tuple) else out


def load(model_path, inputs_path):
    key = (model_path, inputs_path)
    if key in _cache:
        return _cache[key]
    with safe_open(model_path, "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("model") == "ntm":
        m = build_ntm(meta)
    else:
        m = build(
            meta["cell"],
            int(meta["input_size"]),
            int(meta["hidden_size"]),
            int(meta["num_layers"]),
            meta["bias"] == "true",
            meta["bidirectional"] == "true",
            int(meta.get("proj_size", "0")),
        )
    m.load_state_dict(state)
    with safe_open(inputs_path, "pt") as f:
        x = f.get_tensor("x").contiguous()
        g = f.get_tensor("g").contiguous()
        lengths = f.get_tensor("lengths").to(torch.int64) if "lengths" in f.keys() else None
    if lengths is not None:
        m = Packed(m, lengths, x.shape[0])
    _cache.clear()
    _cache[key] = (m, x, g)
    return m, x, g


class Packed(torch.nn.Module):
    """A module on a padded batch with lengths, as PyTorch users write it."""

    def __init__(self, inner, lengths, total_length):
        super().__init__()
        self.inner = inner
        self.lengths = lengths
        self.total_length = total_length

    def forward(self, x):
        rnn = torch.nn.utils.rnn
        packed = rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
        y, _ = self.inner(packed)
        return rnn.pad_packed_sequence(y, total_length=self.total_length)[0]

    def named_parameters(self, *args, **kwargs):
        return self.inner.named_parameters(*args, **kwargs)


def forward(m, x):
    with torch.no_grad():
        return output(m(x))


def train(m, x, g):
    xr = x.detach().requires_grad_(True)
    m.zero_grad(set_to_none=True)
    y = output(m(xr))
    (y * g).sum().backward()
    return y, xr


def run(mode, m, x, g):
    if mode == "forward":
        forward(m, x)
    else:
        train(m, x, g)


def time_it(mode, m, x, g, iters):
    # Untimed calls first (iters / 10, at least one), as `rnn bench` does.
    for _ in range(max(1, iters // 10)):
        run(mode, m, x, g)
    start = time.perf_counter()
    for _ in range(iters):
        run(mode, m, x, g)
    return (time.perf_counter() - start) * 1000.0 / iters


def check(mode, m, x, g, out_path):
    if mode == "forward":
        y = forward(m, x)
        tensors = {"y": y.contiguous()}
    else:
        y, xr = train(m, x, g)
        tensors = {"y": y.detach().contiguous(), "grad.x": xr.grad.contiguous()}
        for name, p in m.named_parameters():
            tensors["grad." + name] = p.grad.contiguous()
    save_file(tensors, out_path)


def server():
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "time":
                mode, model, inputs, iters = parts[1], parts[2], parts[3], int(parts[4])
                m, x, g = load(model, inputs)
                print(f"{time_it(mode, m, x, g, iters):.6f}", flush=True)
            elif parts[0] == "check":
                mode, model, inputs, out = parts[1:5]
                m, x, g = load(model, inputs)
                check(mode, m, x, g, out)
                print("ok", flush=True)
            elif parts[0] == "version":
                print(f"torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
            else:
                print(f"error unknown command {parts[0]}", flush=True)
        except Exception as e:  # report, keep serving
            print(f"error {type(e).__name__}: {e}".replace("\n", " "), flush=True)


def standalone(grid, repeats, cells):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'config':10} {'cell':9} {'mode':8} {'ms (median)':>12}")
    for c in grid:
        for cell in cells:
            m = build(cell, c["I"], c["H"], 1, True, bool(c.get("bidirectional", False)))
            d = 2 if c.get("bidirectional") else 1
            x = torch.randn(c["T"], c["B"], c["I"])
            g = torch.randn(c["T"], c["B"], d * c["H"])
            for mode in ("forward", "train"):
                run(mode, m, x, g)
                times = sorted(time_it(mode, m, x, g, 1) for _ in range(repeats))
                print(f"{c['name']:10} {cell:9} {mode:8} {times[len(times) // 2]:12.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--grid", help="JSON list of {name, T, B, I, H[, bidirectional]}")
    ap.add_argument("--cells", default="rnn_tanh,lstm,gru")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_grad_enabled(True)
    if a.server:
        server()
    else:
        grid = json.load(open(a.grid)) if a.grid else DEFAULT_GRID
        standalone(grid, a.repeats, a.cells.split(","))


if __name__ == "__main__":
    main()
