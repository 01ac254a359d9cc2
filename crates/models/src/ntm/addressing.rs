//! NTM addressing (Graves et al. 2014, eqs. 5-9) for one head of one batch
//! row, forward and backward, each of the four steps on its own: content
//! (cosine similarity, key strength), interpolation, circular shift and
//! normalised sharpening. Generic over [`Real`] so that the finite-difference
//! checks run in `f64`: the reference equations. The model runs the same
//! equations as the SIMD kernels of `rnn_kernels::addressing` (memory
//! column-major), held to these in `tests/ntm_kernels.rs`.
//!
//! Memory is `[N, M]` row-major; weightings are `[N]`. Every backward
//! function *accumulates* into its gradient outputs (`+=`) unless it says
//! "written".

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// The epsilon inside both norms of the cosine similarity.
pub const COSINE_EPS: f64 = 1e-8;

/// The float operations the addressing needs (implemented for `f32`, `f64`).
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + Send
    + Sync
    + 'static
{
    /// The value of an `f64` constant.
    fn of(v: f64) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + self)`.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
}

/// Implements [`Real`] for the float types listed: `of` by a cast, every
/// other method by the type's inherent method of the same name.
macro_rules! impl_real {
    ($($t:ty),*) => {$(
        impl Real for $t {
            #[inline]
            fn of(v: f64) -> Self {
                v as $t
            }
            impl_real!(@inherent $t: exp, ln, ln_1p, sqrt, abs);
        }
    )*};
    (@inherent $t:ty: $($method:ident),*) => {$(
        #[inline]
        fn $method(self) -> Self {
            <$t>::$method(self)
        }
    )*};
}
impl_real!(f32, f64);

#[inline]
fn zero<T: Real>() -> T {
    T::of(0.0)
}

#[inline]
fn max<T: Real>(a: T, b: T) -> T {
    if a > b { a } else { b }
}

/// `softplus(x) = max(x, 0) + ln(1 + e^-|x|)`, stable for every `x`.
#[inline]
pub fn softplus<T: Real>(x: T) -> T {
    max(x, zero()) + (-x.abs()).exp().ln_1p()
}

/// `sigmoid(x)`, stable for every `x` (also `softplus'(x)`).
#[inline]
pub fn sigmoid<T: Real>(x: T) -> T {
    let one = T::of(1.0);
    if x >= zero() {
        one / (one + (-x).exp())
    } else {
        let e = x.exp();
        e / (one + e)
    }
}

/// Max-subtracted softmax of `v`, in place (`v` not empty).
pub fn softmax_in_place<T: Real>(v: &mut [T]) {
    let m = v.iter().copied().fold(v[0], max);
    let mut sum = zero();
    for o in v.iter_mut() {
        *o = (*o - m).exp();
        sum += *o;
    }
    let inv = T::of(1.0) / sum;
    v.iter_mut().for_each(|o| *o = *o * inv);
}

/// Backward of `p = softmax(z)`: `dz_i += p_i (dp_i - sum_j p_j dp_j)`.
pub fn softmax_backward<T: Real>(p: &[T], dp: &[T], dz: &mut [T]) {
    let dot = p.iter().zip(dp).fold(zero(), |a, (&p, &d)| a + p * d);
    for ((dz, &p), &d) in dz.iter_mut().zip(p).zip(dp) {
        *dz += p * (d - dot);
    }
}

fn norm_eps<T: Real>(v: &[T]) -> T {
    (dot(v, v) + T::of(COSINE_EPS)).sqrt()
}

/// `sum_j a_j b_j` (`a`, `b` of one length).
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(zero(), |s, (&x, &y)| s + x * y)
}

/// Content addressing (eqs. 5-6): `sim_i = key . M_i / (|key|_eps |M_i|_eps)`
/// and `wc = softmax(beta * sim)`. `key`: `[M]`; `mem`: `[N, M]`; `sim`,
/// `wc`: `[N]`, written.
pub fn content<T: Real>(key: &[T], beta: T, mem: &[T], sim: &mut [T], wc: &mut [T]) {
    let m = key.len();
    let kn = norm_eps(key);
    for (s, row) in sim.iter_mut().zip(mem.chunks_exact(m)) {
        *s = dot(key, row) / (kn * norm_eps(row));
    }
    for (w, &s) in wc.iter_mut().zip(sim.iter()) {
        *w = beta * s;
    }
    softmax_in_place(wc);
}

/// Backward of [`content`]: from `dwc` `[N]`, accumulates `dkey` `[M]`,
/// `dbeta` and `dmem` `[N, M]`. `scratch`: `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn content_backward<T: Real>(
    key: &[T],
    beta: T,
    mem: &[T],
    sim: &[T],
    wc: &[T],
    dwc: &[T],
    scratch: &mut [T],
    dkey: &mut [T],
    dbeta: &mut T,
    dmem: &mut [T],
) {
    let m = key.len();
    let dz = scratch;
    dz.iter_mut().for_each(|v| *v = zero());
    softmax_backward(wc, dwc, dz);
    let kn = norm_eps(key);
    let kn2 = kn * kn;
    for (((row, drow), &dzi), &s) in mem
        .chunks_exact(m)
        .zip(dmem.chunks_exact_mut(m))
        .zip(dz.iter())
        .zip(sim)
    {
        *dbeta += dzi * s;
        let ds = beta * dzi;
        let mn = norm_eps(row);
        let a = ds / (kn * mn);
        let bk = ds * s / kn2;
        let bm = ds * s / (mn * mn);
        for j in 0..m {
            dkey[j] += a * row[j] - bk * key[j];
            drow[j] += a * key[j] - bm * row[j];
        }
    }
}

/// Interpolation (eq. 7): `wg = g wc + (1 - g) w_prev`, written.
pub fn interpolate<T: Real>(g: T, wc: &[T], w_prev: &[T], wg: &mut [T]) {
    let one_g = T::of(1.0) - g;
    for ((o, &c), &p) in wg.iter_mut().zip(wc).zip(w_prev) {
        *o = g * c + one_g * p;
    }
}

/// Backward of [`interpolate`]: accumulates `dg`, `dwc`, `dw_prev`.
pub fn interpolate_backward<T: Real>(
    g: T,
    wc: &[T],
    w_prev: &[T],
    dwg: &[T],
    dg: &mut T,
    dwc: &mut [T],
    dw_prev: &mut [T],
) {
    let one_g = T::of(1.0) - g;
    for i in 0..dwg.len() {
        *dg += dwg[i] * (wc[i] - w_prev[i]);
        dwc[i] += g * dwg[i];
        dw_prev[i] += one_g * dwg[i];
    }
}

/// Index of `i - shift` modulo `n`.
#[inline]
fn wrap(i: usize, shift: isize, n: usize) -> usize {
    (i as isize - shift).rem_euclid(n as isize) as usize
}

/// Circular shift (eq. 8): `ws_i = sum_j s_j wg[(i - (j - S)) mod N]`, with
/// `s` `[2S + 1]` the weights of the shifts `-S..=S`; `ws` written.
pub fn shift<T: Real>(s: &[T], wg: &[T], ws: &mut [T]) {
    let n = wg.len();
    let half = (s.len() / 2) as isize;
    for (i, o) in ws.iter_mut().enumerate() {
        let mut acc = zero();
        for (j, &sj) in s.iter().enumerate() {
            acc += sj * wg[wrap(i, j as isize - half, n)];
        }
        *o = acc;
    }
}

/// Backward of [`shift`]: accumulates `ds` `[2S + 1]` and `dwg` `[N]`.
pub fn shift_backward<T: Real>(s: &[T], wg: &[T], dws: &[T], ds: &mut [T], dwg: &mut [T]) {
    let n = wg.len();
    let half = (s.len() / 2) as isize;
    for (i, &d) in dws.iter().enumerate() {
        for (j, &sj) in s.iter().enumerate() {
            let k = wrap(i, j as isize - half, n);
            ds[j] += d * wg[k];
            dwg[k] += d * sj;
        }
    }
}

/// Normalised sharpening (eq. 9): `w_i = ws_i^gamma / sum_j ws_j^gamma`,
/// computed as a softmax of `gamma ln ws` (a zero `ws_i` gives exactly 0).
/// `ws`: `[N]`, non-negative with a positive sum; `w` written.
pub fn sharpen<T: Real>(gamma: T, ws: &[T], w: &mut [T]) {
    let neg_inf = T::of(f64::NEG_INFINITY);
    for (o, &v) in w.iter_mut().zip(ws) {
        // ln(0) = -inf gives an exact 0; a NaN (or an impossible negative)
        // stays NaN so that the trainer's guard sees it.
        *o = if v == zero() { neg_inf } else { gamma * v.ln() };
    }
    let mx = w.iter().copied().fold(neg_inf, max);
    let mut sum = zero();
    for o in w.iter_mut() {
        *o = if *o == neg_inf {
            zero()
        } else {
            (*o - mx).exp()
        };
        sum += *o;
    }
    let inv = T::of(1.0) / sum;
    w.iter_mut().for_each(|o| *o = *o * inv);
}

/// Backward of [`sharpen`]: accumulates `dgamma` and `dws` `[N]`.
///
/// At `ws_i = 0`, `dw_i / dws_i` is the one-sided limit: `1 / sum ws` when
/// `gamma == 1`, `0` when `gamma > 1`.
pub fn sharpen_backward<T: Real>(
    gamma: T,
    ws: &[T],
    w: &[T],
    dw: &[T],
    dgamma: &mut T,
    dws: &mut [T],
) {
    let d = dot(w, dw);
    let one = T::of(1.0);
    let total: T = if gamma == one {
        ws.iter().fold(zero(), |a, &v| a + v)
    } else {
        one
    };
    for i in 0..ws.len() {
        let dl = w[i] * (dw[i] - d);
        if ws[i] > zero() {
            *dgamma += dl * ws[i].ln();
            dws[i] += gamma * (w[i] / ws[i]) * (dw[i] - d);
        } else if gamma == one {
            dws[i] += (dw[i] - d) / total;
        }
    }
}
