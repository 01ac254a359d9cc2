"""``torch.nn`` recurrent modules computed by librnn: a drop-in for
``torch.nn.LSTM``, ``GRU`` and ``RNN`` in an existing PyTorch program.

The modules hold their weights as ``torch.nn.Parameter``s under PyTorch's
names (so ``parameters()``, ``state_dict()``, ``torch.optim`` and
``load_state_dict`` of a ``torch.nn.LSTM``'s weights work as usual); their
forward and backward run librnn through one ``torch.autograd.Function``,
so ``loss.backward()`` works in an existing training loop. Tensors live on
the CPU in ``float32``.

>>> import torch, librnn.torch
>>> lstm = librnn.torch.LSTM(8, 16, num_layers=2, batch_first=True)
>>> out, (h_n, c_n) = lstm(torch.randn(4, 10, 8))
>>> out.sum().backward()

Differences from ``torch.nn``: variable lengths may also be given as
``lengths`` (``[B]`` integers; the output is zero past each sequence's
end), besides a ``PackedSequence``; ``recurrent_dropout``, ``merge`` and
the GRU's ``reset_after`` are librnn's extra arguments. Needs torch
(``pip install torch``); importing this module without it raises
``ImportError``.
"""
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import _librnn

__all__ = ["GRU", "LSTM", "RNN", "load"]


class _Pass(torch.autograd.Function):
    """One librnn pass: ``(x, h0, c0, *parameters) -> (y, h_n[, c_n])``."""

    @staticmethod
    def forward(ctx, module, lengths, wants_grad, x, h0, c0, *params):
        core = module._synced(params)
        arrays = [None if t is None else t.detach().numpy() for t in (x, h0, c0)]
        if module.training or wants_grad:
            if not module.training and (module.dropout > 0 or module.recurrent_dropout > 0):
                raise NotImplementedError(
                    "librnn.torch: gradients in eval mode of a model with dropout "
                    "(librnn's training pass always applies it); call .train() or "
                    "build the model without dropout")
            y, h_n, c_n, tape = core.forward_train(*arrays, lengths=lengths)
        else:
            (y, h_n, c_n), tape = core.forward(*arrays, lengths=lengths), None
        ctx.core, ctx.tape, ctx.names = core, tape, module._names
        ctx.given = (h0 is not None, c0 is not None)
        outs = [torch.from_numpy(y), torch.from_numpy(h_n)]
        if c_n is not None:
            outs.append(torch.from_numpy(c_n))
        return tuple(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_h_n, grad_c_n=None):
        def arr(g):
            return None if g is None else g.contiguous().numpy()

        g = ctx.core.backward(ctx.tape, arr(grad_y), arr(grad_h_n), arr(grad_c_n))
        has_h0, has_c0 = ctx.given
        inputs = (
            torch.from_numpy(g["x"]),
            torch.from_numpy(g["h0"]) if has_h0 else None,
            torch.from_numpy(g["c0"]) if has_c0 else None,
        )
        params = tuple(torch.from_numpy(g[name]) for name in ctx.names)
        return (None, None, None) + inputs + params


class _Module(nn.Module):
    """What ``LSTM``, ``GRU`` and ``RNN`` share: the librnn model inside,
    its parameters as ``nn.Parameter``s, the forward."""

    _core_class = None

    def __init__(self, *args, seed=None, device=None, dtype=None, **kwargs):
        super().__init__()
        if seed is None:  # torch.manual_seed decides the initialisation
            seed = int(torch.randint(0, 2**62, ()).item())
        self._adopt(self._core_class(*args, seed=seed, device=device, dtype=dtype, **kwargs))

    def _adopt(self, core):
        """Takes ``core`` (a librnn model) as this module's computation and
        its parameters as this module's ``nn.Parameter``s."""
        self._core = core
        self._config = core.config()
        self._names = []
        for name, value in core.state_dict().items():
            self.register_parameter(name, nn.Parameter(torch.from_numpy(value)))
            self._names.append(name)
        self._seen = None

    def __getattr__(self, name):
        # PyTorch's attributes: input_size, hidden_size, num_layers, bias,
        # batch_first, dropout, bidirectional, proj_size, ...
        config = self.__dict__.get("_config")
        if config is not None and name in config and name not in ("cell", "seed"):
            return config[name]
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        config = self.__dict__.get("_config")
        if config is not None and name in config:
            raise AttributeError(f"{name}: fixed when the model is built (librnn.torch)")
        super().__setattr__(name, value)

    @classmethod
    def _from_core(cls, core):
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module._adopt(core)
        return module

    def _synced(self, params):
        """The librnn model with ``params`` (this module's parameters, in
        ``state_dict`` order) as its weights; copied only when one of them
        changed since the last call."""
        seen = [(p.data_ptr(), p._version) for p in params]
        if seen != self._seen:
            self._core.load_state_dict(
                {n: p.detach().numpy() for n, p in zip(self._names, params)})
            self._seen = seen
        return self._core

    def flatten_parameters(self):
        """Nothing to do (PyTorch's cuDNN call; here for drop-in code)."""

    def save(self, path):
        """Saves the model as a librnn weight file (``librnn.load`` and
        ``librnn.torch.load`` read it)."""
        self._synced([getattr(self, n) for n in self._names]).save(path)

    def forward(self, input, hx=None, lengths=None):
        """PyTorch's forward: ``input`` ``[T, B, I]`` (``[B, T, I]``
        batch-first) or a ``PackedSequence``; ``hx`` ``h0`` ``[L*D, B, S]``
        (an LSTM: ``(h0, c0)``, ``c0`` ``[L*D, B, H]``); ``lengths`` ``[B]``
        optional. Returns ``(output, h_n)``, an LSTM ``(output, (h_n,
        c_n))``; ``output`` is a ``PackedSequence`` when ``input`` is one."""
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("lengths: given with a PackedSequence, which has its own")
            input, lengths = pad_packed_sequence(input, batch_first=self.batch_first)
        if lengths is not None:
            lengths = lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths
        lstm = self._core_class is _librnn.LSTM
        h0 = c0 = None
        if hx is not None:
            if lstm:
                h0, c0 = hx
            else:
                h0 = hx
        params = [getattr(self, n) for n in self._names]
        tensors = [_float32(input, "input"), _float32(h0, "h0"), _float32(c0, "c0")] + params
        wants_grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in tensors)
        outs = _Pass.apply(self, lengths, wants_grad, *tensors)
        y, state = outs[0], (outs[1], outs[2]) if lstm else outs[1]
        if packed:
            y = pack_padded_sequence(y, lengths, batch_first=self.batch_first,
                                     enforce_sorted=False)
        return y, state

    def extra_repr(self):
        r = repr(self._core)  # "LSTM(8, 16, num_layers=2)"
        return r[r.index("(") + 1:-1]


def _float32(t, name):
    """``t`` as a float32 CPU tensor (``None`` stays ``None``)."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected floating-point values, got {t.dtype}")
    return t.to(torch.float32)


class LSTM(_Module):
    """``torch.nn.LSTM`` computed by librnn (same arguments, ``proj_size``
    included, and librnn's ``recurrent_dropout``, ``merge``, ``seed``)."""

    _core_class = _librnn.LSTM


class GRU(_Module):
    """``torch.nn.GRU`` computed by librnn (``reset_after=False``: the Cho
    et al. form PyTorch lacks)."""

    _core_class = _librnn.GRU


class RNN(_Module):
    """``torch.nn.RNN`` computed by librnn (``nonlinearity`` ``"tanh"`` or
    ``"relu"``)."""

    _core_class = _librnn.RNN


def load(path):
    """A librnn weight file as a ``librnn.torch`` module of its class."""
    core = _librnn.load(path)
    for cls in (LSTM, GRU, RNN):
        if isinstance(core, cls._core_class):
            return cls._from_core(core)
    raise TypeError(f"{path}: not a recurrent network")  # unreachable: load returns one of the three
