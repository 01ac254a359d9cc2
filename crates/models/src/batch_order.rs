//! A variable-length batch in the order the time loops want: rows sorted by
//! length, longest first (stable), so that the rows inside their sequence
//! at step `t` are the first `active[t]` (as PyTorch's `PackedSequence`
//! orders them internally). The network sorts its inputs once per call and
//! restores the caller's order in its outputs.

use crate::alloc;
use crate::error::Result;

/// How a caller's sequence buffer (input, output, their gradients) is laid
/// out: `[T, B, width]` (PyTorch's default) or `[B, T, width]`
/// (`batch_first`). Initial and final states are `[L*D, B, H]` either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `[T, B, width]`.
    #[default]
    TimeMajor,
    /// `[B, T, width]`.
    BatchFirst,
}

/// The order of a batch in the time loops' buffers (`[T, B, width]`, rows
/// sorted by length) and the rows inside their sequences per step; empty
/// when the caller's buffers are used as they are (time-major, no lengths).
#[derive(Clone, Debug, Default)]
pub(crate) struct BatchOrder {
    /// `[B]`: the caller's row at each sorted position.
    order: Vec<usize>,
    /// `[B]`: the sorted position of each caller's row (`order`'s inverse).
    position: Vec<usize>,
    /// `[T]`: the rows inside their sequence at each step.
    active: Vec<usize>,
    /// Whether the rows have lengths (otherwise every row runs all steps).
    lengths: bool,
    /// The caller's layout.
    layout: Layout,
}

impl BatchOrder {
    /// The order of `batch` rows of `lengths` (`[B]`, each in
    /// `1..=seq_len`, checked by the caller; `None`: all `seq_len`) in the
    /// caller's `layout`: empty for time-major rows without lengths.
    /// Errors: no memory.
    pub fn set(
        &mut self,
        lengths: Option<&[usize]>,
        seq_len: usize,
        batch: usize,
        layout: Layout,
    ) -> Result<()> {
        self.order.clear();
        self.position.clear();
        self.active.clear();
        self.lengths = lengths.is_some();
        self.layout = layout;
        if lengths.is_none() && layout == Layout::TimeMajor {
            return Ok(());
        }
        alloc::reserve(&mut self.order, batch, "batch order")?;
        alloc::reserve(&mut self.position, batch, "batch order")?;
        alloc::reserve(&mut self.active, seq_len, "batch order")?;
        self.order.extend(0..batch);
        if let Some(lengths) = lengths {
            self.order.sort_by_key(|&b| std::cmp::Reverse(lengths[b]));
        }
        self.position.resize(batch, 0);
        for (i, &caller) in self.order.iter().enumerate() {
            self.position[caller] = i;
        }
        let Some(lengths) = lengths else {
            self.active.resize(seq_len, batch);
            return Ok(());
        };
        // Rows inside their sequence at step t: those longer than t.
        let mut inside = batch;
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
        self.lengths.then_some(&self.active[..])
    }

    /// Whether the loops' buffers differ from the caller's (rows sorted,
    /// or batch-first), so that sequences and states go through
    /// [`Self::gather_steps`] / [`Self::scatter_steps`] and
    /// [`Self::gather_states`] / [`Self::scatter_states`].
    pub fn reorders(&self) -> bool {
        !self.order.is_empty()
    }

    /// Where the caller's row `row` of step `t` starts, in rows of a
    /// sequence buffer of `seq_len` steps.
    fn caller_row(&self, t: usize, row: usize, seq_len: usize) -> usize {
        let b = self.order.len();
        match self.layout {
            Layout::TimeMajor => t * b + row,
            Layout::BatchFirst => row * seq_len + t,
        }
    }

    /// `dst` (`[T, B, width]`, the loops' order) = the caller's sequence
    /// `src` (`[T, B, width]` or `[B, T, width]`); with `zero_past_end`,
    /// the rows past their sequence's end are zero instead. Large copies
    /// run on the library's threads.
    pub fn gather_steps(&self, src: &[f32], dst: &mut [f32], width: usize, zero_past_end: bool) {
        let b = self.order.len();
        let seq_len = dst.len() / (b * width).max(1);
        let block = |(t, block): (usize, &mut [f32])| {
            for (i, row) in block.chunks_exact_mut(width).enumerate() {
                if zero_past_end && i >= self.active[t] {
                    row.fill(0.0);
                } else {
                    let from = self.caller_row(t, self.order[i], seq_len) * width;
                    row.copy_from_slice(&src[from..from + width]);
                }
            }
        };
        by_blocks(dst, b * width, block);
    }

    /// The caller's sequence `dst` (`[T, B, width]` or `[B, T, width]`) =
    /// `src` (`[T, B, width]`, the loops' order); with `zero_past_end`, the
    /// rows past their sequence's end are zero instead. Large copies run on
    /// the library's threads.
    pub fn scatter_steps(&self, src: &[f32], dst: &mut [f32], width: usize, zero_past_end: bool) {
        let b = self.order.len();
        let seq_len = src.len() / (b * width).max(1);
        // Each caller block of `dst`: a step's rows (time-major) or a row's
        // steps (batch-first), read from the loops' order.
        let (inner, outer) = match self.layout {
            Layout::TimeMajor => (b, seq_len),
            Layout::BatchFirst => (seq_len, b),
        };
        let block = |(k, block): (usize, &mut [f32])| {
            for (j, row) in block.chunks_exact_mut(width).enumerate() {
                let (t, caller) = match self.layout {
                    Layout::TimeMajor => (k, j),
                    Layout::BatchFirst => (j, k),
                };
                let i = self.position[caller];
                if zero_past_end && i >= self.active[t] {
                    row.fill(0.0);
                } else {
                    row.copy_from_slice(&src[(t * b + i) * width..][..width]);
                }
            }
        };
        debug_assert_eq!(dst.len(), inner * outer * width);
        by_blocks(dst, inner * width, block);
    }

    /// `dst` = the caller's states `src` (`[n, B, width]`), rows in the
    /// loops' order.
    pub fn gather_states(&self, src: &[f32], dst: &mut [f32], width: usize) {
        let b = self.order.len();
        for (s, d) in src
            .chunks_exact(b * width)
            .zip(dst.chunks_exact_mut(b * width))
        {
            for (i, row) in d.chunks_exact_mut(width).enumerate() {
                row.copy_from_slice(&s[self.order[i] * width..][..width]);
            }
        }
    }

    /// The caller's states `dst` (`[n, B, width]`) = `src`, rows in the
    /// loops' order.
    pub fn scatter_states(&self, src: &[f32], dst: &mut [f32], width: usize) {
        let b = self.order.len();
        for (s, d) in src
            .chunks_exact(b * width)
            .zip(dst.chunks_exact_mut(b * width))
        {
            for (i, row) in s.chunks_exact(width).enumerate() {
                d[self.order[i] * width..][..width].copy_from_slice(row);
            }
        }
    }
}

/// Runs `f` on every `(index, block)` of `dst` cut in blocks of `block`
/// values, on the library's threads when `dst` is large (a copy of a few
/// hundred kilobytes is worth a fork-join; a small one is not).
fn by_blocks(dst: &mut [f32], block: usize, f: impl Fn((usize, &mut [f32])) + Sync + Send) {
    use rayon::prelude::*;
    const PARALLEL_VALUES: usize = 1 << 16;
    if block == 0 {
        return;
    }
    if dst.len() < PARALLEL_VALUES || rnn_kernels::threads::num_threads() < 2 {
        dst.chunks_exact_mut(block).enumerate().for_each(f);
    } else {
        rnn_kernels::threads::install(|| {
            dst.par_chunks_exact_mut(block).enumerate().for_each(f);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_longest_first_and_counts_rows_inside() {
        let mut o = BatchOrder::default();
        o.set(Some(&[2, 4, 1, 4]), 2, 4, Layout::TimeMajor).unwrap();
        assert_eq!(o.order, [1, 3, 0, 2]);
        assert_eq!(o.active(), Some(&[4, 3][..]));
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect(); // [T=2, B=4, 1]
        let mut g = vec![9.0; 8];
        o.gather_steps(&x, &mut g, 1, true);
        assert_eq!(g, [1.0, 3.0, 0.0, 2.0, 5.0, 7.0, 4.0, 0.0]);
        let mut back = vec![0.0; 8];
        o.scatter_steps(&g, &mut back, 1, false);
        assert_eq!(back, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 7.0]);
        o.scatter_steps(&x, &mut back, 1, true);
        assert_eq!(back, [2.0, 0.0, 3.0, 1.0, 6.0, 4.0, 0.0, 5.0]);
        let mut states = vec![0.0; 8];
        o.gather_states(&x, &mut states, 2); // [1, B=4, 2]
        assert_eq!(states, [2.0, 3.0, 6.0, 7.0, 0.0, 1.0, 4.0, 5.0]);
        o.scatter_states(&states, &mut back, 2);
        assert_eq!(back, x);
        o.set(None, 2, 4, Layout::TimeMajor).unwrap();
        assert!(o.active().is_none() && !o.reorders());
    }

    #[test]
    fn batch_first_sequences_are_read_and_written_by_row() {
        // [B=3, T=2, 2]: row b, step t, unit j holds 100 b + 10 t + j.
        let x: Vec<f32> = (0..3)
            .flat_map(|b| {
                (0..2).flat_map(move |t| (0..2).map(move |j| (100 * b + 10 * t + j) as f32))
            })
            .collect();
        let mut o = BatchOrder::default();
        o.set(None, 2, 3, Layout::BatchFirst).unwrap();
        assert!(o.reorders() && o.active().is_none());
        let mut tm = vec![0.0; 12];
        o.gather_steps(&x, &mut tm, 2, false);
        let want: Vec<f32> = (0..2)
            .flat_map(|t| {
                (0..3).flat_map(move |b| (0..2).map(move |j| (100 * b + 10 * t + j) as f32))
            })
            .collect();
        assert_eq!(tm, want);
        let mut back = vec![0.0; 12];
        o.scatter_steps(&tm, &mut back, 2, false);
        assert_eq!(back, x);
        // With lengths [1, 2, 2]: sorted rows 1, 2, 0; row 0 ends after t = 0.
        o.set(Some(&[1, 2, 2]), 2, 3, Layout::BatchFirst).unwrap();
        o.gather_steps(&x, &mut tm, 2, true);
        assert_eq!(
            tm,
            [
                100.0, 101.0, 200.0, 201.0, 0.0, 1.0, 110.0, 111.0, 210.0, 211.0, 0.0, 0.0
            ]
        );
        o.scatter_steps(&tm, &mut back, 2, true);
        let mut want = x.clone();
        want[2..4].fill(0.0); // row 0, step 1
        assert_eq!(back, want);
    }
}
