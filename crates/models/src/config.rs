//! Network configurations: the cell kind and the sizes, with builders.

use crate::error::{Error, Result};

/// The non-linearity of an Elman network (PyTorch's `nonlinearity`): the
/// two kinds a weight file can name, `rnn_tanh` and `rnn_relu`. (Sigmoid is
/// a gate activation of the LSTM and GRU, not an Elman kind, as in PyTorch.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Nonlinearity {
    /// `tanh` (the default).
    #[default]
    Tanh,
    /// `max(x, 0)`.
    Relu,
}

/// The two GRU formulations (see DESIGN.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GruVariant {
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`: PyTorch, cuDNN, ONNX
    /// `linear_before_reset=1`. The default.
    #[default]
    LinearBeforeReset,
    /// `n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`: Cho et al. 2014, Keras
    /// `reset_after=False`.
    ResetBeforeLinear,
}

/// Which recurrent cell a network is made of: exactly the kinds a weight
/// file can name ([`CellKind::name`]), each of which round-trips through
/// [`CellKind::from_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// Elman: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`, act = tanh or relu.
    Elman(Nonlinearity),
    /// LSTM, gates `i, f, g, o`.
    Lstm,
    /// GRU, gates `r, z, n`.
    Gru(GruVariant),
}

impl CellKind {
    /// Number of gate blocks `G`: the weights are `[G*H, ...]`.
    pub fn gates(self) -> usize {
        match self {
            Self::Elman(_) => 1,
            Self::Lstm => 4,
            Self::Gru(_) => 3,
        }
    }

    /// Whether the cell carries a cell state `c` (LSTM).
    pub fn has_cell_state(self) -> bool {
        self == Self::Lstm
    }

    /// The fixture/model-file name: `rnn_tanh`, `rnn_relu`, `lstm`, `gru`,
    /// `gru_reset_before`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Elman(Nonlinearity::Tanh) => "rnn_tanh",
            Self::Elman(Nonlinearity::Relu) => "rnn_relu",
            Self::Lstm => "lstm",
            Self::Gru(GruVariant::LinearBeforeReset) => "gru",
            Self::Gru(GruVariant::ResetBeforeLinear) => "gru_reset_before",
        }
    }

    /// Parses [`CellKind::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "rnn_tanh" => Self::Elman(Nonlinearity::Tanh),
            "rnn_relu" => Self::Elman(Nonlinearity::Relu),
            "lstm" => Self::Lstm,
            "gru" => Self::Gru(GruVariant::LinearBeforeReset),
            "gru_reset_before" => Self::Gru(GruVariant::ResetBeforeLinear),
            other => {
                return Err(Error::Config(format!(
                    "unknown cell kind {other:?} (expected rnn_tanh, rnn_relu, lstm, gru or gru_reset_before)"
                )));
            }
        })
    }
}

/// How a bidirectional layer combines its two directions' outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Merge {
    /// Side by side, `[.., 2H]` (PyTorch's, the default).
    #[default]
    Concat,
    /// Added, `[.., H]` (oneDNN's and Keras's `sum`).
    Sum,
}

impl Merge {
    /// The name in weight files and on the command line: `concat`, `sum`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Concat => "concat",
            Self::Sum => "sum",
        }
    }

    /// Parses [`Merge::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "concat" => Ok(Self::Concat),
            "sum" => Ok(Self::Sum),
            other => Err(Error::Config(format!(
                "unknown merge {other:?} (expected concat or sum)"
            ))),
        }
    }
}

/// The most layers a network may stack.
pub const MAX_LAYERS: usize = 1024;

/// The most parameters a network may have (2^32, 16 GiB of `f32`).
pub const MAX_PARAMETERS: usize = 1 << 32;

/// The full description of a recurrent network (any cell kind).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// The cell.
    pub cell: CellKind,
    /// Features per time step of the input, `I`.
    pub input_size: usize,
    /// Hidden units per direction, `H`.
    pub hidden_size: usize,
    /// An LSTM's projection size `P` (PyTorch's `proj_size`; 0 for none):
    /// `h_t = W_hr (o_t * tanh(c_t))`, so `h`, `h0`/`h_n` and the layer
    /// outputs are `P` wide while the cell state stays `H` wide.
    pub proj_size: usize,
    /// Stacked layers, `L` (layer k > 0 reads layer k-1's output).
    pub num_layers: usize,
    /// Whether the cells have the biases `b_ih`, `b_hh`.
    pub bias: bool,
    /// Whether each layer runs a reverse direction too (outputs merged as
    /// `merge` says).
    pub bidirectional: bool,
    /// How a bidirectional layer's two outputs are combined (unused with
    /// one direction).
    pub merge: Merge,
    /// Dropout between stacked layers (PyTorch's `dropout`): in training
    /// forward passes ([`crate::Recurrent::forward_train`]) each layer's
    /// output but the last's is multiplied by a mask of zeros (probability
    /// `dropout`) and `1 / (1 - dropout)`, drawn from the library's RNG
    /// (deterministic for a seed); inference never drops. In `[0, 1)`.
    pub dropout: f32,
    /// Recurrent (variational) dropout, as Keras has it: in training
    /// forward passes each layer-direction draws one mask per sequence
    /// (zeros with this probability, else `1 / (1 - p)`) that multiplies
    /// `h_{t-1}` in the recurrent product at every step; inference never
    /// drops. In `[0, 1)`; not for the reset-before-linear GRU.
    pub recurrent_dropout: f32,
    /// Whether sequences (input, output and their gradients) are
    /// `[B, T, F]` instead of `[T, B, F]` (PyTorch's `batch_first`);
    /// states are `[L*D, B, H]` either way.
    pub batch_first: bool,
    /// Seed of the default initialisation.
    pub seed: u64,
}

impl NetConfig {
    /// A one-layer, unidirectional network with biases, seed 0.
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize) -> Self {
        Self {
            cell,
            input_size,
            hidden_size,
            proj_size: 0,
            num_layers: 1,
            bias: true,
            bidirectional: false,
            merge: Merge::Concat,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            batch_first: false,
            seed: 0,
        }
    }

    /// Number of directions `D` (1, or 2 when bidirectional).
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Width of the hidden state `h` (and of `h0`, `h_n`): `P` with a
    /// projection, `H` otherwise.
    pub fn state_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Width of every layer's output (and of `y`): `D*S` concatenated, `S`
    /// for one direction or summed directions (`S` the
    /// [`NetConfig::state_size`]).
    pub fn output_size(&self) -> usize {
        match self.merge {
            Merge::Sum => self.state_size(),
            Merge::Concat => self.directions() * self.state_size(),
        }
    }

    /// Input width of layer `k`: `I` for layer 0, [`NetConfig::output_size`]
    /// above.
    pub fn layer_input_size(&self, k: usize) -> usize {
        if k == 0 {
            self.input_size
        } else {
            self.output_size()
        }
    }

    /// Number of parameters, or `None` if it overflows `usize`:
    /// `sum_k D * (G*H * (I_k + S + 2 [bias]) + P*H)`, `S` the state size.
    pub fn num_parameters(&self) -> Option<usize> {
        let gh = self.cell.gates().checked_mul(self.hidden_size)?;
        let state = self.state_size();
        let dh = match self.merge {
            Merge::Sum => state,
            Merge::Concat => self.directions().checked_mul(state)?,
        };
        let per_row_extra = state.checked_add(if self.bias { 2 } else { 0 })?;
        let first = self.input_size.checked_add(per_row_extra)?;
        let rest = dh.checked_add(per_row_extra)?;
        let rows = gh.checked_mul(self.directions())?;
        let upper = rest.checked_mul(self.num_layers.checked_sub(1)?)?;
        let gates = rows.checked_mul(first.checked_add(upper)?)?;
        // `W_hr`, `[P, H]` per layer and direction.
        let projections = [
            self.proj_size,
            self.hidden_size,
            self.directions(),
            self.num_layers,
        ]
        .iter()
        .try_fold(1usize, |a, &v| a.checked_mul(v))?;
        gates.checked_add(projections)
    }

    /// Checks every size; returns the first problem.
    pub fn validate(&self) -> Result<()> {
        check_nonzero(&[
            ("input_size", self.input_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
        ])?;
        for (name, p) in [
            ("dropout", self.dropout),
            ("recurrent_dropout", self.recurrent_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::Config(format!("{name} = {p}: must be in [0, 1)")));
            }
        }
        if self.recurrent_dropout > 0.0 && self.cell == CellKind::Gru(GruVariant::ResetBeforeLinear)
        {
            return Err(Error::Config(
                "recurrent_dropout: not supported by the reset-before-linear GRU".into(),
            ));
        }
        if self.proj_size > 0 && self.cell != CellKind::Lstm {
            return Err(Error::Config(format!(
                "proj_size = {}: only an LSTM has a projection (this is a {})",
                self.proj_size,
                self.cell.name()
            )));
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return Err(Error::Config(format!(
                "proj_size = {} must be below hidden_size = {}",
                self.proj_size, self.hidden_size
            )));
        }
        if self.num_layers > MAX_LAYERS {
            return Err(Error::Config(format!(
                "num_layers = {} exceeds the limit of {MAX_LAYERS}",
                self.num_layers
            )));
        }
        match self.num_parameters() {
            Some(n) if n <= MAX_PARAMETERS => {}
            n => {
                return Err(Error::Config(format!(
                    "model too large: {} parameters (limit {MAX_PARAMETERS}) for input_size {}, hidden_size {}, num_layers {}",
                    n.map_or("more than usize::MAX".to_string(), |n| n.to_string()),
                    self.input_size,
                    self.hidden_size,
                    self.num_layers
                )));
            }
        }
        Ok(())
    }
}

/// Checks sizes that must be at least 1, in order: the first that is zero
/// is an [`Error::ZeroSize`] naming it. Shared by every check of
/// user-given sizes (configurations, layers, batches).
pub(crate) fn check_nonzero(sizes: &[(&'static str, usize)]) -> Result<()> {
    match sizes.iter().find(|&&(_, size)| size == 0) {
        Some(&(what, _)) => Err(Error::ZeroSize { what }),
        None => Ok(()),
    }
}

macro_rules! common_setters {
    () => {
        /// Stacked layers (default 1).
        pub fn num_layers(mut self, n: usize) -> Self {
            self.0.num_layers = n;
            self
        }
        /// Whether the cells have biases (default true).
        pub fn bias(mut self, bias: bool) -> Self {
            self.0.bias = bias;
            self
        }
        /// Run a reverse direction too, outputs concatenated (default false).
        pub fn bidirectional(mut self, bidirectional: bool) -> Self {
            self.0.bidirectional = bidirectional;
            self
        }
        /// How a bidirectional layer combines its directions (default
        /// [`Merge::Concat`]).
        pub fn merge(mut self, merge: Merge) -> Self {
            self.0.merge = merge;
            self
        }
        /// Dropout between stacked layers, in `[0, 1)` (default 0; with one
        /// layer it has nothing to act on, as in PyTorch, which warns).
        pub fn dropout(mut self, dropout: f32) -> Self {
            self.0.dropout = dropout;
            self
        }
        /// Recurrent (variational) dropout on `h_{t-1}`, in `[0, 1)`
        /// (default 0).
        pub fn recurrent_dropout(mut self, p: f32) -> Self {
            self.0.recurrent_dropout = p;
            self
        }
        /// Sequences `[B, T, F]` instead of `[T, B, F]` (default false).
        pub fn batch_first(mut self, batch_first: bool) -> Self {
            self.0.batch_first = batch_first;
            self
        }
        /// Seed of the default initialisation (default 0).
        pub fn seed(mut self, seed: u64) -> Self {
            self.0.seed = seed;
            self
        }
        /// The general configuration this builder makes.
        pub fn into_net_config(self) -> NetConfig {
            self.0
        }
    };
}

/// Builder of an Elman network ([`crate::Rnn`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RnnConfig(NetConfig);

impl RnnConfig {
    /// `input_size` features in, `hidden_size` units, tanh.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self(NetConfig::new(
            CellKind::Elman(Nonlinearity::Tanh),
            input_size,
            hidden_size,
        ))
    }
    /// The non-linearity (PyTorch's `nonlinearity`): [`Nonlinearity::Tanh`]
    /// (default) or [`Nonlinearity::Relu`].
    pub fn nonlinearity(mut self, nonlinearity: Nonlinearity) -> Self {
        self.0.cell = CellKind::Elman(nonlinearity);
        self
    }
    common_setters!();
}

/// Builder of an LSTM network ([`crate::Lstm`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LstmConfig(NetConfig);

impl LstmConfig {
    /// `input_size` features in, `hidden_size` units.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self(NetConfig::new(CellKind::Lstm, input_size, hidden_size))
    }
    /// Projects `h` to `proj_size` units, `0 < proj_size < hidden_size`
    /// (PyTorch's `proj_size`; default 0, none).
    pub fn proj_size(mut self, proj_size: usize) -> Self {
        self.0.proj_size = proj_size;
        self
    }
    common_setters!();
}

/// Builder of a GRU network ([`crate::Gru`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GruConfig(NetConfig);

impl GruConfig {
    /// `input_size` features in, `hidden_size` units, linear-before-reset.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self(NetConfig::new(
            CellKind::Gru(GruVariant::LinearBeforeReset),
            input_size,
            hidden_size,
        ))
    }
    /// The formulation (default [`GruVariant::LinearBeforeReset`]).
    pub fn variant(mut self, variant: GruVariant) -> Self {
        self.0.cell = CellKind::Gru(variant);
        self
    }
    common_setters!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has a file name that parses back to it, and the names are
    /// exactly the five a weight file may hold.
    #[test]
    fn every_cell_kind_round_trips_through_its_name() {
        let kinds = [
            CellKind::Elman(Nonlinearity::Tanh),
            CellKind::Elman(Nonlinearity::Relu),
            CellKind::Lstm,
            CellKind::Gru(GruVariant::LinearBeforeReset),
            CellKind::Gru(GruVariant::ResetBeforeLinear),
        ];
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"]
        );
        for k in kinds {
            assert_eq!(CellKind::from_name(k.name()).expect("parses"), k);
        }
        for bad in ["rnn_sigmoid", "sigmoid", "LSTM", ""] {
            assert!(CellKind::from_name(bad).is_err(), "{bad}");
        }
    }
}
