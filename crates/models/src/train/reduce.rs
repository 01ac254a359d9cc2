//! The collective operations a data-parallel run needs, and how a global
//! batch is split among workers.

use std::ops::Range;

use crate::error::{Error, Result};

/// How the workers of a data-parallel run combine their buffers. Every
/// worker holds the same parameters and calls the same methods, in the
/// same order, with buffers of the same length.
pub trait AllReduce {
    /// This worker's index, `0..world_size()`.
    fn rank(&self) -> usize;

    /// The number of workers (at least 1).
    fn world_size(&self) -> usize;

    /// Replaces `buf` on every worker with the element-wise sum of every
    /// worker's `buf`, added in a fixed order for a fixed number of
    /// workers, so that every worker gets the same bits.
    fn sum(&mut self, buf: &mut [f32]) -> Result<()>;

    /// Replaces `buf` on every worker with worker 0's.
    fn broadcast(&mut self, buf: &mut [f32]) -> Result<()>;
}

/// One worker alone: the sum and the broadcast leave the buffer as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl AllReduce for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn sum(&mut self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn broadcast(&mut self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
}

/// Worker `rank`'s contiguous slice of `len` items split among `world`
/// workers: the first `len % world` workers take one item more than the
/// others (`len = 10`, 4 workers: `0..3`, `3..6`, `6..8`, `8..10`); a worker
/// beyond `len` gets an empty slice.
pub fn slice_of(len: usize, rank: usize, world: usize) -> Range<usize> {
    let world = world.max(1);
    let (base, extra) = (len / world, len % world);
    let start = rank * base + rank.min(extra);
    let size = base + usize::from(rank < extra);
    start.min(len)..(start + size).min(len)
}

/// A 64-bit checksum (FNV-1a) of `values`' bits: equal parameters on two
/// workers give equal checksums.
pub fn checksum<'a>(values: impl IntoIterator<Item = &'a [f32]>) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for part in values {
        for v in part {
            for byte in v.to_bits().to_le_bytes() {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0100_0000_01B3);
            }
        }
    }
    h
}

/// Checks that `value` is the same on every worker: worker 0's is
/// broadcast, each worker compares, and the count of differing workers is
/// summed, so every worker returns the same result. Errors: a difference
/// ([`Error::Collective`] naming `what`), the collectives' errors.
pub fn check_same(reduce: &mut dyn AllReduce, value: u64, what: &str) -> Result<()> {
    // Four 16-bit pieces: each an exact f32.
    let pieces =
        |v: u64| -> [f32; 4] { std::array::from_fn(|k| ((v >> (16 * k)) & 0xFFFF) as f32) };
    let mine = pieces(value);
    let mut first = mine;
    reduce.broadcast(&mut first)?;
    let mut differ = [f32::from(u8::from(first != mine))];
    reduce.sum(&mut differ)?;
    if differ[0] > 0.0 {
        return Err(Error::Collective(format!(
            "{what} differ between workers ({} of {} differ from worker 0)",
            differ[0],
            reduce.world_size()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_batch_in_order() {
        for len in 0..20 {
            for world in 1..6 {
                let mut next = 0;
                for rank in 0..world {
                    let s = slice_of(len, rank, world);
                    assert_eq!(s.start, next, "len {len} world {world} rank {rank}");
                    assert!(s.len() == len / world || s.len() == len / world + 1);
                    next = s.end;
                }
                assert_eq!(next, len);
            }
        }
        assert_eq!(slice_of(10, 2, 4), 6..8);
        assert_eq!(slice_of(2, 3, 4), 2..2);
    }

    #[test]
    fn checksums_see_every_bit() {
        let a = [1.0f32, 2.0, 3.0];
        let mut b = a;
        assert_eq!(checksum([&a[..]]), checksum([&b[..]]));
        b[2] = f32::from_bits(b[2].to_bits() ^ 1);
        assert_ne!(checksum([&a[..]]), checksum([&b[..]]));
        assert_ne!(checksum([&a[..2], &a[2..]]), checksum([&a[..1]]));
    }
}
