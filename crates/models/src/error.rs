//! The error type of rnn-models: every user input that can be wrong (shapes,
//! sizes, configurations, parameter sets, files) reports here, naming the
//! tensor or file and what was expected.

use std::path::PathBuf;

/// What went wrong, and where.
///
/// Not `#[non_exhaustive]`: the C API maps every variant to a status with no
/// catch-all arm, so a new variant must be given its status there.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor has the wrong shape (or its buffer the wrong length).
    #[error("{tensor}: expected shape {expected:?}, got {actual:?}")]
    Shape {
        /// The tensor's name (`x`, `h0`, `grad_y`, `weight_ih_l0`, ...).
        tensor: String,
        /// The shape the call needs.
        expected: Vec<usize>,
        /// The shape (or `[len]` for a flat buffer) it got.
        actual: Vec<usize>,
    },
    /// A size that must be positive is zero.
    #[error("{what} must be at least 1, got 0")]
    ZeroSize {
        /// Which size (`input_size`, `seq_len`, ...).
        what: &'static str,
    },
    /// A configuration value is invalid or two values conflict.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A parameter set lacks a tensor the model needs.
    #[error("missing parameter {name}")]
    MissingParameter {
        /// The PyTorch name of the missing tensor.
        name: String,
    },
    /// A tensor was passed or is required that the model does not take (e.g.
    /// `c0` for a GRU).
    #[error("{0}")]
    Unexpected(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is malformed or truncated.
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A buffer could not be allocated (or its size overflows).
    #[error("cannot allocate {what} ({bytes} bytes)")]
    OutOfMemory {
        /// What the buffer was for.
        what: String,
        /// Its size in bytes (`usize::MAX` when the size overflows).
        bytes: usize,
    },
    /// A NaN or infinity appeared where finite numbers are required.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// A collective operation across the workers of a data-parallel run
    /// failed, or found them out of step (different parameters, options).
    #[error("{0}")]
    Collective(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(tensor: impl Into<String>, expected: &[usize], actual: &[usize]) -> Self {
        Self::Shape {
            tensor: tensor.into(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        }
    }
}

/// Checks that `data` holds exactly `product(shape)` values.
pub(crate) fn check_len(tensor: &str, data: &[f32], shape: &[usize]) -> Result<()> {
    let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match want {
        Some(n) if n == data.len() => Ok(()),
        _ => Err(Error::shape(tensor, shape, &[data.len()])),
    }
}
