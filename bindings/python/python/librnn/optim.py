"""PyTorch's update rules over a librnn model's parameters.

``opt = librnn.optim.Adam(model, lr=1e-3)``, then ``opt.step(grads)`` with a
gradients dict from ``model.backward`` or ``model.gradients`` (its ``"x"``,
``"h0"`` and ``"c0"`` entries are not parameters and are ignored). The
rules and defaults are ``torch.optim``'s.
"""
from ._librnn import SGD, Adam, AdamW, Optimizer, RMSprop

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop"]
