//! Column sums (bias gradients) and row broadcasts (bias initialisation).

use pulp::{Simd, WithSimd};

use crate::simd::{Lanes, dispatch, zip_map};

/// `acc + x`.
struct AddLanes;

impl Lanes<1, 1> for AddLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [x]: [S::f32s; 1], [acc]: [S::f32s; 1]) -> [S::f32s; 1] {
        [simd.add_f32s(acc, x)]
    }
}

struct ColSumAdd<'a> {
    m: &'a [f32],
    cols: usize,
    out: &'a mut [f32],
}

impl WithSimd for ColSumAdd<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        for row in self.m.chunks_exact(self.cols) {
            zip_map(simd, [row], [&mut *self.out], &AddLanes);
        }
    }
}

/// `out[j] += sum_r m[r, j]`. `m`: `[rows, cols]` row-major; `out`: `[cols]`.
///
/// # Panics
/// If `m.len()` is not a multiple of `out.len()` (a broken internal invariant).
pub fn colsum_add(m: &[f32], out: &mut [f32]) {
    let cols = out.len();
    if cols == 0 {
        return;
    }
    assert_eq!(m.len() % cols, 0, "colsum_add: length");
    dispatch(ColSumAdd { m, cols, out });
}

/// Writes `row` into every row of `m` (`[rows, row.len()]`, row-major).
///
/// # Panics
/// If `m.len()` is not a multiple of `row.len()` (a broken internal invariant).
pub fn broadcast_rows(row: &[f32], m: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    assert_eq!(m.len() % row.len(), 0, "broadcast_rows: length");
    for dst in m.chunks_exact_mut(row.len()) {
        dst.copy_from_slice(row);
    }
}

/// Scalar twins of this module's kernels.
pub mod scalar {
    /// Twin of [`super::colsum_add`].
    pub fn colsum_add(m: &[f32], out: &mut [f32]) {
        let cols = out.len();
        for (k, &v) in m.iter().enumerate() {
            out[k % cols] += v;
        }
    }
}
