//! What an NTM needs in memory, from its sizes alone, before anything is
//! allocated: the parameters, the tape of one forward over `T` steps and `B`
//! batch rows (what [`Ntm::forward_train`](super::Ntm::forward_train)
//! allocates), backward's scratch, and a training step's extra buffers.
//!
//! Every figure is in bytes, computed with checked arithmetic: `None` when
//! it overflows `u64` (a size that can never be held). They count the large
//! buffers only (each `f32`), not the small per-call temporaries, so a caller
//! that refuses a configuration whose figure exceeds the memory available
//! should leave a margin.

use rnn_kernels::packed::packed_len;

use super::config::{Controller, NtmConfig};
use super::model::MEMORY_CHECKPOINT;

const F32: u64 = 4;

/// The product of `dims` as `u64`, `None` on overflow.
fn product(dims: &[usize]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
}

/// The sum of the products of each of `shapes`, in bytes of `f32`.
fn floats(shapes: &[&[usize]]) -> Option<u64> {
    shapes
        .iter()
        .try_fold(0u64, |acc, s| acc.checked_add(product(s)?))?
        .checked_mul(F32)
}

/// The sizes of the buffers, checked (`u64` arithmetic on `usize` sizes).
struct Dims {
    i: usize,
    o: usize,
    c: usize,
    n: usize,
    m: usize,
    heads: usize,
    lstm: bool,
    /// Gate width `4C` or `C`.
    g: usize,
    /// Head parameters per step.
    p: usize,
    /// State row `C + R*M`.
    z: usize,
    /// Saved values per head `4N + K`.
    save: usize,
    /// Erase and add vectors of the write heads, `2WM`.
    wm2: usize,
    /// The per-step weights packed once per call (`rnn_kernels::packed`):
    /// `W_hh` (LSTM), the reads' columns of the input weight, `W_heads`,
    /// each padded to 16 output columns; the same sizes transposed for the
    /// backward.
    packed: u64,
    packed_t: u64,
}

impl Dims {
    fn new(c: &NtmConfig) -> Option<Self> {
        let lstm = c.controller == Controller::Lstm;
        let k = c.shift_range.checked_mul(2)?.checked_add(1)?;
        let m = c.memory_width;
        let read_chunk = m.checked_add(k)?.checked_add(3)?;
        let write_chunk = m.checked_mul(3)?.checked_add(k)?.checked_add(3)?;
        let p = c
            .read_heads
            .checked_mul(read_chunk)?
            .checked_add(c.write_heads.checked_mul(write_chunk)?)?;
        let (g, rm) = (
            c.controller_size.checked_mul(if lstm { 4 } else { 1 })?,
            c.read_heads.checked_mul(m)?,
        );
        let panels = |n: usize, depth: usize| u64::try_from(packed_len(n, depth)?).ok();
        let hh = if lstm { c.controller_size } else { 0 };
        let packed = panels(g, hh)?
            .checked_add(panels(g, rm)?)?
            .checked_add(panels(p, c.controller_size)?)?;
        let packed_t = panels(c.controller_size, p)?
            .checked_add(panels(hh, g)?)?
            .checked_add(panels(rm, g)?)?;
        Some(Self {
            packed,
            packed_t,
            i: c.input_size,
            o: c.output_size,
            c: c.controller_size,
            n: c.memory_rows,
            m,
            heads: c.read_heads.checked_add(c.write_heads)?,
            lstm,
            g,
            p,
            z: c.controller_size
                .checked_add(c.read_heads.checked_mul(m)?)?,
            save: c.memory_rows.checked_mul(4)?.checked_add(k)?,
            wm2: c.write_heads.checked_mul(m)?.checked_mul(2)?,
        })
    }
}

/// Bytes of the parameters (one copy).
pub fn params_bytes(config: &NtmConfig) -> Option<u64> {
    config
        .layout()
        .iter()
        .try_fold(0u64, |acc, (_, shape)| acc.checked_add(product(shape)?))?
        .checked_mul(F32)
}

/// Bytes of the tape of one forward over `seq_len` steps and `batch` rows
/// (also what [`evaluate`](super::evaluate) holds per batch of up to 64).
pub fn tape_bytes(config: &NtmConfig, seq_len: usize, batch: usize) -> Option<u64> {
    let d = Dims::new(config)?;
    let (t, b) = (seq_len, batch);
    let t1 = t.checked_add(1)?;
    floats(&[
        &[t, b, d.i],
        &[t1, b, d.z],
        &[if d.lstm { t1 } else { 0 }, b, d.c],
        &[t, b, d.g],
        &[t, b, d.p],
        &[2 + t.div_ceil(MEMORY_CHECKPOINT), b, d.n, d.m],
        &[t1, b, d.heads, d.n],
        &[t, b, d.heads, d.save],
        &[t, b, d.n],
        &[t, b, d.wm2.max(1)],
        &[t, b, d.o],
        &[b, d.c],
    ])?
    .checked_add(d.packed.checked_mul(F32)?)
}

/// Bytes of backward's scratch for a tape of `seq_len` steps and `batch`
/// rows.
pub fn backward_bytes(config: &NtmConfig, seq_len: usize, batch: usize) -> Option<u64> {
    let d = Dims::new(config)?;
    let (t, b) = (seq_len, batch);
    let t1 = t.checked_add(1)?;
    // `3N + K + 2WM`: the save of one head less one `[N]`, and the erase
    // and add vectors.
    let rows = (d.save - d.n).checked_add(d.wm2)?;
    floats(&[
        &[t1, b, d.z],
        &[t, b, d.g],
        &[t, b, d.p],
        &[2, b, d.n, d.m],
        &[2, b, d.heads, d.n],
        &[2, b, d.c],
        &[b, rows],
        &[b, MEMORY_CHECKPOINT, d.n, d.m],
    ])?
    .checked_add(d.packed_t.checked_mul(F32)?)
}

/// Bytes of the task data and the logits' gradient of a batch of
/// `seq_len` steps and `batch` rows (`x`, `target`, `mask`, `dy`).
pub fn batch_bytes(config: &NtmConfig, seq_len: usize, batch: usize) -> Option<u64> {
    let d = Dims::new(config)?;
    let (t, b) = (seq_len, batch);
    floats(&[&[t, b, d.i], &[t, b, d.o], &[t, b], &[t, b, d.o]])
}

/// Bytes a trainer holds for a machine besides it and its buffers: the
/// gradients, two optimizer states and a backup of the parameters.
pub fn trainer_bytes(config: &NtmConfig) -> Option<u64> {
    params_bytes(config)?.checked_mul(4)
}

/// Bytes of one training step over `seq_len` steps and `batch` rows: the
/// tape, backward's scratch and the batch (not the machine and the
/// trainer's copies, see [`trainer_bytes`]).
pub fn train_step_bytes(config: &NtmConfig, seq_len: usize, batch: usize) -> Option<u64> {
    tape_bytes(config, seq_len, batch)?
        .checked_add(backward_bytes(config, seq_len, batch)?)?
        .checked_add(batch_bytes(config, seq_len, batch)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntm::{Ntm, NtmGradScratch, NtmTape};

    #[test]
    fn counts_what_forward_and_backward_allocate() {
        let c = NtmConfig {
            write_heads: 2,
            ..NtmConfig::copy_task(4)
        };
        let ntm = Ntm::new(c.clone()).unwrap();
        assert_eq!(
            params_bytes(&c),
            Some(4 * ntm.params().as_slice().len() as u64)
        );
        let (t, b) = (7, 3);
        let x = vec![0.5f32; t * b * c.input_size];
        let mut tape = NtmTape::new();
        ntm.forward_train(&x, t, b, &mut tape).unwrap();
        let held = [
            &tape.x,
            &tape.z,
            &tape.c,
            &tape.gates,
            &tape.p,
            &tape.mem,
            &tape.w,
            &tape.saves,
            &tape.ea,
            &tape.y,
            &tape.h,
            &tape.packed,
        ]
        .iter()
        .map(|v| 4 * v.len() as u64)
        .sum::<u64>();
        assert_eq!(tape_bytes(&c, t, b), Some(held));
        let mut grads = ntm.zero_grads();
        let mut scratch = NtmGradScratch::default();
        let dy = vec![0.1f32; t * b * c.output_size];
        ntm.backward(&tape, &dy, &mut grads, None, &mut scratch)
            .unwrap();
        let s = &scratch;
        let held = [
            &s.dz, &s.dg, &s.dp, &s.dmem[0], &s.dmem[1], &s.dw[0], &s.dw[1], &s.dc, &s.dh, &s.rows,
            &s.packed, &s.segment,
        ]
        .iter()
        .map(|v| 4 * v.len() as u64)
        .sum::<u64>();
        assert_eq!(backward_bytes(&c, t, b), Some(held));
    }

    #[test]
    fn huge_sizes_overflow_to_none_or_grow() {
        let c = NtmConfig {
            memory_width: 1_000_000,
            ..NtmConfig::copy_task(8)
        };
        // 13 memory slots (2 working, 11 checkpoints for 41 steps) of a
        // 128 x 10^6 memory, 64 rows: about 426 GB.
        assert!(tape_bytes(&c, 41, 64).unwrap() > 400_000_000_000);
        assert_eq!(tape_bytes(&c, usize::MAX, 2), None);
    }
}
