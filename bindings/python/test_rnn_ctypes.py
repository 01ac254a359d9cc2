"""Tests of the C API through ctypes (run by bindings/ci.sh; no numpy, no pytest).

1. PyTorch parity: every file of tests/fixtures/parity/ (or $RNN_PARITY_FIXTURES)
   is loaded with rnn_model_load and run through rnn_model_forward (files
   without `lengths`) or rnn_model_forward_lengths (files with), with the
   file's x, h0 and c0; y, h_n and c_n must match the file's within
   1e-5 + 1e-4 * max|ref|. The expected tensors are read with a small
   safetensors reader (8-byte header length, JSON header, raw data).
2. The Python wrapper: errors carry the status and message, parameters
   round-trip, a train step lowers the loss.
3. Limits: every status has a name here and in the library, thread counts
   above the cap are refused, a stream too large is RnnOutOfMemory.
"""
import array
import ctypes
import json
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rnn_ctypes as rnn  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, file=sys.stderr)


def read_safetensors(path):
    """{name: (shape, values)} and the metadata, for F32 and I64 tensors."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        code = {"F32": "f", "I64": "q"}[info["dtype"]]
        values = array.array(code)
        values.frombytes(data[a:b])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = (info["shape"], values)
    return out, meta


def max_err(ours, ref):
    err = 0.0
    for a, b in zip(ours, ref):
        d = abs(a - b)
        if d != d:  # NaN
            return float("inf")
        err = max(err, d)
    return err


def parity():
    folder = os.environ.get("RNN_PARITY_FIXTURES", os.path.join(ROOT, "tests", "fixtures",
                                                                "parity"))
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    check(len(files) > 0, "no fixture in " + folder)
    varlen = 0
    for name in files:
        tensors, meta = read_safetensors(os.path.join(folder, name))
        model = rnn.Model.load(os.path.join(folder, name))
        t, b = int(meta["seq_len"]), int(meta["batch"])
        x = tensors["x"][1]
        h0 = tensors["h0"][1]
        c0 = tensors["c0"][1] if "c0" in tensors else None
        lengths = list(tensors["lengths"][1]) if "lengths" in tensors else None
        varlen += lengths is not None
        y, h_n, c_n = model.forward(x, t, b, h0=h0, c0=c0, lengths=lengths)
        results = [("y", y), ("h_n", h_n)] + ([("c_n", c_n)] if c0 is not None else [])
        for tname, ours in results:
            ref = tensors[tname][1]
            bound = 1e-5 + 1e-4 * max(abs(v) for v in ref)
            err = max_err(ours, ref) if len(ours) == len(ref) else float("inf")
            check(err <= bound, "%s %s: max error %.3e > %.3e" % (name, tname, err, bound))
        model.close()
    print("parity: %d fixtures (%d with lengths, through rnn_model_forward_lengths)"
          % (len(files), varlen))


def wrapper():
    try:
        rnn.Model.load("/nonexistent/model.safetensors")
        check(False, "loading a missing file raised nothing")
    except rnn.RnnError as e:
        check(e.status == rnn.STATUS_IO and "/nonexistent/model.safetensors" in str(e), str(e))
    m = rnn.Model.new("gru_reset_before", 3, 5, num_layers=2, bidirectional=True, seed=4)
    check(m.dims() == (3, 5, 2, 2, False), "dims %r" % (m.dims(),))
    check(m.param_shape("weight_ih_l1_reverse") == (15, 10), "shape")
    try:
        m.forward([0.0] * 6, 1, 2, lengths=[1, 2])
        check(False, "a length > seq_len raised nothing")
    except rnn.RnnError as e:
        check(e.status == rnn.STATUS_INVALID_ARGUMENT and "lengths" in str(e), str(e))
    try:
        m.set_param("bias_hh_l0", [1.0] * 14)
        check(False, "a wrong length raised nothing")
    except rnn.RnnError as e:
        check(e.status == rnn.STATUS_SHAPE_MISMATCH, str(e))
    m.set_param("bias_hh_l0", [0.5] * 15)
    check(list(m.param("bias_hh_l0")) == [0.5] * 15, "set/get")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.safetensors")
        m.save(p)
        back = rnn.Model.load(p)
        x = [0.1 * k for k in range(4 * 2 * 3)]
        check(back.forward(x, 4, 2)[0] == m.forward(x, 4, 2)[0], "save/load round trip")
    # Training through the one-call step.
    lstm = rnn.Model.new("lstm", 2, 4, seed=1)
    tr = rnn.Trainer(lstm)
    opt = rnn.Optimizer.adam(0.05)
    x = [((k * 7) % 5) / 5.0 - 0.4 for k in range(8 * 2 * 2)]
    target = [0.3 * x[(k // 4) * 2] if k % 4 == 0 else 0.0 for k in range(8 * 2 * 4)]
    losses = [tr.step_mse(opt, x, 8, 2, target, max_grad_norm=1.0) for _ in range(30)]
    check(losses[-1] < 0.5 * losses[0], "loss %r -> %r" % (losses[0], losses[-1]))


def limits():
    """The statuses of issue 13: OUT_OF_MEMORY appended (0.2), the thread cap."""
    for i, name in enumerate(rnn.STATUS_NAMES):
        desc = rnn.lib.rnn_status_string(i).decode()
        check(desc != "unknown status", "status %d (%s) unknown to the library" % (i, name))
    check(rnn.lib.rnn_status_string(len(rnn.STATUS_NAMES)).decode() == "unknown status",
          "the library has a status the binding lacks")
    check(rnn.STATUS_OUT_OF_MEMORY == 8, "STATUS_OUT_OF_MEMORY")
    check(rnn.abi_version()[:2] >= (0, 2), "abi %r" % (rnn.abi_version(),))
    for n in (rnn.MAX_THREADS + 1, 2 ** 64 - 1):
        try:
            rnn.set_num_threads(n)
            check(False, "set_num_threads(%d) raised nothing" % n)
        except rnn.RnnError as e:
            check(e.status == rnn.STATUS_INVALID_ARGUMENT and "1024" in str(e), str(e))
    # A stream whose state size overflows: RnnOutOfMemory, also a MemoryError.
    m = rnn.Model.new("lstm", 16, 16)
    s = ctypes.c_void_p()
    try:
        rnn.check(rnn.lib.rnn_stream_new(m._h, 2 ** 60, ctypes.byref(s)))
        check(False, "rnn_stream_new(batch = 2^60) raised nothing")
    except MemoryError as e:
        check(isinstance(e, rnn.RnnOutOfMemory) and e.status == rnn.STATUS_OUT_OF_MEMORY
              and not s.value, str(e))
    m.close()


parity()
wrapper()
limits()
print("test_rnn_ctypes: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
