//! The Neural Turing Machine (Graves et al. 2014): an LSTM or feed-forward
//! controller with read and write heads on an `N x M` memory, batched, with
//! backpropagation through time derived by hand. docs/ntm.md is the contract
//! (parameter names and layout, the step equations).
//!
//! - [`addressing`] and [`memory`]: the addressing steps and the memory
//!   access of one head and batch row, each with its backward.
//! - [`Ntm`]: the batched model, forward and BPTT.

pub mod addressing;
mod backward;
mod config;
pub mod memory;
mod model;
mod row;

pub use config::{Controller, MemoryInit, NtmConfig};
pub use model::{Ntm, NtmGradScratch, NtmTape};
