"""Trains an LSTM to continue a sine wave, with librnn from Python.

An LSTM with a one-unit projection (proj_size=1) reads a noisy sine and
predicts its next value at every step; Adam minimises the mean squared
error, the gradients clipped at norm 1. Prints the loss as it falls.

usage: python3 bindings/python/examples/train_sine.py   (after pip install ./bindings/python)
"""
import numpy as np

import librnn

T, B = 40, 16
rng = np.random.default_rng(0)
model = librnn.LSTM(1, 24, proj_size=1, seed=1)
opt = librnn.optim.Adam(model, lr=1e-2)

for step in range(301):
    phase = rng.uniform(0, 2 * np.pi, size=B)
    t = np.arange(T + 1)[:, None] * 0.3 + phase[None, :]  # [T+1, B]
    wave = (np.sin(t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
    x, target = wave[:-1, :, None], wave[1:, :, None]  # [T, B, 1]
    y, _, _, tape = model.forward_train(x)  # y [T, B, 1]; tape: for backward
    loss = float(np.mean((y - target) ** 2))
    grads = model.backward(tape, 2.0 * (y - target) / y.size)  # d loss / d y
    librnn.clip_grad_norm(grads, 1.0)
    opt.step(grads)
    if step % 50 == 0:
        print(f"step {step:3d}  mse {loss:.5f}")
