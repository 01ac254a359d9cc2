//! The Neural Turing Machine (Graves et al. 2014): an LSTM or feed-forward
//! controller with read and write heads on an `N x M` memory, batched, with
//! backpropagation through time derived by hand. docs/ntm.md is the contract
//! (parameter names and layout, the step equations).
//!
//! - [`addressing`] and [`memory`]: the addressing steps and the memory
//!   access of one head and batch row, each with its backward, generic
//!   over the float type: the reference equations (checked by finite
//!   differences in f64) that the model's SIMD kernels
//!   (`rnn_kernels::addressing`) are held to.
//! - [`Ntm`]: the batched machine, forward and BPTT; [`Ntm::save`] and
//!   [`Ntm::load`] for weight files.
//! - [`Task`]: copy, repeat copy and associative recall; [`NtmTrainer`]
//!   trains on them.

pub mod addressing;
mod backward;
mod config;
pub mod footprint;
mod io;
pub mod memory;
mod model;
mod row;
mod tasks;
mod train;

pub use config::{Controller, MAX_HEADS, MemoryInit, NtmConfig};
pub use model::{Ntm, NtmGradScratch, NtmTape};
pub use tasks::{Score, Task, TaskBatch, score};
pub use train::{
    Evaluation, NtmOptimizer, NtmTrainConfig, NtmTrainer, Progress, Selection, SelectionScore,
    StepStats, TrainPlan, TrainReport, evaluate, evaluate_with,
};
