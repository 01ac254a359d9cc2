//! Checked conversions of C arguments: pointers to handles, arrays, strings
//! and output buffers. Each helper checks NULL, alignment and size before it
//! makes a Rust reference; each names the argument in its error.
//!
//! The helpers are `unsafe fn`s: their callers promise what C cannot check,
//! that a non-NULL pointer points to as many live values as the documented
//! length (or to a live handle made by this library), and that output
//! buffers do not overlap inputs.

use std::ffi::{CStr, c_char};
use std::path::PathBuf;

use crate::error::{Error, Result, rnn_status};

/// The largest element count whose byte size fits in `isize` (a Rust slice's
/// limit).
fn check_len<T>(len: usize, name: &str) -> Result<()> {
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::invalid(format!("{name}: length {len} is too large")));
    }
    Ok(())
}

pub(crate) fn check_aligned<T>(p: *const T, name: &str) -> Result<()> {
    if !p.is_aligned() {
        return Err(Error::invalid(format!(
            "{name}: pointer {p:p} is not aligned for its element type ({} bytes)",
            align_of::<T>()
        )));
    }
    Ok(())
}

/// `a * b * ...` of sizes a caller passed, or `RNN_STATUS_INVALID_ARGUMENT`
/// naming `what` when it overflows (no buffer can have that length; a size
/// to allocate goes through `rnn_models::alloc`, whose overflow is
/// OUT_OF_MEMORY).
pub(crate) fn product(dims: &[usize], what: &str) -> Result<usize> {
    rnn_models::alloc::product(dims, what)
        .map_err(|_| Error::invalid(format!("{what}: size {dims:?} overflows")))
}

/// A shared reference to a handle.
///
/// # Safety
/// `p` is NULL or points to a live `T` that nothing mutates during `'a`.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL and aligned; live and unaliased by the caller's promise.
    Ok(unsafe { &*p })
}

/// An exclusive reference to a handle.
///
/// # Safety
/// `p` is NULL or points to a live `T` that nothing else accesses during `'a`.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL and aligned; live and exclusive by the caller's promise.
    Ok(unsafe { &mut *p })
}

/// A required input array of `len` elements.
///
/// # Safety
/// `p` is NULL or points to `len` readable `T`s, unmodified during `'a`.
pub(crate) unsafe fn input<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    // SAFETY: the same promise, forwarded.
    unsafe { optional_input(p, len, name) }.map(|s| s.unwrap_or(&[]))
}

/// An input array of `len` elements that may be NULL (`None`).
///
/// # Safety
/// As [`input`].
pub(crate) unsafe fn optional_input<'a, T>(
    p: *const T,
    len: usize,
    name: &str,
) -> Result<Option<&'a [T]>> {
    if p.is_null() {
        return Ok(None);
    }
    check_aligned(p, name)?;
    check_len::<T>(len, name)?;
    // SAFETY: non-NULL, aligned, `len` fits a slice; `len` readable elements
    // by the caller's promise.
    Ok(Some(unsafe { std::slice::from_raw_parts(p, len) }))
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string, unmodified during `'a`.
pub(crate) unsafe fn string<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    // SAFETY: non-NULL; NUL-terminated by the caller's promise.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| Error::invalid(format!("{name}: not valid UTF-8")))
}

/// A file path (any bytes on Unix).
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn path(p: *const c_char, name: &str) -> Result<PathBuf> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    // SAFETY: non-NULL; NUL-terminated by the caller's promise.
    let s = unsafe { CStr::from_ptr(p) };
    if s.is_empty() {
        return Err(Error::new(rnn_status::Io, format!("{name}: empty path")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        s.to_str()
            .map(PathBuf::from)
            .map_err(|_| Error::invalid(format!("{name}: not valid UTF-8")))
    }
}

/// A caller's output buffer, checked before any work and written after.
pub(crate) struct OutBuf<T> {
    ptr: *mut T,
    need: usize,
    name: &'static str,
}

impl<T: Copy> OutBuf<T> {
    /// A required buffer of capacity `cap` that must hold `need` elements.
    ///
    /// # Safety
    /// `p` is NULL or points to `cap` writable `T`s that stay valid, and
    /// are not read or written by anyone else, until [`OutBuf::write`].
    pub unsafe fn new(p: *mut T, cap: usize, need: usize, name: &'static str) -> Result<Self> {
        // SAFETY: the same promise, forwarded.
        unsafe { Self::optional(p, cap, need, name) }?.ok_or_else(|| Error::null(name))
    }

    /// A buffer that may be NULL (not wanted: `None`).
    ///
    /// # Safety
    /// As [`OutBuf::new`].
    pub unsafe fn optional(
        p: *mut T,
        cap: usize,
        need: usize,
        name: &'static str,
    ) -> Result<Option<Self>> {
        if p.is_null() {
            return Ok(None);
        }
        check_aligned(p, name)?;
        check_len::<T>(need, name)?;
        if cap < need {
            return Err(Error::new(
                rnn_status::BufferTooSmall,
                format!("{name}: needs {need} elements, got a buffer of {cap}"),
            ));
        }
        Ok(Some(Self { ptr: p, need, name }))
    }

    /// Copies `src` (exactly the `need` elements checked at creation) into
    /// the buffer.
    pub fn write(self, src: &[T]) {
        assert_eq!(
            src.len(),
            self.need,
            "{}: result length differs from the checked size",
            self.name
        );
        // SAFETY: `ptr` is non-NULL and aligned, and the caller of `new`
        // promised `cap >= need` writable elements, exclusive to us.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.ptr, self.need) };
        dst.copy_from_slice(src);
    }
}

/// Writes `value` through a required out-pointer.
///
/// # Safety
/// `p` is NULL or points to a writable `T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, value: T, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL, aligned, writable by the caller's promise.
    unsafe { p.write(value) };
    Ok(())
}

/// Checks an out-pointer (NULL, alignment) without writing through it;
/// returns it to be written once the call has succeeded.
pub(crate) fn check_out<T>(p: *mut T, name: &str) -> Result<*mut T> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    check_aligned(p, name)?;
    Ok(p)
}

/// Checks a required out-pointer and sets it to `init` (NULL for handles)
/// so that a failed call leaves a defined value; returns it to be written on
/// success.
///
/// # Safety
/// As [`write_out`].
pub(crate) unsafe fn out_ptr<T>(p: *mut T, init: T, name: &str) -> Result<*mut T> {
    // SAFETY: the same promise, forwarded.
    unsafe { write_out(p, init, name) }?;
    Ok(p)
}

/// A 0/1 flag from C.
pub(crate) fn flag(v: u32, name: &str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::invalid(format!("{name} = {v}: must be 0 or 1"))),
    }
}

/// Drops a handle made by `Box::into_raw` in this library; NULL is a no-op.
///
/// # Safety
/// `p` is NULL or a handle made by `Box::into_raw` in this library, not yet
/// freed and not in use by another thread.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: by this function's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}
