"""What the tests share: the fixtures' folder, a safetensors reader that
needs only numpy, and the parity tolerance."""
import json
import os
import struct

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIXTURES = os.environ.get("RNN_PARITY_FIXTURES", os.path.join(ROOT, "tests", "fixtures", "parity"))


def fixture_files():
    """The parity fixtures' file names, sorted."""
    return sorted(f for f in os.listdir(FIXTURES) if f.endswith(".safetensors"))


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


def assert_close(what, ours, ref):
    """Within the parity tolerance: 1e-5 + 1e-4 * max|ref|."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    bound = 1e-5 + 1e-4 * np.abs(ref).max(initial=0.0)
    err = np.abs(ours - ref).max(initial=0.0)
    assert err <= bound, f"{what}: max error {err:.3e} > {bound:.3e}"


def param_norm(grads):
    """The L2 norm of a gradients dict's parameter entries (float64)."""
    return float(np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2))
                             for k, v in grads.items() if k not in ("x", "h0", "c0"))))
