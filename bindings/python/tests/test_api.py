"""The package's API without torch: construction, arrays in and out, the
errors a caller meets, state_dict and files, training passes, dropout,
optimizers, threads, the NTM."""
import os
import threading
import time

import numpy as np
import pytest

import librnn
from support import param_norm

RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- modules

def test_constructors_take_torch_arguments():
    m = librnn.LSTM(3, 8, num_layers=2, bias=False, batch_first=True, dropout=0.25,
                    bidirectional=True, proj_size=4, seed=5)
    c = m.config()
    assert (c["cell"], c["input_size"], c["hidden_size"], c["num_layers"]) == ("lstm", 3, 8, 2)
    assert (c["bias"], c["batch_first"], c["dropout"], c["bidirectional"], c["proj_size"]) == (
        False, True, 0.25, True, 4)
    assert repr(m) == ("LSTM(3, 8, num_layers=2, bias=False, batch_first=True, dropout=0.25, "
                       "bidirectional=True, proj_size=4)")
    assert repr(librnn.RNN(2, 3, nonlinearity="relu")) == "RNN(2, 3, nonlinearity='relu')"
    assert repr(librnn.GRU(2, 3, reset_after=False)) == "GRU(2, 3, reset_after=False)"
    assert librnn.RNN(2, 3).config()["nonlinearity"] == "tanh"
    assert librnn.GRU(2, 3).config()["reset_after"] is True
    assert isinstance(m, librnn.Module)
    # PyTorch's placement arguments: the CPU and float32 only.
    librnn.GRU(2, 3, device="cpu", dtype=np.float32)
    with pytest.raises(NotImplementedError, match="device"):
        librnn.GRU(2, 3, device="cuda:0")
    with pytest.raises(NotImplementedError, match="dtype"):
        librnn.LSTM(2, 3, dtype=np.float64)
    with pytest.raises(TypeError):
        librnn.LSTM(2, 3, no_such_argument=1)


def test_bad_configurations_raise_value_error():
    for make, word in [(lambda: librnn.LSTM(3, 4, proj_size=4), "proj_size"),
                       (lambda: librnn.RNN(3, 4, nonlinearity="sigmoid"), "nonlinearity"),
                       (lambda: librnn.GRU(3, 4, merge="mean"), "mean"),
                       (lambda: librnn.GRU(0, 4), "input_size"),
                       (lambda: librnn.LSTM(3, 4, dropout=1.5), "dropout")]:
        with pytest.raises(ValueError, match=word):
            make()


def test_seeds():
    a, b = librnn.LSTM(3, 4, seed=9), librnn.LSTM(3, 4, seed=9)
    for k, v in a.state_dict().items():
        assert np.array_equal(v, b.state_dict()[k]), k
    # No seed: a fresh one each time (recorded in config()).
    c, d = librnn.LSTM(3, 4), librnn.LSTM(3, 4)
    assert c.config()["seed"] != d.config()["seed"]
    assert not np.array_equal(c.state_dict()["weight_ih_l0"], d.state_dict()["weight_ih_l0"])


def test_call_has_torch_shapes():
    x = randn(5, 2, 3)
    lstm = librnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=1)
    y, (h_n, c_n) = lstm(x)
    assert (y.shape, h_n.shape, c_n.shape) == ((5, 2, 8), (4, 2, 4), (4, 2, 4))
    y2, (h2, c2) = lstm(x, (h_n, c_n))
    y3, h3, c3 = lstm.forward(x, h_n, c_n)
    assert np.array_equal(y2, y3) and np.array_equal(h2, h3) and np.array_equal(c2, c3)
    with pytest.raises(TypeError, match="tuple"):
        lstm(x, h_n)
    gru = librnn.GRU(3, 4, batch_first=True, seed=1)
    y, h_n = gru(randn(2, 5, 3))
    assert (y.shape, h_n.shape) == ((2, 5, 4), (1, 2, 4))
    for out in (y, h_n):
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable


# ---------------------------------------------------------------- arrays

def test_inputs_of_other_float_types_and_layouts_are_converted():
    m = librnn.GRU(3, 4, seed=2)
    x = randn(6, 2, 3)
    want = m.forward(x)[0]
    assert np.array_equal(m.forward(x.astype(np.float64))[0], want)
    assert np.array_equal(m.forward(x.tolist())[0], want)
    # Non-contiguous views: every other step of a longer sequence, a
    # transposed batch-first array.
    long = np.repeat(x, 2, axis=0)
    assert np.array_equal(m.forward(long[::2])[0], want)
    bf = np.ascontiguousarray(x.transpose(1, 0, 2))
    assert np.array_equal(m.forward(bf.transpose(1, 0, 2))[0], want)
    # Half precision is converted too (its values, rounded).
    m.forward(x.astype(np.float16))


def test_data_that_is_not_float_is_a_type_error():
    m = librnn.LSTM(3, 4, seed=2)
    for bad in (np.zeros((2, 1, 3), np.int32), np.zeros((2, 1, 3), bool),
                np.array([[["a", "b", "c"]]]), np.zeros((2, 1, 3), np.complex64),
                np.array([[[object(), 1, 2]]], dtype=object)):
        with pytest.raises(TypeError, match="x: "):
            m.forward(bad)


def test_wrong_shapes_name_the_argument_and_the_expected_shape():
    m = librnn.LSTM(3, 4, num_layers=2, seed=2)
    x = randn(5, 2, 3)
    cases = [(lambda: m.forward(randn(5, 3)), r"x: expected shape \[T, B, 3\]"),
             (lambda: m.forward(randn(5, 2, 4)), r"x: expected shape \[T, B, 3\]"),
             (lambda: m.forward(x, h0=randn(1, 2, 4)), r"h0: expected shape \[2, 2, 4\]"),
             (lambda: m.forward(x, c0=randn(2, 3, 4)), r"c0: expected shape \[2, 2, 4\]"),
             (lambda: m.gradients(x, randn(5, 2, 5)), r"grad_y: expected shape \[5, 2, 4\]"),
             (lambda: m.gradients(x, randn(5, 2, 4), grad_h_n=randn(2, 2)),
              r"grad_h_n: expected shape \[2, 2, 4\]"),
             (lambda: librnn.GRU(3, 4).forward(x, c0=randn(1, 2, 4)), "no cell state")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_lengths_take_any_integer_sequence():
    m = librnn.RNN(3, 4, seed=3)
    x = randn(6, 3, 3)
    want = m.forward(x, lengths=[6, 2, 4])
    for lengths in ((6, 2, 4), np.array([6, 2, 4], np.uint8), np.array([6, 2, 4], np.int64),
                    np.array([6, 2, 4], np.int16)):
        got = m.forward(x, lengths=lengths)
        assert all(np.array_equal(a, b) for a, b in zip(got[:2], want[:2]))
    y = want[0]
    assert not y[2:, 1].any() and y[:2, 1].any()  # zero past the end
    for lengths, error, message in [([6.0, 2.0, 4.0], TypeError, "integers"),
                                    ([6, -2, 4], ValueError, "-2"),
                                    ([6, 2], ValueError, r"expected shape \[3\]"),
                                    ([[6, 2, 4]], ValueError, r"expected shape \[3\]"),
                                    ([6, 7, 4], ValueError, "lengths"),
                                    ([6, 0, 4], ValueError, "lengths")]:
        with pytest.raises(error, match=message):
            m.forward(x, lengths=lengths)


# ---------------------------------------------------------------- state and files

def test_state_dict_round_trip_and_errors_change_nothing():
    m = librnn.LSTM(3, 4, num_layers=2, proj_size=2, seed=4)
    sd = m.state_dict()
    assert list(sd) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                        "weight_hr_l0", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                        "bias_hh_l1", "weight_hr_l1"]
    assert sd["weight_hh_l0"].shape == (16, 2) and sd["weight_hr_l0"].shape == (2, 4)
    other = librnn.LSTM(3, 4, num_layers=2, proj_size=2, seed=5)
    x = randn(4, 2, 3)
    other.load_state_dict({k: v.astype(np.float64) for k, v in sd.items()})
    assert np.array_equal(other.forward(x)[0], m.forward(x)[0])
    before = other.state_dict()
    bad = {k: v + 1 for k, v in sd.items()}
    bad["weight_hh_l1"] = np.zeros((16, 4), np.float32)  # a late entry of the wrong shape
    with pytest.raises(ValueError, match=r"weight_hh_l1: expected shape \[16, 2\], got \[16, 4\]"):
        other.load_state_dict(bad)
    del bad["weight_hh_l1"]
    with pytest.raises(ValueError, match="weight_hh_l1 missing"):
        other.load_state_dict(bad)
    for k, v in other.state_dict().items():  # neither failed call changed anything
        assert np.array_equal(v, before[k]), k


@pytest.mark.parametrize("make", [lambda: librnn.RNN(3, 5, nonlinearity="relu", seed=1),
                                  lambda: librnn.GRU(3, 5, reset_after=False, bidirectional=True,
                                                     seed=1),
                                  lambda: librnn.LSTM(3, 5, proj_size=2, batch_first=True,
                                                      merge="sum", bidirectional=True, seed=1)])
def test_save_and_load(tmp_path, make):
    m = make()
    path = tmp_path / "model.safetensors"
    m.save(path)
    back = librnn.load(str(path))
    assert type(back) is type(m)
    config = m.config()
    assert back.config() == config
    x = randn(2, 4, 3) if config["batch_first"] else randn(4, 2, 3)
    assert np.array_equal(back.forward(x)[0], m.forward(x)[0])
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]  # no temporary left


def test_bad_files_raise_os_error(tmp_path):
    m = librnn.GRU(3, 4, seed=1)
    good = tmp_path / "good.safetensors"
    m.save(good)
    blob = good.read_bytes()
    cases = {"missing": None, "empty": b"", "truncated": blob[: len(blob) // 2],
             "garbage": b"\x00" * 7 + b"not a model file" * 10,
             "lying": (10**12).to_bytes(8, "little") + blob[8:]}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(OSError):
            librnn.load(str(path))
    with pytest.raises(OSError):
        m.save(tmp_path / "no" / "such" / "folder" / "m.safetensors")
    # A failed save leaves what was there.
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(OSError):
        m.save(tmp_path / "dir.safetensors")
    assert (tmp_path / "dir.safetensors").is_dir()
    assert good.read_bytes() == blob


# ---------------------------------------------------------------- training

def test_forward_train_and_backward_equal_gradients():
    m = librnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=6)
    x, h0, c0 = randn(5, 3, 3), randn(4, 3, 4), randn(4, 3, 4)
    y, h_n, c_n, tape = m.forward_train(x, h0, c0, lengths=[5, 3, 1])
    assert isinstance(tape, librnn.Tape)
    want = m.forward(x, h0, c0, [5, 3, 1])
    assert np.array_equal(y, want[0]) and np.array_equal(h_n, want[1])
    gy, gh, gc = randn(*y.shape), randn(*h_n.shape), randn(*c_n.shape)
    g = m.backward(tape, gy, gh, gc)
    again = m.backward(tape, gy, gh, gc)  # a tape may be used again
    both = m.gradients(x, gy, h0, c0, gh, gc, [5, 3, 1])
    assert set(g) == set(both) == {"x", "h0", "c0"} | set(m.state_dict())
    for k in g:
        assert g[k].shape == (both[k].shape)
        assert np.array_equal(g[k], again[k]) and np.array_equal(g[k], both[k]), k
    other = librnn.LSTM(3, 4, num_layers=2, bidirectional=True, bias=False, seed=6)
    with pytest.raises(ValueError, match="tape"):
        other.backward(tape, gy)


def test_dropout_only_in_training_passes():
    m = librnn.LSTM(3, 8, num_layers=2, dropout=0.5, recurrent_dropout=0.3, seed=8)
    x = randn(6, 4, 3)
    assert np.array_equal(m.forward(x)[0], m.forward(x)[0])
    y1, y2 = m.forward_train(x)[0], m.forward_train(x)[0]
    assert not np.array_equal(y1, y2), "each training pass draws new masks"
    assert not np.array_equal(y1, m.forward(x)[0])
    # Reproducible for a fixed seed: a second model draws the same masks.
    twin = librnn.LSTM(3, 8, num_layers=2, dropout=0.5, recurrent_dropout=0.3, seed=8)
    assert np.array_equal(twin.forward_train(x)[0], y1)
    assert np.array_equal(twin.forward_train(x)[0], y2)


def sgd_like_steps(m, opt, steps):
    """Trains m to map a sine to its next value; returns the losses."""
    losses = []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        phase = rng.uniform(0, 2 * np.pi, size=8)
        t = np.arange(21)[:, None] * 0.3 + phase[None, :]
        wave = np.sin(t).astype(np.float32)
        x, target = wave[:-1, :, None], wave[1:, :, None]
        y, _, _, tape = m.forward_train(x)
        losses.append(float(np.mean((y - target) ** 2)))
        g = m.backward(tape, 2.0 * (y - target) / y.size)
        librnn.clip_grad_norm(g, 1.0)
        opt.step(g)
    return losses


@pytest.mark.parametrize("make_opt", [lambda m: librnn.optim.Adam(m, lr=1e-2),
                                      lambda m: librnn.optim.AdamW(m, lr=1e-2),
                                      lambda m: librnn.optim.RMSprop(m, lr=3e-3),
                                      lambda m: librnn.optim.SGD(m, lr=0.5, momentum=0.9)])
def test_training_lowers_the_loss(make_opt):
    m = librnn.LSTM(1, 16, proj_size=1, seed=2)
    losses = sgd_like_steps(m, make_opt(m), 150)
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10]), (losses[:3], losses[-3:])


def test_optimizers_follow_their_formulas():
    m = librnn.GRU(2, 3, seed=4)
    x = np.ones((3, 2, 2), dtype=np.float32)
    g = m.gradients(x, np.ones((3, 2, 3), dtype=np.float32))
    before = m.state_dict()
    librnn.optim.SGD(m, lr=0.5).step(g)
    for k, p in m.state_dict().items():
        assert np.allclose(p, before[k] - 0.5 * g[k], atol=1e-6), k
    for opt, decay in [(librnn.optim.Adam(m, lr=1e-2), 0.0),
                       (librnn.optim.AdamW(m, lr=1e-2, weight_decay=0.1), 0.1)]:
        m.load_state_dict(before)
        assert opt.lr == 1e-2
        opt.step(g)
        for k, p in m.state_dict().items():
            # Step 1: m_hat = g, v_hat = g^2; AdamW decays the weights first.
            want = before[k] * (1 - 1e-2 * decay) - 1e-2 * g[k] / (np.abs(g[k]) + 1e-8)
            assert np.allclose(p, want, atol=1e-5), k
    m.load_state_dict(before)
    opt = librnn.optim.RMSprop(m, lr=1e-2, alpha=0.9)
    opt.step(g)
    for k, p in m.state_dict().items():
        want = before[k] - 1e-2 * g[k] / (np.sqrt(0.1 * g[k] ** 2) + 1e-8)
        assert np.allclose(p, want, atol=1e-5), k
    # The learning rate can be changed; zero_state restarts Adam's moments.
    opt = librnn.optim.Adam(m, lr=1e-2)
    opt.lr = 1e-3
    assert opt.lr == 1e-3
    m.load_state_dict(before)
    opt.step(g)
    first = m.state_dict()
    opt.zero_state()
    m.load_state_dict(before)
    opt.step(g)
    for k, p in m.state_dict().items():
        assert np.array_equal(p, first[k]), k
    from librnn.optim import SGD  # importable by name

    bad = dict(g)
    del bad["bias_hh_l0"]
    with pytest.raises(ValueError, match="bias_hh_l0"):
        SGD(m, lr=0.1).step(bad)
    bad["bias_hh_l0"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="bias_hh_l0"):
        SGD(m, lr=0.1).step(bad)


def test_clip_grad_norm():
    m = librnn.GRU(2, 3, seed=4)
    g = m.gradients(np.ones((3, 2, 2), np.float32), np.ones((3, 2, 3), np.float32))
    x_grad = g["x"].copy()
    total = param_norm(g)
    assert librnn.clip_grad_norm(g, 10 * total) == pytest.approx(total, rel=1e-5)
    assert param_norm(g) == pytest.approx(total, rel=1e-6)  # below max_norm: unchanged
    norm = librnn.clip_grad_norm(g, 0.1)
    assert norm == pytest.approx(total, rel=1e-5)
    assert param_norm(g) <= 0.1 + 1e-5
    assert np.array_equal(g["x"], x_grad)  # inputs' gradients are not parameters
    g["weight_hh_l0"][1, 2] = np.nan
    assert np.isnan(librnn.clip_grad_norm(g, 0.1))
    with pytest.raises(librnn.NumericalError, match=r"weight_hh_l0\[5\]"):
        librnn.clip_grad_norm(g, 0.1, error_if_nonfinite=True)
    assert issubclass(librnn.NumericalError, ArithmeticError)


# ---------------------------------------------------------------- threads

def test_two_threads_call_one_model():
    m = librnn.LSTM(8, 32, num_layers=2, seed=3)
    xs = [randn(20, 4, 8) for _ in range(2)]
    want = [m.forward(x)[0] for x in xs]
    want_g = [m.gradients(x, np.ones_like(w))["weight_hh_l1"] for x, w in zip(xs, want)]
    errors = []

    def work(i):
        try:
            for _ in range(30):
                assert np.array_equal(m.forward(xs[i])[0], want[i])
                g = m.gradients(xs[i], np.ones_like(want[i]))
                assert np.array_equal(g["weight_hh_l1"], want_g[i])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_the_gil_is_released_while_librnn_computes():
    m = librnn.LSTM(64, 256, num_layers=2, seed=3)
    x = randn(400, 16, 64)
    t0 = time.perf_counter()
    m.forward(x)
    alone = time.perf_counter() - t0
    worker = threading.Thread(target=lambda: [m.forward(x) for _ in range(3)])
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    gaps = np.diff(ticks)
    # Holding the GIL for a forward would stop this loop for about `alone`.
    assert len(ticks) > 100 and gaps.max() < 0.5 * alone, (len(ticks), gaps.max(), alone)


# ---------------------------------------------------------------- NTM

def test_ntm(tmp_path):
    cfg = librnn.NTMConfig(controller_size=20, memory_rows=16, memory_width=8, seed=3)
    m = librnn.NTM(cfg)
    x = randn(6, 2, cfg.input_size)
    y = m.forward(x)
    assert y.shape == (6, 2, cfg.output_size)
    g = m.gradients(x, np.ones_like(y))
    assert g["x"].shape == x.shape
    sd = m.state_dict()
    assert set(g) - {"x"} == set(sd)
    for k, v in sd.items():
        assert g[k].shape == v.shape, k
    path = tmp_path / "ntm.safetensors"
    m.save(path)
    assert np.array_equal(librnn.load_ntm(path).forward(x), y)
    with pytest.raises(ValueError, match="gru"):
        librnn.NTMConfig(controller="gru")
    with pytest.raises(ValueError, match="grad_y"):
        m.gradients(x, np.ones((6, 2, cfg.output_size + 1), np.float32))
    with pytest.raises(OSError):
        librnn.load_ntm(tmp_path / "missing.safetensors")


def test_pickle_and_deepcopy():
    import copy
    import pickle
    for m in (librnn.LSTM(3, 4, proj_size=2, bidirectional=True, dropout=0.1, num_layers=2),
              librnn.GRU(3, 4, reset_after=False), librnn.RNN(3, 4, nonlinearity="relu")):
        x = randn(5, 2, 3)
        for twin in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
            assert type(twin) is type(m) and twin.config() == m.config()
            assert np.array_equal(twin.forward(x)[0], m.forward(x)[0])
