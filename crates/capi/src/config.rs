//! Network configurations from C: `rnn_config` and the enums whose values
//! its integer fields take.

use rnn_models::{CellKind, GruVariant, NetConfig, Nonlinearity};

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
