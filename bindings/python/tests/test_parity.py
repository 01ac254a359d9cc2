"""The librnn package against the PyTorch fixtures (no torch needed), and
its optimizers against their formulas, and the NTM's shapes and files.

For every file of tests/fixtures/parity/ (or $RNN_PARITY_FIXTURES):
librnn.load(file) gives the right class, forward(x, h0, c0, lengths) gives
y, h_n, c_n, and gradients(...) every gradient of the fixture's loss,
each within 1e-5 + 1e-4 * max|ref| of PyTorch's float64 reference; and
load_state_dict(state_dict()) round-trips, a wrong shape naming the tensor.

usage: python3 bindings/python/tests/test_parity.py   (after pip install)
"""
import json
import os
import struct
import sys

import numpy as np

import librnn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def read_safetensors(path):
    """{name: array} (F32 as float32, I64 as int64) and the metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    dtypes = {"F32": "<f4", "I64": "<i8"}
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out, meta


def check_close(what, ours, ref):
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    bound = 1e-5 + 1e-4 * np.abs(ref).max(initial=0.0)
    err = np.abs(ours - ref).max(initial=0.0)
    assert err <= bound, f"{what}: max error {err:.3e} > {bound:.3e}"


def main():
    folder = os.environ.get("RNN_PARITY_FIXTURES",
                            os.path.join(ROOT, "tests", "fixtures", "parity"))
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    assert files, "no fixture in " + folder
    classes = {"lstm": librnn.LSTM, "gru": librnn.GRU, "gru_reset_before": librnn.GRU,
               "rnn_tanh": librnn.RNN, "rnn_relu": librnn.RNN}
    for name in files:
        t, meta = read_safetensors(os.path.join(folder, name))
        m = librnn.load(os.path.join(folder, name))
        assert isinstance(m, classes[meta["cell"]]), (name, type(m))
        lstm = "c0" in t
        lengths = [int(v) for v in t["lengths"]] if "lengths" in t else None
        y, h_n, c_n = m.forward(t["x"], t["h0"], t.get("c0"), lengths)
        check_close(f"{name} y", y, t["y"])
        check_close(f"{name} h_n", h_n, t["h_n"])
        if lstm:
            check_close(f"{name} c_n", c_n, t["c_n"])
        else:
            assert c_n is None
        g = m.gradients(t["x"], t["grad_y"], t["h0"], t.get("c0"), t["grad_h_n"],
                        t.get("grad_c_n"), lengths)
        for key, ours in g.items():
            check_close(f"{name} grad.{key}", ours, t["grad." + key])
        # The state_dict round-trips, and its names are the file's.
        sd = m.state_dict()
        assert set(sd) <= set(t), name
        m.load_state_dict({k: v * 1.0 for k, v in sd.items()})
        y2, _, _ = m.forward(t["x"], t["h0"], t.get("c0"), lengths)
        assert np.array_equal(y, y2), name
    # Errors name the tensor.
    m = librnn.LSTM(3, 4)
    sd = m.state_dict()
    sd["weight_hh_l0"] = np.zeros((4, 4), dtype=np.float32)
    try:
        m.load_state_dict(sd)
        raise AssertionError("a wrong shape was accepted")
    except ValueError as e:
        assert "weight_hh_l0" in str(e), e
    try:
        librnn.LSTM(3, 4, proj_size=4)
        raise AssertionError("proj_size = hidden_size was accepted")
    except ValueError as e:
        assert "proj_size" in str(e), e
    print(f"test_parity: {len(files)} fixtures, forward and gradients within tolerance")


def test_optimizers():
    """One step of SGD and Adam against their formulas; clip_grad_norm."""
    m = librnn.GRU(2, 3, seed=4)
    x = np.ones((3, 2, 2), dtype=np.float32)
    g = m.gradients(x, np.ones((3, 2, 3), dtype=np.float32))
    before = m.state_dict()
    librnn.optim.SGD(m, lr=0.5).step(g)
    for k, p in m.state_dict().items():
        assert np.allclose(p, before[k] - 0.5 * g[k], atol=1e-6), k
    m.load_state_dict(before)
    opt = librnn.optim.Adam(m, lr=1e-2)
    assert opt.lr == 1e-2
    opt.step(g)
    for k, p in m.state_dict().items():
        # Step 1: m_hat = g, v_hat = g^2.
        want = before[k] - 1e-2 * g[k] / (np.abs(g[k]) + 1e-8)
        assert np.allclose(p, want, atol=1e-5), k
    total = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2))
                        for k, v in g.items() if k not in ("x", "h0", "c0")))
    norm = librnn.clip_grad_norm(g, 0.1)
    assert abs(norm - total) <= 1e-4 * total, (norm, total)
    after = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2))
                        for k, v in g.items() if k not in ("x", "h0", "c0")))
    assert after <= 0.1 + 1e-5, after
    from librnn.optim import AdamW, RMSprop  # noqa: F401  (importable by name)
    print("test_optimizers: SGD, Adam one step; clip_grad_norm")




def test_ntm():
    """The NTM: the copy task's machine by default, shapes, gradients by
    parameter name, a save/load round trip."""
    import tempfile
    cfg = librnn.NTMConfig(controller_size=20, memory_rows=16, memory_width=8, seed=3)
    m = librnn.NTM(cfg)
    x = np.random.default_rng(1).standard_normal((6, 2, cfg.input_size)).astype(np.float32)
    y = m.forward(x)
    assert y.shape == (6, 2, cfg.output_size), y.shape
    g = m.gradients(x, np.ones_like(y))
    assert g["x"].shape == x.shape
    sd = m.state_dict()
    assert set(g) - {"x"} == set(sd), sorted(set(g) ^ set(sd))
    for k, v in sd.items():
        assert g[k].shape == v.shape, k
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ntm.safetensors")
        m.save(path)
        assert np.array_equal(librnn.load_ntm(path).forward(x), y)
    try:
        librnn.NTMConfig(controller="gru")
        raise AssertionError("an unknown controller was accepted")
    except ValueError as e:
        assert "gru" in str(e), e
    print("test_ntm: forward, gradients by name, save/load")


if __name__ == "__main__":
    main()
    test_optimizers()
    test_ntm()
