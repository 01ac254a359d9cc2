"""librnn.torch against torch.nn: the same weights give the same outputs
and the same gradients through loss.backward(), packed sequences included,
and a torch.optim loop trains it. Skipped when torch is not installed."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import librnn.torch as lt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=3, batch_first=True)),
    ("GRU", dict(num_layers=2)),
    ("GRU", dict(bidirectional=True, batch_first=True, bias=False)),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
    ("RNN", dict(bidirectional=True)),
]


def pair(kind, kwargs, input_size=4, hidden=6):
    """A torch.nn module and a librnn.torch module with its weights."""
    ours = getattr(lt, kind)(input_size, hidden, **kwargs)
    ref = getattr(torch.nn, kind)(input_size, hidden, **kwargs)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def close(a, b, what):
    a, b = a.detach(), b.detach()
    bound = 1e-5 + 1e-4 * float(b.abs().max())
    err = float((a - b).abs().max())
    assert err <= bound, f"{what}: {err:.3e} > {bound:.3e}"


def states(kind, ref, batch, requires_grad=True):
    d = 2 if ref.bidirectional else 1
    s = ref.proj_size if getattr(ref, "proj_size", 0) else ref.hidden_size
    h0 = torch.randn(ref.num_layers * d, batch, s, requires_grad=requires_grad)
    if kind != "LSTM":
        return h0
    return (h0, torch.randn(ref.num_layers * d, batch, ref.hidden_size,
                            requires_grad=requires_grad))


def leaves(hx):
    return list(hx) if isinstance(hx, tuple) else [hx]


def detached(hx):
    if isinstance(hx, tuple):
        return tuple(t.detach().clone().requires_grad_() for t in hx)
    return hx.detach().clone().requires_grad_()


@pytest.mark.parametrize("kind,kwargs", CASES)
def test_same_outputs_and_gradients_as_torch(kind, kwargs):
    torch.manual_seed(0)
    ref, ours = pair(kind, kwargs)
    assert list(dict(ours.named_parameters())) == list(dict(ref.named_parameters()))
    T, B = 7, 3
    x = torch.randn(B, T, 4) if ref.batch_first else torch.randn(T, B, 4)
    hx = states(kind, ref, B)
    outs = []
    for module, xi, hxi in ((ref, x.clone().requires_grad_(), detached(hx)),
                            (ours, x.clone().requires_grad_(), detached(hx))):
        y, h = module(xi, hxi)
        loss = (y * y).sum() + sum((t * 1.5).sum() for t in leaves(h))
        loss.backward()
        outs.append((y, leaves(h), xi.grad, [t.grad for t in leaves(hxi)],
                     [p.grad for p in module.parameters()]))
    (y0, h0, gx0, gh0, gp0), (y1, h1, gx1, gh1, gp1) = outs
    close(y1, y0, "y")
    for a, b in zip(h1, h0):
        close(a, b, "h_n")
    close(gx1, gx0, "grad x")
    for a, b in zip(gh1, gh0):
        close(a, b, "grad hx")
    for (name, _), a, b in zip(ref.named_parameters(), gp1, gp0):
        close(a, b, "grad " + name)


def test_packed_sequences():
    torch.manual_seed(1)
    ref, ours = pair("LSTM", dict(num_layers=2, bidirectional=True))
    x = torch.randn(6, 4, 4)
    lengths = torch.tensor([6, 2, 5, 1])
    results = []
    for module in (ref, ours):
        xi = x.clone().requires_grad_()
        packed = pack_padded_sequence(xi, lengths, enforce_sorted=False)
        y, (h, c) = module(packed)
        assert isinstance(y, torch.nn.utils.rnn.PackedSequence)
        padded, out_lengths = pad_packed_sequence(y)
        (padded.sum() + h.sum() + c.sum()).backward()
        results.append((padded, out_lengths, h, c, xi.grad))
    for a, b in zip(results[1], results[0]):
        close(a.float(), b.float(), "packed")
    # The same through `lengths`: zero past each end.
    y, (h, c) = ours(x, lengths=lengths)
    close(y, pad_packed_sequence(ref(pack_padded_sequence(x, lengths, enforce_sorted=False))[0],
                                 total_length=6)[0], "lengths")


def test_torch_optim_trains_it():
    torch.manual_seed(2)
    model = lt.LSTM(1, 16, proj_size=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        phase = torch.rand(8) * 6.28
        wave = torch.sin(torch.arange(21.0)[:, None] * 0.3 + phase[None, :])[:, :, None]
        y, _ = model(wave[:-1])
        loss = torch.nn.functional.mse_loss(y, wave[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])


def test_modes_seeds_and_files(tmp_path):
    torch.manual_seed(3)
    a = lt.GRU(3, 5, num_layers=2, dropout=0.5)
    torch.manual_seed(3)
    b = lt.GRU(3, 5, num_layers=2, dropout=0.5)
    for p, q in zip(a.parameters(), b.parameters()):  # torch.manual_seed decides
        assert torch.equal(p, q)
    x = torch.randn(4, 2, 3)
    a.eval()
    with torch.no_grad():
        assert torch.equal(a(x)[0], a(x)[0])
    with pytest.raises(NotImplementedError, match="dropout"):
        a(x.clone().requires_grad_())
    a.train()
    assert not torch.equal(a(x)[0], a(x)[0])  # dropout in training mode
    a.eval()
    path = tmp_path / "gru.safetensors"
    a.save(path)
    back = lt.load(path)
    assert isinstance(back, lt.GRU) and repr(back) == repr(a)
    back.eval()
    with torch.no_grad():
        assert torch.equal(back(x)[0], a(x)[0])
    # A torch.optim step is seen by the next forward.
    opt = torch.optim.SGD(a.parameters(), lr=1.0)
    a.train()
    assert a.dropout == 0.5 and a.num_layers == 2 and a.batch_first is False
    with pytest.raises(AttributeError, match="dropout"):
        a.dropout = 0.0  # the model's dropout cannot change behind its back
    y, _ = a(x)
    y.sum().backward()
    opt.step()
    a.eval()
    with torch.no_grad():
        assert not torch.equal(a(x)[0], back(x)[0])
    with pytest.raises(TypeError, match="floating-point"):
        a(torch.zeros(4, 2, 3, dtype=torch.int64))


def test_deepcopy_and_torch_save(tmp_path):
    import copy
    torch.manual_seed(4)
    model = lt.LSTM(3, 5, bidirectional=True)
    x = torch.randn(4, 2, 3)
    snapshot = copy.deepcopy(model)  # e.g. the best epoch's weights
    torch.save(model, tmp_path / "m.pt")
    back = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        want = model(x)[0]
        assert torch.equal(snapshot(x)[0], want) and torch.equal(back(x)[0], want)
        for p in model.parameters():
            p.add_(0.1)  # the copies are independent
        assert not torch.equal(model(x)[0], snapshot(x)[0])
        assert torch.equal(snapshot(x)[0], want)
