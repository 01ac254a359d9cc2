"""librnn from Python through ctypes (no compiled extension; numpy optional).

The library is found at $RNN_LIBRARY, else at target/release/librnn.so of the
repository this file lives in, else by ctypes.util.find_library("rnn").

Arrays: any sequence of floats, an ``array.array('f')`` (used without a copy)
or a numpy array (converted to contiguous float32). Results are
``array.array('f')`` (``numpy.frombuffer(result, numpy.float32)`` views one
without a copy). Layouts are the C API's (see include/rnn.h): x [T, B, I]
time-major, states [L*D, B, H], y [T, B, D*H], PyTorch parameter names.

Every failure raises RnnError with the status and the library's message
(RnnOutOfMemory, also a MemoryError, for STATUS_OUT_OF_MEMORY: a size too
large for the memory the process can get).

    import rnn_ctypes as rnn
    m = rnn.Model.load("tests/fixtures/parity/lstm_l1_b1_t1_i3_h5_bias.safetensors")
    y, h_n, c_n = m.forward([0.1] * 3, seq_len=1, batch=1)
"""

import array
import ctypes
import ctypes.util
import os
from ctypes import POINTER, c_char_p, c_double, c_float, c_size_t, c_uint32, c_uint64, c_void_p

STATUS_NAMES = [
    "OK",
    "NULL_POINTER",
    "INVALID_ARGUMENT",
    "SHAPE_MISMATCH",
    "BUFFER_TOO_SMALL",
    "IO",
    "NUMERICAL",
    "PANIC",
    "OUT_OF_MEMORY",
    "COLLECTIVE",
]
for _i, _n in enumerate(STATUS_NAMES):
    globals()["STATUS_" + _n] = _i

CELL_ELMAN, CELL_LSTM, CELL_GRU = 0, 1, 2
ACTIVATION_TANH, ACTIVATION_RELU = 0, 1
GRU_LINEAR_BEFORE_RESET, GRU_RESET_BEFORE_LINEAR = 0, 1
_CELLS = {"rnn_tanh": (0, 0, 0), "rnn_relu": (0, 1, 0), "lstm": (1, 0, 0), "gru": (2, 0, 0),
          "gru_reset_before": (2, 0, 1)}


class RnnError(Exception):
    """A failed library call: ``status`` (an int, see STATUS_NAMES) and the message."""

    def __init__(self, status, message):
        self.status = status
        name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else str(status)
        super().__init__("%s: %s" % (name, message))


class RnnOutOfMemory(RnnError, MemoryError):
    """STATUS_OUT_OF_MEMORY: a buffer sized by an argument or a file could not be allocated."""


class Config(ctypes.Structure):
    _fields_ = [("cell", c_uint32), ("activation", c_uint32), ("gru_variant", c_uint32),
                ("bias", c_uint32), ("bidirectional", c_uint32), ("input_size", c_size_t),
                ("hidden_size", c_size_t), ("num_layers", c_size_t), ("seed", c_uint64)]


class ConfigExt(ctypes.Structure):
    """rnn_config_ext: the arguments beyond Config (library 0.3 on)."""
    _fields_ = [("size", c_size_t), ("proj_size", c_size_t), ("batch_first", c_uint32),
                ("merge", c_uint32), ("dropout", c_double), ("recurrent_dropout", c_double)]


MERGE_CONCAT, MERGE_SUM = 0, 1


class SgdConfig(ctypes.Structure):
    _fields_ = [("lr", c_double), ("momentum", c_double), ("dampening", c_double),
                ("weight_decay", c_double), ("nesterov", c_uint32)]


class AdamConfig(ctypes.Structure):
    _fields_ = [("lr", c_double), ("beta1", c_double), ("beta2", c_double), ("eps", c_double),
                ("weight_decay", c_double), ("decoupled", c_uint32)]


class RmsPropConfig(ctypes.Structure):
    _fields_ = [("lr", c_double), ("alpha", c_double), ("eps", c_double),
                ("weight_decay", c_double), ("momentum", c_double), ("centered", c_uint32)]


def _find_library():
    env = os.environ.get("RNN_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    local = os.path.join(here, "..", "..", "target", "release", "librnn.so")
    if os.path.exists(local):
        return os.path.normpath(local)
    found = ctypes.util.find_library("rnn")
    if found:
        return found
    raise OSError("librnn.so not found: build it (cargo build --release -p rnn-capi) "
                  "or set RNN_LIBRARY")


lib = ctypes.CDLL(_find_library())

_F = POINTER(c_float)
_SZ = POINTER(c_size_t)
_H = c_void_p  # every handle is an opaque pointer
_HP = POINTER(c_void_p)
_SIGNATURES = {
    "rnn_abi_version": (c_uint32, []),
    "rnn_status_string": (c_char_p, [c_uint32]),
    "rnn_last_error_message": (c_char_p, []),
    "rnn_set_num_threads": (c_uint32, [c_size_t]),
    "rnn_get_num_threads": (c_uint32, [_SZ]),
    "rnn_config_init": (c_uint32, [POINTER(Config), c_uint32, c_size_t, c_size_t]),
    "rnn_model_new": (c_uint32, [POINTER(Config), _HP]),
    "rnn_model_load": (c_uint32, [c_char_p, _HP]),
    "rnn_model_save": (c_uint32, [_H, c_char_p]),
    "rnn_model_clone": (c_uint32, [_H, _HP]),
    "rnn_model_free": (None, [_H]),
    "rnn_model_config": (c_uint32, [_H, POINTER(Config)]),
    "rnn_config_ext_init": (c_uint32, [POINTER(ConfigExt)]),
    "rnn_model_new_ext": (c_uint32, [POINTER(Config), POINTER(ConfigExt), _HP]),
    "rnn_model_config_ext": (c_uint32, [_H, POINTER(ConfigExt)]),
    "rnn_model_forward": (c_uint32, [_H, _F, c_size_t, c_size_t, _F, _F, _F, c_size_t, _F,
                                     c_size_t, _F, c_size_t]),
    "rnn_model_forward_lengths": (c_uint32, [_H, _F, c_size_t, c_size_t, _SZ, _F, _F, _F,
                                             c_size_t, _F, c_size_t, _F, c_size_t]),
    "rnn_model_param_count": (c_uint32, [_H, _SZ]),
    "rnn_model_param_name": (c_uint32, [_H, c_size_t, POINTER(c_char_p)]),
    "rnn_model_param_shape": (c_uint32, [_H, c_char_p, _SZ, c_size_t, _SZ]),
    "rnn_model_param_get": (c_uint32, [_H, c_char_p, _F, c_size_t]),
    "rnn_model_param_set": (c_uint32, [_H, c_char_p, _F, c_size_t]),
    "rnn_stream_new": (c_uint32, [_H, c_size_t, _HP]),
    "rnn_stream_step": (c_uint32, [_H, _H, _F, _F, c_size_t]),
    "rnn_stream_reset": (c_uint32, [_H]),
    "rnn_stream_free": (None, [_H]),
    "rnn_trainer_new": (c_uint32, [_H, _HP]),
    "rnn_trainer_free": (None, [_H]),
    "rnn_trainer_forward": (c_uint32, [_H, _H, _F, c_size_t, c_size_t, _SZ, _F, _F, _F,
                                       c_size_t, _F, c_size_t, _F, c_size_t]),
    "rnn_trainer_backward": (c_uint32, [_H, _H, _F, _F, _F]),
    "rnn_trainer_grad": (c_uint32, [_H, c_char_p, _F, c_size_t]),
    "rnn_trainer_input_grads": (c_uint32, [_H, _F, c_size_t, _F, c_size_t, _F, c_size_t]),
    "rnn_trainer_clip_grad_norm": (c_uint32, [_H, c_float, _F]),
    "rnn_trainer_step_mse": (c_uint32, [_H, _H, _H, _F, c_size_t, c_size_t, _SZ, _F, _F, _F,
                                        c_float, POINTER(c_double)]),
    "rnn_sgd_config_init": (c_uint32, [POINTER(SgdConfig), c_double]),
    "rnn_adam_config_init": (c_uint32, [POINTER(AdamConfig), c_double]),
    "rnn_rmsprop_config_init": (c_uint32, [POINTER(RmsPropConfig), c_double]),
    "rnn_optimizer_new_sgd": (c_uint32, [POINTER(SgdConfig), _HP]),
    "rnn_optimizer_new_adam": (c_uint32, [POINTER(AdamConfig), _HP]),
    "rnn_optimizer_new_rmsprop": (c_uint32, [POINTER(RmsPropConfig), _HP]),
    "rnn_optimizer_step": (c_uint32, [_H, _H, _H]),
    "rnn_optimizer_lr": (c_uint32, [_H, POINTER(c_double)]),
    "rnn_optimizer_set_lr": (c_uint32, [_H, c_double]),
    "rnn_optimizer_reset": (c_uint32, [_H]),
    "rnn_optimizer_free": (None, [_H]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args


def check(status):
    """Raises RnnError (RnnOutOfMemory for STATUS_OUT_OF_MEMORY) for a status other than OK."""
    if status != 0:
        cls = RnnOutOfMemory if status == STATUS_OUT_OF_MEMORY else RnnError
        raise cls(status, lib.rnn_last_error_message().decode("utf-8", "replace"))


def abi_version():
    v = lib.rnn_abi_version()
    return (v >> 16, (v >> 8) & 0xFF, v & 0xFF)


MAX_THREADS = 1024  # RNN_MAX_THREADS: set_num_threads refuses more


def set_num_threads(n):
    check(lib.rnn_set_num_threads(n))


def _path(p):
    return os.fsencode(p)


class _FloatIn:
    """A float input as a ctypes pointer, keeping its buffer alive."""

    def __init__(self, values, n, name):
        if values is None:
            self.ptr, self._keep = None, None
            return
        if type(values).__module__ == "numpy":
            import numpy
            arr = numpy.ascontiguousarray(values, dtype=numpy.float32).reshape(-1)
            count = arr.size
            self._keep = arr
            self.ptr = arr.ctypes.data_as(_F)
        else:
            if not (isinstance(values, array.array) and values.typecode == "f"):
                values = array.array("f", values)
            count = len(values)
            if count:
                self._keep = values
                self.ptr = ctypes.cast((c_float * count).from_buffer(values), _F)
            else:  # a valid pointer to nothing: the sizes decide the error
                self._keep = (c_float * 1)()
                self.ptr = ctypes.cast(self._keep, _F)
        if n is not None and count != n:
            raise RnnError(STATUS_SHAPE_MISMATCH, "%s: expected %d values, got %d"
                           % (name, n, count))
        self.len = count


def _out(n):
    """A zeroed output buffer of n floats and its pointer (NULL when n = 0)."""
    buf = array.array("f", bytes(4 * n))
    ptr = ctypes.cast((c_float * n).from_buffer(buf), _F) if n else None
    return buf, ptr


def _sizes(values, n, name):
    if values is None:
        return None, None
    vals = [int(v) for v in values]
    if len(vals) != n:
        raise RnnError(STATUS_SHAPE_MISMATCH, "%s: expected %d values, got %d"
                       % (name, n, len(vals)))
    arr = (c_size_t * n)(*vals)
    return arr, ctypes.cast(arr, _SZ)


class Model:
    """A recurrent network. Forward may run from several threads at once."""

    _free = staticmethod(lib.rnn_model_free)  # kept for __del__ at interpreter exit

    def __init__(self, handle):
        self._h = c_void_p(handle)

    @classmethod
    def new(cls, cell, input_size, hidden_size, num_layers=1, bias=True, bidirectional=False,
            seed=0):
        """cell: 'rnn_tanh', 'rnn_relu', 'lstm', 'gru' or 'gru_reset_before'."""
        if cell not in _CELLS:
            raise RnnError(STATUS_INVALID_ARGUMENT, "unknown cell %r" % (cell,))
        kind, act, variant = _CELLS[cell]
        c = Config()
        check(lib.rnn_config_init(ctypes.byref(c), kind, input_size, hidden_size))
        c.activation, c.gru_variant = act, variant
        c.num_layers, c.bias, c.bidirectional, c.seed = num_layers, int(bias), int(
            bidirectional), seed
        h = c_void_p()
        check(lib.rnn_model_new(ctypes.byref(c), ctypes.byref(h)))
        return cls(h.value)

    @classmethod
    def load(cls, path):
        h = c_void_p()
        check(lib.rnn_model_load(_path(path), ctypes.byref(h)))
        return cls(h.value)

    def save(self, path):
        check(lib.rnn_model_save(self._h, _path(path)))

    def clone(self):
        h = c_void_p()
        check(lib.rnn_model_clone(self._h, ctypes.byref(h)))
        return Model(h.value)

    def close(self):
        if self._h is not None and self._h.value:
            self._free(self._h)
        self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def handle(self):
        return self._h

    def config(self):
        c = Config()
        check(lib.rnn_model_config(self._h, ctypes.byref(c)))
        return {f: getattr(c, f) for f, _ in Config._fields_}

    def config_ext(self):
        """The arguments beyond config(): proj_size, batch_first, merge."""
        e = ConfigExt()
        check(lib.rnn_config_ext_init(ctypes.byref(e)))
        check(lib.rnn_model_config_ext(self._h, ctypes.byref(e)))
        return {f: getattr(e, f) for f, _ in ConfigExt._fields_ if f != "size"}

    def dims(self):
        """(I, H, L, D, has_cell_state)."""
        c = self.config()
        return (c["input_size"], c["hidden_size"], c["num_layers"],
                2 if c["bidirectional"] else 1, c["cell"] == CELL_LSTM)

    def forward(self, x, seq_len, batch, h0=None, c0=None, lengths=None):
        """x [T, B, I] -> (y [T, B, O], h_n [L*D, B, S], c_n [L*D, B, H] (LSTM,
        else None)); S = proj_size or H, O = D*S (S with merge sum); [B, T, .]
        sequences for a batch_first model."""
        i, h, l, d, lstm = self.dims()
        e = self.config_ext()
        s = e["proj_size"] or h
        o = s if e["merge"] == MERGE_SUM else d * s
        ns, nc = l * d * batch * s, l * d * batch * h
        xin = _FloatIn(x, seq_len * batch * i, "x")
        h0in, c0in = _FloatIn(h0, ns, "h0"), _FloatIn(c0, nc, "c0")
        _keep, lens = _sizes(lengths, batch, "lengths")
        y, yp = _out(seq_len * batch * o)
        hn, hnp = _out(ns)
        cn, cnp = _out(nc if lstm else 0)
        if lens is None:
            st = lib.rnn_model_forward(self._h, xin.ptr, seq_len, batch, h0in.ptr, c0in.ptr, yp,
                                       len(y), hnp, len(hn), cnp, len(cn))
        else:
            st = lib.rnn_model_forward_lengths(self._h, xin.ptr, seq_len, batch, lens, h0in.ptr,
                                               c0in.ptr, yp, len(y), hnp, len(hn), cnp, len(cn))
        check(st)
        return y, hn, (cn if lstm else None)

    def param_names(self):
        n = c_size_t()
        check(lib.rnn_model_param_count(self._h, ctypes.byref(n)))
        out = []
        for k in range(n.value):
            s = c_char_p()
            check(lib.rnn_model_param_name(self._h, k, ctypes.byref(s)))
            out.append(s.value.decode())
        return out

    def param_shape(self, name):
        shape, ndim = (c_size_t * 2)(), c_size_t()
        check(lib.rnn_model_param_shape(self._h, name.encode(), shape, 2, ctypes.byref(ndim)))
        return tuple(shape[k] for k in range(ndim.value))

    def param(self, name):
        n = 1
        for s in self.param_shape(name):
            n *= s
        buf, ptr = _out(n)
        check(lib.rnn_model_param_get(self._h, name.encode(), ptr, n))
        return buf

    def set_param(self, name, values):
        v = _FloatIn(values, None, name)
        check(lib.rnn_model_param_set(self._h, name.encode(), v.ptr, v.len))


class Trainer:
    """Tape + gradients for one model; one-call MSE train step."""

    _free = staticmethod(lib.rnn_trainer_free)

    def __init__(self, model):
        self._h = None
        self.model = model
        h = c_void_p()
        check(lib.rnn_trainer_new(model.handle, ctypes.byref(h)))
        self._h = h

    def close(self):
        if self._h is not None and self._h.value:
            self._free(self._h)
        self._h = None

    __del__ = close

    def step_mse(self, optimizer, x, seq_len, batch, target, max_grad_norm=0.0, lengths=None):
        i, h, _, d, _ = self.model.dims()
        xin = _FloatIn(x, seq_len * batch * i, "x")
        tin = _FloatIn(target, seq_len * batch * d * h, "target")
        _keep, lens = _sizes(lengths, batch, "lengths")
        loss = c_double()
        check(lib.rnn_trainer_step_mse(self._h, self.model.handle, optimizer.handle, xin.ptr,
                                       seq_len, batch, lens, None, None, tin.ptr, max_grad_norm,
                                       ctypes.byref(loss)))
        return loss.value


class Optimizer:
    """Optimizer.adam(lr, **fields), .sgd(lr, ...), .rmsprop(lr, ...)."""

    _free = staticmethod(lib.rnn_optimizer_free)

    def __init__(self, handle):
        self._h = c_void_p(handle)

    @classmethod
    def _make(cls, struct, init, new, lr, fields):
        c = struct()
        check(init(ctypes.byref(c), lr))
        for k, v in fields.items():
            setattr(c, k, v)
        h = c_void_p()
        check(new(ctypes.byref(c), ctypes.byref(h)))
        return cls(h.value)

    @classmethod
    def sgd(cls, lr, **fields):
        return cls._make(SgdConfig, lib.rnn_sgd_config_init, lib.rnn_optimizer_new_sgd, lr, fields)

    @classmethod
    def adam(cls, lr, **fields):
        return cls._make(AdamConfig, lib.rnn_adam_config_init, lib.rnn_optimizer_new_adam, lr,
                         fields)

    @classmethod
    def rmsprop(cls, lr, **fields):
        return cls._make(RmsPropConfig, lib.rnn_rmsprop_config_init,
                         lib.rnn_optimizer_new_rmsprop, lr, fields)

    @property
    def handle(self):
        return self._h

    def close(self):
        if self._h is not None and self._h.value:
            self._free(self._h)
        self._h = None

    __del__ = close
