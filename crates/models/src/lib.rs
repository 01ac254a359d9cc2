//! # rnn-models
//!
//! Elman RNN, LSTM and GRU networks (stacked, optionally bidirectional) and
//! the Neural Turing Machine ([`ntm`]), with batched forward and
//! backpropagation through time, exact against PyTorch.
//!
//! Where the math lives: each cell's gate equations and its time loop
//! (forward and backward, uniform or variable lengths, both directions) are
//! `rnn-kernels`' whole-sequence kernels; this crate holds the models
//! around them: the layer driver (input projections and weight gradients
//! as GEMMs, the batch sorted by length), stacking and directions, the
//! architectures, losses, optimizers, files and the NTM, whose controller
//! step calls the same LSTM kernel.
//!
//! Conventions: `f32`; sequences time-major `[T, B, F]`, row-major;
//! parameters under PyTorch's names, shapes and gate order, in one
//! contiguous buffer ([`Params`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod arch;
mod batch_order;
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
pub mod train;

pub use config::{
    CellKind, GruConfig, GruVariant, LstmConfig, Merge, NetConfig, Nonlinearity, RnnConfig,
};
pub use error::{Error, Result};
pub use linear::Linear;
pub use models::{Gru, Lstm, Rnn};
pub use net::{Gradients, Output, OutputGrads, Recurrent, SeqInput, Tape, param_layout};
pub use params::{ParamInfo, Params};
pub use stream::StreamState;
pub use tbptt::TruncatedBptt;
