"""Every PyTorch fixture of tests/fixtures/parity (or $RNN_PARITY_FIXTURES)
through the package: librnn.load gives the right class, forward gives y,
h_n, c_n, and gradients every gradient of the fixture's loss, each within
1e-5 + 1e-4 * max|ref| of PyTorch's float64 reference; state_dict has the
file's names and round-trips. No torch needed.
"""
import os

import numpy as np
import pytest

import librnn
from support import FIXTURES, assert_close, fixture_files, read_safetensors

CLASSES = {"lstm": librnn.LSTM, "gru": librnn.GRU, "gru_reset_before": librnn.GRU,
           "rnn_tanh": librnn.RNN, "rnn_relu": librnn.RNN}


def test_there_are_fixtures():
    assert len(fixture_files()) >= 80


@pytest.mark.parametrize("name", fixture_files())
def test_fixture(name):
    t, meta = read_safetensors(os.path.join(FIXTURES, name))
    m = librnn.load(os.path.join(FIXTURES, name))
    assert isinstance(m, CLASSES[meta["cell"]])
    lengths = t["lengths"] if "lengths" in t else None  # int64 array, as given
    y, h_n, c_n = m.forward(t["x"], t["h0"], t.get("c0"), lengths)
    assert_close("y", y, t["y"])
    assert_close("h_n", h_n, t["h_n"])
    if "c0" in t:
        assert_close("c_n", c_n, t["c_n"])
    else:
        assert c_n is None
    g = m.gradients(t["x"], t["grad_y"], t["h0"], t.get("c0"), t["grad_h_n"],
                    t.get("grad_c_n"), lengths)
    assert set(g) == {k[len("grad."):] for k in t if k.startswith("grad.") and k != "grad.y"
                      and k not in ("grad.h_n", "grad.c_n")}
    for key, ours in g.items():
        assert_close(f"grad.{key}", ours, t["grad." + key])
    # The state_dict has the file's names and round-trips bit for bit.
    sd = m.state_dict()
    assert set(sd) <= set(t)
    for k, v in sd.items():
        assert np.array_equal(v, t[k]), k
    m.load_state_dict({k: v * 1.0 for k, v in sd.items()})
    y2, _, _ = m.forward(t["x"], t["h0"], t.get("c0"), lengths)
    assert np.array_equal(y, y2)
