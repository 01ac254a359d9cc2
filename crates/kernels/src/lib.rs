//! # rnn-kernels
//!
//! The compute kernels of librnn, which know no model: matrix products over
//! faer ([`mod@gemm`]), and element-wise SIMD kernels over pulp ([`activation`],
//! the fused per-step gate kernels [`lstm`] and [`gru`], and the reductions
//! in [`reduce`], the memory addressing and access of a Neural Turing
//! Machine in [`addressing`]). The Elman cell's fused step is an [`activation`] kernel
//! (`h = act(P)` forward, `dP = dh * act'(h)` backward).
//!
//! Whole time loops, one per cell: [`lstm::forward_sequence`] /
//! [`lstm::backward_sequence`], [`gru::forward_sequence`] /
//! [`gru::backward_sequence`] (both GRU forms) and
//! [`elman::forward_sequence`] / [`elman::backward_sequence`] run every step
//! of a layer on a team of threads ([`team`]) that split the hidden units,
//! with spin barriers instead of a fork-join per step, for uniform and
//! variable-length batches (rows sorted by length, see [`SeqShape`]), with
//! an LSTM's projection ([`lstm::Projection`]) and a recurrent mask
//! ([`RecurrentMask`]); the loop itself is one, shared by the cells
//! (`sequence.rs`). Their per-step products run over weights packed once
//! per call (a register-blocked pulp kernel, not faer: faer repacks its
//! operand at every call); [`packed`] offers those products to models
//! that run their own loop (the NTM). The whole-slice step kernels (`lstm::forward`,
//! ...) run the same lane bodies on all units of one step.
//!
//! Every SIMD kernel runs at the best level the CPU offers (AVX-512,
//! AVX2+FMA, or a portable fallback; see [`simd`]) and has a plain scalar
//! twin that the property tests hold it equal to: a function of its own
//! for the activations and reductions (`<module>::scalar`), the gate
//! equations written one element at a time for the fused gate kernels (run
//! in their place under [`simd::with_scalar_twins`]).
//!
//! Layout: all matrices are row-major `f32`. Gate buffers are `[B, G*H]` with
//! the `G` gate blocks of `H` values side by side in each row, in PyTorch's
//! gate order.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod activation;
pub mod addressing;
pub mod denormals;
pub mod elman;
mod gates;
pub mod gemm;
pub mod gru;
pub mod lstm;
pub(crate) mod math;
pub mod packed;
mod panel;
pub mod reduce;
mod sequence;
pub mod simd;
pub mod team;
pub mod threads;

pub use activation::Activation;
pub use gemm::{Mat, MatMut, Op, gemm};
pub use sequence::{RecurrentMask, SeqShape, Upstream, read_weights_in_place};
pub use simd::SimdLevel;

/// Scalar reference activations (`std` math), the twins of the SIMD forms.
pub mod scalar_math {
    pub use crate::math::scalar::{relu, sigmoid, tanh};
}
