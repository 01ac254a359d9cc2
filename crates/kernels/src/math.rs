//! Vectorised `exp`, `sigmoid` and `tanh` on one block of lanes, and their
//! plain scalar twins.
//!
//! The vector forms are inlined into the kernels that use them (passing them
//! around as function pointers defeats inlining and was measured 40x slower).
//! Accuracy (checked in `tests/activations.rs` against f64 on a sweep that
//! includes +-0, subnormals, +-88, +-inf and NaN): max abs error <= 1e-6,
//! saturation exact (sigmoid -> 0 and 1, tanh -> -1 and 1), NaN in, NaN out.

use pulp::Simd;

const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
/// 1.5 * 2^23: adding it rounds to the nearest integer and leaves that
/// integer in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Below this |x|, tanh uses its odd polynomial (no cancellation).
const TANH_POLY_BOUND: f32 = 0.625;

/// `exp(x)` for `x` in `[-87, 88]` (callers clamp), relative error about 2 ulp.
///
/// Cephes' range reduction `x = n ln2 + r` with ln2 split in two parts, a
/// degree-6 polynomial for `exp(r)`, and `2^n` built in the exponent bits.
#[inline(always)]
fn exp_in_range<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let magic = simd.splat_f32s(ROUND_MAGIC);
    let t = simd.mul_add_f32s(x, simd.splat_f32s(core::f32::consts::LOG2_E), magic);
    let n = simd.sub_f32s(t, magic);
    let r = simd.mul_add_f32s(n, simd.splat_f32s(-0.693_359_4), x);
    let r = simd.mul_add_f32s(n, simd.splat_f32s(2.121_944_4e-4), r);
    let mut p = simd.splat_f32s(1.987_569_1e-4);
    p = simd.mul_add_f32s(p, r, simd.splat_f32s(1.398_2e-3));
    p = simd.mul_add_f32s(p, r, simd.splat_f32s(8.333_452e-3));
    p = simd.mul_add_f32s(p, r, simd.splat_f32s(4.166_579_6e-2));
    p = simd.mul_add_f32s(p, r, simd.splat_f32s(1.666_666_5e-1));
    p = simd.mul_add_f32s(p, r, simd.splat_f32s(0.5));
    let r2 = simd.mul_f32s(r, r);
    let y = simd.mul_add_f32s(p, r2, simd.add_f32s(r, simd.splat_f32s(1.0)));
    // bits(t) = bits(magic) + n; the exponent field of 2^n is n + 127.
    let bias = ROUND_MAGIC.to_bits().wrapping_sub(127);
    let e = simd.sub_u32s(simd.transmute_u32s_f32s(t), simd.splat_u32s(bias));
    let two_n = simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(e, simd.splat_u32s(23)));
    simd.mul_f32s(y, two_n)
}

/// `exp(clamp(x, -87, 88))`; NaN lanes give an unspecified value (callers
/// restore NaN with [`keep_nan`]).
#[inline(always)]
fn exp_clamped<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let x = simd.min_f32s(
        simd.max_f32s(x, simd.splat_f32s(EXP_LO)),
        simd.splat_f32s(EXP_HI),
    );
    exp_in_range(simd, x)
}

/// Returns `x` in the lanes where `x` is NaN, `y` elsewhere.
#[inline(always)]
fn keep_nan<S: Simd>(simd: S, x: S::f32s, y: S::f32s) -> S::f32s {
    simd.select_f32s(simd.equal_f32s(x, x), y, x)
}

/// `1 / (1 + exp(-x))`; exactly 0 below `-EXP_HI` (the true value is under
/// 6e-39 there, and `sigmoid(-inf)` must be 0).
#[inline(always)]
pub(crate) fn sigmoid<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    let e = exp_clamped(simd, simd.neg_f32s(x));
    let y = simd.div_f32s(one, simd.add_f32s(one, e));
    let tiny = simd.less_than_f32s(x, simd.splat_f32s(-EXP_HI));
    keep_nan(simd, x, simd.select_f32s(tiny, simd.splat_f32s(0.0), y))
}

/// `tanh(x)`: odd polynomial below |x| = 0.625, `(1 - e) / (1 + e)` with
/// `e = exp(-2|x|)` above, sign restored from `x` (so `tanh(-0) = -0`).
#[inline(always)]
pub(crate) fn tanh<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    let ax = simd.abs_f32s(x);
    // Large branch.
    let e = exp_clamped(simd, simd.mul_f32s(ax, simd.splat_f32s(-2.0)));
    let large = simd.div_f32s(simd.sub_f32s(one, e), simd.add_f32s(one, e));
    // Small branch (Cephes tanhf), on |x| to share the sign handling.
    let z = simd.mul_f32s(ax, ax);
    let mut p = simd.splat_f32s(-5.704_988_7e-3);
    p = simd.mul_add_f32s(p, z, simd.splat_f32s(2.063_909e-2));
    p = simd.mul_add_f32s(p, z, simd.splat_f32s(-5.373_971_6e-2));
    p = simd.mul_add_f32s(p, z, simd.splat_f32s(1.333_144_2e-1));
    p = simd.mul_add_f32s(p, z, simd.splat_f32s(-3.333_328e-1));
    let small = simd.mul_add_f32s(simd.mul_f32s(p, z), ax, ax);
    let is_small = simd.less_than_f32s(ax, simd.splat_f32s(TANH_POLY_BOUND));
    let abs = simd.select_f32s(is_small, small, large);
    let sign = simd.and_f32s(x, simd.splat_f32s(-0.0));
    keep_nan(simd, x, simd.or_f32s(abs, sign))
}

/// `max(x, 0)`, NaN in, NaN out.
#[inline(always)]
pub(crate) fn relu<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let zero = simd.splat_f32s(0.0);
    simd.select_f32s(simd.less_than_f32s(x, zero), zero, x)
}

/// Scalar twins, written from the definitions with `std`'s `f32` functions.
pub mod scalar {
    /// `1 / (1 + exp(-x))`.
    #[inline]
    pub fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    /// `tanh(x)`.
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        x.tanh()
    }

    /// `max(x, 0)`, NaN in, NaN out.
    #[inline]
    pub fn relu(x: f32) -> f32 {
        if x < 0.0 { 0.0 } else { x }
    }
}
