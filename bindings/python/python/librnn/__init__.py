"""librnn: recurrent neural networks on CPUs, shaped like ``torch.nn``.

``RNN``, ``LSTM`` and ``GRU`` take PyTorch's constructor arguments and
parameter names; arrays are numpy ``float32`` (anything array-like is
accepted and converted once), sequences ``[T, B, F]`` (``[B, T, F]`` with
``batch_first``), states ``[num_layers * directions, B, H]``. The numbers
are librnn's Rust kernels, exact against PyTorch; the GIL is released
while they run.

>>> import numpy as np, librnn
>>> lstm = librnn.LSTM(8, 16, num_layers=2, seed=1)
>>> y, (h_n, c_n) = lstm(np.zeros((5, 3, 8), np.float32))
>>> y.shape, h_n.shape
((5, 3, 16), (2, 3, 16))

Training: ``forward_train`` + ``backward`` (or ``gradients``) give every
gradient as a dict; ``librnn.optim`` updates the parameters with PyTorch's
rules. ``librnn.torch`` (when torch is installed) wraps the same modules as
``torch.nn.Module``s whose backward is librnn's.
"""
from ._librnn import (
    GRU,
    LSTM,
    NTM,
    RNN,
    Module,
    NTMConfig,
    NumericalError,
    Tape,
    __version__,
    clip_grad_norm,
    load,
    load_ntm,
)
from . import optim



def _rebuild(config, state_dict):
    """The model of ``config`` (``Module.config()``) with ``state_dict``:
    how a pickled or deep-copied model comes back."""
    args = dict(config)
    cell = args.pop("cell")
    cls = LSTM if cell == "lstm" else GRU if cell.startswith("gru") else RNN
    if cls is not LSTM:
        del args["proj_size"]
    model = cls(**args)
    model.load_state_dict(state_dict)
    return model


__all__ = [
    "GRU",
    "LSTM",
    "NTM",
    "RNN",
    "Module",
    "NTMConfig",
    "NumericalError",
    "Tape",
    "clip_grad_norm",
    "load",
    "load_ntm",
    "optim",
    "__version__",
]
