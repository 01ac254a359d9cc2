//! The algorithmic tasks of Graves et al. 2014, generated from a seed: copy,
//! repeat copy, associative recall and priority sort. Each gives time-major
//! batches with a mask of the steps whose outputs are scored.

use crate::alloc;
use crate::config::check_nonzero;
use crate::error::{Error, Result};
use crate::loss::bce_term;
use crate::rng::SplitMix64;

/// A task and its sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Copy: `L` random `bits`-bit vectors, a delimiter step (an extra input
    /// channel), then `L` blank steps during which the machine outputs the
    /// vectors. `T = 2L + 1`; input `bits + 1`, output `bits`.
    Copy {
        /// Bits per vector.
        bits: usize,
        /// Shortest training sequence.
        min_len: usize,
        /// Longest training sequence.
        max_len: usize,
    },
    /// Repeat copy: the sequence, a delimiter step, a step carrying the
    /// repeat count `n / count_scale` on its own channel; then the sequence
    /// `n` times and an end marker on an extra output channel. Each row
    /// draws its own `n`; `T = L + 2 + n_max L + 1` with `n_max` the batch's
    /// largest, and a row's steps after its end marker are not scored.
    /// Input `bits + 2`, output `bits + 1`.
    RepeatCopy {
        /// Bits per vector.
        bits: usize,
        /// Shortest training sequence.
        min_len: usize,
        /// Longest training sequence.
        max_len: usize,
        /// Fewest repeats.
        min_repeats: usize,
        /// Most repeats.
        max_repeats: usize,
        /// The count's normaliser, the most repeats trained: a test of
        /// more repeats keeps that scale (20 repeats of a machine trained
        /// on 1-10 read 2.0). Graves et al. normalise the count to mean 0
        /// and variance 1 over the trained range instead; measured here,
        /// their machines' counts ran out sooner (README, NTM).
        count_scale: usize,
    },
    /// Associative recall: items of `item_len` vectors, each after an item
    /// delimiter step; then a query delimiter, one of the items but the
    /// last, a query delimiter; then the machine outputs the item that
    /// followed the query. Input `bits + 2`, output `bits`.
    AssociativeRecall {
        /// Bits per vector.
        bits: usize,
        /// Vectors per item.
        item_len: usize,
        /// Fewest items.
        min_items: usize,
        /// Most items.
        max_items: usize,
    },
    /// Priority sort: `n` random `bits`-bit vectors, each with a priority
    /// uniform in `[-1, 1)` on its own input channel, then a delimiter
    /// step (an extra channel); then the machine outputs the `n - dropped`
    /// vectors of highest priority, highest first. `T = 2n + 1 - dropped`;
    /// input `bits + 2`, output `bits`. Graves et al.: 20 vectors, the 16
    /// highest.
    PrioritySort {
        /// Bits per vector.
        bits: usize,
        /// Fewest input vectors.
        min_items: usize,
        /// Most input vectors.
        max_items: usize,
        /// Lowest-priority vectors left out of the output.
        dropped: usize,
    },
}

/// One batch of a task: `x` `[T, B, I]`, `target` `[T, B, O]`, `mask`
/// `[T, B]` (1 where the outputs are scored).
#[derive(Clone, Debug, Default)]
pub struct TaskBatch {
    /// Inputs `[T, B, I]`.
    pub x: Vec<f32>,
    /// Targets in {0, 1}, `[T, B, O]`.
    pub target: Vec<f32>,
    /// `[T, B]`: 1 on the scored steps of each row, 0 elsewhere.
    pub mask: Vec<f32>,
    /// `T`.
    pub seq_len: usize,
    /// `B`.
    pub batch: usize,
}

impl TaskBatch {
    /// The rows `rows` of every sequence (a worker's slice of the batch)
    /// into `out`, `[T, rows.len(), ...]`.
    pub fn rows_into(&self, rows: std::ops::Range<usize>, out: &mut TaskBatch) {
        let (t, b, n) = (self.seq_len, self.batch, rows.len());
        let per = |v: &[f32]| v.len() / (t * b).max(1);
        let (fi, fo) = (per(&self.x), per(&self.target));
        let slice = |src: &[f32], f: usize, dst: &mut Vec<f32>| {
            dst.clear();
            for step in 0..t {
                let at = (step * b + rows.start) * f;
                dst.extend_from_slice(&src[at..at + n * f]);
            }
        };
        slice(&self.x, fi, &mut out.x);
        slice(&self.target, fo, &mut out.target);
        slice(&self.mask, 1, &mut out.mask);
        out.seq_len = t;
        out.batch = n;
    }
}

impl Task {
    /// Graves et al.'s copy task: 8 bits, lengths 1-20.
    pub fn copy() -> Self {
        Self::Copy {
            bits: 8,
            min_len: 1,
            max_len: 20,
        }
    }

    /// Repeat copy: 8 bits, lengths 1-10, 1-10 repeats.
    pub fn repeat_copy() -> Self {
        Self::RepeatCopy {
            bits: 8,
            min_len: 1,
            max_len: 10,
            min_repeats: 1,
            max_repeats: 10,
            count_scale: 10,
        }
    }

    /// Associative recall: 6 bits, items of 3 vectors, 2-6 items.
    pub fn associative_recall() -> Self {
        Self::AssociativeRecall {
            bits: 6,
            item_len: 3,
            min_items: 2,
            max_items: 6,
        }
    }

    /// Priority sort: 8 bits, 20 vectors, the 16 highest output.
    pub fn priority_sort() -> Self {
        Self::PrioritySort {
            bits: 8,
            min_items: 20,
            max_items: 20,
            dropped: 4,
        }
    }

    /// `copy`, `repeat-copy`, `recall` or `priority-sort`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Copy { .. } => "copy",
            Self::RepeatCopy { .. } => "repeat-copy",
            Self::AssociativeRecall { .. } => "recall",
            Self::PrioritySort { .. } => "priority-sort",
        }
    }

    /// Input features per step.
    pub fn input_size(&self) -> usize {
        match *self {
            Self::Copy { bits, .. } => bits + 1,
            Self::RepeatCopy { bits, .. }
            | Self::AssociativeRecall { bits, .. }
            | Self::PrioritySort { bits, .. } => bits + 2,
        }
    }

    /// Output logits per step.
    pub fn output_size(&self) -> usize {
        match *self {
            Self::Copy { bits, .. }
            | Self::AssociativeRecall { bits, .. }
            | Self::PrioritySort { bits, .. } => bits,
            Self::RepeatCopy { bits, .. } => bits + 1,
        }
    }

    /// Bits per vector.
    fn bits(&self) -> usize {
        match *self {
            Self::Copy { bits, .. }
            | Self::RepeatCopy { bits, .. }
            | Self::AssociativeRecall { bits, .. }
            | Self::PrioritySort { bits, .. } => bits,
        }
    }

    /// The range a training size is drawn from, with its name: the length
    /// (copy, repeat copy) or the item count (recall, priority sort).
    fn size_range(&self) -> (&'static str, usize, usize) {
        match *self {
            Self::Copy {
                min_len, max_len, ..
            }
            | Self::RepeatCopy {
                min_len, max_len, ..
            } => ("length", min_len, max_len),
            Self::AssociativeRecall {
                min_items,
                max_items,
                ..
            }
            | Self::PrioritySort {
                min_items,
                max_items,
                ..
            } => ("items", min_items, max_items),
        }
    }

    /// Checks the sizes. Errors: zero bits, an empty or reversed range.
    pub fn validate(&self) -> Result<()> {
        if self.bits() == 0 {
            return Err(Error::ZeroSize { what: "bits" });
        }
        let ranges = match *self {
            Self::Copy { .. } => vec![self.size_range()],
            Self::RepeatCopy {
                min_repeats,
                max_repeats,
                count_scale,
                ..
            } => vec![
                self.size_range(),
                ("repeats", min_repeats, max_repeats),
                ("count scale", count_scale, count_scale),
            ],
            Self::AssociativeRecall { item_len, .. } => {
                vec![("item length", item_len, item_len), self.size_range()]
            }
            Self::PrioritySort { .. } => vec![self.size_range()],
        };
        for (what, lo, hi) in ranges {
            if lo == 0 || lo > hi || hi > 100_000 {
                return Err(Error::Config(format!(
                    "{what} range {lo}..={hi} must be non-empty, start at 1 or more and end at 100000 or less"
                )));
            }
        }
        if let Self::AssociativeRecall { min_items, .. } = *self
            && min_items < 2
        {
            return Err(Error::Config(format!(
                "associative recall needs at least 2 items, got {min_items}"
            )));
        }
        if let Self::PrioritySort {
            min_items, dropped, ..
        } = *self
            && min_items <= dropped
        {
            return Err(Error::Config(format!(
                "priority sort outputs all but the {dropped} lowest of its items: it needs more than {dropped} items, got {min_items}"
            )));
        }
        Ok(())
    }

    /// The training size drawn for a batch: a length (copy, repeat copy) or
    /// an item count (recall, priority sort), uniform in the task's range.
    pub fn draw_size(&self, rng: &mut SplitMix64) -> usize {
        let (_, lo, hi) = self.size_range();
        lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// A batch of `batch` rows with the given size (length, or item count
    /// for recall and priority sort; repeat copy draws each row's repeat
    /// count), into `out` (buffers reused). Errors: a zero size or batch, a
    /// priority sort of no more items than it drops.
    pub fn generate(
        &self,
        rng: &mut SplitMix64,
        batch: usize,
        size: usize,
        out: &mut TaskBatch,
    ) -> Result<()> {
        check_nonzero(&[("batch", batch), ("sequence length", size)])?;
        let (i, o) = (self.input_size(), self.output_size());
        let bit = |rng: &mut SplitMix64| (rng.next_u64() >> 63) as f32;
        let repeats: Vec<usize> = match *self {
            Self::RepeatCopy {
                min_repeats,
                max_repeats,
                ..
            } => (0..batch)
                .map(|_| {
                    min_repeats + (rng.next_u64() % (max_repeats - min_repeats + 1) as u64) as usize
                })
                .collect(),
            _ => Vec::new(),
        };
        // Sizes come from the user's task and batch: checked, and the
        // buffers allocated fallibly.
        let t = match *self {
            Self::Copy { .. } => size.checked_mul(2).and_then(|n| n.checked_add(1)),
            Self::RepeatCopy { .. } => repeats
                .iter()
                .copied()
                .max()
                .unwrap_or(0)
                .checked_mul(size)
                .and_then(|n| n.checked_add(size)?.checked_add(3)),
            Self::AssociativeRecall { item_len, .. } => size
                .checked_add(2)
                .and_then(|n| n.checked_mul(item_len.checked_add(1)?)),
            Self::PrioritySort { dropped, .. } => {
                if size <= dropped {
                    return Err(Error::Config(format!(
                        "priority sort of {size} items: it drops the {dropped} lowest, so it needs more"
                    )));
                }
                size.checked_mul(2).map(|n| n + 1 - dropped)
            }
        }
        .ok_or_else(|| alloc::overflow("task sequence length"))?;
        let what = "task batch";
        out.seq_len = t;
        out.batch = batch;
        out.x.clear();
        alloc::resize(&mut out.x, alloc::product(&[t, batch, i], what)?, what)?;
        out.target.clear();
        alloc::resize(&mut out.target, alloc::product(&[t, batch, o], what)?, what)?;
        out.mask.clear();
        alloc::resize(&mut out.mask, alloc::product(&[t, batch], what)?, what)?;
        let xi = |step: usize, row: usize, ch: usize| (step * batch + row) * i + ch;
        let ti = |step: usize, row: usize, ch: usize| (step * batch + row) * o + ch;
        match *self {
            Self::Copy { bits, .. } => {
                for row in 0..batch {
                    for step in 0..size {
                        for ch in 0..bits {
                            let v = bit(rng);
                            out.x[xi(step, row, ch)] = v;
                            out.target[ti(size + 1 + step, row, ch)] = v;
                        }
                    }
                    out.x[xi(size, row, bits)] = 1.0;
                }
                out.mask[(size + 1) * batch..].fill(1.0);
            }
            Self::RepeatCopy {
                bits, count_scale, ..
            } => {
                for (row, &n) in repeats.iter().enumerate() {
                    for step in 0..size {
                        for ch in 0..bits {
                            let v = bit(rng);
                            out.x[xi(step, row, ch)] = v;
                            for k in 0..n {
                                out.target[ti(size + 2 + k * size + step, row, ch)] = v;
                            }
                        }
                    }
                    out.x[xi(size, row, bits)] = 1.0;
                    out.x[xi(size + 1, row, bits + 1)] = n as f32 / count_scale as f32;
                    let end = size + 2 + n * size;
                    out.target[ti(end, row, bits)] = 1.0;
                    for step in size + 2..=end {
                        out.mask[step * batch + row] = 1.0;
                    }
                }
            }
            Self::AssociativeRecall { bits, item_len, .. } => {
                let items = size;
                let mut values: Vec<f32> =
                    alloc::zeros(alloc::product(&[items, item_len, bits], what)?, what)?;
                for row in 0..batch {
                    values.iter_mut().for_each(|v| *v = bit(rng));
                    for k in 0..items {
                        let start = k * (item_len + 1);
                        out.x[xi(start, row, bits)] = 1.0;
                        for s in 0..item_len {
                            for ch in 0..bits {
                                out.x[xi(start + 1 + s, row, ch)] =
                                    values[(k * item_len + s) * bits + ch];
                            }
                        }
                    }
                    let query = (rng.next_u64() % (items - 1) as u64) as usize;
                    let q0 = items * (item_len + 1);
                    out.x[xi(q0, row, bits + 1)] = 1.0;
                    for s in 0..item_len {
                        for ch in 0..bits {
                            out.x[xi(q0 + 1 + s, row, ch)] =
                                values[(query * item_len + s) * bits + ch];
                            out.target[ti(q0 + 2 + item_len + s, row, ch)] =
                                values[((query + 1) * item_len + s) * bits + ch];
                        }
                    }
                    out.x[xi(q0 + 1 + item_len, row, bits + 1)] = 1.0;
                }
                out.mask[(t - item_len) * batch..].fill(1.0);
            }
            Self::PrioritySort { bits, dropped, .. } => {
                let items = size;
                let mut order: Vec<(f32, usize)> = Vec::new();
                alloc::reserve(&mut order, items, what)?;
                for row in 0..batch {
                    order.clear();
                    for k in 0..items {
                        for ch in 0..bits {
                            out.x[xi(k, row, ch)] = bit(rng);
                        }
                        let priority = rng.next_f32() * 2.0 - 1.0;
                        out.x[xi(k, row, bits)] = priority;
                        order.push((priority, k));
                    }
                    out.x[xi(items, row, bits + 1)] = 1.0;
                    // Highest priority first; ties (measure zero) by position.
                    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for (j, &(_, k)) in order[..items - dropped].iter().enumerate() {
                        for ch in 0..bits {
                            out.target[ti(items + 1 + j, row, ch)] = out.x[xi(k, row, ch)];
                        }
                    }
                }
                out.mask[(items + 1) * batch..].fill(1.0);
            }
        }
        Ok(())
    }
}

/// The score of outputs against a batch (or a sum over batches).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Sequences scored.
    pub sequences: usize,
    /// Binary cross-entropy summed over the scored bits.
    pub loss_sum: f64,
    /// Thresholded bit errors (logit > 0 means 1).
    pub errors: usize,
    /// Bits scored.
    pub bits: usize,
}

impl Score {
    /// Mean binary cross-entropy per scored bit.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.bits.max(1) as f64
    }

    /// Bit errors per sequence.
    pub fn errors_per_sequence(&self) -> f64 {
        self.errors as f64 / self.sequences.max(1) as f64
    }

    /// Scored bits per sequence.
    pub fn bits_per_sequence(&self) -> f64 {
        self.bits as f64 / self.sequences.max(1) as f64
    }

    /// Adds another score.
    pub fn add(&mut self, other: &Score) {
        self.sequences += other.sequences;
        self.loss_sum += other.loss_sum;
        self.errors += other.errors;
        self.bits += other.bits;
    }
}

/// Scores logits `y` `[T, B, O]` against a batch: binary cross-entropy from
/// logits (in f64) and thresholded bit errors over the scored steps; writes
/// the gradient of the *mean* loss per scored bit into `dy` `[T, B, O]`
/// (zero on unscored steps).
///
/// Errors: lengths that disagree with the batch.
pub fn score(y: &[f32], batch: &TaskBatch, dy: &mut [f32]) -> Result<Score> {
    let rows = batch.seq_len * batch.batch;
    if y.len() != batch.target.len()
        || dy.len() != y.len()
        || rows == 0
        || y.len() % rows != 0
        || batch.mask.len() != rows
    {
        return Err(Error::shape("y", &[batch.target.len()], &[y.len()]));
    }
    let o = y.len() / rows;
    let bits = batch.mask.iter().filter(|&&m| m > 0.0).count() * o;
    let inv = 1.0 / bits.max(1) as f64;
    let (mut loss, mut errors) = (0.0f64, 0usize);
    for (k, &m) in batch.mask.iter().enumerate() {
        let range = k * o..(k + 1) * o;
        if m == 0.0 {
            dy[range].fill(0.0);
            continue;
        }
        for ((&x, &t), d) in y[range.clone()]
            .iter()
            .zip(&batch.target[range.clone()])
            .zip(&mut dy[range])
        {
            let (x, t) = (x as f64, t as f64);
            let (term_loss, derivative) = bce_term(x, t);
            loss += term_loss;
            *d = (derivative * inv) as f32;
            errors += usize::from((x > 0.0) != (t > 0.5));
        }
    }
    Ok(Score {
        sequences: batch.batch,
        loss_sum: loss,
        errors,
        bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_sort_outputs_the_highest_priorities_in_order() {
        let task = Task::PrioritySort {
            bits: 3,
            min_items: 7,
            max_items: 7,
            dropped: 2,
        };
        task.validate().unwrap();
        let (b, n, bits) = (4, 7, 3);
        let mut out = TaskBatch::default();
        task.generate(&mut SplitMix64::new(5), b, n, &mut out)
            .unwrap();
        let (i, o) = (task.input_size(), task.output_size());
        assert_eq!((i, o), (5, 3));
        assert_eq!(out.seq_len, 2 * n + 1 - 2);
        for row in 0..b {
            let x = |t: usize, ch: usize| out.x[(t * b + row) * i + ch];
            let mut items: Vec<(f32, Vec<f32>)> = (0..n)
                .map(|k| (x(k, bits), (0..bits).map(|ch| x(k, ch)).collect()))
                .collect();
            assert!(items.iter().all(|(p, _)| (-1.0..1.0).contains(p)));
            assert_eq!(x(n, bits + 1), 1.0, "the delimiter");
            items.sort_by(|a, c| c.0.total_cmp(&a.0));
            for (j, (_, v)) in items[..n - 2].iter().enumerate() {
                let t = n + 1 + j;
                let target: Vec<f32> = (0..bits)
                    .map(|ch| out.target[(t * b + row) * o + ch])
                    .collect();
                assert_eq!(&target, v, "row {row}, output {j}");
                assert_eq!(out.mask[t * b + row], 1.0);
            }
            for t in 0..=n {
                assert_eq!(out.mask[t * b + row], 0.0);
            }
        }
        // Too few items for what it drops.
        let bad = Task::PrioritySort {
            bits: 3,
            min_items: 2,
            max_items: 7,
            dropped: 2,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("more than 2 items")
        );
        assert!(
            task.generate(&mut SplitMix64::new(5), 1, 2, &mut out)
                .is_err()
        );
    }

    #[test]
    fn repeat_copy_gives_the_count_on_its_scale() {
        // 20 repeats of a machine trained on at most 10: the count reads 2.
        let task = Task::RepeatCopy {
            bits: 2,
            min_len: 3,
            max_len: 3,
            min_repeats: 20,
            max_repeats: 20,
            count_scale: 10,
        };
        task.validate().unwrap();
        let (b, len, n) = (2, 3, 20);
        let mut out = TaskBatch::default();
        task.generate(&mut SplitMix64::new(9), b, len, &mut out)
            .unwrap();
        let (i, o) = (task.input_size(), task.output_size());
        assert_eq!(out.seq_len, len + 2 + n * len + 1);
        for row in 0..b {
            assert_eq!(out.x[((len + 1) * b + row) * i + 3], 2.0);
            // The end marker after the 20th copy, on the extra channel.
            let end = len + 2 + n * len;
            assert_eq!(out.target[(end * b + row) * o + 2], 1.0);
            assert_eq!(out.target[((end - 1) * b + row) * o + 2], 0.0);
        }
        let zero = Task::RepeatCopy {
            bits: 2,
            min_len: 3,
            max_len: 3,
            min_repeats: 20,
            max_repeats: 20,
            count_scale: 0,
        };
        assert!(zero.validate().is_err());
    }
}
