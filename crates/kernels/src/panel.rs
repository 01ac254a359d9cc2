//! Products against weights packed once per sequence.
//!
//! A recurrent layer multiplies a small matrix (`[B, K]`: the previous
//! state, or the gate gradients) by the same weights at every time step.
//! faer packs its weight operand again at every call (measured: 8% of the
//! medium LSTM forward pass, `examples/profile_cell` under `perf`), and its
//! per-call set-up dominates on small layers. Here the weights are packed
//! once per sequence into panels of [`NR`] output columns, each panel
//! `[K, NR]` contiguous, and every step runs a register-blocked kernel
//! (up to 6 rows x 16 columns of accumulators) straight over the panels.
//!
//! Output column `j` of the product is column `j` of the packed weights:
//! `c[r, j] (+)= sum_k a[r, k] * w(j, k)`, where `w(j, k)` is read when
//! packing from `src[j * j_stride + k * k_stride]` (so the same kernel
//! serves `h W^T`, `j_stride = K`, and `dP W`, `k_stride = N`).

use pulp::{Simd, WithSimd};

use crate::simd::dispatch;

/// Output columns per panel.
pub(crate) const NR: usize = 16;

/// Depth slice per pass: 256 x 16 values of a panel (16 KiB) stay in L1
/// while every row block runs over them.
const KC: usize = 256;

/// Rows of the output per register block (with 16 columns: 12 AVX2
/// accumulators of 16 registers).
const MR: usize = 6;

/// Length of the packed form of `n` output columns of depth `k`.
pub(crate) fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Packs `w(j, k) = src[j * j_stride + k * k_stride]`, `j < n`, `k < depth`,
/// into `out` (`packed_len(n, depth)` values): panel `p` holds
/// `out[(p * depth + k) * NR + jj] = w(p * NR + jj, k)`, zero for columns
/// past `n`.
///
/// # Panics
/// If `out` has the wrong length or `src` is too short (broken internal
/// invariants).
pub(crate) fn pack(
    src: &[f32],
    n: usize,
    depth: usize,
    j_stride: usize,
    k_stride: usize,
    out: &mut [f32],
) {
    assert_eq!(out.len(), packed_len(n, depth), "pack: output length");
    if n > 0 && depth > 0 {
        assert!(
            (n - 1) * j_stride + (depth - 1) * k_stride < src.len(),
            "pack: source too short"
        );
    }
    for (p, panel) in out.chunks_exact_mut(NR * depth.max(1)).enumerate() {
        let (j0, cols) = (p * NR, NR.min(n - p * NR));
        if cols < NR {
            panel.fill(0.0);
        }
        if j_stride == 1 {
            // Each `k` is a contiguous run of columns.
            for (k, row) in panel.chunks_exact_mut(NR).enumerate() {
                row[..cols].copy_from_slice(&src[k * k_stride + j0..][..cols]);
            }
            continue;
        }
        // Each column `j` is a run along `k` (`k_stride` 1 for `W` as
        // stored): 8 x 8 transposes where the CPU has AVX, the rest one
        // element at a time.
        let (mut j8, mut k8) = (0, 0);
        #[cfg(target_arch = "x86_64")]
        if k_stride == 1 && std::arch::is_x86_feature_detected!("avx") {
            (j8, k8) = (cols / 8 * 8, depth / 8 * 8);
            for jj in (0..j8).step_by(8) {
                for k in (0..k8).step_by(8) {
                    // SAFETY: rows `j0 + jj .. + 8 <= n` of the source hold
                    // `k .. k + 8 <= depth` (its length was checked above),
                    // and the panel rows `k .. k + 8` columns `jj .. jj + 8
                    // <= NR`; AVX checked.
                    unsafe {
                        crate::simd::transpose8_avx(
                            src.as_ptr().add((j0 + jj) * j_stride + k),
                            j_stride,
                            panel.as_mut_ptr().add(k * NR + jj),
                            NR,
                        )
                    };
                }
            }
        }
        for jj in 0..cols {
            let from = if jj < j8 { k8 } else { 0 };
            for k in from..depth {
                panel[k * NR + jj] = src[(j0 + jj) * j_stride + k * k_stride];
            }
        }
    }
}

/// `c[r * ldc + j] (+)= sum_k a[r * lda + k] * w(j, k)` for `r < m`,
/// `j < n`, `k < depth`, with `w` packed by [`pack`] (`packed` of length
/// `packed_len(n, depth)`): added to `c` when `accumulate`, else written.
///
/// # Safety
/// Every `c + r * ldc + j` (`r < m`, `j < n`) must be valid for reads and
/// writes, and no other thread may access those elements during the call.
///
/// # Panics
/// If `a` or `packed` is too short (broken internal invariants).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product(
    a: &[f32],
    m: usize,
    lda: usize,
    packed: &[f32],
    n: usize,
    depth: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    assert_eq!(packed.len(), packed_len(n, depth), "product: packed length");
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= depth && ldc >= n, "product: strides");
    assert!((m - 1) * lda + depth <= a.len(), "product: a too short");
    dispatch(Product {
        a,
        m,
        lda,
        packed,
        n,
        depth,
        c,
        ldc,
        accumulate,
    });
}

/// The product of [`product`] with `w(j, k) = src[j * j_stride + k *
/// k_stride]` read in place, for when the packed copy cannot be allocated:
/// dot products over `k` (`k_stride == 1`) or row updates over `j`
/// (`j_stride == 1`), slower than the panels but needing no memory.
///
/// # Safety
/// As [`product`].
///
/// # Panics
/// If neither stride is 1, or `a` or `src` is too short (broken internal
/// invariants).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product_in_place(
    a: &[f32],
    m: usize,
    lda: usize,
    src: &[f32],
    (n, depth): (usize, usize),
    (j_stride, k_stride): (usize, usize),
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * lda + depth <= a.len(), "product: a too short");
    assert!(
        depth == 0 || (n - 1) * j_stride + (depth - 1) * k_stride < src.len(),
        "product: src too short"
    );
    for r in 0..m {
        let a_r = &a[r * lda..r * lda + depth];
        // SAFETY: row `r < m`, columns `0..n` of `c`: valid and ours (the
        // caller's contract).
        let c_r = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), n) };
        if k_stride == 1 {
            for (j, out) in c_r.iter_mut().enumerate() {
                let w = &src[j * j_stride..j * j_stride + depth];
                let d = dot(a_r, w);
                *out = if accumulate { *out + d } else { d };
            }
        } else {
            assert_eq!(j_stride, 1, "product: strides");
            if !accumulate {
                c_r.fill(0.0);
            }
            for (k, &x) in a_r.iter().enumerate() {
                let w = &src[k * k_stride..k * k_stride + n];
                c_r.iter_mut().zip(w).for_each(|(o, &w)| *o += x * w);
            }
        }
    }
}

/// `sum_k a[k] * b[k]`, in 8 partial sums (which the compiler vectorizes).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`product`]'s arguments, checked.
struct Product<'a> {
    a: &'a [f32],
    m: usize,
    lda: usize,
    packed: &'a [f32],
    n: usize,
    depth: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
}

impl WithSimd for Product<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // A panel is NR / lanes vectors.
        match S::F32_LANES {
            16 => self.run::<S, 1>(simd),
            8 => self.run::<S, 2>(simd),
            4 => self.run::<S, 4>(simd),
            1 => self.run::<S, 16>(simd),
            _ => self.run_scalar(),
        }
    }
}

impl Product<'_> {
    /// One slice of the depth at a time (its rows of `a` stay in L2 across
    /// the panels), panels in groups of `NP` (one slice of a group stays in
    /// L1 across the rows), rows in blocks of up to `MR`. Fewer than 4
    /// rows: 2 or 4 panels at once, so that there are enough independent
    /// accumulators to hide the multiply-add latency.
    #[inline(always)]
    fn run<S: Simd, const NV: usize>(&self, simd: S) {
        let panels = self.n.div_ceil(NR);
        let mut k0 = 0;
        loop {
            let ks = k0..(k0 + KC).min(self.depth);
            // The first slice replaces or accumulates as asked, later ones add.
            let add = self.accumulate || k0 > 0;
            let mut p = 0;
            match self.m {
                1 => {
                    while p + 4 <= panels {
                        self.rows::<S, NV, 4>(simd, p, ks.clone(), add);
                        p += 4;
                    }
                }
                2 | 3 => {
                    while p + 2 <= panels {
                        self.rows::<S, NV, 2>(simd, p, ks.clone(), add);
                        p += 2;
                    }
                }
                // A panel is one AVX-512 vector: two at once, so that a
                // block of 6 rows has 12 accumulators, not 6 (measured on
                // the medium LSTM forward of `examples/profile_cell`).
                _ if NV == 1 => {
                    while p + 2 <= panels {
                        self.rows::<S, NV, 2>(simd, p, ks.clone(), add);
                        p += 2;
                    }
                }
                _ => {}
            }
            while p < panels {
                self.rows::<S, NV, 1>(simd, p, ks.clone(), add);
                p += 1;
            }
            k0 = ks.end;
            if k0 >= self.depth {
                break;
            }
        }
    }

    /// Every row against panels `p..p + NP` over the depth slice `ks`, in
    /// blocks of 6 rows; the last 7 to 9 rows in two blocks of 3 to 5 (a
    /// block of 1 or 2 rows has too few accumulators: measured, 32 rows
    /// as 5 x 6 + 2 took 50% longer than 30 rows).
    #[inline(always)]
    fn rows<S: Simd, const NV: usize, const NP: usize>(
        &self,
        simd: S,
        p: usize,
        ks: core::ops::Range<usize>,
        add: bool,
    ) {
        let mut r = 0;
        while r < self.m {
            let take = match self.m - r {
                left @ 0..=MR => left,
                7 | 8 => 4,
                9 => 5,
                _ => MR,
            };
            let ks = ks.clone();
            match take {
                1 => self.block::<S, NV, NP, 1>(simd, r, p, ks, add),
                2 => self.block::<S, NV, NP, 2>(simd, r, p, ks, add),
                3 => self.block::<S, NV, NP, 3>(simd, r, p, ks, add),
                4 => self.block::<S, NV, NP, 4>(simd, r, p, ks, add),
                5 => self.block::<S, NV, NP, 5>(simd, r, p, ks, add),
                _ => self.block::<S, NV, NP, MR>(simd, r, p, ks, add),
            }
            r += take;
        }
    }

    /// Rows `r..r + R` against panels `p..p + NP` over the depth slice `ks`:
    /// `R x NP x NV` vector accumulators, then one pass over `c` (added to
    /// it when `add`).
    #[inline(always)]
    fn block<S: Simd, const NV: usize, const NP: usize, const R: usize>(
        &self,
        simd: S,
        r: usize,
        p: usize,
        ks: core::ops::Range<usize>,
        add: bool,
    ) {
        let lanes = S::F32_LANES;
        let panel_len = NR * self.depth;
        let mut acc = [[[simd.splat_f32s(0.0); NV]; NP]; R];
        let a_rows: [*const f32; R] =
            core::array::from_fn(|i| self.a[(r + i) * self.lda..].as_ptr());
        let w: [*const f32; NP] =
            core::array::from_fn(|q| self.packed[(p + q) * panel_len..].as_ptr());
        for k in ks {
            // SAFETY: panel `p + q < panels` spans `panel_len` values of
            // `packed` (its length was checked against `packed_len`), of
            // which `k * NR + v * lanes + lanes <= panel_len` (NV * lanes
            // == NR); row `r + i < m` of `a` holds `depth > k` values from
            // its start (checked in `product`).
            let b: [[S::f32s; NV]; NP] = core::array::from_fn(|q| {
                core::array::from_fn(|v| unsafe {
                    w[q].add(k * NR + v * lanes)
                        .cast::<S::f32s>()
                        .read_unaligned()
                })
            });
            for i in 0..R {
                let x = simd.splat_f32s(unsafe { *a_rows[i].add(k) });
                for q in 0..NP {
                    for v in 0..NV {
                        acc[i][q][v] = simd.mul_add_f32s(x, b[q][v], acc[i][q][v]);
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (q, vs) in row.iter().enumerate() {
                let j0 = (p + q) * NR;
                let cols = NR.min(self.n - j0);
                // SAFETY: row `r + i < m`, columns `j0 .. j0 + cols <= n`
                // of `c`: valid and ours (the caller's contract).
                let out = unsafe { self.c.add((r + i) * self.ldc + j0) };
                if cols == NR {
                    for (v, &x) in vs.iter().enumerate() {
                        let at = unsafe { out.add(v * lanes).cast::<S::f32s>() };
                        let x = if add {
                            simd.add_f32s(x, unsafe { at.read_unaligned() })
                        } else {
                            x
                        };
                        unsafe { at.write_unaligned(x) };
                    }
                } else {
                    let mut vals = [0.0f32; NR];
                    for (v, x) in vs.iter().enumerate() {
                        let dst: &mut [f32] =
                            bytemuck::cast_slice_mut(core::slice::from_mut(&mut vals));
                        dst[v * lanes..(v + 1) * lanes]
                            .copy_from_slice(bytemuck::cast_slice(core::slice::from_ref(x)));
                    }
                    for (jj, &x) in vals[..cols].iter().enumerate() {
                        let at = unsafe { out.add(jj) };
                        unsafe { *at = if add { *at + x } else { x } };
                    }
                }
            }
        }
    }

    /// One element at a time (SIMD widths that do not divide [`NR`]).
    fn run_scalar(&self) {
        let panel_len = NR * self.depth;
        for r in 0..self.m {
            for j in 0..self.n {
                let (p, jj) = (j / NR, j % NR);
                let w = &self.packed[p * panel_len..];
                let a = &self.a[r * self.lda..];
                let s: f32 = (0..self.depth).map(|k| a[k] * w[k * NR + jj]).sum();
                // SAFETY: the caller's contract.
                let at = unsafe { self.c.add(r * self.ldc + j) };
                unsafe { *at = if self.accumulate { *at + s } else { s } };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{available_levels, with_simd_level};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 997) as f32 / 498.0 - 1.0
            })
            .collect()
    }

    /// `h W^T` and `dP W` layouts, every row-block remainder, partial panels,
    /// replacing and accumulating, at every SIMD level and in the
    /// one-element fallback (`None`), against f64 sums.
    #[test]
    fn matches_f64_reference_at_every_level() {
        for level in available_levels().into_iter().map(Some).chain([None]) {
            for &(m, depth, n) in &[
                (1, 1, 1),
                (1, 64, 256),
                (2, 33, 72),
                (3, 7, 16),
                (5, 17, 40),
                (6, 64, 64),
                (7, 9, 15),
                (13, 40, 100),
                (32, 256, 128),
                (8, 20, 48),
                (9, 20, 48),
                (3, 50, 70),
                (9, 2 * KC + 5, 24),
                (1, KC + 1, 64),
            ] {
                for transposed in [false, true] {
                    let w = data(n * depth, 3);
                    // w(j, k): row j of [n, depth], or column j of [depth, n].
                    let (js, ks) = if transposed { (1, n) } else { (depth, 1) };
                    let mut packed = vec![f32::NAN; packed_len(n, depth)];
                    pack(&w, n, depth, js, ks, &mut packed);
                    let lda = depth + 2;
                    let a = data(m * lda, 5);
                    let ldc = n + 3;
                    for accumulate in [false, true] {
                        let mut c = data(m * ldc, 7);
                        let before = c.clone();
                        let args = Product {
                            a: &a,
                            m,
                            lda,
                            packed: &packed,
                            n,
                            depth,
                            c: c.as_mut_ptr(),
                            ldc,
                            accumulate,
                        };
                        match level {
                            // SAFETY: `c` is `[m, ldc]`, ours.
                            Some(level) => with_simd_level(level, || unsafe {
                                product(
                                    args.a,
                                    m,
                                    lda,
                                    args.packed,
                                    n,
                                    depth,
                                    args.c,
                                    ldc,
                                    accumulate,
                                )
                            })
                            .unwrap(),
                            None => args.run_scalar(),
                        }
                        for r in 0..m {
                            for j in 0..ldc {
                                let got = c[r * ldc + j];
                                if j >= n {
                                    assert_eq!(got, before[r * ldc + j], "column {j} past n");
                                    continue;
                                }
                                let mut want: f64 = (0..depth)
                                    .map(|k| a[r * lda + k] as f64 * w[j * js + k * ks] as f64)
                                    .sum();
                                if accumulate {
                                    want += before[r * ldc + j] as f64;
                                }
                                let tol = 1e-5 * (1.0 + depth as f64);
                                assert!(
                                    (got as f64 - want).abs() <= tol,
                                    "{level:?} m {m} depth {depth} n {n} ({r}, {j}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
