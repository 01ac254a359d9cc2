//! Gate-block layout shared by the fused gate kernels: a gates buffer is
//! `[B, G*H]`, each row `G` blocks of `H` values side by side.

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

/// One `[G*H]` row split into its `G` gate blocks.
pub(crate) fn blocks<const G: usize>(row: &[f32], h: usize) -> [&[f32]; G] {
    core::array::from_fn(|g| &row[g * h..(g + 1) * h])
}

/// One `[G*H]` row split into its `G` gate blocks, mutable.
pub(crate) fn blocks_mut<const G: usize>(row: &mut [f32], h: usize) -> [&mut [f32]; G] {
    let mut rest = row;
    core::array::from_fn(|_| {
        let (block, tail) = core::mem::take(&mut rest).split_at_mut(h);
        rest = tail;
        block
    })
}
