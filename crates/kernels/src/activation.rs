//! Activation functions over slices: forward, and backward from the saved
//! output (`sigmoid' = y (1 - y)`, `tanh' = 1 - y^2`, `relu' = [y > 0]`).
//!
//! Each function has a scalar twin in [`scalar`]; `tests/twins.rs`
//! holds them equal.

use pulp::{Simd, WithSimd};

use crate::math;
use crate::simd::{Lanes, dispatch, zip_map};

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
}

/// `y = f(x)` on one block, for one activation `f` chosen at compile time
/// (a `match` inside the lane loop costs a branch per vector and blocks
/// unrolling: measured 1.7x slower for relu).
struct Apply<const ACT: u8>;

const TANH: u8 = 0;
const RELU: u8 = 1;
const SIGMOID: u8 = 2;

impl<const ACT: u8> Apply<ACT> {
    #[inline(always)]
    fn one<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
        match ACT {
            TANH => math::tanh(simd, x),
            RELU => math::relu(simd, x),
            _ => math::sigmoid(simd, x),
        }
    }
}

impl<const ACT: u8> Lanes<1, 1> for Apply<ACT> {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [x]: [S::f32s; 1], _: [S::f32s; 1]) -> [S::f32s; 1] {
        [Self::one(simd, x)]
    }
}

impl<const ACT: u8> Lanes<0, 1> for Apply<ACT> {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, _: [S::f32s; 0], [x]: [S::f32s; 1]) -> [S::f32s; 1] {
        [Self::one(simd, x)]
    }
}

/// `dx = dy * f'(y)` on one block, `f` chosen at compile time.
struct Derivative<const ACT: u8>;

impl<const ACT: u8> Lanes<2, 1> for Derivative<ACT> {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [y, dy]: [S::f32s; 2], _: [S::f32s; 1]) -> [S::f32s; 1] {
        let one = simd.splat_f32s(1.0);
        let zero = simd.splat_f32s(0.0);
        [match ACT {
            TANH => simd.mul_f32s(dy, simd.negate_mul_add_f32s(y, y, one)),
            RELU => simd.select_f32s(simd.greater_than_f32s(y, zero), dy, zero),
            _ => simd.mul_f32s(dy, simd.mul_f32s(y, simd.sub_f32s(one, y))),
        }]
    }
}

struct Forward<'a> {
    act: Activation,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl WithSimd for Forward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (x, y) = (self.x, self.y);
        match self.act {
            Activation::Tanh => zip_map(simd, [x], [y], &Apply::<TANH>),
            Activation::Relu => zip_map(simd, [x], [y], &Apply::<RELU>),
            Activation::Sigmoid => zip_map(simd, [x], [y], &Apply::<SIGMOID>),
        }
    }
}

struct InPlace<'a> {
    act: Activation,
    x: &'a mut [f32],
}

impl WithSimd for InPlace<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let x = self.x;
        match self.act {
            Activation::Tanh => zip_map(simd, [], [x], &Apply::<TANH>),
            Activation::Relu => zip_map(simd, [], [x], &Apply::<RELU>),
            Activation::Sigmoid => zip_map(simd, [], [x], &Apply::<SIGMOID>),
        }
    }
}

struct Backward<'a> {
    act: Activation,
    y: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
}

impl WithSimd for Backward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (ins, dx) = ([self.y, self.dy], self.dx);
        match self.act {
            Activation::Tanh => zip_map(simd, ins, [dx], &Derivative::<TANH>),
            Activation::Relu => zip_map(simd, ins, [dx], &Derivative::<RELU>),
            Activation::Sigmoid => zip_map(simd, ins, [dx], &Derivative::<SIGMOID>),
        }
    }
}

/// `y = act(x)`. `x`, `y`: same length, any layout.
///
/// # Panics
/// If the lengths differ.
pub fn forward(act: Activation, x: &[f32], y: &mut [f32]) {
    dispatch(Forward { act, x, y });
}

/// `x = act(x)` in place.
pub fn forward_inplace(act: Activation, x: &mut [f32]) {
    dispatch(InPlace { act, x });
}

/// `dx = dy * act'(x)`, the derivative taken from the saved output `y = act(x)`.
/// `y`, `dy`, `dx`: same length.
///
/// # Panics
/// If the lengths differ.
pub fn backward(act: Activation, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    dispatch(Backward { act, y, dy, dx });
}

/// Scalar twins of this module's kernels.
pub mod scalar {
    use super::Activation;
    use crate::math::scalar as m;

    /// `act(x)` for one value.
    pub fn apply(act: Activation, x: f32) -> f32 {
        match act {
            Activation::Tanh => m::tanh(x),
            Activation::Relu => m::relu(x),
            Activation::Sigmoid => m::sigmoid(x),
        }
    }

    /// `act'(x)` from `y = act(x)`.
    pub fn derivative_from_output(act: Activation, y: f32) -> f32 {
        match act {
            Activation::Tanh => 1.0 - y * y,
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// Twin of [`super::forward`].
    pub fn forward(act: Activation, x: &[f32], y: &mut [f32]) {
        assert_eq!(x.len(), y.len());
        for (y, &x) in y.iter_mut().zip(x) {
            *y = apply(act, x);
        }
    }

    /// Twin of [`super::backward`].
    pub fn backward(act: Activation, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        assert!(y.len() == dy.len() && y.len() == dx.len());
        for i in 0..y.len() {
            dx[i] = if act == Activation::Relu {
                if y[i] > 0.0 { dy[i] } else { 0.0 }
            } else {
                dy[i] * derivative_from_output(act, y[i])
            };
        }
    }
}
