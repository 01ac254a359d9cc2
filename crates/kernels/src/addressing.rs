//! Vector kernels of a differentiable memory's addressing and access for
//! one batch row, forward and backward: the Neural Turing Machine's
//! equations (Graves et al. 2014, eqs. 2-9; docs/ntm.md), at the best SIMD
//! level (see [`crate::simd`]).
//!
//! Layout: the memory is **column-major**, `[M, N]`: column `j` holds
//! element `j` of each of the `N` locations, so that every equation runs
//! down the `N` locations in vector lanes with a column's scalars
//! broadcast (row-major `[N, M]` would put the lanes across a location's
//! `M` values, too few to fill them, with a horizontal sum per location).
//! Weightings, similarities and norms are `[N]`; erase and add vectors
//! `[W, M]`; the write heads' weightings `[W, N]`.
//!
//! The equations are those of `recurrent::ntm::addressing` and
//! `recurrent::ntm::memory` (generic over the float type, row-major
//! memory), the references these kernels are held to at every SIMD level
//! (`tests/ntm_kernels.rs`). Sums run in a different order (lanes, fused
//! multiply-adds), so results agree to rounding, not bit for bit.
//!
//! Backward kernels *accumulate* (`+=`) into their gradient outputs unless
//! a field says "written".
//!
//! # Panics
//! Every kernel checks its slices' lengths against `N`, `M` and the head
//! count and panics on a mismatch (a broken invariant of the caller).

use pulp::{Simd, WithSimd};

use crate::math::{exp_clamped, keep_nan, ln};
use crate::simd::dispatch;

/// The epsilon inside both norms of the cosine similarity.
pub const COSINE_EPS: f32 = 1e-8;

/// Loads the lanes of `s` from `i` on; lanes past the end of `s` are 0.
#[inline(always)]
fn ld<S: Simd>(simd: S, s: &[f32], i: usize) -> S::f32s {
    match s.get(i..i + S::F32_LANES) {
        // SAFETY: `chunk` holds exactly `S::F32_LANES` f32s, the size of
        // `S::f32s` (plain lanes of f32, valid for any bits); the read is
        // unaligned.
        Some(chunk) => unsafe { chunk.as_ptr().cast::<S::f32s>().read_unaligned() },
        None => simd.partial_load_f32s(&s[i..]),
    }
}

/// Stores the lanes of `v` into `s` from `i` on, as many as fit.
#[inline(always)]
fn st<S: Simd>(simd: S, s: &mut [f32], i: usize, v: S::f32s) {
    match s.get_mut(i..i + S::F32_LANES) {
        // SAFETY: as in `ld`, for a write.
        Some(chunk) => unsafe { chunk.as_mut_ptr().cast::<S::f32s>().write_unaligned(v) },
        None => simd.partial_store_f32s(&mut s[i..], v),
    }
}

/// Lane indices `0, 1, ...`: as many as the widest vector pulp offers
/// (AVX-512, 16 f32 lanes).
const IOTA: [f32; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

/// `v` in the lanes that hold elements `i..len`, `fill` in those past `len`.
#[inline(always)]
fn tail<S: Simd>(simd: S, v: S::f32s, i: usize, len: usize, fill: f32) -> S::f32s {
    if i + S::F32_LANES <= len {
        return v;
    }
    debug_assert!(S::F32_LANES <= IOTA.len(), "tail: wider than IOTA");
    let idx = ld(simd, &IOTA, 0);
    let inside = simd.less_than_f32s(idx, simd.splat_f32s((len - i) as f32));
    simd.select_f32s(inside, v, simd.splat_f32s(fill))
}

/// `sum_i a_i b_i` over vector lanes (lanes past the end load as 0).
#[inline(always)]
fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let mut acc = simd.splat_f32s(0.0);
    let mut i = 0;
    while i < a.len() {
        acc = simd.mul_add_f32s(ld(simd, a, i), ld(simd, b, i), acc);
        i += S::F32_LANES;
    }
    simd.reduce_sum_f32s(acc)
}

/// `y += alpha x` (`x`, `y` of one length).
#[inline(always)]
fn axpy<S: Simd>(simd: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    let a = simd.splat_f32s(alpha);
    let mut i = 0;
    while i < y.len() {
        let v = simd.mul_add_f32s(a, ld(simd, x, i), ld(simd, y, i));
        st(simd, y, i, v);
        i += S::F32_LANES;
    }
}

/// `v = v * c`.
#[inline(always)]
fn scale<S: Simd>(simd: S, c: f32, v: &mut [f32]) {
    let c = simd.splat_f32s(c);
    let mut i = 0;
    while i < v.len() {
        let x = simd.mul_f32s(ld(simd, v, i), c);
        st(simd, v, i, x);
        i += S::F32_LANES;
    }
}

/// The largest element of `v` (not empty; a NaN may be skipped).
#[inline(always)]
fn max<S: Simd>(simd: S, v: &[f32]) -> f32 {
    let mut acc = simd.splat_f32s(f32::NEG_INFINITY);
    let mut i = 0;
    while i < v.len() {
        let x = tail(simd, ld(simd, v, i), i, v.len(), f32::NEG_INFINITY);
        acc = simd.max_f32s(acc, x);
        i += S::F32_LANES;
    }
    simd.reduce_max_f32s(acc)
}

/// `v = exp(v - max v)` where `v` is above `-inf`, exactly 0 where it is
/// `-inf`, NaN where it is NaN; returns the sum. Arguments under -87 give
/// `exp(-87)` (about 1.6e-38) instead of a subnormal or 0.
#[inline(always)]
fn exp_shifted<S: Simd>(simd: S, v: &mut [f32]) -> f32 {
    let mx = simd.splat_f32s(max(simd, v));
    let neg_inf = simd.splat_f32s(f32::NEG_INFINITY);
    let zero = simd.splat_f32s(0.0);
    let mut sum = zero;
    let mut i = 0;
    while i < v.len() {
        let x = ld(simd, v, i);
        let e = exp_clamped(simd, simd.sub_f32s(x, mx));
        let e = keep_nan(
            simd,
            x,
            simd.select_f32s(simd.equal_f32s(x, neg_inf), zero, e),
        );
        st(simd, v, i, e);
        sum = simd.add_f32s(sum, tail(simd, e, i, v.len(), 0.0));
        i += S::F32_LANES;
    }
    simd.reduce_sum_f32s(sum)
}

/// `v = softmax(v)`, max-subtracted.
#[inline(always)]
fn softmax<S: Simd>(simd: S, v: &mut [f32]) {
    let sum = exp_shifted(simd, v);
    scale(simd, 1.0 / sum, v);
}

/// `d = p (dp - sum_j p_j dp_j)`, written (softmax backward).
#[inline(always)]
fn softmax_backward<S: Simd>(simd: S, p: &[f32], dp: &[f32], d: &mut [f32]) {
    let c = simd.splat_f32s(dot(simd, p, dp));
    let mut i = 0;
    while i < d.len() {
        let v = simd.mul_f32s(ld(simd, p, i), simd.sub_f32s(ld(simd, dp, i), c));
        st(simd, d, i, v);
        i += S::F32_LANES;
    }
}

/// `(start, len)` runs of the circular shift by `d`: location `i` of the
/// output takes location `(i + d) mod n` of the input; returns the two
/// contiguous runs `(out_start, in_start, len)`.
#[inline(always)]
fn shift_runs(d: isize, n: usize) -> [(usize, usize, usize); 2] {
    let d = d.rem_euclid(n as isize) as usize;
    [(0, d, n - d), (n - d, 0, d)]
}

/// The offset of shift `j` of `k`: `ws_i` takes `wg[(i + half - j) mod n]`.
#[inline(always)]
fn offset(j: usize, k: usize) -> isize {
    (k / 2) as isize - j as isize
}

/// `norms_i = sqrt(|M_i|^2 + eps)` of every location of `mem` `[M, N]`,
/// `norms` `[N]` written: the norms content addressing divides by, one
/// computation shared by every head of a step.
pub fn norms(mem: &[f32], norms: &mut [f32]) {
    let n = norms.len();
    assert!(n > 0 && mem.len() % n == 0, "norms: lengths");
    dispatch(Norms { mem, norms });
}

struct Norms<'a> {
    mem: &'a [f32],
    norms: &'a mut [f32],
}

impl WithSimd for Norms<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let n = self.norms.len();
        let eps = simd.splat_f32s(COSINE_EPS);
        let mut i = 0;
        while i < n {
            let mut acc = simd.splat_f32s(0.0);
            for col in self.mem.chunks_exact(n) {
                let x = ld(simd, col, i);
                acc = simd.mul_add_f32s(x, x, acc);
            }
            st(simd, self.norms, i, simd.sqrt_f32s(simd.add_f32s(acc, eps)));
            i += S::F32_LANES;
        }
    }
}

/// One head's addressing parameters after their nonlinearities.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    /// `[M]`, the key.
    pub key: &'a [f32],
    /// Key strength, `>= 0`.
    pub beta: f32,
    /// Interpolation gate, in `[0, 1]`.
    pub gate: f32,
    /// `[K]` (odd), the weights of the shifts `-(K/2)..=K/2` (a softmax).
    pub shift: &'a [f32],
    /// Sharpening exponent, `>= 1`.
    pub gamma: f32,
}

/// The weightings of the addressing's steps, `[N]` each.
#[derive(Debug)]
pub struct Steps<T> {
    /// Cosine similarities of the key to each location.
    pub sim: T,
    /// Content weighting `softmax(beta sim)`.
    pub wc: T,
    /// Interpolated weighting `g wc + (1 - g) w_prev`.
    pub wg: T,
    /// Shifted weighting.
    pub ws: T,
}

/// Addressing of one head (eqs. 5-9): content `wc = softmax(beta cos(key,
/// M_i))`, interpolation `wg = g wc + (1 - g) w_prev`, circular shift
/// `ws_i = sum_j s_j wg[(i + K/2 - j) mod N]`, sharpening `w_i = ws_i^gamma
/// / sum_l ws_l^gamma` (as a softmax of `gamma ln ws`; a zero `ws_i` gives
/// exactly 0). `mem` `[M, N]`; `norms` `[N]` from [`norms`]; `w_prev` `[N]`;
/// `steps` and `w` `[N]` written.
pub fn address(
    head: &Head<'_>,
    mem: &[f32],
    norms: &[f32],
    w_prev: &[f32],
    steps: Steps<&mut [f32]>,
    w: &mut [f32],
) {
    let n = w.len();
    assert!(
        n > 0
            && mem.len() == head.key.len() * n
            && [norms.len(), w_prev.len()].iter().all(|&l| l == n)
            && [&steps.sim, &steps.wc, &steps.wg, &steps.ws]
                .iter()
                .all(|s| s.len() == n)
            && head.shift.len() % 2 == 1,
        "address: lengths"
    );
    dispatch(Address {
        head,
        mem,
        norms,
        w_prev,
        steps,
        w,
    });
}

struct Address<'a> {
    head: &'a Head<'a>,
    mem: &'a [f32],
    norms: &'a [f32],
    w_prev: &'a [f32],
    steps: Steps<&'a mut [f32]>,
    w: &'a mut [f32],
}

impl WithSimd for Address<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            head,
            mem,
            norms,
            w_prev,
            steps,
            w,
        } = self;
        let n = w.len();
        let Steps { sim, wc, wg, ws } = steps;
        // Content (eqs. 5-6).
        let kn = (dot(simd, head.key, head.key) + COSINE_EPS).sqrt();
        let beta = simd.splat_f32s(head.beta);
        let mut i = 0;
        while i < n {
            let mut acc = simd.splat_f32s(0.0);
            for (col, &k) in mem.chunks_exact(n).zip(head.key) {
                acc = simd.mul_add_f32s(simd.splat_f32s(k), ld(simd, col, i), acc);
            }
            let denom = simd.mul_f32s(simd.splat_f32s(kn), ld(simd, norms, i));
            let s = simd.div_f32s(acc, denom);
            st(simd, sim, i, s);
            st(simd, wc, i, simd.mul_f32s(beta, s));
            i += S::F32_LANES;
        }
        softmax(simd, wc);
        // Interpolation (eq. 7).
        let (g, one_g) = (simd.splat_f32s(head.gate), simd.splat_f32s(1.0 - head.gate));
        let mut i = 0;
        while i < n {
            let v = simd.mul_add_f32s(
                g,
                ld(simd, wc, i),
                simd.mul_f32s(one_g, ld(simd, w_prev, i)),
            );
            st(simd, wg, i, v);
            i += S::F32_LANES;
        }
        // Circular shift (eq. 8).
        ws.fill(0.0);
        let k = head.shift.len();
        for (j, &s) in head.shift.iter().enumerate() {
            for (out, src, len) in shift_runs(offset(j, k), n) {
                axpy(simd, s, &wg[src..src + len], &mut ws[out..out + len]);
            }
        }
        // Sharpening (eq. 9): w = softmax(gamma ln ws), ln 0 = -inf.
        let gamma = simd.splat_f32s(head.gamma);
        let mut i = 0;
        while i < n {
            st(simd, w, i, simd.mul_f32s(gamma, ln(simd, ld(simd, ws, i))));
            i += S::F32_LANES;
        }
        softmax(simd, w);
    }
}

/// The gradients of one head's addressing parameters (scalars and `dshift`
/// accumulated, `dkey` accumulated).
#[derive(Debug)]
pub struct HeadGrads<'a> {
    /// `[M]`.
    pub key: &'a mut [f32],
    /// W.r.t. `beta`.
    pub beta: f32,
    /// W.r.t. the gate `g`.
    pub gate: f32,
    /// `[K]`, w.r.t. the shift weights (after their softmax).
    pub shift: &'a mut [f32],
    /// W.r.t. `gamma`.
    pub gamma: f32,
}

/// Backward of [`address`]: from `dw` `[N]` (gradient w.r.t. `w`),
/// accumulates `grads`, `dw_prev` `[N]` and `dmem` `[M, N]`. `steps` and
/// `w` as [`address`] wrote them; `scratch` `[3N]`.
///
/// At `ws_i = 0` the sharpening's derivative is its one-sided limit: `1 /
/// sum ws` when `gamma == 1`, 0 when `gamma > 1`.
#[allow(clippy::too_many_arguments)]
pub fn address_backward(
    head: &Head<'_>,
    mem: &[f32],
    norms: &[f32],
    w_prev: &[f32],
    steps: Steps<&[f32]>,
    w: &[f32],
    dw: &[f32],
    scratch: &mut [f32],
    grads: &mut HeadGrads<'_>,
    dw_prev: &mut [f32],
    dmem: &mut [f32],
) {
    let n = w.len();
    let m = head.key.len();
    assert!(
        n > 0
            && mem.len() == m * n
            && dmem.len() == m * n
            && [norms.len(), w_prev.len(), dw.len(), dw_prev.len()]
                .iter()
                .all(|&l| l == n)
            && [steps.sim, steps.wc, steps.wg, steps.ws]
                .iter()
                .all(|s| s.len() == n)
            && scratch.len() == 3 * n
            && grads.key.len() == m
            && grads.shift.len() == head.shift.len()
            && head.shift.len() % 2 == 1,
        "address_backward: lengths"
    );
    dispatch(AddressBackward {
        head,
        mem,
        norms,
        w_prev,
        steps,
        w,
        dw,
        scratch,
        grads,
        dw_prev,
        dmem,
    });
}

struct AddressBackward<'a, 'g> {
    head: &'a Head<'a>,
    mem: &'a [f32],
    norms: &'a [f32],
    w_prev: &'a [f32],
    steps: Steps<&'a [f32]>,
    w: &'a [f32],
    dw: &'a [f32],
    scratch: &'a mut [f32],
    grads: &'a mut HeadGrads<'g>,
    dw_prev: &'a mut [f32],
    dmem: &'a mut [f32],
}

impl WithSimd for AddressBackward<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            head,
            mem,
            norms,
            w_prev,
            steps,
            w,
            dw,
            scratch,
            grads,
            dw_prev,
            dmem,
        } = self;
        let n = w.len();
        let Steps { sim, wc, wg, ws } = steps;
        let (dws, rest) = scratch.split_at_mut(n);
        let (dwg, dwc) = rest.split_at_mut(n);
        let zero = simd.splat_f32s(0.0);

        // Sharpening: dw_i/dws_i through the softmax of gamma ln ws.
        let d = simd.splat_f32s(dot(simd, w, dw));
        let gamma = simd.splat_f32s(head.gamma);
        let at_zero = if head.gamma == 1.0 {
            1.0 / ws.iter().sum::<f32>()
        } else {
            0.0
        };
        let at_zero = simd.splat_f32s(at_zero);
        let mut dgamma = zero;
        let mut i = 0;
        while i < n {
            let (wv, wsv) = (ld(simd, w, i), ld(simd, ws, i));
            let diff = simd.sub_f32s(ld(simd, dw, i), d);
            let positive = simd.less_than_f32s(zero, wsv);
            let dl = simd.mul_f32s(wv, diff);
            let dl_ln = simd.select_f32s(positive, simd.mul_f32s(dl, ln(simd, wsv)), zero);
            dgamma = simd.add_f32s(dgamma, dl_ln);
            let inner = simd.mul_f32s(simd.mul_f32s(gamma, simd.div_f32s(wv, wsv)), diff);
            let edge = simd.mul_f32s(diff, at_zero);
            st(simd, dws, i, simd.select_f32s(positive, inner, edge));
            i += S::F32_LANES;
        }
        grads.gamma += simd.reduce_sum_f32s(dgamma);

        // Circular shift: ds_j = sum_i dws_i wg[(i + o_j) mod N], and
        // dwg[(i + o_j) mod N] += s_j dws_i.
        dwg.fill(0.0);
        let k = head.shift.len();
        for (j, (&s, g)) in head.shift.iter().zip(grads.shift.iter_mut()).enumerate() {
            for (out, src, len) in shift_runs(offset(j, k), n) {
                *g += dot(simd, &dws[out..out + len], &wg[src..src + len]);
                axpy(simd, s, &dws[out..out + len], &mut dwg[src..src + len]);
            }
        }

        // Interpolation.
        let (g, one_g) = (simd.splat_f32s(head.gate), simd.splat_f32s(1.0 - head.gate));
        let mut dgate = zero;
        let mut i = 0;
        while i < n {
            let dv = ld(simd, dwg, i);
            let gap = simd.sub_f32s(ld(simd, wc, i), ld(simd, w_prev, i));
            dgate = simd.mul_add_f32s(dv, gap, dgate);
            st(simd, dwc, i, simd.mul_f32s(g, dv));
            let dp = simd.mul_add_f32s(one_g, dv, ld(simd, dw_prev, i));
            st(simd, dw_prev, i, dp);
            i += S::F32_LANES;
        }
        grads.gate += simd.reduce_sum_f32s(dgate);

        // Content: dz = softmax backward; per location the factors of
        // d sim_i / d key and d sim_i / d M_i, `a` into `dws` and `bm`
        // into `dwg`, the key's `bk` summed.
        let dz = dws;
        softmax_backward(simd, wc, dwc, dz);
        let kn = (dot(simd, head.key, head.key) + COSINE_EPS).sqrt();
        let (beta, kn_v) = (simd.splat_f32s(head.beta), simd.splat_f32s(kn));
        let inv_kn2 = simd.splat_f32s(1.0 / (kn * kn));
        let (mut dbeta, mut bk) = (zero, zero);
        let mut i = 0;
        while i < n {
            let (dzv, s, mn) = (ld(simd, dz, i), ld(simd, sim, i), ld(simd, norms, i));
            dbeta = simd.mul_add_f32s(dzv, s, dbeta);
            let ds = simd.mul_f32s(beta, dzv);
            let dss = simd.mul_f32s(ds, s);
            bk = simd.mul_add_f32s(dss, inv_kn2, bk);
            st(simd, dz, i, simd.div_f32s(ds, simd.mul_f32s(kn_v, mn)));
            st(simd, dwg, i, simd.div_f32s(dss, simd.mul_f32s(mn, mn)));
            i += S::F32_LANES;
        }
        grads.beta += simd.reduce_sum_f32s(dbeta);
        let bk = simd.reduce_sum_f32s(bk);
        let (a, bm) = (&*dz, &*dwg);
        for ((col, dcol), (&key, dkey)) in mem
            .chunks_exact(n)
            .zip(dmem.chunks_exact_mut(n))
            .zip(head.key.iter().zip(grads.key.iter_mut()))
        {
            let kv = simd.splat_f32s(key);
            let mut acc = zero;
            let mut i = 0;
            while i < n {
                let (x, av) = (ld(simd, col, i), ld(simd, a, i));
                acc = simd.mul_add_f32s(av, x, acc);
                let v = simd.mul_add_f32s(av, kv, ld(simd, dcol, i));
                st(
                    simd,
                    dcol,
                    i,
                    simd.sub_f32s(v, simd.mul_f32s(ld(simd, bm, i), x)),
                );
                i += S::F32_LANES;
            }
            *dkey += simd.reduce_sum_f32s(acc) - bk * key;
        }
    }
}

/// Read (eq. 2): `r_j = sum_i w_i M_ij`. `w` `[N]`, `mem` `[M, N]`, `r`
/// `[M]` written.
pub fn read(w: &[f32], mem: &[f32], r: &mut [f32]) {
    assert!(
        !w.is_empty() && mem.len() == w.len() * r.len(),
        "read: lengths"
    );
    dispatch(Read { w, mem, r });
}

struct Read<'a> {
    w: &'a [f32],
    mem: &'a [f32],
    r: &'a mut [f32],
}

impl WithSimd for Read<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        for (o, col) in self.r.iter_mut().zip(self.mem.chunks_exact(self.w.len())) {
            *o = dot(simd, self.w, col);
        }
    }
}

/// Backward of [`read`]: from `dr` `[M]`, accumulates `dw` `[N]` and
/// `dmem` `[M, N]`.
pub fn read_backward(w: &[f32], mem: &[f32], dr: &[f32], dw: &mut [f32], dmem: &mut [f32]) {
    let n = w.len();
    assert!(
        n > 0 && dw.len() == n && mem.len() == n * dr.len() && dmem.len() == mem.len(),
        "read_backward: lengths"
    );
    dispatch(ReadBackward {
        w,
        mem,
        dr,
        dw,
        dmem,
    });
}

struct ReadBackward<'a> {
    w: &'a [f32],
    mem: &'a [f32],
    dr: &'a [f32],
    dw: &'a mut [f32],
    dmem: &'a mut [f32],
}

impl WithSimd for ReadBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let n = self.w.len();
        let mut i = 0;
        while i < n {
            let wv = ld(simd, self.w, i);
            let mut acc = ld(simd, self.dw, i);
            for ((col, dcol), &d) in self
                .mem
                .chunks_exact(n)
                .zip(self.dmem.chunks_exact_mut(n))
                .zip(self.dr)
            {
                let dv = simd.splat_f32s(d);
                acc = simd.mul_add_f32s(dv, ld(simd, col, i), acc);
                st(simd, dcol, i, simd.mul_add_f32s(wv, dv, ld(simd, dcol, i)));
            }
            st(simd, self.dw, i, acc);
            i += S::F32_LANES;
        }
    }
}

/// Write (eqs. 3-4) of `W = heads` heads, every erase before every add:
/// `M'_ij = M_ij prod_h (1 - w^h_i e^h_j) + sum_h w^h_i a^h_j`. `w` `[W,
/// N]`; `erase` (after its sigmoid) and `add` `[W, M]`; `mem_prev` `[M, N]`
/// in, `mem` `[M, N]` written.
pub fn write(
    heads: usize,
    w: &[f32],
    erase: &[f32],
    add: &[f32],
    mem_prev: &[f32],
    mem: &mut [f32],
) {
    assert!(
        add.len() == erase.len()
            && mem.len() == mem_prev.len()
            && write_sizes(heads, w.len(), erase.len(), mem.len()).is_some(),
        "write: lengths"
    );
    dispatch(Write {
        heads,
        w,
        erase,
        add,
        mem_prev,
        mem,
    });
}

/// `(N, M)` from the lengths of `w` `[W, N]`, `erase` `[W, M]` and the
/// memory `[M, N]` of `W = heads` write heads, if they are consistent
/// (`N`, `M` and `W` at least 1).
fn write_sizes(heads: usize, w: usize, erase: usize, mem: usize) -> Option<(usize, usize)> {
    if heads == 0 || w % heads != 0 || erase % heads != 0 {
        return None;
    }
    let (n, m) = (w / heads, erase / heads);
    (n > 0 && m > 0 && m.checked_mul(n) == Some(mem)).then_some((n, m))
}

struct Write<'a> {
    heads: usize,
    w: &'a [f32],
    erase: &'a [f32],
    add: &'a [f32],
    mem_prev: &'a [f32],
    mem: &'a mut [f32],
}

impl WithSimd for Write<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let heads = self.heads;
        let (n, m) =
            write_sizes(heads, self.w.len(), self.erase.len(), self.mem.len()).expect("checked");
        let one = simd.splat_f32s(1.0);
        if heads == 1 {
            // One head: `M' = M (1 - w e_j) + w a_j`, column by column.
            for ((prev, out), (&e, &a)) in self
                .mem_prev
                .chunks_exact(n)
                .zip(self.mem.chunks_exact_mut(n))
                .zip(self.erase.iter().zip(self.add))
            {
                let (ev, av) = (simd.splat_f32s(e), simd.splat_f32s(a));
                let mut i = 0;
                while i < n {
                    let wv = ld(simd, self.w, i);
                    let keep = simd.sub_f32s(one, simd.mul_f32s(wv, ev));
                    let x = simd.mul_f32s(ld(simd, prev, i), keep);
                    st(simd, out, i, simd.mul_add_f32s(wv, av, x));
                    i += S::F32_LANES;
                }
            }
            return;
        }
        for (j, (prev, out)) in self
            .mem_prev
            .chunks_exact(n)
            .zip(self.mem.chunks_exact_mut(n))
            .enumerate()
        {
            let mut i = 0;
            while i < n {
                let mut x = ld(simd, prev, i);
                for h in 0..heads {
                    let e = simd.splat_f32s(self.erase[h * m + j]);
                    let wv = ld(simd, &self.w[h * n..(h + 1) * n], i);
                    x = simd.mul_f32s(x, simd.sub_f32s(one, simd.mul_f32s(wv, e)));
                }
                for h in 0..heads {
                    let a = simd.splat_f32s(self.add[h * m + j]);
                    let wv = ld(simd, &self.w[h * n..(h + 1) * n], i);
                    x = simd.mul_add_f32s(wv, a, x);
                }
                st(simd, out, i, x);
                i += S::F32_LANES;
            }
        }
    }
}

/// The keep factor `1 - w_i e` at locations `i..` of the weighting `w`.
#[inline(always)]
fn keep<S: Simd>(simd: S, w: &[f32], e: f32, i: usize) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    simd.sub_f32s(one, simd.mul_f32s(ld(simd, w, i), simd.splat_f32s(e)))
}

/// The gradients [`write_backward`] produces.
#[derive(Debug)]
pub struct WriteGrads<'a> {
    /// `[M, N]`, accumulated: w.r.t. the memory before the write.
    pub mem_prev: &'a mut [f32],
    /// `[W, N]`, accumulated.
    pub w: &'a mut [f32],
    /// `[W, M]`, accumulated: w.r.t. the erase vectors after their sigmoid.
    pub erase: &'a mut [f32],
    /// `[W, M]`, accumulated.
    pub add: &'a mut [f32],
}

/// Backward of [`write()`] for `heads` write heads: from `dmem` `[M, N]`
/// (gradient w.r.t. the new memory), accumulates `grads`.
pub fn write_backward(
    heads: usize,
    w: &[f32],
    erase: &[f32],
    add: &[f32],
    mem_prev: &[f32],
    dmem: &[f32],
    grads: WriteGrads<'_>,
) {
    assert!(
        add.len() == erase.len()
            && dmem.len() == mem_prev.len()
            && grads.mem_prev.len() == mem_prev.len()
            && grads.w.len() == w.len()
            && grads.erase.len() == erase.len()
            && grads.add.len() == add.len()
            && write_sizes(heads, w.len(), erase.len(), mem_prev.len()).is_some(),
        "write_backward: lengths"
    );
    dispatch(WriteBackward {
        heads,
        w,
        erase,
        add,
        mem_prev,
        dmem,
        grads,
    });
}

struct WriteBackward<'a> {
    heads: usize,
    w: &'a [f32],
    erase: &'a [f32],
    add: &'a [f32],
    mem_prev: &'a [f32],
    dmem: &'a [f32],
    grads: WriteGrads<'a>,
}

impl WithSimd for WriteBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            heads,
            w,
            erase,
            add,
            mem_prev,
            dmem,
            grads,
        } = self;
        let (n, m) = write_sizes(heads, w.len(), erase.len(), mem_prev.len()).expect("checked");
        let one = simd.splat_f32s(1.0);
        let zero = simd.splat_f32s(0.0);
        if heads == 1 {
            // One head: the same equations in one pass over each column
            // (no other heads' keep factors).
            for (j, ((prev, d), dprev)) in mem_prev
                .chunks_exact(n)
                .zip(dmem.chunks_exact(n))
                .zip(grads.mem_prev.chunks_exact_mut(n))
                .enumerate()
            {
                let (ev, av) = (simd.splat_f32s(erase[j]), simd.splat_f32s(add[j]));
                let (mut de, mut da) = (zero, zero);
                let mut i = 0;
                while i < n {
                    let (dv, x, wv) = (ld(simd, d, i), ld(simd, prev, i), ld(simd, w, i));
                    let keep = simd.sub_f32s(one, simd.mul_f32s(wv, ev));
                    st(
                        simd,
                        dprev,
                        i,
                        simd.mul_add_f32s(dv, keep, ld(simd, dprev, i)),
                    );
                    let g = simd.sub_f32s(av, simd.mul_f32s(x, ev));
                    st(
                        simd,
                        grads.w,
                        i,
                        simd.mul_add_f32s(dv, g, ld(simd, grads.w, i)),
                    );
                    de = simd.mul_add_f32s(simd.mul_f32s(dv, x), wv, de);
                    da = simd.mul_add_f32s(dv, wv, da);
                    i += S::F32_LANES;
                }
                grads.erase[j] -= simd.reduce_sum_f32s(de);
                grads.add[j] += simd.reduce_sum_f32s(da);
            }
            return;
        }
        for (j, ((prev, d), dprev)) in mem_prev
            .chunks_exact(n)
            .zip(dmem.chunks_exact(n))
            .zip(grads.mem_prev.chunks_exact_mut(n))
            .enumerate()
        {
            let mut i = 0;
            while i < n {
                let mut keep_all = one;
                for h in 0..heads {
                    let k = keep(simd, &w[h * n..(h + 1) * n], erase[h * m + j], i);
                    keep_all = simd.mul_f32s(keep_all, k);
                }
                let v = simd.mul_add_f32s(ld(simd, d, i), keep_all, ld(simd, dprev, i));
                st(simd, dprev, i, v);
                i += S::F32_LANES;
            }
            for h in 0..heads {
                let (e, a) = (erase[h * m + j], add[h * m + j]);
                let (ev, av) = (simd.splat_f32s(e), simd.splat_f32s(a));
                let dw = &mut grads.w[h * n..(h + 1) * n];
                let (mut de, mut da) = (zero, zero);
                let mut i = 0;
                while i < n {
                    // The product of the other heads' keep factors, without
                    // a division (a keep factor can be exactly 0).
                    let mut others = one;
                    for k in (0..heads).filter(|&k| k != h) {
                        let keep_k = keep(simd, &w[k * n..(k + 1) * n], erase[k * m + j], i);
                        others = simd.mul_f32s(others, keep_k);
                    }
                    let wv = ld(simd, &w[h * n..(h + 1) * n], i);
                    let (dv, x) = (ld(simd, d, i), ld(simd, prev, i));
                    let x_others = simd.mul_f32s(x, others);
                    let g = simd.sub_f32s(av, simd.mul_f32s(x_others, ev));
                    st(simd, dw, i, simd.mul_add_f32s(dv, g, ld(simd, dw, i)));
                    de = simd.mul_add_f32s(simd.mul_f32s(dv, x_others), wv, de);
                    da = simd.mul_add_f32s(dv, wv, da);
                    i += S::F32_LANES;
                }
                grads.erase[h * m + j] -= simd.reduce_sum_f32s(de);
                grads.add[h * m + j] += simd.reduce_sum_f32s(da);
            }
        }
    }
}
