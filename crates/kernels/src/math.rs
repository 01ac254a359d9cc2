//! Vectorised `exp`, `ln`, `sigmoid` and `tanh` on one block of lanes, and
//! their plain scalar twins.
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
pub(crate) fn exp_clamped<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let x = simd.min_f32s(
        simd.max_f32s(x, simd.splat_f32s(EXP_LO)),
        simd.splat_f32s(EXP_HI),
    );
    exp_in_range(simd, x)
}

/// `sqrt(1/2)`: [`ln`] reduces the mantissa to `[sqrt(1/2), sqrt(2))`.
const SQRT_HALF: f32 = core::f32::consts::FRAC_1_SQRT_2;
/// Cephes' `logf` polynomial for `ln(1 + r) - r + r^2/2` divided by `r^3`,
/// highest degree first.
const LN_POLY: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// `ln(x)`, relative error about 1 ulp: `ln(+0) = -inf`, `ln(+inf) = +inf`,
/// NaN for NaN and negative `x`; subnormals are scaled by `2^23` first.
///
/// Cephes' `logf`: `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))` from the
/// bits, `ln(m)` by a degree-8 polynomial in `m - 1`, `e ln 2` added in two
/// parts. The exponent is made a float without an integer conversion: its
/// 8 bits OR-ed into the mantissa of `2^23`.
#[inline(always)]
pub(crate) fn ln<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let tiny = simd.less_than_f32s(x, simd.splat_f32s(f32::MIN_POSITIVE));
    let xs = simd.select_f32s(tiny, simd.mul_f32s(x, simd.splat_f32s(8_388_608.0)), x);
    let bits = simd.transmute_u32s_f32s(xs);
    // Biased exponent as a float: 2^23 + e, minus 2^23.
    let exp_bits = simd.wrapping_dyn_shr_u32s(bits, simd.splat_u32s(23));
    let exp_bits = simd.and_u32s(exp_bits, simd.splat_u32s(0xff));
    let two23 = simd.transmute_f32s_u32s(simd.or_u32s(exp_bits, simd.splat_u32s(0x4b00_0000)));
    let mut e = simd.sub_f32s(two23, simd.splat_f32s(8_388_608.0 + 126.0));
    e = simd.sub_f32s(
        e,
        simd.select_f32s(tiny, simd.splat_f32s(23.0), simd.splat_f32s(0.0)),
    );
    // Mantissa in [0.5, 1).
    let m = simd.or_u32s(
        simd.and_u32s(bits, simd.splat_u32s(0x007f_ffff)),
        simd.splat_u32s(0x3f00_0000),
    );
    let m = simd.transmute_f32s_u32s(m);
    let one = simd.splat_f32s(1.0);
    let small = simd.less_than_f32s(m, simd.splat_f32s(SQRT_HALF));
    e = simd.sub_f32s(e, simd.select_f32s(small, one, simd.splat_f32s(0.0)));
    let r = simd.sub_f32s(simd.select_f32s(small, simd.add_f32s(m, m), m), one);
    let z = simd.mul_f32s(r, r);
    let mut p = simd.splat_f32s(LN_POLY[0]);
    for &c in &LN_POLY[1..] {
        p = simd.mul_add_f32s(p, r, simd.splat_f32s(c));
    }
    let mut y = simd.mul_f32s(simd.mul_f32s(p, r), z);
    y = simd.mul_add_f32s(e, simd.splat_f32s(-2.121_944_4e-4), y);
    y = simd.mul_add_f32s(z, simd.splat_f32s(-0.5), y);
    let v = simd.mul_add_f32s(e, simd.splat_f32s(0.693_359_4), simd.add_f32s(r, y));
    // Edge cases: 0 -> -inf, +inf -> +inf, negative -> NaN, NaN -> NaN.
    let zero = simd.splat_f32s(0.0);
    let v = simd.select_f32s(
        simd.equal_f32s(x, zero),
        simd.splat_f32s(f32::NEG_INFINITY),
        v,
    );
    let v = simd.select_f32s(simd.equal_f32s(x, simd.splat_f32s(f32::INFINITY)), x, v);
    let v = simd.select_f32s(simd.less_than_f32s(x, zero), simd.splat_f32s(f32::NAN), v);
    keep_nan(simd, x, v)
}

/// Returns `x` in the lanes where `x` is NaN, `y` elsewhere.
#[inline(always)]
pub(crate) fn keep_nan<S: Simd>(simd: S, x: S::f32s, y: S::f32s) -> S::f32s {
    simd.select_f32s(simd.equal_f32s(x, x), y, x)
}

/// Beyond this |x|, `tanh(x)` is +-1 in f32 (`1 - tanh(9)` is 3e-8, under
/// half an ulp of 1), and the rational form below gives exactly +-1 at it.
const TANH_BOUND: f32 = 9.0;
/// Odd numerator `x (a1 + a3 x^2 + ... + a13 x^12)` of the [13/6] rational
/// approximation of tanh on `[-9, 9]` (the coefficients of Eigen's and
/// tract's `tanh`), lowest degree first.
const TANH_NUM: [f32; 7] = [
    4.893_524_6e-3,
    6.372_619_3e-4,
    1.485_722_4e-5,
    5.122_297e-8,
    -8.604_672e-11,
    2.000_188e-13,
    -2.760_768_5e-16,
];
/// Even denominator `b0 + b2 x^2 + b4 x^4 + b6 x^6`, lowest degree first.
const TANH_DEN: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];

/// `tanh(x)` for finite or infinite `x` (NaN lanes give an unspecified
/// value; callers restore NaN with [`keep_nan`]): the [13/6] rational
/// approximation on `x` clamped to `[-9, 9]`, one division, no `exp`, the
/// result clamped to `[-1, 1]`. Odd in `x`, so `tanh(-0) = -0`, and exactly
/// +-1 from |x| = 9 on.
#[inline(always)]
fn tanh_rational<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let x = simd.min_f32s(
        simd.max_f32s(x, simd.splat_f32s(-TANH_BOUND)),
        simd.splat_f32s(TANH_BOUND),
    );
    let x2 = simd.mul_f32s(x, x);
    let mut p = simd.splat_f32s(TANH_NUM[6]);
    for &a in TANH_NUM[..6].iter().rev() {
        p = simd.mul_add_f32s(p, x2, simd.splat_f32s(a));
    }
    let mut q = simd.splat_f32s(TANH_DEN[3]);
    for &b in TANH_DEN[..3].iter().rev() {
        q = simd.mul_add_f32s(q, x2, simd.splat_f32s(b));
    }
    // Rounding (without FMA) can put the quotient an ulp above 1.
    let one = simd.splat_f32s(1.0);
    let r = simd.div_f32s(simd.mul_f32s(p, x), q);
    simd.min_f32s(simd.max_f32s(r, simd.neg_f32s(one)), one)
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

/// `tanh(x)`, see [`tanh_rational`]; NaN in, NaN out.
#[inline(always)]
pub(crate) fn tanh<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    keep_nan(simd, x, tanh_rational(simd, x))
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
