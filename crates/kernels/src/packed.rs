//! Products against weights packed once for many calls, for models that
//! run their own time loop (the NTM's controller and head layer): the
//! register-blocked kernel the cells' whole-sequence loops use, with no
//! per-call set-up (faer packs its weight operand again at every call).
//!
//! The weights are `W` `[N, K]` row-major (rows `row_stride` apart, so a
//! block of columns of a wider matrix can be packed), and a product is
//! `C (+)= A W^T` for `A` `[rows, K]` and `C` `[rows, N]`, both with row
//! strides ([`pack`]); or `C (+)= A W` for `W` `[K, N]`
//! ([`pack_transposed`]).

use crate::panel;

/// Length of the packed form of `W` `[n, depth]` (`n` rounded up to a
/// whole panel, times `depth`), `None` if it overflows `usize`.
pub fn packed_len(n: usize, depth: usize) -> Option<usize> {
    n.div_ceil(panel::NR)
        .checked_mul(panel::NR)?
        .checked_mul(depth)
}

/// Packs `W` `[n, depth]` (`w[j * row_stride + k]`) into `out`
/// (`packed_len(n, depth)` values).
///
/// # Panics
/// If `out` has another length, `row_stride < depth`, or `w` is too short.
pub fn pack(w: &[f32], n: usize, depth: usize, row_stride: usize, out: &mut [f32]) {
    assert!(row_stride >= depth, "pack: row stride under the depth");
    panel::pack(w, n, depth, row_stride, 1, out);
}

/// Packs `W^T` for `W` `[depth, n]` (`w[k * row_stride + j]`) into `out`
/// (`packed_len(n, depth)` values): [`product`] then computes `C (+)= A
/// W`, the input gradient of a layer `Y = X W^T`.
///
/// # Panics
/// As [`pack`], with `row_stride < n`.
pub fn pack_transposed(w: &[f32], n: usize, depth: usize, row_stride: usize, out: &mut [f32]) {
    assert!(row_stride >= n, "pack_transposed: row stride under n");
    panel::pack(w, n, depth, 1, row_stride, out);
}

/// `c[r * ldc + j] (+)= sum_k a[r * lda + k] W[j, k]` for `r < rows`, `j <
/// n`, `k < depth`, with `W` `[n, depth]` packed by [`pack`]: added to `c`
/// when `accumulate`, else written. Runs on the calling thread.
///
/// # Panics
/// If `packed` has another length than `packed_len(n, depth)`, a stride is
/// under its row's length, or `a` or `c` is too short.
#[allow(clippy::too_many_arguments)]
pub fn product(
    a: &[f32],
    rows: usize,
    lda: usize,
    packed: &[f32],
    (n, depth): (usize, usize),
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!(
        ldc >= n && (rows - 1) * ldc + n <= c.len(),
        "product: c too short"
    );
    // SAFETY: every element `c[r * ldc + j]`, `r < rows`, `j < n`, lies in
    // `c` (checked above), borrowed mutably for the call.
    unsafe {
        panel::product(
            a,
            rows,
            lda,
            packed,
            n,
            depth,
            c.as_mut_ptr(),
            ldc,
            accumulate,
        )
    };
}
