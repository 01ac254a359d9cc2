#!/usr/bin/env python3
"""PyTorch Neural Turing Machine, exactly as specified in docs/ntm.md.

This file is two things:

* an importable, dtype-agnostic reference implementation, ``class NTM``, used
  by ``tests/fixtures/gen_ntm.py`` (in float64) to write the parity fixtures
  for ``rnn_models::ntm``;
* the PyTorch side of the NTM speed comparison (float32, the paper's copy-task
  configuration), as a small CLI:

      python3 benches/pytorch/ntm.py --threads 2 --batch 32 [--seq-len 20] [--repeats 5] [--iters K]

  builds the copy-task NTM (LSTM controller, C = 100, N = 128, M = 20, R = 1,
  W = 1, S = 1, I = 9, O = 8, constant memory 1e-6), a random input
  x in {0, 1} of shape [T = 2L + 1, B, 9] and random targets in {0, 1} of
  shape [T, B, 8], and times

    (a) ``forward``: the forward pass under ``torch.no_grad()``;
    (b) ``train``: one training step = forward + mean
        ``binary_cross_entropy_with_logits(y, target)`` + backward +
        ``torch.optim.RMSprop(lr=1e-4, momentum=0.9, alpha=0.95, eps=1e-10)``
        step (gradients zeroed before each step).

  After a warm-up, each of ``--repeats`` measurements is the mean over
  ``--iters`` iterations (default: chosen so that one measurement takes about
  0.25 s); the medians are printed as one JSON line on stdout:

      {"batch": B, "seq_len": T, "forward_ms": ..., "train_ms": ...,
       "train_ms_per_sequence": train_ms / B}

  ``--threads N`` calls ``torch.set_num_threads(N)`` (N > 0; 0 keeps
  PyTorch's default).

The model
---------
Parameters (``state_dict()`` keys, shapes as in docs/ntm.md):
``controller.weight_ih`` [4C, U], ``controller.weight_hh`` [4C, C],
``controller.bias_ih``/``controller.bias_hh`` [4C] (LSTM controller, gates
i, f, g, o as torch.nn.LSTMCell) or ``controller.weight`` [C, U],
``controller.bias`` [C] (feed-forward controller, h = tanh(W u + b));
``heads.weight`` [P, C], ``heads.bias`` [P]; ``output.weight`` [O, C + R*M],
``output.bias`` [O]; ``init.read`` [R, M], ``init.weight_logits`` [R+W, N],
``init.h``/``init.c`` [C] (LSTM only), ``init.memory`` [N, M] (learned
memory only). U = I + R*M, K = 2S + 1, P = R*(M+K+3) + W*(3M+K+3).

``forward(x)`` takes x [T, B, I] (time-major) and returns the logits
y [T, B, O]. It is written directly from the step equations of docs/ntm.md,
batched over B and over the heads, with a plain loop over time. The dtype is
that of the parameters (``NTM(..., dtype=torch.float64)`` or ``.double()``);
x must have the same dtype.

Needs ``pip install torch`` (CI does not run this file).
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-8  # inside the norms of the cosine similarity


# --------------------------------------------------------------------------
# Elementary functions in the stable forms of docs/ntm.md
# --------------------------------------------------------------------------
def softplus(x):
    """max(x, 0) + log1p(exp(-|x|))."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x)))


def softmax(z, dim=-1):
    """Max-subtracted softmax (the max is a constant shift: no gradient)."""
    e = torch.exp(z - z.amax(dim=dim, keepdim=True).detach())
    return e / e.sum(dim=dim, keepdim=True)


def cosine_similarity(key, mem):
    """key [B, H, M], mem [B, N, M] -> [B, H, N]:
    (k . M_i) / (sqrt(|k|^2 + eps) * sqrt(|M_i|^2 + eps))."""
    dot = torch.matmul(key, mem.transpose(1, 2))                     # [B, H, N]
    knorm = torch.sqrt((key * key).sum(-1, keepdim=True) + EPS)      # [B, H, 1]
    mnorm = torch.sqrt((mem * mem).sum(-1) + EPS).unsqueeze(1)       # [B, 1, N]
    return dot / (knorm * mnorm)


def circular_shift(wg, s, S):
    """ws_i = sum_{j=0}^{K-1} s_j * wg[(i - (j - S)) mod N].

    wg [B, H, N], s [B, H, K]. torch.roll(v, k)[i] = v[(i - k) mod N], so the
    term of shift j - S is s_j * roll(wg, j - S)."""
    K = s.shape[-1]
    ws = s[..., 0:1] * torch.roll(wg, shifts=0 - S, dims=-1)
    for j in range(1, K):
        ws = ws + s[..., j:j + 1] * torch.roll(wg, shifts=j - S, dims=-1)
    return ws


def sharpen(ws, gamma):
    """w_i = ws_i^gamma / sum_n ws_n^gamma, as exp(gamma ln ws_i - max) / sum;
    ws_i = 0 gives w_i = 0 (and no NaN gradient). ws [B, H, N], gamma [B, H, 1]."""
    pos = ws > 0
    logw = gamma * torch.log(torch.where(pos, ws, torch.ones_like(ws)))
    logw = torch.where(pos, logw, torch.full_like(logw, -math.inf))
    e = torch.exp(logw - logw.amax(dim=-1, keepdim=True).detach())
    return e / e.sum(dim=-1, keepdim=True)


# --------------------------------------------------------------------------
class NTM(nn.Module):
    def __init__(self, controller="lstm", input_size=9, output_size=8, controller_size=100,
                 memory_rows=128, memory_width=20, read_heads=1, write_heads=1, shift_range=1,
                 memory="constant", memory_init=1e-6, dtype=None):
        super().__init__()
        if controller not in ("lstm", "feedforward"):
            raise ValueError("controller must be 'lstm' or 'feedforward', not %r" % (controller,))
        if memory not in ("constant", "learned"):
            raise ValueError("memory must be 'constant' or 'learned', not %r" % (memory,))
        for name, v, lo in (("input_size", input_size, 1), ("output_size", output_size, 1),
                            ("controller_size", controller_size, 1), ("memory_rows", memory_rows, 1),
                            ("memory_width", memory_width, 1), ("read_heads", read_heads, 0),
                            ("write_heads", write_heads, 0), ("shift_range", shift_range, 0)):
            if int(v) != v or v < lo:
                raise ValueError("%s must be an integer >= %d, not %r" % (name, lo, v))
        if read_heads + write_heads < 1:
            raise ValueError("need at least one head")
        self.controller_kind = controller
        self.I, self.O, self.C = input_size, output_size, controller_size
        self.N, self.M = memory_rows, memory_width
        self.R, self.W, self.S = read_heads, write_heads, shift_range
        self.K = 2 * shift_range + 1
        self.U = input_size + read_heads * memory_width
        self.read_len = self.M + self.K + 3            # key, beta, g, shift[K], gamma
        self.write_len = 3 * self.M + self.K + 3       # ... + erase[M], add[M]
        self.P = self.R * self.read_len + self.W * self.write_len
        self.memory_kind = memory
        self.memory_init = float(memory_init)

        C, U, P, O, N, M, R, W = self.C, self.U, self.P, self.O, self.N, self.M, self.R, self.W

        def par(*shape):
            return nn.Parameter(torch.empty(*shape, dtype=dtype))

        # Plain containers so that state_dict() keys are exactly the names of docs/ntm.md.
        self.controller = nn.Module()
        if controller == "lstm":
            self.controller.weight_ih = par(4 * C, U)
            self.controller.weight_hh = par(4 * C, C)
            self.controller.bias_ih = par(4 * C)
            self.controller.bias_hh = par(4 * C)
        else:
            self.controller.weight = par(C, U)
            self.controller.bias = par(C)
        self.heads = nn.Module()
        self.heads.weight = par(P, C)
        self.heads.bias = par(P)
        self.output = nn.Module()
        self.output.weight = par(O, C + R * M)
        self.output.bias = par(O)
        self.init = nn.Module()
        self.init.read = par(R, M)
        self.init.weight_logits = par(R + W, N)
        if controller == "lstm":
            self.init.h = par(C)
            self.init.c = par(C)
        if memory == "learned":
            self.init.memory = par(N, M)
        self.reset_parameters()

    def parameter_names(self):
        """The parameter names in the order of docs/ntm.md."""
        if self.controller_kind == "lstm":
            names = ["controller.weight_ih", "controller.weight_hh",
                     "controller.bias_ih", "controller.bias_hh"]
        else:
            names = ["controller.weight", "controller.bias"]
        names += ["heads.weight", "heads.bias", "output.weight", "output.bias",
                  "init.read", "init.weight_logits"]
        if self.controller_kind == "lstm":
            names += ["init.h", "init.c"]
        if self.memory_kind == "learned":
            names += ["init.memory"]
        return names

    @torch.no_grad()
    def reset_parameters(self):
        """A plain default initialisation (the fixtures and the benchmark do
        not depend on it being anything in particular): PyTorch's uniform
        +-1/sqrt(fan_in) for the linear maps (fan_in = C for the LSTM, as
        nn.LSTMCell), zero initial reads, state and weight logits (uniform
        initial weightings), learned memory uniform +-1/sqrt(N + M)."""
        def uni(p, fan_in):
            b = 1.0 / math.sqrt(fan_in)
            p.uniform_(-b, b)
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if hasattr(self.controller, n):
                uni(getattr(self.controller, n), self.C)
        for n in ("weight", "bias"):
            if hasattr(self.controller, n):
                uni(getattr(self.controller, n), self.U)
        uni(self.heads.weight, self.C)
        uni(self.heads.bias, self.C)
        uni(self.output.weight, self.C + self.R * self.M)
        uni(self.output.bias, self.C + self.R * self.M)
        self.init.read.zero_()
        self.init.weight_logits.zero_()
        if self.controller_kind == "lstm":
            self.init.h.zero_()
            self.init.c.zero_()
        if self.memory_kind == "learned":
            uni(self.init.memory, self.N + self.M)

    # ------------------------------------------------------------------
    def lstm_step(self, u, h, c):
        """(h, c) = LSTMCell(u, (h, c)), gates i, f, g, o."""
        ct = self.controller
        gates = F.linear(u, ct.weight_ih, ct.bias_ih) + F.linear(h, ct.weight_hh, ct.bias_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def address(self, mem, w_prev, key, beta_raw, g_raw, shift_raw, gamma_raw, trace=None):
        """One addressing step for all heads at once.

        mem [B, N, M] (M_{t-1}), w_prev [B, H, N], key [B, H, M],
        beta_raw, g_raw, gamma_raw [B, H, 1], shift_raw [B, H, K] -> w_t [B, H, N]."""
        beta = softplus(beta_raw)
        g = torch.sigmoid(g_raw)
        s = softmax(shift_raw, dim=-1)
        gamma = 1 + softplus(gamma_raw)
        sim = cosine_similarity(key, mem)
        wc = softmax(beta * sim, dim=-1)
        wg = g * wc + (1 - g) * w_prev
        ws = circular_shift(wg, s, self.S)
        w = sharpen(ws, gamma)
        if trace is not None:
            trace.append({"wc": wc, "wg": wg, "ws": ws, "w": w, "s": s})
        return w

    def initial_state(self, B, dtype):
        init = self.init
        r = init.read.unsqueeze(0).expand(B, self.R, self.M)
        w = softmax(init.weight_logits, dim=-1).unsqueeze(0).expand(B, self.R + self.W, self.N)
        if self.controller_kind == "lstm":
            h = init.h.unsqueeze(0).expand(B, self.C)
            c = init.c.unsqueeze(0).expand(B, self.C)
        else:
            h = c = None
        if self.memory_kind == "learned":
            mem = init.memory.unsqueeze(0).expand(B, self.N, self.M)
        else:
            mem = torch.full((B, self.N, self.M), self.memory_init, dtype=dtype,
                             device=init.read.device)
        return r, w, h, c, mem

    def forward(self, x, trace=None):
        """x [T, B, I] -> logits y [T, B, O].

        With ``trace`` a list, appends the initial weightings as
        {"w": w_{-1} [B, R+W, N]} and then, per step, a dict with the
        intermediate weightings "wc", "wg", "ws", "w" ([B, R+W, N], reads
        first) and the shift distribution "s" [B, R+W, K]."""
        T, B, I = x.shape
        if I != self.I:
            raise ValueError("x has %d features, the model %d" % (I, self.I))
        R, W, M, K = self.R, self.W, self.M, self.K
        LR, LW = self.read_len, self.write_len
        r, w, h, c, mem = self.initial_state(B, x.dtype)
        if trace is not None:
            trace.append({"w": w})
        ys = []
        for t in range(T):
            u = torch.cat([x[t], r.reshape(B, R * M)], dim=1)
            if self.controller_kind == "lstm":
                h, c = self.lstm_step(u, h, c)
            else:
                h = torch.tanh(F.linear(u, self.controller.weight, self.controller.bias))
            p = F.linear(h, self.heads.weight, self.heads.bias)             # [B, P]
            pr = p[:, :R * LR].reshape(B, R, LR)
            pw = p[:, R * LR:].reshape(B, W, LW)
            a = torch.cat([pr, pw[:, :, :LR]], dim=1)                        # [B, R+W, LR]
            w = self.address(mem, w,
                             key=a[:, :, :M],
                             beta_raw=a[:, :, M:M + 1],
                             g_raw=a[:, :, M + 1:M + 2],
                             shift_raw=a[:, :, M + 2:M + 2 + K],
                             gamma_raw=a[:, :, M + 2 + K:M + 3 + K],
                             trace=trace)
            w_read, w_write = w[:, :R], w[:, R:]
            # reads from M_{t-1}, before the write
            r = torch.matmul(w_read, mem)                                    # [B, R, M]
            if W > 0:
                erase = torch.sigmoid(pw[:, :, LR:LR + M])                   # [B, W, M]
                add = pw[:, :, LR + M:LR + 2 * M]                            # [B, W, M]
                # all erases, then all adds
                keep = 1 - w_write.unsqueeze(-1) * erase.unsqueeze(-2)       # [B, W, N, M]
                keep = keep[:, 0] if W == 1 else torch.prod(keep, dim=1)
                mem = mem * keep + torch.matmul(w_write.transpose(1, 2), add)
            ys.append(F.linear(torch.cat([h, r.reshape(B, R * M)], dim=1),
                               self.output.weight, self.output.bias))
        return torch.stack(ys, dim=0)


# --------------------------------------------------------------------------
# Speed benchmark (copy task, float32)
# --------------------------------------------------------------------------
COPY_TASK = dict(controller="lstm", input_size=9, output_size=8, controller_size=100,
                 memory_rows=128, memory_width=20, read_heads=1, write_heads=1,
                 shift_range=1, memory="constant", memory_init=1e-6)


def _mean_ms(fn, iters):
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) * 1000.0 / iters


def _auto_iters(fn, target_s=0.25):
    start = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - start, 1e-6)
    return max(1, int(round(target_s / dt)))


def bench(batch, seq_len, repeats, iters=None, seed=0):
    torch.manual_seed(seed)
    model = NTM(dtype=torch.float32, **COPY_TASK)
    T = 2 * seq_len + 1
    x = torch.randint(0, 2, (T, batch, COPY_TASK["input_size"])).float()
    target = torch.randint(0, 2, (T, batch, COPY_TASK["output_size"])).float()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, momentum=0.9, alpha=0.95, eps=1e-10)

    def forward():
        with torch.no_grad():
            model(x)

    def train():
        opt.zero_grad(set_to_none=True)
        y = model(x)
        loss = F.binary_cross_entropy_with_logits(y, target)
        loss.backward()
        opt.step()

    out = {}
    for name, fn in (("forward", forward), ("train", train)):
        for _ in range(2):  # warm-up
            fn()
        n = iters if iters else _auto_iters(fn)
        out[name] = statistics.median(_mean_ms(fn, n) for _ in range(repeats))
    return {"batch": batch, "seq_len": T, "forward_ms": out["forward"], "train_ms": out["train"],
            "train_ms_per_sequence": out["train"] / batch}


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch NTM (docs/ntm.md): copy-task speed benchmark")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=20,
                    help="copy-task sequence length L; the NTM sees T = 2L + 1 steps")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=0,
                    help="iterations per measurement (0: about 0.25 s per measurement)")
    a = ap.parse_args(argv)
    if a.batch < 1 or a.seq_len < 1 or a.repeats < 1 or a.iters < 0:
        ap.error("--batch, --seq-len and --repeats must be >= 1, --iters >= 0")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    res = bench(a.batch, a.seq_len, a.repeats, a.iters or None)
    print(json.dumps(res, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
