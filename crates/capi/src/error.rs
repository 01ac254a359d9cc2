//! The one error mechanism of the C ABI: a status code returned by every
//! fallible call, a thread-local message describing the last call's outcome,
//! and the panic boundary every entry point runs behind.
//!
//! After rustls-ffi's `error.rs` and `panic.rs`: each entry point is
//! `guard("rnn_xxx", || { ... })`; the closure returns `Result<(), Error>`,
//! and the guard turns an error or a caught panic into a status and a
//! message. Since Rust 1.81 a panic that reaches an `extern "C"` function
//! aborts the process, so no entry point may skip the guard.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The outcome of a call. Values are fixed: never reordered, new ones only
/// appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rnn_status {
    /// Success.
    Ok = 0,
    /// A pointer argument that may not be NULL was NULL.
    NullPointer = 1,
    /// An argument is out of range or inconsistent with the others (a zero
    /// size, an unknown enum value or parameter name, a misaligned buffer, a
    /// handle used with the wrong model, a call out of order).
    InvalidArgument = 2,
    /// An input array has the wrong number of elements, or a file's tensor
    /// has the wrong shape.
    ShapeMismatch = 3,
    /// An output buffer is shorter than the result; nothing was written.
    BufferTooSmall = 4,
    /// A file could not be read or written, or is not a valid model file.
    Io = 5,
    /// A NaN or infinity appeared (loss or gradients); nothing was updated.
    Numerical = 6,
    /// The library panicked (a bug); the message says where. The handles
    /// involved should be freed, not used further.
    Panic = 7,
    /// A buffer could not be allocated: a size from the caller or from a file
    /// is larger than the memory the process can get (or overflows). Nothing
    /// was changed; the message names the buffer and its size. Since 0.2.
    OutOfMemory = 8,
    /// The trainer's all-reduce callback reported a failure (nonzero), or
    /// the workers of a data-parallel run are out of step: the parameters
    /// were not updated. Since 0.4.
    Collective = 9,
}

impl rnn_status {
    /// The status from its integer value, if it is one.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::NullPointer,
            2 => Self::InvalidArgument,
            3 => Self::ShapeMismatch,
            4 => Self::BufferTooSmall,
            5 => Self::Io,
            6 => Self::Numerical,
            7 => Self::Panic,
            8 => Self::OutOfMemory,
            9 => Self::Collective,
            _ => return None,
        })
    }

    fn description(self) -> &'static std::ffi::CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullPointer => c"null pointer",
            Self::InvalidArgument => c"invalid argument",
            Self::ShapeMismatch => c"shape mismatch",
            Self::BufferTooSmall => c"buffer too small",
            Self::Io => c"I/O or file format error",
            Self::Numerical => c"non-finite value",
            Self::Panic => c"internal panic",
            Self::OutOfMemory => c"out of memory",
            Self::Collective => c"all-reduce failed or workers out of step",
        }
    }
}

/// An error on its way out through the C boundary: a status and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Error {
    pub status: rnn_status,
    pub msg: String,
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: rnn_status, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(rnn_status::InvalidArgument, msg)
    }
    pub fn shape(msg: impl Into<String>) -> Self {
        Self::new(rnn_status::ShapeMismatch, msg)
    }
    pub fn null(arg: &str) -> Self {
        Self::new(rnn_status::NullPointer, format!("argument `{arg}` is NULL"))
    }
}

impl From<rnn_kernels::threads::ThreadsError> for Error {
    fn from(e: rnn_kernels::threads::ThreadsError) -> Self {
        use rnn_kernels::threads::ThreadsError as E;
        let status = match &e {
            // A count the library refuses, or the OS refused to start the
            // threads (documented as INVALID_ARGUMENT since 0.1).
            E::Zero | E::TooMany(_) | E::Spawn(_) => rnn_status::InvalidArgument,
        };
        Self::new(status, e.to_string())
    }
}

impl From<rnn_models::Error> for Error {
    fn from(e: rnn_models::Error) -> Self {
        use rnn_models::Error as E;
        // Every variant is named, no catch-all arm (after rustls-ffi's
        // error.rs): a variant added to rnn-models fails to compile here
        // until it is given its status.
        let status = match &e {
            E::Shape { .. } => rnn_status::ShapeMismatch,
            E::ZeroSize { .. } | E::Config(_) | E::MissingParameter { .. } | E::Unexpected(_) => {
                rnn_status::InvalidArgument
            }
            // Reading a file into a buffer of its size can fail for memory
            // (`std::fs::read` reserves fallibly): that is OUT_OF_MEMORY.
            E::Io { source, .. } if source.kind() == std::io::ErrorKind::OutOfMemory => {
                rnn_status::OutOfMemory
            }
            E::Io { .. } | E::Format { .. } => rnn_status::Io,
            E::OutOfMemory { .. } => rnn_status::OutOfMemory,
            E::NonFinite(_) => rnn_status::Numerical,
            E::Collective(_) => rnn_status::Collective,
        };
        Self::new(status, e.to_string())
    }
}

thread_local! {
    /// The calling thread's last message; empty after a successful call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn empty() -> CString {
    CString::default()
}

fn set_last_error(msg: &str) {
    // Interior NULs would truncate the C string: replace them.
    let bytes: Vec<u8> = msg.bytes().map(|b| if b == 0 { b'?' } else { b }).collect();
    let c = CString::new(bytes).unwrap_or_else(|_| empty());
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = c;
        }
    });
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut()
            && !slot.as_bytes().is_empty()
        {
            *slot = empty();
        }
    });
}

/// The text of a caught panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Runs an entry point's body behind the panic boundary: `Ok` clears the
/// thread's last error message, an error or a panic sets it (prefixed with
/// the function's name) and returns the status.
pub(crate) fn guard(func: &str, body: impl FnOnce() -> Result<()>) -> rnn_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_last_error();
            rnn_status::Ok
        }
        Ok(Err(e)) => {
            set_last_error(&format!("{func}: {}", e.msg));
            e.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "{func}: internal panic: {}",
                panic_message(payload.as_ref())
            ));
            rnn_status::Panic
        }
    }
}

/// The panic boundary for entry points that return a value instead of a
/// status (and cannot fail): a panic gives `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A static, NUL-terminated description of `status`, e.g. `"buffer too
/// small"`; `"unknown status"` for a value that is not an `rnn_status`.
///
/// Thread-safe; never returns NULL; the string is never freed.
#[unsafe(no_mangle)]
pub extern "C" fn rnn_status_string(status: u32) -> *const c_char {
    guard_value(c"unknown status".as_ptr(), || {
        rnn_status::from_u32(status)
            .map_or(c"unknown status", rnn_status::description)
            .as_ptr()
    })
}

/// The message of the last failed call on the calling thread, naming the
/// function, the argument and what was wrong (e.g. `"rnn_model_forward: y:
/// needs 40 elements, got a buffer of 39"`); the empty string after a
/// successful call.
///
/// The message is thread-local: each thread sees its own calls' outcome.
/// Never returns NULL. The string belongs to the library and stays valid
/// until the next library call on the same thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn rnn_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|cell| cell.try_borrow().map(|s| s.as_ptr()).ok())
            .ok()
            .flatten()
            .unwrap_or(c"".as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnn_models::Error as E;

    #[test]
    fn every_models_error_maps_to_its_status() {
        let cases = [
            (
                E::Shape {
                    tensor: "x".into(),
                    expected: vec![2],
                    actual: vec![3],
                },
                rnn_status::ShapeMismatch,
            ),
            (E::ZeroSize { what: "batch" }, rnn_status::InvalidArgument),
            (E::Config("c".into()), rnn_status::InvalidArgument),
            (
                E::MissingParameter { name: "w".into() },
                rnn_status::InvalidArgument,
            ),
            (E::Unexpected("u".into()), rnn_status::InvalidArgument),
            (
                E::Io {
                    path: "f".into(),
                    source: std::io::Error::other("e"),
                },
                rnn_status::Io,
            ),
            (
                E::Format {
                    path: "f".into(),
                    msg: "m".into(),
                },
                rnn_status::Io,
            ),
            (
                E::OutOfMemory {
                    what: "buffer".into(),
                    bytes: 1 << 50,
                },
                rnn_status::OutOfMemory,
            ),
            (E::NonFinite("loss".into()), rnn_status::Numerical),
            (E::Collective("ranks differ".into()), rnn_status::Collective),
            (
                E::Io {
                    path: "f".into(),
                    source: std::io::ErrorKind::OutOfMemory.into(),
                },
                rnn_status::OutOfMemory,
            ),
        ];
        for (e, status) in cases {
            let msg = e.to_string();
            let c = Error::from(e);
            assert_eq!(c.status, status, "{msg}");
            assert_eq!(c.msg, msg);
        }
        // A size that overflows is an OUT_OF_MEMORY too.
        let e = Error::from(rnn_models::alloc::product(&[usize::MAX, 2], "y").unwrap_err());
        assert_eq!(e.status, rnn_status::OutOfMemory);
    }

    #[test]
    fn thread_errors_are_invalid_arguments() {
        use rnn_kernels::threads::ThreadsError as T;
        for e in [T::Zero, T::TooMany(1025), T::Spawn("EAGAIN".into())] {
            assert_eq!(Error::from(e).status, rnn_status::InvalidArgument);
        }
    }

    #[test]
    fn statuses_round_trip_and_have_distinct_descriptions() {
        let all: Vec<rnn_status> = (0..).map_while(rnn_status::from_u32).collect();
        assert_eq!(all.len(), 10);
        for (i, s) in all.iter().enumerate() {
            assert_eq!(*s as usize, i);
            for t in &all[..i] {
                assert_ne!(s.description(), t.description());
            }
        }
    }
}
