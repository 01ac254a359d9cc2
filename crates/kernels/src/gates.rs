//! Gate-block layout shared by the fused gate kernels: a gates buffer is
//! `[B, G*H]`, each row `G` blocks of `H` values side by side; the one
//! driver of their lane bodies ([`on_units`]); and their scalar twins
//! ([`Twin`]).

use pulp::{Simd, WithSimd};

use crate::simd::{Lanes, dispatch, scalar_twins, zip_map};

/// A gate kernel's scalar twin: the equations of its [`Lanes`] body written
/// again from the math, one element at a time with `std` math (`x` the
/// inputs, `y` the read-write values in, their new values out). Run in its
/// place under [`crate::simd::with_scalar_twins`].
pub(crate) trait Twin<const NI: usize, const NO: usize>: Lanes<NI, NO> {
    /// The new read-write values of one element.
    fn twin(&self, x: [f32; NI], y: [f32; NO]) -> [f32; NO];
}

/// Number of rows `B` of a `[B, G*H]` buffer of `len` values.
///
/// # Panics
/// If `hidden == 0` or `len` is not a multiple of `G*H` (a broken internal
/// invariant).
pub(crate) fn rows<const G: usize>(len: usize, hidden: usize) -> usize {
    assert!(hidden > 0, "gate kernel: hidden size 0");
    assert_eq!(len % (G * hidden), 0, "gate kernel: gates length");
    len / (G * hidden)
}

/// An operand of [`on_units`] read only: element `(r, u)` at `ptr + r *
/// stride + u` (stride 0 for a `[H]` row shared by every row).
pub(crate) type In = (*const f32, usize);

/// An operand of [`on_units`] read and written, as [`In`].
pub(crate) type Out = (*mut f32, usize);

/// The one body of every fused gate kernel: the lanes `L` over units
/// `units` of rows `0..rows` of `NI` read-only and `NO` read-write
/// row-strided operands. The whole-slice kernels run it on units `0..H` of
/// every row, the whole-sequence kernels on a thread's units of the rows
/// inside their sequences.
struct OnUnits<'l, L, const NI: usize, const NO: usize> {
    ins: [In; NI],
    outs: [Out; NO],
    rows: usize,
    units: std::ops::Range<usize>,
    lanes: &'l L,
}

impl<L: Lanes<NI, NO>, const NI: usize, const NO: usize> WithSimd for OnUnits<'_, L, NI, NO> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (u0, n) = (self.units.start, self.units.len());
        for r in 0..self.rows {
            // SAFETY: `on_units`'s contract: every operand's row `r`, units
            // `u0..u0 + n`, valid and, for the outputs, pairwise disjoint
            // and accessed by no one else during the call.
            let ins = self
                .ins
                .map(|(p, s)| unsafe { std::slice::from_raw_parts(p.add(r * s + u0), n) });
            let outs = self
                .outs
                .map(|(p, s)| unsafe { std::slice::from_raw_parts_mut(p.add(r * s + u0), n) });
            zip_map(simd, ins, outs, self.lanes);
        }
    }
}

/// Runs `lanes` over units `units` of rows `0..rows` of the operands, at
/// the current SIMD level (or its scalar twin, see [`Twin`]).
///
/// # Safety
/// For every row `r < rows`, every operand's elements `ptr + r * stride +
/// u`, `u` in `units`, must be valid; the outputs' must not overlap each
/// other or an input's, and no other thread may write any of them (or read
/// the outputs') during the call.
#[inline(always)]
pub(crate) unsafe fn on_units<L: Twin<NI, NO>, const NI: usize, const NO: usize>(
    lanes: &L,
    ins: [In; NI],
    outs: [Out; NO],
    rows: usize,
    units: std::ops::Range<usize>,
) {
    if scalar_twins() {
        for r in 0..rows {
            for u in units.clone() {
                // SAFETY: the caller's contract, element by element; each
                // element's outputs are read before any is written.
                unsafe {
                    let x = ins.map(|(p, s)| *p.add(r * s + u));
                    let y = outs.map(|(p, s)| *p.add(r * s + u));
                    for ((p, s), v) in outs.iter().zip(lanes.twin(x, y)) {
                        *p.add(r * s + u) = v;
                    }
                }
            }
        }
        return;
    }
    dispatch(OnUnits {
        ins,
        outs,
        rows,
        units,
        lanes,
    });
}
