//! Fallible sizing and allocation: every buffer whose size comes from a
//! caller or a file is sized with checked arithmetic ([`product`]) and
//! allocated with a fallible reservation ([`zeros`], [`resize`],
//! [`copy_of`]), so that a size that overflows or cannot be held is an
//! [`Error::OutOfMemory`], never a panic or an abort of the host process.

use crate::error::{Error, Result};

/// The product of `dims`, or [`Error::OutOfMemory`] naming `what` when it
/// overflows `usize`.
pub fn product(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| overflow(what))
}

/// The error for a size of `what` that overflows `usize`.
pub fn overflow(what: &str) -> Error {
    Error::OutOfMemory {
        what: what.to_string(),
        bytes: usize::MAX,
    }
}

/// Reserves room for `additional` more elements of `v`, or
/// [`Error::OutOfMemory`] naming `what`.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    v.try_reserve_exact(additional)
        .map_err(|_| Error::OutOfMemory {
            what: what.to_string(),
            bytes: v
                .len()
                .saturating_add(additional)
                .saturating_mul(std::mem::size_of::<T>()),
        })
}

/// Sets `v`'s length to `n`, new elements `T::default()`; grows with a
/// fallible reservation (never shrinks the allocation).
pub fn resize<T: Clone + Default>(v: &mut Vec<T>, n: usize, what: &str) -> Result<()> {
    if n > v.len() {
        reserve(v, n - v.len(), what)?;
    }
    v.resize(n, T::default());
    Ok(())
}

/// `n` zeros (`T::default()`), allocated fallibly.
pub fn zeros<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    resize(&mut v, n, what)?;
    Ok(v)
}

/// A copy of `src`, allocated fallibly.
pub fn copy_of<T: Clone>(src: &[T], what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, src.len(), what)?;
    v.extend_from_slice(src);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_and_impossible_sizes_are_errors() {
        assert!(matches!(
            product(&[usize::MAX, 2], "x"),
            Err(Error::OutOfMemory {
                bytes: usize::MAX,
                ..
            })
        ));
        assert_eq!(product(&[3, 4, 5], "x").unwrap(), 60);
        assert_eq!(product(&[], "x").unwrap(), 1);
        // More than the address space: refused by the reservation itself.
        assert!(matches!(
            zeros::<f32>(usize::MAX / 4, "huge"),
            Err(Error::OutOfMemory { .. })
        ));
        let mut v = vec![1.0f32; 3];
        resize(&mut v, 5, "v").unwrap();
        assert_eq!(v, [1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(copy_of(&v[..2], "c").unwrap(), [1.0, 1.0]);
    }
}
