//! # recurrent
//!
//! Recurrent neural networks for CPUs, in Rust: Elman RNN, LSTM and GRU
//! (both formulations), stacked and bidirectional, with batched forward and
//! backpropagation through time (BPTT), exact against PyTorch. The kernels
//! are hand-vectorised (pulp) around faer's GEMM and run on a rayon pool.
//!
//! Conventions:
//! - `f32`; sequences are **time-major** `[T, B, F]`, row-major, contiguous
//!   (`[B, T, F]` for a `batch_first` network);
//! - states are `[L*D, B, H]` (index `layer * D + direction`), as PyTorch
//!   (`h` is `P` wide for an LSTM with `proj_size` P);
//! - parameters use PyTorch's `state_dict` names, shapes and gate order
//!   (LSTM `i, f, g, o`; GRU `r, z, n`), in one contiguous buffer.
//!
//! ```
//! use recurrent::{Gradients, Lstm, LstmConfig, OutputGrads, SeqInput, Tape};
//!
//! # fn main() -> recurrent::Result<()> {
//! let (t, b, i, h) = (5, 2, 3, 4);
//! let lstm = Lstm::new(LstmConfig::new(i, h).num_layers(2).seed(7))?;
//! let x = vec![0.1f32; t * b * i]; // [T, B, I]
//!
//! // Inference.
//! let out = lstm.forward(SeqInput::new(&x, t, b))?;
//! assert_eq!(out.y.len(), t * b * h); // [T, B, H]
//! assert_eq!(out.h_n.len(), 2 * b * h); // [L, B, H]
//!
//! // Training: forward with a tape, then BPTT from dL/dy.
//! let mut tape = Tape::new();
//! let out = lstm.forward_train(SeqInput::new(&x, t, b), &mut tape)?;
//! let grad_y = vec![1.0f32; out.y.len()]; // L = sum(y)
//! let mut grads = Gradients::for_net(lstm.as_recurrent());
//! lstm.backward(&mut tape, OutputGrads::new(&grad_y), &mut grads)?;
//! assert_eq!(grads.x.len(), x.len());
//! assert!(grads.params.get("weight_hh_l1").is_some());
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use rnn_kernels as kernels;
pub use rnn_kernels::threads::{num_threads, set_num_threads};
pub use rnn_models::io::{TensorData, TensorFile};
pub use rnn_models::{
    CellKind, Error, Gradients, Gru, GruConfig, GruVariant, Linear, Lstm, LstmConfig, Merge,
    NetConfig, Nonlinearity, Output, OutputGrads, ParamInfo, Params, Recurrent, Result, Rnn,
    RnnConfig, SeqInput, StreamState, Tape, TruncatedBptt, param_layout,
};
pub use rnn_models::{arch, io, loss, ntm, optim, rng, train};
