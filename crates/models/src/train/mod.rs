//! Training as a library type: a [`Trainer`] runs epochs of mini-batch
//! steps over any [`Objective`] (a model bound to its examples), with
//! shuffling, gradient clipping, early stopping on a validation loss and
//! the best epoch's weights restored; the same loop serves Rust, the C API
//! and the `rnn` command.
//!
//! Data parallelism: every step's gradients go through one [`AllReduce`]
//! call on one flat buffer. With [`SingleProcess`] that call does nothing;
//! with several workers (MPI in `rnn-cli`'s `mpi` feature, or a C
//! caller's callback) each worker computes the gradient of its contiguous
//! slice of every global batch ([`slice_of`]), the sums are combined, and
//! every worker divides by the global batch size and applies the same
//! update, so the run follows the single-process one.

mod reduce;
mod trainer;

pub use reduce::{AllReduce, SingleProcess, check_same, checksum, slice_of};
pub use trainer::{EpochReport, History, Objective, Trainer, TrainerConfig};
