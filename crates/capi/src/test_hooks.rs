//! Test-only entry points, compiled with the cargo feature `test-hooks` and
//! declared in the header only under `#ifdef RNN_TEST_HOOKS`. Never part of
//! a release build.

use crate::error::{Error, guard, rnn_status};

/// TESTING ONLY (feature `test-hooks`): panics inside the library, to check
/// the panic boundary. `where_ = 0`: on the calling thread; `1`: on a worker
/// thread of the library's pool. Returns `RNN_STATUS_PANIC` with a message
/// (`RNN_STATUS_INVALID_ARGUMENT` for another `where_`); the process does not
/// abort.
#[unsafe(no_mangle)]
pub extern "C" fn rnn_test_force_panic(where_: u32) -> rnn_status {
    guard("rnn_test_force_panic", || match where_ {
        0 => panic!("forced panic on the calling thread (test hook)"),
        1 => rnn_kernels::threads::install(|| -> Result<(), Error> {
            panic!("forced panic on a worker thread (test hook)")
        }),
        w => Err(Error::invalid(format!("where_ = {w}: must be 0 or 1"))),
    })
}
