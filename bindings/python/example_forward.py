"""Runs a model file forward from Python through ctypes (no numpy needed).

usage: python3 bindings/python/example_forward.py [MODEL.safetensors]
(default: a parity fixture; build the library first with
`cargo build --release -p rnn-capi`)
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rnn_ctypes as rnn  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "tests", "fixtures", "parity", "gru_l2_bidir_b3_t21_i5_h4_nobias.safetensors")

print("librnn %d.%d.%d" % rnn.abi_version())
with rnn.Model.load(path) as model:
    i, h, layers, d, lstm = model.dims()
    print("%s: input %d, hidden %d, %d layer(s), %d direction(s), params %s"
          % (os.path.basename(path), i, h, layers, d, ", ".join(model.param_names()[:4]) + ", ..."))
    T, B = 6, 2
    x = [math.sin(0.1 * k) for k in range(T * B * i)]  # [T, B, I], time-major
    y, h_n, c_n = model.forward(x, T, B)
    for t in range(T):
        row = y[t * B * d * h:(t * B + 1) * d * h]  # batch element 0
        print("y[t=%d, b=0] = %s" % (t, " ".join("%+.5f" % v for v in row)))
    print("h_n[0, b=0]  = %s" % " ".join("%+.5f" % v for v in h_n[:h]))
    try:
        model.forward([], T, 0)
    except rnn.RnnError as e:
        print("batch = 0 is refused: status %d, %s" % (e.status, e))
