"""Type stubs of librnn._librnn, the Rust extension the package re-exports."""
from os import PathLike
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

ArrayLike = Union[npt.ArrayLike, Any]  # numpy arrays, torch tensors (via __array__), lists
Array = npt.NDArray[np.float32]
Lengths = Union[Sequence[int], npt.NDArray[np.integer[Any]]]

__version__: str

class NumericalError(ArithmeticError):
    """A value that is not finite (NaN or infinity) where one is needed."""

class Tape:
    """A training forward pass kept for its backward (Module.forward_train)."""

class Module:
    """A recurrent network; float32 arrays, sequences [T, B, F] ([B, T, F]
    batch-first), states [L*D, B, S] (h; S = H or proj_size) and [L*D, B, H] (c)."""

    def forward(
        self,
        x: ArrayLike,
        h0: Optional[ArrayLike] = None,
        c0: Optional[ArrayLike] = None,
        lengths: Optional[Lengths] = None,
    ) -> Tuple[Array, Array, Optional[Array]]:
        """(y [T, B, D*S], h_n [L*D, B, S], c_n [L*D, B, H] or None); no dropout."""
    def __call__(
        self,
        x: ArrayLike,
        hx: Optional[Union[ArrayLike, Tuple[ArrayLike, ArrayLike]]] = None,
        lengths: Optional[Lengths] = None,
    ) -> Tuple[Array, Union[Array, Tuple[Array, Array]]]:
        """PyTorch's: (y, (h_n, c_n)) for an LSTM, (y, h_n) otherwise."""
    def forward_train(
        self,
        x: ArrayLike,
        h0: Optional[ArrayLike] = None,
        c0: Optional[ArrayLike] = None,
        lengths: Optional[Lengths] = None,
    ) -> Tuple[Array, Array, Optional[Array], Tape]:
        """As forward, with dropout, and the pass kept: (y, h_n, c_n, tape)."""
    def backward(
        self,
        tape: Tape,
        grad_y: ArrayLike,
        grad_h_n: Optional[ArrayLike] = None,
        grad_c_n: Optional[ArrayLike] = None,
    ) -> dict[str, Array]:
        """Gradients of sum(y*grad_y) + sum(h_n*grad_h_n) (+ sum(c_n*grad_c_n))
        through tape: "x", "h0", "c0" (LSTM) and every parameter by name."""
    def gradients(
        self,
        x: ArrayLike,
        grad_y: ArrayLike,
        h0: Optional[ArrayLike] = None,
        c0: Optional[ArrayLike] = None,
        grad_h_n: Optional[ArrayLike] = None,
        grad_c_n: Optional[ArrayLike] = None,
        lengths: Optional[Lengths] = None,
    ) -> dict[str, Array]:
        """forward_train then backward: gradients of sum(y*grad_y) + sum(h_n*grad_h_n) (+ sum(c_n*grad_c_n)):
        "x", "h0", "c0" (LSTM) and every parameter by its state_dict name."""
    def state_dict(self) -> dict[str, Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, ArrayLike]) -> None: ...
    def save(self, path: Union[str, PathLike[str]]) -> None: ...
    def config(self) -> dict[str, Any]: ...
    def _time_forward(self, x: ArrayLike, repeats: int) -> list[float]: ...

class RNN(Module):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        recurrent_dropout: float = 0.0,
        merge: str = "concat",
        seed: Optional[int] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None: ...

class LSTM(Module):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        recurrent_dropout: float = 0.0,
        merge: str = "concat",
        seed: Optional[int] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None: ...

class GRU(Module):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        recurrent_dropout: float = 0.0,
        merge: str = "concat",
        reset_after: bool = True,
        seed: Optional[int] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None: ...

def load(path: Union[str, PathLike[str]]) -> Union[RNN, LSTM, GRU]:
    """A model file (librnn's, or PyTorch's state_dict with librnn's metadata)."""

def clip_grad_norm(
    grads: dict[str, Any], max_norm: float, error_if_nonfinite: bool = False
) -> float:
    """Scales the parameter entries of a gradients dict (not "x", "h0",
    "c0") to a joint L2 norm of at most max_norm; returns the norm before.
    error_if_nonfinite: a NaN/infinite norm raises NumericalError."""

# librnn.optim re-exports these five.
class Optimizer:
    lr: float
    def step(self, grads: Mapping[str, ArrayLike]) -> None:
        """One update from the parameter entries of a gradients dict."""
    def zero_state(self) -> None:
        """Forgets the moments and the step count."""

class SGD(Optimizer):
    def __init__(
        self,
        model: Module,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None: ...

class Adam(Optimizer):
    def __init__(
        self,
        model: Module,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None: ...

class AdamW(Optimizer):
    def __init__(
        self,
        model: Module,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None: ...

class RMSprop(Optimizer):
    def __init__(
        self,
        model: Module,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None: ...

class NTMConfig:
    """A Neural Turing Machine's sizes (docs/ntm.md); defaults: the copy
    task's machine for 8-bit vectors."""

    input_size: int
    output_size: int
    def __init__(
        self,
        controller: str = "lstm",
        input_size: Optional[int] = None,
        output_size: Optional[int] = None,
        controller_size: Optional[int] = None,
        memory_rows: Optional[int] = None,
        memory_width: Optional[int] = None,
        read_heads: Optional[int] = None,
        write_heads: Optional[int] = None,
        shift_range: Optional[int] = None,
        memory_init: Optional[Union[float, str]] = None,
        seed: int = 0,
    ) -> None: ...

class NTM:
    """x [T, B, I] in, logits [T, B, O] out."""

    def __init__(self, config: Optional[NTMConfig] = None) -> None: ...
    def forward(self, x: ArrayLike) -> Array: ...
    def gradients(self, x: ArrayLike, grad_y: ArrayLike) -> dict[str, Array]:
        """Gradients of sum(logits * grad_y): "x" and every parameter by name."""
    def state_dict(self) -> dict[str, Array]: ...
    def save(self, path: Union[str, PathLike[str]]) -> None: ...
    def config(self) -> NTMConfig: ...

def load_ntm(path: Union[str, PathLike[str]]) -> NTM: ...
