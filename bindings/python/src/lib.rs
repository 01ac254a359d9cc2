//! The Python module `librnn`: recurrent networks shaped like `torch.nn`
//! (`RNN`, `LSTM`, `GRU`), numpy arrays in and out, the GIL released while
//! librnn computes. The numbers are librnn's (`rnn-models`), exact against
//! PyTorch.
//!
//! Layout: every array is `float32`, C order; sequences `[T, B, F]` (or
//! `[B, T, F]` for `batch_first`), states `[L*D, B, H]` (`h` `P` wide for
//! an LSTM with `proj_size`).

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyArithmeticError, PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rnn_models::ntm::{Controller, MemoryInit, Ntm, NtmConfig, NtmGradScratch, NtmTape};
use rnn_models::optim::{
    Adam, AdamConfig, Optimizer as RustOptimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use rnn_models::{
    CellKind, Error, GruVariant, Merge, NetConfig, Nonlinearity, OutputGrads, Recurrent, SeqInput,
    Tape,
};

/// A librnn error as the Python exception a numpy user expects.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { .. } | Error::Format { .. } => PyOSError::new_err(msg),
        Error::OutOfMemory { .. } => PyMemoryError::new_err(msg),
        Error::NonFinite(_) => PyArithmeticError::new_err(msg),
        Error::Shape { .. }
        | Error::ZeroSize { .. }
        | Error::Config(_)
        | Error::MissingParameter { .. }
        | Error::Unexpected(_) => PyValueError::new_err(msg),
    }
}

/// `obj` (any array-like: numpy, a torch tensor through `__array__`, a
/// list) as C-order `float32` values and its shape.
fn f32_values(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: &str,
) -> PyResult<(Vec<f32>, Vec<usize>)> {
    let np = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", np.getattr("float32")?)?;
    let arr = np
        .call_method("ascontiguousarray", (obj,), Some(&kwargs))
        .map_err(|e| PyValueError::new_err(format!("{name}: not an array of numbers ({e})")))?;
    let arr: PyReadonlyArrayDyn<'_, f32> = arr.extract()?;
    let shape = arr.shape().to_vec();
    let values = arr.as_slice()?.to_vec();
    Ok((values, shape))
}

/// `values` as a `float32` array of `shape`.
fn array<'py>(
    py: Python<'py>,
    values: Vec<f32>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    numpy::PyArray1::from_vec(py, values).reshape(shape.to_vec())
}

/// `None`, or the values of an optional array-like argument.
fn optional_values(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Vec<f32>>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(f32_values(py, o, name)?.0)),
        _ => Ok(None),
    }
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
}

/// What one forward pass gives, as arrays: `(y, h_n, c_n or None)`.
type Outputs<'py> = (
    Bound<'py, PyArrayDyn<f32>>,
    Bound<'py, PyArrayDyn<f32>>,
    Option<Bound<'py, PyArrayDyn<f32>>>,
);

impl Module {
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
}

#[pymethods]
impl Module {
    /// Inference: `x` `[T, B, I]` (`[B, T, I]` batch-first); `h0`
    /// `[L*D, B, S]`, `c0` `[L*D, B, H]` (LSTM), `lengths` `[B]`, each
    /// optional. Returns `(y, h_n, c_n)`: `y` `[T, B, D*S]` (zero past a
    /// sequence's end), `h_n`, and `c_n` (`None` for RNN and GRU).
    #[pyo3(signature = (x, h0=None, c0=None, lengths=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        c0: Option<&Bound<'py, PyAny>>,
        lengths: Option<Vec<usize>>,
    ) -> PyResult<Outputs<'py>> {
        let c = self.cfg().clone();
        let (x, shape) = f32_values(py, x, "x")?;
        let (t, b) = sequence_sizes(&shape, c.input_size, c.batch_first, "x")?;
        let (h0, c0) = (
            optional_values(py, h0, "h0")?,
            optional_values(py, c0, "c0")?,
        );
        let net = &self.net;
        let out = py
            .allow_threads(|| {
                let mut input = SeqInput::new(&x, t, b);
                if let Some(h0) = &h0 {
                    input = input.h0(h0);
                }
                if let Some(c0) = &c0 {
                    input = input.c0(c0);
                }
                if let Some(l) = &lengths {
                    input = input.lengths(l);
                }
                net.forward(input)
            })
            .map_err(py_err)?;
        let y = array(py, out.y, &self.sequence_shape((t, b), c.output_size()))?;
        let h_n = array(py, out.h_n, &self.state_shape(b, c.state_size()))?;
        let c_n = if c.cell.has_cell_state() {
            Some(array(py, out.c_n, &self.state_shape(b, c.hidden_size))?)
        } else {
            None
        };
        Ok((y, h_n, c_n))
    }

    /// PyTorch's call: `(y, (h_n, c_n))` for an LSTM (`hx` = `(h0, c0)`),
    /// `(y, h_n)` otherwise (`hx` = `h0`).
    #[pyo3(signature = (x, hx=None, lengths=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        hx: Option<&Bound<'py, PyAny>>,
        lengths: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let lstm = self.cfg().cell.has_cell_state();
        let (h0, c0) = match hx {
            Some(hx) if !hx.is_none() && lstm => {
                let (h, c): (Bound<'py, PyAny>, Bound<'py, PyAny>) = hx.extract()?;
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

    /// Backpropagation through time of the loss `sum(y * grad_y) +
    /// sum(h_n * grad_h_n) (+ sum(c_n * grad_c_n))` at `x`: a dict of
    /// gradients, `"x"`, `"h0"`, `"c0"` (LSTM) and every parameter under its
    /// `state_dict` name. Arguments as [`Module::forward`]; `grad_y` is `y`'s
    /// shape.
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
        lengths: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.cfg().clone();
        let (x, shape) = f32_values(py, x, "x")?;
        let (t, b) = sequence_sizes(&shape, c.input_size, c.batch_first, "x")?;
        let (gy, _) = f32_values(py, grad_y, "grad_y")?;
        let (h0, c0) = (
            optional_values(py, h0, "h0")?,
            optional_values(py, c0, "c0")?,
        );
        let (ghn, gcn) = (
            optional_values(py, grad_h_n, "grad_h_n")?,
            optional_values(py, grad_c_n, "grad_c_n")?,
        );
        let net = &self.net;
        let grads = py
            .allow_threads(|| {
                let mut input = SeqInput::new(&x, t, b);
                if let Some(h0) = &h0 {
                    input = input.h0(h0);
                }
                if let Some(c0) = &c0 {
                    input = input.c0(c0);
                }
                if let Some(l) = &lengths {
                    input = input.lengths(l);
                }
                let mut tape = Tape::new();
                net.forward_train(input, &mut tape)?;
                let mut up = OutputGrads::new(&gy);
                if let Some(g) = &ghn {
                    up = up.h_n(g);
                }
                if let Some(g) = &gcn {
                    up = up.c_n(g);
                }
                let mut grads = rnn_models::Gradients::try_for_net(net)?;
                net.backward(&mut tape, up, &mut grads)?;
                Ok::<_, Error>(grads)
            })
            .map_err(py_err)?;
        let out = PyDict::new(py);
        out.set_item(
            "x",
            array(py, grads.x, &self.sequence_shape((t, b), c.input_size))?,
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
    fn load_state_dict(&mut self, py: Python<'_>, state_dict: &Bound<'_, PyDict>) -> PyResult<()> {
        let infos: Vec<(String, Vec<usize>)> = self
            .net
            .params()
            .iter()
            .map(|(n, s, _)| (n.to_string(), s.to_vec()))
            .collect();
        let mut values = Vec::with_capacity(infos.len());
        for (name, shape) in &infos {
            let v = state_dict
                .get_item(name)?
                .ok_or_else(|| PyValueError::new_err(format!("state_dict: {name} missing")))?;
            let (v, got) = f32_values(py, &v, name)?;
            if &got != shape {
                return Err(PyValueError::new_err(format!(
                    "{name}: expected shape {shape:?}, got {got:?}"
                )));
            }
            values.push(v);
        }
        for ((name, _), v) in infos.iter().zip(&values) {
            self.net.set_param(name, v).map_err(py_err)?;
        }
        Ok(())
    }

    /// Saves the model (configuration and parameters) to a safetensors
    /// file, atomically.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.net.save(&path).map_err(py_err)
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
        Ok(d)
    }
}

/// The arguments every `torch.nn` recurrent module takes.
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
        seed: seed.unwrap_or(0),
        ..NetConfig::new(cell, input_size, hidden_size)
    };
    Ok(Module {
        net: Recurrent::new(config).map_err(py_err)?,
    })
}

/// `torch.nn.RNN`: an Elman network (`nonlinearity` "tanh" or "relu").
#[pyclass(extends = Module, module = "librnn", name = "RNN")]
struct Rnn;

#[pymethods]
impl Rnn {
    #[new]
    #[pyo3(signature = (input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=true, batch_first=false, dropout=0.0, bidirectional=false, recurrent_dropout=0.0, merge="concat", seed=None))]
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
    ) -> PyResult<(Self, Module)> {
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
    #[pyo3(signature = (input_size, hidden_size, num_layers=1, bias=true, batch_first=false, dropout=0.0, bidirectional=false, proj_size=0, recurrent_dropout=0.0, merge="concat", seed=None))]
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
    ) -> PyResult<(Self, Module)> {
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
    #[pyo3(signature = (input_size, hidden_size, num_layers=1, bias=true, batch_first=false, dropout=0.0, bidirectional=false, recurrent_dropout=0.0, merge="concat", reset_after=true, seed=None))]
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
    ) -> PyResult<(Self, Module)> {
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
    let base = Module { net };
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
fn flat_grads(py: Python<'_>, net: &Recurrent, grads: &Bound<'_, PyDict>) -> PyResult<Vec<f32>> {
    let mut flat = Vec::with_capacity(net.params().len());
    for (name, shape, _) in net.params().iter() {
        let g = grads
            .get_item(name)?
            .ok_or_else(|| PyValueError::new_err(format!("grads: {name} missing")))?;
        let (values, got) = f32_values(py, &g, name)?;
        if got != shape {
            return Err(PyValueError::new_err(format!(
                "grads {name}: expected shape {shape:?}, got {got:?}"
            )));
        }
        flat.extend_from_slice(&values);
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
        let flat = flat_grads(py, &model.net, grads)?;
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
        let c = AdamConfig {
            beta1: betas.0,
            beta2: betas.1,
            eps,
            weight_decay,
            ..AdamConfig::new(lr)
        };
        let rule = Adam::new(c).map_err(py_err)?;
        Ok((Self, optimizer(model, Box::new(rule))))
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
        let c = AdamConfig {
            beta1: betas.0,
            beta2: betas.1,
            eps,
            weight_decay,
            ..AdamConfig::adamw(lr)
        };
        let rule = Adam::new(c).map_err(py_err)?;
        Ok((Self, optimizer(model, Box::new(rule))))
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
/// norm is at most `max_norm`, as `torch.nn.utils.clip_grad_norm_`;
/// returns the norm before clipping.
#[pyfunction]
fn clip_grad_norm(py: Python<'_>, grads: &Bound<'_, PyDict>, max_norm: f32) -> PyResult<f32> {
    let inputs = ["x", "h0", "c0"];
    let mut entries = Vec::new();
    for (k, v) in grads.iter() {
        let name: String = k.extract()?;
        if !inputs.contains(&name.as_str()) {
            let (values, shape) = f32_values(py, &v, &name)?;
            entries.push((name, values, shape));
        }
    }
    let sq: f64 = entries
        .iter()
        .flat_map(|(_, v, _)| v.iter())
        .map(|&g| f64::from(g) * f64::from(g))
        .sum();
    let norm = sq.sqrt() as f32;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (name, mut values, shape) in entries {
            values.iter_mut().for_each(|g| *g *= coef);
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
        let (x, shape) = f32_values(py, x, "x")?;
        let (t, b) = sequence_sizes(&shape, c.input_size, false, "x")?;
        let ntm = &self.ntm;
        let y = py.allow_threads(|| ntm.forward(&x, t, b)).map_err(py_err)?;
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
        let (x, shape) = f32_values(py, x, "x")?;
        let (t, b) = sequence_sizes(&shape, c.input_size, false, "x")?;
        let (gy, _) = f32_values(py, grad_y, "grad_y")?;
        let ntm = &self.ntm;
        let (grads, dx) = py
            .allow_threads(|| {
                let mut tape = NtmTape::new();
                ntm.forward_train(&x, t, b, &mut tape)?;
                let mut grads = ntm.zero_grads();
                let mut dx = vec![0.0; x.len()];
                let mut scratch = NtmGradScratch::default();
                ntm.backward(&tape, &gy, &mut grads, Some(&mut dx), &mut scratch)?;
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

/// The module.
#[pymodule]
fn librnn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Module>()?;
    m.add_class::<Rnn>()?;
    m.add_class::<Lstm>()?;
    m.add_class::<Gru>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(clip_grad_norm, m)?)?;
    m.add_class::<PyNtmConfig>()?;
    m.add_class::<PyNtm>()?;
    m.add_function(wrap_pyfunction!(load_ntm, m)?)?;
    let optim = PyModule::new(py, "optim")?;
    optim.add_class::<Optimizer>()?;
    optim.add_class::<SgdOpt>()?;
    optim.add_class::<AdamOpt>()?;
    optim.add_class::<AdamWOpt>()?;
    optim.add_class::<RmsPropOpt>()?;
    m.add_submodule(&optim)?;
    // `import librnn.optim` and `from librnn.optim import Adam` work too.
    py.import("sys")?
        .getattr("modules")?
        .set_item("librnn.optim", &optim)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
