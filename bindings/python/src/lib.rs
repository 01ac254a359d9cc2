//! The Python module `librnn`: recurrent networks shaped like `torch.nn`
//! (`RNN`, `LSTM`, `GRU`), numpy arrays in and out, the GIL released while
//! librnn computes. The numbers are librnn's (`rnn-models`), exact against
//! PyTorch.
//!
//! Layout: every array is `float32`, C order; sequences `[T, B, F]` (or
//! `[B, T, F]` for `batch_first`), states `[L*D, B, H]` (`h` `P` wide for
//! an LSTM with `proj_size`).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyArithmeticError, PyMemoryError, PyNotImplementedError, PyOSError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rnn_models::ntm::{Controller, MemoryInit, Ntm, NtmConfig, NtmGradScratch, NtmTape};
use rnn_models::optim::{
    Adam, AdamConfig, Optimizer as RustOptimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
    clip_grad_norm_parts,
};
use rnn_models::{
    CellKind, Error, Gradients, GruVariant, Merge, NetConfig, Nonlinearity, OutputGrads, Recurrent,
    SeqInput, Tape,
};

create_exception!(
    librnn,
    NumericalError,
    PyArithmeticError,
    "A computation met or produced a value that is not finite (NaN or infinity)."
);

/// A librnn error as the Python exception a numpy user expects.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { .. } | Error::Format { .. } => PyOSError::new_err(msg),
        Error::OutOfMemory { .. } => PyMemoryError::new_err(msg),
        Error::NonFinite(_) => NumericalError::new_err(msg),
        Error::Shape { .. }
        | Error::ZeroSize { .. }
        | Error::Config(_)
        | Error::MissingParameter { .. }
        | Error::Unexpected(_) => PyValueError::new_err(msg),
        Error::Collective(_) => PyRuntimeError::new_err(msg),
    }
}

/// A `float32`, C-order view of an array-like argument (a numpy array, a
/// torch tensor through `__array__`, nested lists): the caller's array
/// itself when it already is one, otherwise one converted copy. Values
/// that are not floating-point (integers, booleans, objects) are a
/// `TypeError`: data given as integers is more likely a mistake than a
/// wish.
type Floats<'py> = PyReadonlyArrayDyn<'py, f32>;

fn floats<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Floats<'py>> {
    if let Ok(a) = obj.downcast::<PyArrayDyn<f32>>() {
        if a.is_c_contiguous() {
            return a
                .try_readonly()
                .map_err(|e| PyValueError::new_err(format!("{name}: {e}")));
        }
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("{name}: not an array of numbers ({e})")))?;
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    if kind != "f" {
        return Err(PyTypeError::new_err(format!(
            "{name}: expected floating-point values, got dtype {}",
            dtype.str()?
        )));
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", np.getattr("float32")?)?;
    let arr = np.call_method("ascontiguousarray", (arr,), Some(&kwargs))?;
    Ok(arr.downcast_into::<PyArrayDyn<f32>>()?.readonly())
}

/// The values of `arr`, whose shape must be `expected` (a `ValueError`
/// naming `name` and both shapes otherwise).
fn shaped<'a>(arr: &'a Floats<'_>, name: &str, expected: &[usize]) -> PyResult<&'a [f32]> {
    if arr.shape() != expected {
        return Err(PyValueError::new_err(format!(
            "{name}: expected shape {expected:?}, got {:?}",
            arr.shape()
        )));
    }
    Ok(arr.as_slice()?)
}

/// An optional array-like argument (`None` stays `None`).
fn optional_floats<'py>(
    obj: Option<&Bound<'py, PyAny>>,
    name: &str,
) -> PyResult<Option<Floats<'py>>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(floats(o, name)?)),
        _ => Ok(None),
    }
}

/// The values of an optional array, whose shape must be `expected`.
fn optional_shaped<'a>(
    arr: &'a Option<Floats<'_>>,
    name: &str,
    expected: &[usize],
) -> PyResult<Option<&'a [f32]>> {
    arr.as_ref().map(|a| shaped(a, name, expected)).transpose()
}

/// `values` as a `float32` array of `shape` (no copy: the array owns them).
fn array<'py>(
    py: Python<'py>,
    values: Vec<f32>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    numpy::PyArray1::from_vec(py, values).reshape(shape.to_vec())
}

/// `lengths`: `None`, or `B` non-negative integers (a list, a tuple, an
/// array or tensor of any integer dtype).
fn lengths_arg(obj: Option<&Bound<'_, PyAny>>, batch: usize) -> PyResult<Option<Vec<usize>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let np = obj.py().import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("lengths: not a sequence of integers ({e})")))?;
    let size: usize = arr.getattr("size")?.extract()?;
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    if size > 0 && kind != "i" && kind != "u" {
        return Err(PyTypeError::new_err(format!(
            "lengths: expected integers, got dtype {}",
            dtype.str()?
        )));
    }
    if ndim != 1 || size != batch {
        let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
        return Err(PyValueError::new_err(format!(
            "lengths: expected shape [{batch}] (one length per sequence), got {shape:?}"
        )));
    }
    let values: Vec<i128> = arr.call_method0("tolist")?.extract()?;
    values
        .into_iter()
        .map(|v| {
            usize::try_from(v).map_err(|_| {
                PyValueError::new_err(format!(
                    "lengths: {v} is not a length (negative or too large)"
                ))
            })
        })
        .collect::<PyResult<_>>()
        .map(Some)
}

/// The sequence sizes `(T, B)` of `shape` (`[T, B, F]`, or `[B, T, F]`
/// batch-first), checking its rank and features.
fn sequence_sizes(
    shape: &[usize],
    features: usize,
    batch_first: bool,
    name: &str,
) -> PyResult<(usize, usize)> {
    match *shape {
        [a, b, f] if f == features => Ok(if batch_first { (b, a) } else { (a, b) }),
        _ => Err(PyValueError::new_err(format!(
            "{name}: expected shape [{}, {features}], got {shape:?}",
            if batch_first { "B, T" } else { "T, B" }
        ))),
    }
}

/// A recurrent network: the base class of [`Lstm`], [`Gru`] and [`Rnn`].
#[pyclass(subclass, module = "librnn", name = "Module")]
struct Module {
    net: Recurrent,
    /// Training passes so far: each new tape continues the count, so that
    /// every pass draws new dropout masks (reproducibly for a fixed seed).
    passes: AtomicU64,
}

/// What one forward pass gives, as arrays: `(y, h_n, c_n or None)`.
type Outputs<'py> = (
    Bound<'py, PyArrayDyn<f32>>,
    Bound<'py, PyArrayDyn<f32>>,
    Option<Bound<'py, PyArrayDyn<f32>>>,
);

/// The checked array arguments of one forward call.
struct Call<'py> {
    x: Floats<'py>,
    h0: Option<Floats<'py>>,
    c0: Option<Floats<'py>>,
    lengths: Option<Vec<usize>>,
    /// `(T, B)`.
    sizes: (usize, usize),
}

/// A training forward pass kept for its backward: what
/// [`Module::forward_train`] returns and [`Module::backward`] takes.
#[pyclass(module = "librnn", name = "Tape")]
struct PyTape {
    tape: Tape,
    /// `(T, B)` of the pass.
    sizes: (usize, usize),
}

impl Module {
    fn new(net: Recurrent) -> Self {
        Self {
            net,
            passes: AtomicU64::new(0),
        }
    }

    /// A tape for the next training pass.
    fn tape(&self) -> Tape {
        let mut tape = Tape::new();
        tape.set_dropout_draws(self.passes.fetch_add(1, Ordering::Relaxed));
        tape
    }

    fn cfg(&self) -> &NetConfig {
        self.net.config()
    }

    /// `[L*D, B, W]` for a state `W` wide.
    fn state_shape(&self, batch: usize, width: usize) -> [usize; 3] {
        let c = self.cfg();
        [c.num_layers * c.directions(), batch, width]
    }

    /// The sequence shape of `(T, B)` with `width` features.
    fn sequence_shape(&self, (t, b): (usize, usize), width: usize) -> [usize; 3] {
        if self.cfg().batch_first {
            [b, t, width]
        } else {
            [t, b, width]
        }
    }

    /// Reads and checks the arguments of a forward call.
    fn call<'py>(
        &self,
        x: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        c0: Option<&Bound<'py, PyAny>>,
        lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Call<'py>> {
        let c = self.cfg();
        let x = floats(x, "x")?;
        let sizes = sequence_sizes(x.shape(), c.input_size, c.batch_first, "x")?;
        if c0.is_some_and(|c0| !c0.is_none()) && !c.cell.has_cell_state() {
            return Err(PyValueError::new_err(format!(
                "c0: a {} has no cell state",
                c.cell.name()
            )));
        }
        Ok(Call {
            x,
            h0: optional_floats(h0, "h0")?,
            c0: optional_floats(c0, "c0")?,
            lengths: lengths_arg(lengths, sizes.1)?,
            sizes,
        })
    }

    /// The network's input of `call`, every shape checked.
    fn input<'a>(&self, call: &'a Call<'_>) -> PyResult<SeqInput<'a>> {
        let c = self.cfg();
        let (t, b) = call.sizes;
        let mut input = SeqInput::new(call.x.as_slice()?, t, b);
        if let Some(h0) = optional_shaped(&call.h0, "h0", &self.state_shape(b, c.state_size()))? {
            input = input.h0(h0);
        }
        if let Some(c0) = optional_shaped(&call.c0, "c0", &self.state_shape(b, c.hidden_size))? {
            input = input.c0(c0);
        }
        if let Some(l) = &call.lengths {
            input = input.lengths(l);
        }
        Ok(input)
    }

    /// The output arrays of a forward pass over `(T, B)`.
    fn outputs<'py>(
        &self,
        py: Python<'py>,
        out: rnn_models::Output,
        sizes: (usize, usize),
    ) -> PyResult<Outputs<'py>> {
        let c = self.cfg();
        let b = sizes.1;
        let y = array(py, out.y, &self.sequence_shape(sizes, c.output_size()))?;
        let h_n = array(py, out.h_n, &self.state_shape(b, c.state_size()))?;
        let c_n = if c.cell.has_cell_state() {
            Some(array(py, out.c_n, &self.state_shape(b, c.hidden_size))?)
        } else {
            None
        };
        Ok((y, h_n, c_n))
    }

    /// Backpropagation through `tape` (a pass over `(T, B)`) as a dict of
    /// gradient arrays.
    fn backward_dict<'py>(
        &self,
        py: Python<'py>,
        tape: &mut Tape,
        sizes: (usize, usize),
        grad_y: &Bound<'py, PyAny>,
        grad_h_n: Option<&Bound<'py, PyAny>>,
        grad_c_n: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.cfg();
        let b = sizes.1;
        let gy = floats(grad_y, "grad_y")?;
        let gy = shaped(&gy, "grad_y", &self.sequence_shape(sizes, c.output_size()))?;
        if grad_c_n.is_some_and(|g| !g.is_none()) && !c.cell.has_cell_state() {
            return Err(PyValueError::new_err(format!(
                "grad_c_n: a {} has no cell state",
                c.cell.name()
            )));
        }
        let (ghn, gcn) = (
            optional_floats(grad_h_n, "grad_h_n")?,
            optional_floats(grad_c_n, "grad_c_n")?,
        );
        let mut up = OutputGrads::new(gy);
        if let Some(g) = optional_shaped(&ghn, "grad_h_n", &self.state_shape(b, c.state_size()))? {
            up = up.h_n(g);
        }
        if let Some(g) = optional_shaped(&gcn, "grad_c_n", &self.state_shape(b, c.hidden_size))? {
            up = up.c_n(g);
        }
        let net = &self.net;
        let grads = py
            .allow_threads(|| {
                let mut grads = Gradients::try_for_net(net)?;
                net.backward(tape, up, &mut grads)?;
                Ok::<_, Error>(grads)
            })
            .map_err(py_err)?;
        let out = PyDict::new(py);
        out.set_item(
            "x",
            array(py, grads.x, &self.sequence_shape(sizes, c.input_size))?,
        )?;
        out.set_item(
            "h0",
            array(py, grads.h0, &self.state_shape(b, c.state_size()))?,
        )?;
        if c.cell.has_cell_state() {
            out.set_item(
                "c0",
                array(py, grads.c0, &self.state_shape(b, c.hidden_size))?,
            )?;
        }
        for (name, shape, values) in grads.params.iter() {
            out.set_item(name, array(py, values.to_vec(), shape)?)?;
        }
        Ok(out)
    }
}

#[pymethods]
impl Module {
    /// Inference: `x` `[T, B, I]` (`[B, T, I]` batch-first); `h0`
    /// `[L*D, B, S]`, `c0` `[L*D, B, H]` (LSTM), `lengths` `[B]` (integers
    /// in `1..=T`), each optional. Returns `(y, h_n, c_n)`: `y`
    /// `[T, B, D*S]` (`[B, T, D*S]` batch-first; zero past a sequence's
    /// end), `h_n` `[L*D, B, S]`, and `c_n` `[L*D, B, H]` (`None` for RNN
    /// and GRU). `S` is `proj_size` when set, else `H`; dropout is not
    /// applied.
    #[pyo3(signature = (x, h0=None, c0=None, lengths=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        c0: Option<&Bound<'py, PyAny>>,
        lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Outputs<'py>> {
        let call = self.call(x, h0, c0, lengths)?;
        let input = self.input(&call)?;
        let net = &self.net;
        let out = py.allow_threads(|| net.forward(input)).map_err(py_err)?;
        self.outputs(py, out, call.sizes)
    }

    /// PyTorch's call: `(y, (h_n, c_n))` for an LSTM (`hx` = `(h0, c0)`),
    /// `(y, h_n)` otherwise (`hx` = `h0`). Shapes as [`Module::forward`].
    #[pyo3(signature = (x, hx=None, lengths=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        hx: Option<&Bound<'py, PyAny>>,
        lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let lstm = self.cfg().cell.has_cell_state();
        let (h0, c0) = match hx {
            Some(hx) if !hx.is_none() && lstm => {
                let (h, c): (Bound<'py, PyAny>, Bound<'py, PyAny>) = hx
                    .extract()
                    .map_err(|_| PyTypeError::new_err("hx: an LSTM takes a tuple (h0, c0)"))?;
                (Some(h), Some(c))
            }
            Some(hx) if !hx.is_none() => (Some(hx.clone()), None),
            _ => (None, None),
        };
        let (y, h_n, c_n) = self.forward(py, x, h0.as_ref(), c0.as_ref(), lengths)?;
        match c_n {
            Some(c_n) => PyTuple::new(py, [y.into_any(), PyTuple::new(py, [h_n, c_n])?.into_any()]),
            None => PyTuple::new(py, [y.into_any(), h_n.into_any()]),
        }
    }

    /// A training forward pass: as [`Module::forward`], with dropout
    /// applied when the model has any, and the pass kept for
    /// [`Module::backward`]. Returns `(y, h_n, c_n, tape)`.
    #[pyo3(signature = (x, h0=None, c0=None, lengths=None))]
    fn forward_train<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        c0: Option<&Bound<'py, PyAny>>,
        lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let call = self.call(x, h0, c0, lengths)?;
        let input = self.input(&call)?;
        let net = &self.net;
        let mut tape = self.tape();
        let out = py
            .allow_threads(|| net.forward_train(input, &mut tape))
            .map_err(py_err)?;
        let (y, h_n, c_n) = self.outputs(py, out, call.sizes)?;
        let tape = Py::new(
            py,
            PyTape {
                tape,
                sizes: call.sizes,
            },
        )?;
        PyTuple::new(
            py,
            [
                y.into_any(),
                h_n.into_any(),
                c_n.map_or_else(|| py.None().into_bound(py), Bound::into_any),
                tape.into_bound(py).into_any(),
            ],
        )
    }

    /// Backpropagation through time of the loss `sum(y * grad_y) +
    /// sum(h_n * grad_h_n) (+ sum(c_n * grad_c_n))` through `tape` (from
    /// [`Module::forward_train`] on this model; it may be used again).
    /// `grad_y` has `y`'s shape, `grad_h_n` `h_n`'s, `grad_c_n` `c_n`'s
    /// (both optional). Returns a dict of gradients: `"x"` (`x`'s shape),
    /// `"h0"`, `"c0"` (LSTM) and every parameter under its `state_dict`
    /// name and shape.
    #[pyo3(signature = (tape, grad_y, grad_h_n=None, grad_c_n=None))]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        tape: &Bound<'py, PyTape>,
        grad_y: &Bound<'py, PyAny>,
        grad_h_n: Option<&Bound<'py, PyAny>>,
        grad_c_n: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut tape = tape.borrow_mut();
        let sizes = tape.sizes;
        self.backward_dict(py, &mut tape.tape, sizes, grad_y, grad_h_n, grad_c_n)
    }

    /// [`Module::forward_train`] then [`Module::backward`] in one call: the
    /// gradients of `sum(y * grad_y) + sum(h_n * grad_h_n) (+ sum(c_n *
    /// grad_c_n))` at `x`, a dict as [`Module::backward`]'s.
    #[pyo3(signature = (x, grad_y, h0=None, c0=None, grad_h_n=None, grad_c_n=None, lengths=None))]
    #[allow(clippy::too_many_arguments)]
    fn gradients<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        grad_y: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        c0: Option<&Bound<'py, PyAny>>,
        grad_h_n: Option<&Bound<'py, PyAny>>,
        grad_c_n: Option<&Bound<'py, PyAny>>,
        lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let call = self.call(x, h0, c0, lengths)?;
        let input = self.input(&call)?;
        let net = &self.net;
        let mut tape = self.tape();
        py.allow_threads(|| net.forward_train(input, &mut tape))
            .map_err(py_err)?;
        self.backward_dict(py, &mut tape, call.sizes, grad_y, grad_h_n, grad_c_n)
    }

    /// Every parameter under PyTorch's `state_dict` name, as an array of
    /// its shape (a copy).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, shape, values) in self.net.params().iter() {
            out.set_item(name, array(py, values.to_vec(), shape)?)?;
        }
        Ok(out)
    }

    /// Sets every parameter from `state_dict` (name -> array-like of the
    /// parameter's shape: numpy arrays, torch tensors, ...). A missing name
    /// or a wrong shape is a `ValueError` naming the tensor; nothing
    /// changes then.
    fn load_state_dict(&mut self, state_dict: &Bound<'_, PyAny>) -> PyResult<()> {
        let infos: Vec<(String, Vec<usize>)> = self
            .net
            .params()
            .iter()
            .map(|(n, s, _)| (n.to_string(), s.to_vec()))
            .collect();
        let mut values = Vec::with_capacity(infos.len());
        for (name, shape) in &infos {
            let v = state_dict
                .get_item(name)
                .map_err(|_| PyValueError::new_err(format!("state_dict: {name} missing")))?;
            let v = floats(&v, name)?;
            shaped(&v, name, shape)?;
            values.push(v);
        }
        for ((name, _), v) in infos.iter().zip(&values) {
            self.net.set_param(name, v.as_slice()?).map_err(py_err)?;
        }
        Ok(())
    }

    /// Saves the model (configuration and parameters) to a safetensors
    /// file, atomically.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.net.save(&path).map_err(py_err)
    }

    /// PyTorch's: `LSTM(8, 16, num_layers=2)`, the arguments that are not
    /// at their defaults.
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class = slf.get_type().name()?.to_string();
        let c = slf.borrow().cfg().clone();
        let mut s = format!("{class}({}, {}", c.input_size, c.hidden_size);
        if c.num_layers != 1 {
            s += &format!(", num_layers={}", c.num_layers);
        }
        match c.cell {
            CellKind::Elman(Nonlinearity::Relu) => s += ", nonlinearity='relu'",
            CellKind::Gru(GruVariant::ResetBeforeLinear) => s += ", reset_after=False",
            _ => {}
        }
        if !c.bias {
            s += ", bias=False";
        }
        if c.batch_first {
            s += ", batch_first=True";
        }
        if c.dropout != 0.0 {
            s += &format!(", dropout={}", c.dropout);
        }
        if c.bidirectional {
            s += ", bidirectional=True";
        }
        if c.proj_size != 0 {
            s += &format!(", proj_size={}", c.proj_size);
        }
        if c.recurrent_dropout != 0.0 {
            s += &format!(", recurrent_dropout={}", c.recurrent_dropout);
        }
        if c.merge != Merge::Concat {
            s += &format!(", merge='{}'", c.merge.name());
        }
        Ok(s + ")")
    }

    /// For `bench/overhead.py`: the seconds of each of `repeats` calls of
    /// the Rust forward on `x` (no Python in between), to set against the
    /// time of the same call through [`Module::forward`].
    fn _time_forward(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        repeats: usize,
    ) -> PyResult<Vec<f64>> {
        let call = self.call(x, None, None, None)?;
        let input = self.input(&call)?;
        let net = &self.net;
        py.allow_threads(|| {
            (0..repeats)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let out = net.forward(input);
                    let secs = start.elapsed().as_secs_f64();
                    out.map(|o| {
                        std::hint::black_box(o);
                        secs
                    })
                })
                .collect::<Result<Vec<f64>, Error>>()
        })
        .map_err(py_err)
    }

    /// Pickling and `copy.deepcopy`: the model is rebuilt from its
    /// configuration and `state_dict` (`librnn._rebuild`).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let rebuild = py.import("librnn")?.getattr("_rebuild")?;
        let this = slf.borrow();
        let args = PyTuple::new(
            py,
            [this.config(py)?.into_any(), this.state_dict(py)?.into_any()],
        )?;
        PyTuple::new(py, [rebuild, args.into_any()])
    }

    /// The configuration as a dict of PyTorch's constructor arguments.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.cfg();
        let d = PyDict::new(py);
        d.set_item("cell", c.cell.name())?;
        d.set_item("input_size", c.input_size)?;
        d.set_item("hidden_size", c.hidden_size)?;
        d.set_item("num_layers", c.num_layers)?;
        d.set_item("bias", c.bias)?;
        d.set_item("batch_first", c.batch_first)?;
        d.set_item("dropout", c.dropout)?;
        d.set_item("bidirectional", c.bidirectional)?;
        d.set_item("proj_size", c.proj_size)?;
        d.set_item("recurrent_dropout", c.recurrent_dropout)?;
        d.set_item("merge", c.merge.name())?;
        if let CellKind::Elman(act) = c.cell {
            let name = match act {
                Nonlinearity::Tanh => "tanh",
                Nonlinearity::Relu => "relu",
            };
            d.set_item("nonlinearity", name)?;
        }
        if let CellKind::Gru(v) = c.cell {
            d.set_item("reset_after", v == GruVariant::LinearBeforeReset)?;
        }
        d.set_item("seed", c.seed)?;
        Ok(d)
    }
}

/// PyTorch's `device` and `dtype` arguments: librnn computes in `float32`
/// on the CPU; any other placement is a `NotImplementedError` naming it.
fn check_device_dtype(
    device: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    if let Some(d) = device.filter(|d| !d.is_none()) {
        let name = d.str()?.to_string();
        if name != "cpu" {
            return Err(PyNotImplementedError::new_err(format!(
                "device = {name:?}: librnn computes on the CPU only"
            )));
        }
    }
    if let Some(t) = dtype.filter(|t| !t.is_none()) {
        let name = t.str()?.to_string();
        let np_name = t
            .py()
            .import("numpy")?
            .call_method1("dtype", (t,))
            .and_then(|d| d.getattr("name"))
            .and_then(|n| n.extract::<String>())
            .unwrap_or_default();
        if name != "torch.float32" && np_name != "float32" {
            return Err(PyNotImplementedError::new_err(format!(
                "dtype = {name}: librnn computes in float32 only"
            )));
        }
    }
    Ok(())
}

/// The arguments every `torch.nn` recurrent module takes; `seed` `None`
/// draws a fresh one (as PyTorch draws a fresh initialisation).
#[allow(clippy::too_many_arguments)]
fn net_config(
    cell: CellKind,
    (input_size, hidden_size, num_layers): (usize, usize, usize),
    bias: bool,
    batch_first: bool,
    dropout: f32,
    bidirectional: bool,
    recurrent_dropout: f32,
    merge: &str,
    seed: Option<u64>,
) -> PyResult<Module> {
    let config = NetConfig {
        num_layers,
        bias,
        batch_first,
        dropout,
        bidirectional,
        recurrent_dropout,
        merge: Merge::from_name(merge).map_err(py_err)?,
        seed: seed.unwrap_or_else(|| RandomState::new().hash_one(0u8)),
        ..NetConfig::new(cell, input_size, hidden_size)
    };
    Ok(Module::new(Recurrent::new(config).map_err(py_err)?))
}

/// `torch.nn.RNN`: an Elman network (`nonlinearity` "tanh" or "relu").
#[pyclass(extends = Module, module = "librnn", name = "RNN")]
struct Rnn;

#[pymethods]
impl Rnn {
    #[new]
    #[pyo3(signature = (input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=true, batch_first=false, dropout=0.0, bidirectional=false, recurrent_dropout=0.0, merge="concat", seed=None, device=None, dtype=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        nonlinearity: &str,
        bias: bool,
        batch_first: bool,
        dropout: f32,
        bidirectional: bool,
        recurrent_dropout: f32,
        merge: &str,
        seed: Option<u64>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Self, Module)> {
        check_device_dtype(device, dtype)?;
        let act = match nonlinearity {
            "tanh" => Nonlinearity::Tanh,
            "relu" => Nonlinearity::Relu,
            other => {
                return Err(PyValueError::new_err(format!(
                    "nonlinearity = {other:?}: expected \"tanh\" or \"relu\""
                )));
            }
        };
        let sizes = (input_size, hidden_size, num_layers);
        let m = net_config(
            CellKind::Elman(act),
            sizes,
            bias,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout,
            merge,
            seed,
        )?;
        Ok((Self, m))
    }
}

/// `torch.nn.LSTM`, with PyTorch's `proj_size`.
#[pyclass(extends = Module, module = "librnn", name = "LSTM")]
struct Lstm;

#[pymethods]
impl Lstm {
    #[new]
    #[pyo3(signature = (input_size, hidden_size, num_layers=1, bias=true, batch_first=false, dropout=0.0, bidirectional=false, proj_size=0, recurrent_dropout=0.0, merge="concat", seed=None, device=None, dtype=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        bias: bool,
        batch_first: bool,
        dropout: f32,
        bidirectional: bool,
        proj_size: usize,
        recurrent_dropout: f32,
        merge: &str,
        seed: Option<u64>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Self, Module)> {
        check_device_dtype(device, dtype)?;
        let sizes = (input_size, hidden_size, num_layers);
        let mut m = net_config(
            CellKind::Lstm,
            sizes,
            bias,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout,
            merge,
            seed,
        )?;
        if proj_size > 0 {
            let config = NetConfig {
                proj_size,
                ..m.net.config().clone()
            };
            m.net = Recurrent::new(config).map_err(py_err)?;
        }
        Ok((Self, m))
    }
}

/// `torch.nn.GRU` (`reset_after=False`: the Cho et al. form).
#[pyclass(extends = Module, module = "librnn", name = "GRU")]
struct Gru;

#[pymethods]
impl Gru {
    #[new]
    #[pyo3(signature = (input_size, hidden_size, num_layers=1, bias=true, batch_first=false, dropout=0.0, bidirectional=false, recurrent_dropout=0.0, merge="concat", reset_after=true, seed=None, device=None, dtype=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        bias: bool,
        batch_first: bool,
        dropout: f32,
        bidirectional: bool,
        recurrent_dropout: f32,
        merge: &str,
        reset_after: bool,
        seed: Option<u64>,
        device: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Self, Module)> {
        check_device_dtype(device, dtype)?;
        let variant = if reset_after {
            GruVariant::LinearBeforeReset
        } else {
            GruVariant::ResetBeforeLinear
        };
        let sizes = (input_size, hidden_size, num_layers);
        let m = net_config(
            CellKind::Gru(variant),
            sizes,
            bias,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout,
            merge,
            seed,
        )?;
        Ok((Self, m))
    }
}

/// Loads a model file (librnn's, or a PyTorch `state_dict` saved as
/// safetensors with librnn's metadata) as an `RNN`, `LSTM` or `GRU`.
#[pyfunction]
fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyObject> {
    let net = Recurrent::load(&path).map_err(py_err)?;
    let base = Module::new(net);
    let obj = match base.net.config().cell {
        CellKind::Lstm => Py::new(py, (Lstm, base))?.into_any(),
        CellKind::Gru(_) => Py::new(py, (Gru, base))?.into_any(),
        CellKind::Elman(_) => Py::new(py, (Rnn, base))?.into_any(),
    };
    Ok(obj)
}

/// The parameter entries of `grads` (a dict from [`Module::gradients`];
/// `"x"`, `"h0"`, `"c0"` are not parameters) in `net`'s buffer order, as
/// one flat buffer. A missing entry or a wrong shape names the tensor.
fn flat_grads(net: &Recurrent, grads: &Bound<'_, PyDict>) -> PyResult<Vec<f32>> {
    let mut flat = Vec::with_capacity(net.params().len());
    for (name, shape, _) in net.params().iter() {
        let g = grads
            .get_item(name)?
            .ok_or_else(|| PyValueError::new_err(format!("grads: {name} missing")))?;
        let g = floats(&g, name)?;
        flat.extend_from_slice(shaped(&g, name, shape)?);
    }
    Ok(flat)
}

/// An optimizer of a model's parameters (`librnn.optim.SGD`, `Adam`,
/// `AdamW`, `RMSprop`), PyTorch's update rules.
#[pyclass(subclass, module = "librnn.optim", name = "Optimizer")]
struct Optimizer {
    model: Py<Module>,
    rule: Box<dyn RustOptimizer + Sync>,
}

#[pymethods]
impl Optimizer {
    /// One update of the model's parameters from the parameter entries of
    /// `grads` (a dict from `gradients`; other keys are ignored).
    fn step(&mut self, py: Python<'_>, grads: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut model = self.model.borrow_mut(py);
        let flat = flat_grads(&model.net, grads)?;
        let rule = &mut self.rule;
        let params = model.net.params_mut();
        py.allow_threads(|| rule.step(params, &flat))
            .map_err(py_err)
    }

    /// Forgets the optimizer's state (moments, step count).
    fn zero_state(&mut self) {
        self.rule.reset();
    }

    /// The learning rate.
    #[getter]
    fn lr(&self) -> f64 {
        self.rule.lr()
    }

    #[setter]
    fn set_lr(&mut self, lr: f64) {
        self.rule.set_lr(lr);
    }
}

fn optimizer(model: Py<Module>, rule: Box<dyn RustOptimizer + Sync>) -> Optimizer {
    Optimizer { model, rule }
}

/// `torch.optim.SGD`.
#[pyclass(extends = Optimizer, module = "librnn.optim", name = "SGD")]
struct SgdOpt;

#[pymethods]
impl SgdOpt {
    #[new]
    #[pyo3(signature = (model, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=false))]
    fn new(
        model: Py<Module>,
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
    ) -> PyResult<(Self, Optimizer)> {
        let c = SgdConfig {
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
        };
        let rule = Sgd::new(c).map_err(py_err)?;
        Ok((Self, optimizer(model, Box::new(rule))))
    }
}

/// Adam or AdamW (`base`) with PyTorch's arguments.
fn adam(
    base: AdamConfig,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> PyResult<Box<dyn RustOptimizer + Sync>> {
    let c = AdamConfig {
        beta1: betas.0,
        beta2: betas.1,
        eps,
        weight_decay,
        ..base
    };
    Ok(Box::new(Adam::new(c).map_err(py_err)?))
}

/// `torch.optim.Adam`.
#[pyclass(extends = Optimizer, module = "librnn.optim", name = "Adam")]
struct AdamOpt;

#[pymethods]
impl AdamOpt {
    #[new]
    #[pyo3(signature = (model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0))]
    fn new(
        model: Py<Module>,
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
    ) -> PyResult<(Self, Optimizer)> {
        let rule = adam(AdamConfig::new(lr), betas, eps, weight_decay)?;
        Ok((Self, optimizer(model, rule)))
    }
}

/// `torch.optim.AdamW` (decoupled weight decay).
#[pyclass(extends = Optimizer, module = "librnn.optim", name = "AdamW")]
struct AdamWOpt;

#[pymethods]
impl AdamWOpt {
    #[new]
    #[pyo3(signature = (model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2))]
    fn new(
        model: Py<Module>,
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
    ) -> PyResult<(Self, Optimizer)> {
        let rule = adam(AdamConfig::adamw(lr), betas, eps, weight_decay)?;
        Ok((Self, optimizer(model, rule)))
    }
}

/// `torch.optim.RMSprop`.
#[pyclass(extends = Optimizer, module = "librnn.optim", name = "RMSprop")]
struct RmsPropOpt;

#[pymethods]
impl RmsPropOpt {
    #[new]
    #[pyo3(signature = (model, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=false))]
    fn new(
        model: Py<Module>,
        lr: f64,
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: bool,
    ) -> PyResult<(Self, Optimizer)> {
        let c = RmsPropConfig {
            lr,
            alpha,
            eps,
            weight_decay,
            momentum,
            centered,
        };
        let rule = RmsProp::new(c).map_err(py_err)?;
        Ok((Self, optimizer(model, Box::new(rule))))
    }
}

/// Scales the parameter entries of `grads` (a dict from `gradients`; the
/// entries `"x"`, `"h0"`, `"c0"` are left alone) so that their joint L2
/// norm is at most `max_norm`, as `torch.nn.utils.clip_grad_norm_`
/// (replacing the dict's arrays); returns the norm before clipping.
/// `error_if_nonfinite`: a NaN or infinite norm raises `NumericalError`
/// naming the first such value, and changes nothing.
#[pyfunction]
#[pyo3(signature = (grads, max_norm, error_if_nonfinite=false))]
fn clip_grad_norm(
    py: Python<'_>,
    grads: &Bound<'_, PyDict>,
    max_norm: f32,
    error_if_nonfinite: bool,
) -> PyResult<f32> {
    let inputs = ["x", "h0", "c0"];
    let mut entries = Vec::new();
    for (k, v) in grads.iter() {
        let name: String = k.extract()?;
        if !inputs.contains(&name.as_str()) {
            let values = floats(&v, &name)?;
            let shape = values.shape().to_vec();
            entries.push((name, values.as_slice()?.to_vec(), shape));
        }
    }
    let mut parts: Vec<&mut [f32]> = entries.iter_mut().map(|e| e.1.as_mut_slice()).collect();
    let norm = clip_grad_norm_parts(&mut parts, max_norm);
    if error_if_nonfinite && !norm.is_finite() {
        let first = entries.iter().find_map(|(name, values, _)| {
            let i = values.iter().position(|v| !v.is_finite())?;
            Some(format!("{name}[{i}]"))
        });
        return Err(NumericalError::new_err(format!(
            "clip_grad_norm: the gradients' norm is {norm} (first value not finite: {})",
            first.unwrap_or_else(|| "none; their squares overflow".into())
        )));
    }
    // `clip_grad_norm_parts` scaled the copies where the norm was above
    // `max_norm` (its condition): only then do the arrays change.
    if max_norm / (norm + 1e-6) < 1.0 {
        for (name, values, shape) in entries {
            grads.set_item(name, array(py, values, &shape)?)?;
        }
    }
    Ok(norm)
}

/// A Neural Turing Machine's configuration (docs/ntm.md); the defaults
/// are the copy task's machine for 8-bit vectors.
#[pyclass(module = "librnn", name = "NTMConfig")]
#[derive(Clone)]
struct PyNtmConfig {
    config: NtmConfig,
}

#[pymethods]
impl PyNtmConfig {
    #[new]
    #[pyo3(signature = (controller="lstm", input_size=None, output_size=None, controller_size=None, memory_rows=None, memory_width=None, read_heads=None, write_heads=None, shift_range=None, memory_init=None, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        controller: &str,
        input_size: Option<usize>,
        output_size: Option<usize>,
        controller_size: Option<usize>,
        memory_rows: Option<usize>,
        memory_width: Option<usize>,
        read_heads: Option<usize>,
        write_heads: Option<usize>,
        shift_range: Option<usize>,
        memory_init: Option<&Bound<'_, PyAny>>,
        seed: u64,
    ) -> PyResult<Self> {
        let copy = NtmConfig::copy_task(8);
        let memory = match memory_init {
            None => copy.memory,
            Some(v) if v.extract::<String>().is_ok_and(|s| s == "learned") => MemoryInit::Learned,
            Some(v) => MemoryInit::Constant(
                v.extract::<f32>()
                    .map_err(|_| PyValueError::new_err("memory_init: a number or \"learned\""))?,
            ),
        };
        let config = NtmConfig {
            controller: Controller::from_name(controller).map_err(py_err)?,
            input_size: input_size.unwrap_or(copy.input_size),
            output_size: output_size.unwrap_or(copy.output_size),
            controller_size: controller_size.unwrap_or(copy.controller_size),
            memory_rows: memory_rows.unwrap_or(copy.memory_rows),
            memory_width: memory_width.unwrap_or(copy.memory_width),
            read_heads: read_heads.unwrap_or(copy.read_heads),
            write_heads: write_heads.unwrap_or(copy.write_heads),
            shift_range: shift_range.unwrap_or(copy.shift_range),
            memory,
            seed,
        };
        config.validate().map_err(py_err)?;
        Ok(Self { config })
    }

    fn __repr__(&self) -> String {
        format!("NTMConfig({:?})", self.config)
    }

    /// `I`, input features per step.
    #[getter]
    fn input_size(&self) -> usize {
        self.config.input_size
    }

    /// `O`, output logits per step.
    #[getter]
    fn output_size(&self) -> usize {
        self.config.output_size
    }
}

/// A Neural Turing Machine: `x` `[T, B, I]` in, logits `[T, B, O]` out.
#[pyclass(module = "librnn", name = "NTM")]
struct PyNtm {
    ntm: Ntm,
}

#[pymethods]
impl PyNtm {
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(config: Option<PyNtmConfig>) -> PyResult<Self> {
        let config = config.map_or_else(|| NtmConfig::copy_task(8), |c| c.config);
        Ok(Self {
            ntm: Ntm::new(config).map_err(py_err)?,
        })
    }

    /// Logits `[T, B, O]` for `x` `[T, B, I]`.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let c = self.ntm.config();
        let x = floats(x, "x")?;
        let (t, b) = sequence_sizes(x.shape(), c.input_size, false, "x")?;
        let x = x.as_slice()?;
        let ntm = &self.ntm;
        let y = py.allow_threads(|| ntm.forward(x, t, b)).map_err(py_err)?;
        array(py, y, &[t, b, c.output_size])
    }

    /// The gradients of `sum(logits * grad_y)`: `"x"` and every parameter
    /// by name.
    fn gradients<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        grad_y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.ntm.config();
        let x = floats(x, "x")?;
        let (t, b) = sequence_sizes(x.shape(), c.input_size, false, "x")?;
        let shape = x.shape().to_vec();
        let x = x.as_slice()?;
        let gy = floats(grad_y, "grad_y")?;
        let gy = shaped(&gy, "grad_y", &[t, b, c.output_size])?;
        let ntm = &self.ntm;
        let (grads, dx) = py
            .allow_threads(|| {
                let mut tape = NtmTape::new();
                ntm.forward_train(x, t, b, &mut tape)?;
                let mut grads = ntm.zero_grads();
                let mut dx = vec![0.0; x.len()];
                let mut scratch = NtmGradScratch::default();
                ntm.backward(&tape, gy, &mut grads, Some(&mut dx), &mut scratch)?;
                Ok::<_, Error>((grads, dx))
            })
            .map_err(py_err)?;
        let out = PyDict::new(py);
        out.set_item("x", array(py, dx, &shape)?)?;
        for (name, shape, values) in grads.iter() {
            out.set_item(name, array(py, values.to_vec(), shape)?)?;
        }
        Ok(out)
    }

    /// Every parameter by name (a copy).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, shape, values) in self.ntm.params().iter() {
            out.set_item(name, array(py, values.to_vec(), shape)?)?;
        }
        Ok(out)
    }

    /// Saves the machine (configuration and parameters), atomically.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.ntm.save(&path).map_err(py_err)
    }

    /// The configuration.
    fn config(&self) -> PyNtmConfig {
        PyNtmConfig {
            config: self.ntm.config().clone(),
        }
    }
}

/// Loads a machine saved by `NTM.save` or `rnn ntm`.
#[pyfunction]
fn load_ntm(path: std::path::PathBuf) -> PyResult<PyNtm> {
    Ok(PyNtm {
        ntm: Ntm::load(&path).map_err(py_err)?,
    })
}

/// The extension module `librnn._librnn`; the package `librnn` re-exports
/// it (and `librnn.optim` its optimizers).
#[pymodule]
fn _librnn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Module>()?;
    m.add_class::<Rnn>()?;
    m.add_class::<Lstm>()?;
    m.add_class::<Gru>()?;
    m.add_class::<PyTape>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(clip_grad_norm, m)?)?;
    m.add_class::<PyNtmConfig>()?;
    m.add_class::<PyNtm>()?;
    m.add_function(wrap_pyfunction!(load_ntm, m)?)?;
    m.add_class::<Optimizer>()?;
    m.add_class::<SgdOpt>()?;
    m.add_class::<AdamOpt>()?;
    m.add_class::<AdamWOpt>()?;
    m.add_class::<RmsPropOpt>()?;
    m.add("NumericalError", m.py().get_type::<NumericalError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
