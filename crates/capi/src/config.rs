//! Network configurations from C: `rnn_config` and the enums whose values
//! its integer fields take.

use rnn_models::{CellKind, GruVariant, Merge, NetConfig, Nonlinearity};

use crate::args;
use crate::error::{Error, Result, guard};

/// The cell a network is made of (values of `rnn_config.cell`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rnn_cell_kind {
    /// Elman RNN, `h' = act(W_ih x + b_ih + W_hh h + b_hh)`; act from
    /// `rnn_config.activation`. G = 1.
    Elman = 0,
    /// LSTM, gates `i, f, g, o` (PyTorch's order). G = 4. Has a cell state.
    Lstm = 1,
    /// GRU, gates `r, z, n` (PyTorch's order); formulation from
    /// `rnn_config.gru_variant`. G = 3.
    Gru = 2,
}

/// The Elman non-linearity (values of `rnn_config.activation`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rnn_activation {
    /// tanh (PyTorch's default).
    Tanh = 0,
    /// max(x, 0).
    Relu = 1,
}

/// The GRU formulation (values of `rnn_config.gru_variant`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rnn_gru_variant {
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`: PyTorch, cuDNN, ONNX
    /// `linear_before_reset=1`. The default.
    LinearBeforeReset = 0,
    /// `n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`: Cho et al. 2014,
    /// Keras `reset_after=False`.
    ResetBeforeLinear = 1,
}

/// The description of a network. Fill it with `rnn_config_init`, then change
/// fields. Integer fields holding enum values are validated by every call
/// that reads them.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct rnn_config {
    /// An `rnn_cell_kind`.
    pub cell: u32,
    /// An `rnn_activation`; read for `RNN_CELL_KIND_ELMAN` only (must still
    /// be a valid value).
    pub activation: u32,
    /// An `rnn_gru_variant`; read for `RNN_CELL_KIND_GRU` only (must still be
    /// a valid value).
    pub gru_variant: u32,
    /// 1: the cells have the biases `b_ih`, `b_hh`; 0: none.
    pub bias: u32,
    /// 1: each layer also runs a reverse direction, outputs concatenated
    /// (D = 2); 0: D = 1.
    pub bidirectional: u32,
    /// Features per time step of the input, I (>= 1).
    pub input_size: usize,
    /// Hidden units per direction, H (>= 1).
    pub hidden_size: usize,
    /// Stacked layers, L (>= 1).
    pub num_layers: usize,
    /// Seed of the default initialisation uniform(-1/sqrt(H), 1/sqrt(H)).
    pub seed: u64,
}

impl rnn_config {
    /// The Rust configuration, after checking every integer.
    pub(crate) fn to_net_config(self) -> Result<NetConfig> {
        let activation = match self.activation {
            0 => Nonlinearity::Tanh,
            1 => Nonlinearity::Relu,
            v => {
                return Err(Error::invalid(format!(
                    "activation = {v}: not an rnn_activation"
                )));
            }
        };
        let variant = match self.gru_variant {
            0 => GruVariant::LinearBeforeReset,
            1 => GruVariant::ResetBeforeLinear,
            v => {
                return Err(Error::invalid(format!(
                    "gru_variant = {v}: not an rnn_gru_variant"
                )));
            }
        };
        let cell = match self.cell {
            0 => CellKind::Elman(activation),
            1 => CellKind::Lstm,
            2 => CellKind::Gru(variant),
            v => return Err(Error::invalid(format!("cell = {v}: not an rnn_cell_kind"))),
        };
        let c = NetConfig {
            cell,
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            bias: args::flag(self.bias, "bias")?,
            bidirectional: args::flag(self.bidirectional, "bidirectional")?,
            seed: self.seed,
            ..NetConfig::new(cell, self.input_size, self.hidden_size)
        };
        c.validate()?;
        Ok(c)
    }

    /// The C description of a Rust configuration.
    pub(crate) fn from_net_config(c: &NetConfig) -> Self {
        let (cell, activation, gru_variant) = match c.cell {
            CellKind::Elman(Nonlinearity::Tanh) => (rnn_cell_kind::Elman, 0, 0),
            CellKind::Elman(Nonlinearity::Relu) => (rnn_cell_kind::Elman, 1, 0),
            CellKind::Lstm => (rnn_cell_kind::Lstm, 0, 0),
            CellKind::Gru(GruVariant::LinearBeforeReset) => (rnn_cell_kind::Gru, 0, 0),
            CellKind::Gru(GruVariant::ResetBeforeLinear) => (rnn_cell_kind::Gru, 0, 1),
        };
        Self {
            cell: cell as u32,
            activation,
            gru_variant,
            bias: c.bias.into(),
            bidirectional: c.bidirectional.into(),
            input_size: c.input_size,
            hidden_size: c.hidden_size,
            num_layers: c.num_layers,
            seed: c.seed,
        }
    }
}

/// Fills `*config` with a one-layer, unidirectional network of `cell` (an
/// `rnn_cell_kind`) with biases, tanh (Elman), linear-before-reset (GRU),
/// seed 0, and the given sizes.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config), `RNN_STATUS_INVALID_ARGUMENT`
/// (cell not an `rnn_cell_kind`; sizes are checked when the model is made).
/// Thread-safe.
///
/// # Safety
/// `config` is NULL or points to a writable `rnn_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_config_init(
    config: *mut rnn_config,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
) -> crate::rnn_status {
    guard("rnn_config_init", || {
        if cell > rnn_cell_kind::Gru as u32 {
            return Err(Error::invalid(format!(
                "cell = {cell}: not an rnn_cell_kind"
            )));
        }
        let c = rnn_config {
            cell,
            activation: rnn_activation::Tanh as u32,
            gru_variant: rnn_gru_variant::LinearBeforeReset as u32,
            bias: 1,
            bidirectional: 0,
            input_size,
            hidden_size,
            num_layers: 1,
            seed: 0,
        };
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, c, "config") }
    })
}

/// How a bidirectional layer combines its directions (values of
/// `rnn_config_ext.merge`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rnn_merge {
    /// Side by side, `[.., 2H]` (PyTorch's; the default).
    Concat = 0,
    /// Added, `[.., H]`.
    Sum = 1,
}

/// The arguments of a network beyond `rnn_config` (library 0.3 on), for
/// `rnn_model_new_ext` and `rnn_model_config_ext`. Fill it with
/// `rnn_config_ext_init`, which sets `size`, then change fields: a later
/// library may append fields, and reads only those the caller's `size`
/// covers, so a program built against this header keeps working.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct rnn_config_ext {
    /// `sizeof(rnn_config_ext)` as the caller's header defines it (set by
    /// `rnn_config_ext_init`).
    pub size: usize,
    /// An LSTM's projection size P (PyTorch's `proj_size`), `0 < P <
    /// hidden_size`; 0: none. With P, `h0`/`h_n` are `[L*D, B, P]` and the
    /// outputs `D*P` wide; `c0`/`c_n` stay `[L*D, B, H]`.
    pub proj_size: usize,
    /// 1: sequences (`x`, `y`, their gradients) are `[B, T, F]` (PyTorch's
    /// `batch_first`); 0: `[T, B, F]`. States are `[L*D, B, ..]` either way.
    pub batch_first: u32,
    /// An `rnn_merge`: `RNN_MERGE_SUM` adds the two directions of a
    /// bidirectional layer (outputs `H` wide, or `P`).
    pub merge: u32,
    /// Dropout between stacked layers (PyTorch's `dropout`), in `[0, 1)`:
    /// applied by the trainer's forward and training steps
    /// (`rnn_trainer_*`), never by `rnn_model_forward` or streams.
    pub dropout: f64,
    /// Recurrent (variational) dropout on `h_{t-1}`, one mask per sequence
    /// (Keras's `recurrent_dropout`), in `[0, 1)`, training steps only; not
    /// for the reset-before-linear GRU.
    pub recurrent_dropout: f64,
}

impl rnn_config_ext {
    /// The defaults: no projection, time-major, concatenated.
    pub(crate) const DEFAULT: Self = Self {
        size: std::mem::size_of::<Self>(),
        proj_size: 0,
        batch_first: 0,
        merge: rnn_merge::Concat as u32,
        dropout: 0.0,
        recurrent_dropout: 0.0,
    };

    /// The caller's extension at `p` (NULL: the defaults), read by its
    /// `size`: the fields this library knows, and any bytes past them (a
    /// newer header's fields, at most 1 KiB in all) required to be zero
    /// (their defaults).
    ///
    /// # Safety
    /// `p` is NULL, or points to `size` readable bytes, `size` (its first
    /// field) included.
    pub(crate) unsafe fn read(p: *const Self) -> Result<Self> {
        if p.is_null() {
            return Ok(Self::DEFAULT);
        }
        args::check_aligned(p, "ext")?;
        // SAFETY: aligned and readable, by this function's contract.
        let size = unsafe { p.cast::<usize>().read() };
        let ours = std::mem::size_of::<Self>();
        // No later struct grows past this: a larger size is a lie, refused
        // before anything past our fields is read.
        const MAX_SIZE: usize = 1024;
        if size < ours || size > MAX_SIZE {
            return Err(Error::invalid(format!(
                "ext->size = {size}: not a size rnn_config_ext_init writes (this library's is {ours})"
            )));
        }
        // SAFETY: `size >= ours` readable bytes, by this function's contract.
        let (ext, extra) = unsafe {
            (
                p.read(),
                std::slice::from_raw_parts(p.cast::<u8>().add(ours), size - ours),
            )
        };
        if extra.iter().any(|&b| b != 0) {
            return Err(Error::invalid(
                "ext: fields of a newer library set (this library predates them)",
            ));
        }
        Ok(ext)
    }

    /// `config` with this extension's arguments, checked.
    pub(crate) fn apply(&self, config: NetConfig) -> Result<NetConfig> {
        let merge = match self.merge {
            0 => Merge::Concat,
            1 => Merge::Sum,
            v => return Err(Error::invalid(format!("merge = {v}: not an rnn_merge"))),
        };
        let c = NetConfig {
            proj_size: self.proj_size,
            batch_first: args::flag(self.batch_first, "batch_first")?,
            merge,
            dropout: self.dropout as f32,
            recurrent_dropout: self.recurrent_dropout as f32,
            ..config
        };
        c.validate()?;
        Ok(c)
    }

    /// The extension describing a Rust configuration.
    pub(crate) fn from_net_config(c: &NetConfig) -> Self {
        Self {
            proj_size: c.proj_size,
            batch_first: c.batch_first.into(),
            merge: match c.merge {
                Merge::Concat => rnn_merge::Concat,
                Merge::Sum => rnn_merge::Sum,
            } as u32,
            dropout: c.dropout.into(),
            recurrent_dropout: c.recurrent_dropout.into(),
            ..Self::DEFAULT
        }
    }
}

/// Fills `*ext` with the defaults (no projection, `[T, B, F]` sequences,
/// concatenated directions, no dropout) and its `size`.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (ext). Thread-safe.
///
/// # Safety
/// `ext` is NULL or points to a writable `rnn_config_ext`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_config_ext_init(ext: *mut rnn_config_ext) -> crate::rnn_status {
    // SAFETY: NULL or writable, by this function's contract.
    guard("rnn_config_ext_init", || unsafe {
        args::write_out(ext, rnn_config_ext::DEFAULT, "ext")
    })
}
