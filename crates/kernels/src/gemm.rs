//! Matrix products on row-major `f32` slices, over faer.
//!
//! `C = alpha * op(A) * op(B) + beta * C`, where `op` is the identity or the
//! transpose. Every operand is a row-major view ([`Mat`], [`MatMut`]) with a
//! row stride, so a block of columns of a wider matrix (one gate block of a
//! `[B, G*H]` buffer, say) is a view without a copy.
//!
//! Small products run on the calling thread; products above
//! [`PARALLEL_FLOP_THRESHOLD`] run on the library's thread pool
//! ([`crate::threads`]).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut as FaerMatMut, MatRef as FaerMatRef, Par};

/// Products with fewer multiply-adds than this (`m * n * k`) run sequentially.
///
/// Measured on a 2-core Zen 4 (see `benches/kernels.rs`, group `gemm`): below
/// about 2^18 multiply-adds, handing the work to a second thread costs more
/// than it gains.
pub const PARALLEL_FLOP_THRESHOLD: usize = 1 << 18;

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `op(A) = A`.
    N,
    /// `op(A) = A^T`.
    T,
}

/// A row-major matrix view over `D`, a shared or a mutable slice: element
/// `(r, c)` is `data[r * stride + c]`.
#[derive(Clone, Copy, Debug)]
pub struct View<D> {
    data: D,
    rows: usize,
    cols: usize,
    stride: usize,
}

/// A read-only row-major matrix view.
pub type Mat<'a> = View<&'a [f32]>;

/// A mutable row-major matrix view.
pub type MatMut<'a> = View<&'a mut [f32]>;

fn check_view(len: usize, rows: usize, cols: usize, stride: usize) {
    assert!(stride >= cols, "row stride {stride} < cols {cols}");
    if rows > 0 && cols > 0 {
        let last = (rows - 1) * stride + cols;
        assert!(
            last <= len,
            "view {rows}x{cols} (stride {stride}) needs {last} elements, slice has {len}"
        );
    }
}

impl<D: AsRef<[f32]>> View<D> {
    /// A dense `rows x cols` view of `data` (`data.len() >= rows * cols`).
    ///
    /// # Panics
    /// If `data` is too short: views are built by the library from buffers it
    /// sized itself, so a short slice is a broken internal invariant.
    pub fn new(data: D, rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// A `rows x cols` view whose rows start `stride` elements apart.
    ///
    /// # Panics
    /// If `stride < cols` or `data` is too short.
    pub fn strided(data: D, rows: usize, cols: usize, stride: usize) -> Self {
        check_view(data.as_ref().len(), rows, cols, stride);
        Self {
            data,
            rows,
            cols,
            stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

impl<'a> Mat<'a> {
    fn faer(&self, op: Op) -> FaerMatRef<'a, f32> {
        let m = if self.rows == 0 || self.cols == 0 {
            FaerMatRef::from_row_major_slice(&[], self.rows, self.cols)
        } else {
            FaerMatRef::from_row_major_slice_with_stride(
                self.data,
                self.rows,
                self.cols,
                self.stride,
            )
        };
        match op {
            Op::N => m,
            Op::T => m.transpose(),
        }
    }
}

impl MatMut<'_> {
    fn faer(&mut self) -> FaerMatMut<'_, f32> {
        if self.rows == 0 || self.cols == 0 {
            FaerMatMut::from_row_major_slice_mut(&mut [], self.rows, self.cols)
        } else {
            // faer 0.24.4's `from_row_major_slice_with_stride_mut` swaps the
            // two strides (it builds a column-major view), so the view is
            // built from its parts here.
            // SAFETY: `check_view` (run when `self` was built) proved that
            // every element `(r, c)`, r < rows, c < cols, at offset
            // `r * stride + c`, lies inside `self.data`, which `self` borrows
            // mutably for the lifetime of the returned view.
            unsafe {
                FaerMatMut::from_raw_parts_mut(
                    self.data.as_mut_ptr(),
                    self.rows,
                    self.cols,
                    self.stride as isize,
                    1,
                )
            }
        }
    }

    fn scale(&mut self, beta: f32) {
        for r in 0..self.rows {
            let row = &mut self.data[r * self.stride..r * self.stride + self.cols];
            if beta == 0.0 {
                row.fill(0.0);
            } else {
                row.iter_mut().for_each(|v| *v *= beta);
            }
        }
    }
}

/// `c = alpha * op_a(a) * op_b(b) + beta * c`.
///
/// Shapes: `op_a(a)` is `[m, k]`, `op_b(b)` is `[k, n]`, `c` is `[m, n]`.
/// `beta == 0` overwrites `c` (its old values, even NaN, are ignored);
/// `beta == 1` accumulates.
///
/// Threads: the product uses the thread count of the rayon pool it is called
/// from (the library calls it inside [`crate::threads::install`]; called from
/// elsewhere, rayon's global pool decides).
///
/// # Panics
/// If the shapes do not agree: every call site in the library sizes its
/// operands itself, so a mismatch is a broken internal invariant.
pub fn gemm(alpha: f32, a: Mat<'_>, op_a: Op, b: Mat<'_>, op_b: Op, beta: f32, mut c: MatMut<'_>) {
    let a = a.faer(op_a);
    let b = b.faer(op_b);
    let (m, k) = (a.nrows(), a.ncols());
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "gemm: inner dimensions {k} vs {}", b.nrows());
    assert_eq!((c.rows, c.cols), (m, n), "gemm: output shape");
    if m == 0 || n == 0 {
        return;
    }
    let accum = if beta == 0.0 {
        Accum::Replace
    } else {
        if beta != 1.0 {
            c.scale(beta);
        }
        Accum::Add
    };
    if k == 0 {
        if accum == Accum::Replace {
            c.scale(0.0);
        }
        return;
    }
    split_matmul(
        c.faer(),
        accum,
        a,
        b,
        alpha,
        crate::threads::current_threads(),
    );
}

/// Runs the product on `threads` threads by splitting the output in blocks
/// of rows or columns (whichever dimension is longer), each block a
/// sequential faer product. Measured on 2 cores, this beats faer's own
/// threading on the per-step shapes of recurrent layers (`[B, H] x [H, G*H]`)
/// and matches it on large ones.
fn split_matmul(
    c: FaerMatMut<'_, f32>,
    accum: Accum,
    a: FaerMatRef<'_, f32>,
    b: FaerMatRef<'_, f32>,
    alpha: f32,
    threads: usize,
) {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    let work = m.saturating_mul(n).saturating_mul(k);
    if threads <= 1 || work < PARALLEL_FLOP_THRESHOLD || m.max(n) < 2 {
        seq_matmul(c, accum, a, b, alpha);
        return;
    }
    let (t0, t1) = (threads / 2, threads - threads / 2);
    if n >= m {
        // Column blocks, cut on a multiple of 16 (a SIMD width and faer's
        // micro-kernel widths) where possible.
        let cut = round_cut(n * t0 / threads, n);
        let (c0, c1) = c.split_at_col_mut(cut);
        let (b0, b1) = b.split_at_col(cut);
        rayon::join(
            || split_matmul(c0, accum, a, b0, alpha, t0),
            || split_matmul(c1, accum, a, b1, alpha, t1),
        );
    } else {
        let cut = round_cut(m * t0 / threads, m);
        let (c0, c1) = c.split_at_row_mut(cut);
        let (a0, a1) = a.split_at_row(cut);
        rayon::join(
            || split_matmul(c0, accum, a0, b, alpha, t0),
            || split_matmul(c1, accum, a1, b, alpha, t1),
        );
    }
}

/// Elements of the slab of a column-major `a` copied row-major by
/// [`seq_matmul`] (4 MiB), at least [`SLAB_MIN_DEPTH`] columns deep:
/// products of depth 256 run as fast as deeper ones, shallower ones pay
/// faer's per-call cost more often (measured).
const SLAB_ELEMENTS: usize = 1 << 20;

/// See [`SLAB_ELEMENTS`].
const SLAB_MIN_DEPTH: usize = 256;

/// Below this many output columns, copying a column-major `a` costs more
/// than the faster product gains (measured: a loss at `n` = 6 and 32; at
/// 64 about even, a gain from 128 on).
const SLAB_MIN_COLS: usize = 64;

thread_local! {
    /// [`seq_matmul`]'s slab, kept between calls.
    static SLAB: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A sequential product. faer runs `c = a * b` with a row-major `c` and a
/// column-major `a` (`a` = `x^T` for a row-major `x`: every weight gradient
/// `dP^T X`) at 40-65% of the speed of the row-major case (measured on
/// 2 cores, AVX2: `[4096, 3200] x [3200, 1024]` 36 vs 80 GFLOP/s per
/// core), so such an `a` is copied row-major, a slab of columns at a
/// time, and the product accumulated slab by slab.
fn seq_matmul(
    mut c: FaerMatMut<'_, f32>,
    accum: Accum,
    a: FaerMatRef<'_, f32>,
    b: FaerMatRef<'_, f32>,
    alpha: f32,
) {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    let col_major_a = a.row_stride() == 1 && a.col_stride() != 1 && m > 1;
    if !col_major_a
        || c.col_stride() != 1
        || n < SLAB_MIN_COLS
        || m.saturating_mul(n).saturating_mul(k) < PARALLEL_FLOP_THRESHOLD
    {
        matmul(c, accum, a, b, alpha, Par::Seq);
        return;
    }
    SLAB.with_borrow_mut(|slab| {
        let depth = (SLAB_ELEMENTS / m).max(SLAB_MIN_DEPTH).min(k);
        slab.resize(m * depth, 0.0);
        let mut accum = accum;
        let mut k0 = 0;
        while k0 < k {
            let kc = depth.min(k - k0);
            let part = a.subcols(k0, kc);
            copy_row_major(part, &mut slab[..m * kc]);
            let a_rows = FaerMatRef::from_row_major_slice(&slab[..m * kc], m, kc);
            matmul(
                c.as_mut(),
                accum,
                a_rows,
                b.subrows(k0, kc),
                alpha,
                Par::Seq,
            );
            accum = Accum::Add;
            k0 += kc;
        }
    });
}

/// Copies the `m x kc` column-major `a` (row stride 1) into `out`
/// row-major (`out[i * kc + p] = a[i, p]`), in 8 x 8 blocks (AVX
/// transposes where the CPU has AVX), the edges one element at a time.
fn copy_row_major(a: FaerMatRef<'_, f32>, out: &mut [f32]) {
    let (m, kc, lda) = (a.nrows(), a.ncols(), a.col_stride());
    assert!(a.row_stride() == 1 && lda >= 0 && out.len() == m * kc);
    let (src, lda) = (a.as_ptr(), lda.unsigned_abs());
    // SAFETY: element `(i, p)` of `a`, `i < m`, `p < kc`, lies at `src + p
    // * lda + i`.
    let at = |i: usize, p: usize| unsafe { *src.add(p * lda + i) };
    let (m8, k8) = (m / 8 * 8, kc / 8 * 8);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        for p0 in (0..k8).step_by(8) {
            for i0 in (0..m8).step_by(8) {
                // SAFETY: rows `p0..p0 + 8` of the `[kc, lda]` source hold
                // columns `i0..i0 + 8 <= m`, and rows `i0..i0 + 8` of the
                // `[m, kc]` output columns `p0..p0 + 8 <= kc`; AVX checked.
                unsafe {
                    crate::simd::transpose8_avx(
                        src.add(p0 * lda + i0),
                        lda,
                        out.as_mut_ptr().add(i0 * kc + p0),
                        kc,
                    )
                };
            }
        }
    } else {
        for p in 0..k8 {
            for i in 0..m8 {
                out[i * kc + p] = at(i, p);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for p in 0..k8 {
        for i in 0..m8 {
            out[i * kc + p] = at(i, p);
        }
    }
    for i in 0..m {
        let from = if i < m8 { k8 } else { 0 };
        for p in from..kc {
            out[i * kc + p] = at(i, p);
        }
    }
}

/// `x` rounded to a multiple of 16 when that leaves both sides non-empty.
fn round_cut(x: usize, len: usize) -> usize {
    let r = x / 16 * 16;
    if r > 0 && r < len {
        r
    } else {
        x.clamp(1, len - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0.0; a.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        t
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn all_transpositions_match_naive() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (0, 4, 3),
            (4, 0, 3),
            (64, 128, 96),
        ] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let want = naive(&a, m, k, &b, n);
            let at = transpose(&a, m, k);
            let bt = transpose(&b, k, n);
            for (op_a, op_b) in [
                (Op::N, Op::N),
                (Op::T, Op::N),
                (Op::N, Op::T),
                (Op::T, Op::T),
            ] {
                let (av, bv) = match (op_a, op_b) {
                    (Op::N, Op::N) => (Mat::new(&a, m, k), Mat::new(&b, k, n)),
                    (Op::T, Op::N) => (Mat::new(&at, k, m), Mat::new(&b, k, n)),
                    (Op::N, Op::T) => (Mat::new(&a, m, k), Mat::new(&bt, n, k)),
                    (Op::T, Op::T) => (Mat::new(&at, k, m), Mat::new(&bt, n, k)),
                };
                let mut c = vec![f32::NAN; m * n];
                gemm(1.0, av, op_a, bv, op_b, 0.0, MatMut::new(&mut c, m, n));
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn row_major_copy_of_column_major_blocks() {
        // Edges of every kind: m and kc below, at and above multiples of 8.
        for (m, kc) in [(1, 1), (7, 9), (8, 8), (17, 24), (33, 5), (40, 61)] {
            let lda = m + 3;
            let data = data(lda * kc, 7);
            let a = FaerMatRef::from_column_major_slice_with_stride(&data, m, kc, lda);
            let mut out = vec![f32::NAN; m * kc];
            copy_row_major(a, &mut out);
            for i in 0..m {
                for p in 0..kc {
                    assert_eq!(out[i * kc + p], data[p * lda + i], "({i}, {p}) of {m}x{kc}");
                }
            }
        }
    }

    #[test]
    fn transposed_a_in_slabs_matches_naive() {
        // Deeper than one slab, odd sizes, wide enough for the copied path;
        // sequential and split over threads, replacing and accumulating.
        let (m, k, n) = (
            SLAB_ELEMENTS / SLAB_MIN_DEPTH,
            2 * SLAB_MIN_DEPTH + 13,
            SLAB_MIN_COLS + 11,
        );
        let a = data(m * k, 5);
        let b = data(k * n, 6);
        let want = naive(&a, m, k, &b, n);
        let at = transpose(&a, m, k);
        for threads in [1, 2] {
            for beta in [0.0, 1.0] {
                let mut c = vec![if beta == 0.0 { f32::NAN } else { 1.0 }; m * n];
                let cm = MatMut::new(&mut c, m, n);
                let (av, bv) = (Mat::new(&at, k, m), Mat::new(&b, k, n));
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| gemm(1.0, av, Op::T, bv, Op::N, beta, cm));
                for (x, y) in c.iter().zip(&want) {
                    let y = y + beta;
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn alpha_beta_and_strided_output() {
        let (m, k, n) = (5, 4, 3);
        let a = data(m * k, 3);
        let b = data(k * n, 4);
        let want = naive(&a, m, k, &b, n);
        // c is the middle 3 columns of a [5, 7] buffer.
        let mut buf = vec![1.0f32; m * 7];
        gemm(
            2.0,
            Mat::new(&a, m, k),
            Op::N,
            Mat::new(&b, k, n),
            Op::N,
            0.5,
            MatMut::strided(&mut buf[2..], m, n, 7),
        );
        for i in 0..m {
            for j in 0..7 {
                let got = buf[i * 7 + j];
                let expect = if (2..5).contains(&j) {
                    2.0 * want[i * n + j - 2] + 0.5
                } else {
                    1.0
                };
                assert!((got - expect).abs() < 1e-4, "({i},{j}) {got} vs {expect}");
            }
        }
    }
}
