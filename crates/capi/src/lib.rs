//! # rnn-capi
//!
//! The C ABI of librnn (`librnn.so`, `librnn.a`). This first version exports
//! only the version query; models, training and the error mechanism come
//! with the C API issue.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

/// Major version of the ABI.
pub const RNN_VERSION_MAJOR: u32 = 0;
/// Minor version of the ABI.
pub const RNN_VERSION_MINOR: u32 = 1;
/// Patch version of the ABI.
pub const RNN_VERSION_PATCH: u32 = 0;

/// The library's version as `major << 16 | minor << 8 | patch`.
///
/// Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rnn_abi_version() -> u32 {
    (RNN_VERSION_MAJOR << 16) | (RNN_VERSION_MINOR << 8) | RNN_VERSION_PATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_agrees_with_the_crate() {
        let v = rnn_abi_version();
        let crate_version = format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff);
        assert_eq!(crate_version, env!("CARGO_PKG_VERSION"));
    }
}
