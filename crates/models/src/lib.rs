//! # rnn-models
//!
//! Elman RNN, LSTM and GRU networks (stacked, optionally bidirectional) and
//! the Neural Turing Machine ([`ntm`]), with batched forward and
//! backpropagation through time, exact against PyTorch.
//! All forward and backward math of librnn lives here, on the kernels of
//! `rnn-kernels`.
//!
//! Conventions: `f32`; sequences time-major `[T, B, F]`, row-major;
//! parameters under PyTorch's names, shapes and gate order, in one
//! contiguous buffer ([`Params`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod arch;
mod cells;
pub mod config;
pub mod error;
pub mod io;
mod layer;
pub mod linear;
pub mod loss;
mod models;
pub mod net;
pub mod ntm;
pub mod optim;
pub mod params;
pub mod rng;
pub mod stream;
pub mod tbptt;

pub use config::{CellKind, GruConfig, GruVariant, LstmConfig, NetConfig, Nonlinearity, RnnConfig};
pub use error::{Error, Result};
pub use linear::Linear;
pub use models::{Gru, Lstm, Rnn};
pub use net::{Gradients, Output, OutputGrads, Recurrent, SeqInput, Tape, param_layout};
pub use params::{ParamInfo, Params};
pub use stream::StreamState;
pub use tbptt::TruncatedBptt;
