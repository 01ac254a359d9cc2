//! A variable-length batch in the order the time loops want: rows sorted by
//! length, longest first (stable), so that the rows inside their sequence
//! at step `t` are the first `active[t]` (as PyTorch's `PackedSequence`
//! orders them internally). The network sorts its inputs once per call and
//! restores the caller's order in its outputs.

use crate::alloc;
use crate::error::Result;

/// The sorted order of a batch and the rows inside their sequences per
/// step; empty for a batch without lengths.
#[derive(Clone, Debug, Default)]
pub(crate) struct BatchOrder {
    /// `[B]`: the caller's row at each sorted position.
    order: Vec<usize>,
    /// `[T]`: the rows inside their sequence at each step.
    active: Vec<usize>,
}

impl BatchOrder {
    /// The order of `lengths` (`[B]`, each in `1..=seq_len`, checked by the
    /// caller), or the empty order for `None`. Errors: no memory.
    pub fn set(&mut self, lengths: Option<&[usize]>, seq_len: usize) -> Result<()> {
        self.order.clear();
        self.active.clear();
        let Some(lengths) = lengths else {
            return Ok(());
        };
        alloc::reserve(&mut self.order, lengths.len(), "batch order")?;
        alloc::reserve(&mut self.active, seq_len, "batch order")?;
        self.order.extend(0..lengths.len());
        self.order.sort_by_key(|&b| std::cmp::Reverse(lengths[b]));
        // Rows inside their sequence at step t: those longer than t.
        let mut inside = lengths.len();
        for t in 0..seq_len {
            while inside > 0 && lengths[self.order[inside - 1]] <= t {
                inside -= 1;
            }
            self.active.push(inside);
        }
        Ok(())
    }

    /// `[T]`, the rows inside their sequence per step, or `None` without
    /// lengths.
    pub fn active(&self) -> Option<&[usize]> {
        (!self.order.is_empty()).then_some(&self.active[..])
    }

    /// Whether the batch is reordered at all.
    pub fn is_sorted_batch(&self) -> bool {
        !self.order.is_empty()
    }

    /// `dst` = `src` with the rows of every `[B, width]` block in sorted
    /// order; with `zero_past_end` (`src` time-major `[T, B, width]`), the
    /// rows past their sequence's end are zero instead.
    pub fn gather(&self, src: &[f32], dst: &mut [f32], width: usize, zero_past_end: bool) {
        let b = self.order.len();
        for (k, (s, d)) in src
            .chunks_exact(b * width)
            .zip(dst.chunks_exact_mut(b * width))
            .enumerate()
        {
            for (i, row) in d.chunks_exact_mut(width).enumerate() {
                if zero_past_end && i >= self.active[k] {
                    row.fill(0.0);
                } else {
                    let from = self.order[i] * width;
                    row.copy_from_slice(&s[from..from + width]);
                }
            }
        }
    }

    /// `dst` = `src` (sorted) with the rows of every `[B, width]` block back
    /// in the caller's order; with `zero_past_end` (`src` time-major `[T,
    /// B, width]`), the rows past their sequence's end are zero instead.
    pub fn scatter(&self, src: &[f32], dst: &mut [f32], width: usize, zero_past_end: bool) {
        let b = self.order.len();
        for (k, (s, d)) in src
            .chunks_exact(b * width)
            .zip(dst.chunks_exact_mut(b * width))
            .enumerate()
        {
            for (i, row) in s.chunks_exact(width).enumerate() {
                let to = &mut d[self.order[i] * width..][..width];
                if zero_past_end && i >= self.active[k] {
                    to.fill(0.0);
                } else {
                    to.copy_from_slice(row);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_longest_first_and_counts_rows_inside() {
        let mut o = BatchOrder::default();
        o.set(Some(&[2, 4, 1, 4]), 4).unwrap();
        assert_eq!(o.order, [1, 3, 0, 2]);
        assert_eq!(o.active(), Some(&[4, 3, 2, 2][..]));
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect(); // [T=2, B=4, 1]
        let mut g = vec![9.0; 8];
        o.gather(&x, &mut g, 1, true);
        assert_eq!(g, [1.0, 3.0, 0.0, 2.0, 5.0, 7.0, 4.0, 0.0]);
        let mut back = vec![0.0; 8];
        o.scatter(&g, &mut back, 1, false);
        assert_eq!(back, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 7.0]);
        o.scatter(&x, &mut back, 1, true);
        assert_eq!(back, [2.0, 0.0, 3.0, 1.0, 6.0, 4.0, 0.0, 5.0]);
        o.set(None, 4).unwrap();
        assert!(o.active().is_none() && !o.is_sorted_batch());
    }
}
