//! The library's thread pool.
//!
//! All parallel work (large GEMMs, the two directions of a bidirectional
//! layer, batch rows) runs on one rayon pool owned by the library, so a
//! program that uses rayon for its own work keeps its pool. Its size comes
//! from [`set_num_threads`], else the `RNN_NUM_THREADS` environment variable,
//! else the number of available cores. Worker threads run with flush-to-zero
//! set ([`crate::denormals`]).
//!
//! Results are deterministic for a fixed thread count. At most
//! [`MAX_THREADS`] threads: a larger count is refused (and a larger
//! `RNN_NUM_THREADS` ignored), since each one is an OS thread started at
//! once.

use std::cell::Cell;
use std::sync::{Arc, OnceLock, RwLock};

use crate::denormals::FlushDenormals;

static POOL: OnceLock<RwLock<Arc<rayon::ThreadPool>>> = OnceLock::new();

/// Multiply-adds below which a call runs on the caller's thread
/// ([`install_sized`]): handing a call to the pool and back costs about
/// 20 microseconds on a warm pool (over 100 after a pause), measured on
/// this project's 2-core VM, as long as the whole of such a call.
pub const INLINE_WORK: usize = 1 << 22;

thread_local! {
    /// Set while a call runs inline on its caller's thread: everything
    /// inside is sequential.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// The most threads the library runs: [`set_num_threads`] refuses more, and
/// a larger `RNN_NUM_THREADS` is ignored (the default applies).
pub const MAX_THREADS: usize = 1024;

/// Errors from configuring the thread pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadsError {
    /// Zero threads were asked for.
    Zero,
    /// More than [`MAX_THREADS`] threads were asked for.
    TooMany(usize),
    /// The operating system refused to start the threads.
    Spawn(String),
}

impl std::fmt::Display for ThreadsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zero => write!(f, "thread count must be at least 1"),
            Self::TooMany(n) => write!(
                f,
                "thread count {n} exceeds the limit of {MAX_THREADS} threads"
            ),
            Self::Spawn(e) => write!(f, "could not start worker threads: {e}"),
        }
    }
}

impl std::error::Error for ThreadsError {}

fn build(n: usize) -> Result<rayon::ThreadPool, ThreadsError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("rnn-worker-{i}"))
        .start_handler(|_| FlushDenormals::set_permanently())
        .build()
        .map_err(|e| ThreadsError::Spawn(e.to_string()))
}

fn default_threads() -> usize {
    std::env::var("RNN_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| (1..=MAX_THREADS).contains(&n))
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
        })
}

fn pool() -> Arc<rayon::ThreadPool> {
    let lock = POOL.get_or_init(|| {
        let pool = build(default_threads())
            .or_else(|_| build(1))
            .expect("cannot start even one worker thread");
        RwLock::new(Arc::new(pool))
    });
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Sets the number of threads used by every later library call.
///
/// Calls already running finish on the previous pool.
///
/// Errors: `n == 0`, `n > MAX_THREADS`, or the OS refused the threads; the
/// previous pool stays in use.
pub fn set_num_threads(n: usize) -> Result<(), ThreadsError> {
    if n == 0 {
        return Err(ThreadsError::Zero);
    }
    if n > MAX_THREADS {
        return Err(ThreadsError::TooMany(n));
    }
    let new = Arc::new(build(n)?);
    let lock = POOL.get_or_init(|| RwLock::new(new.clone()));
    *lock.write().unwrap_or_else(|e| e.into_inner()) = new;
    Ok(())
}

/// The number of threads library calls use.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` on the library's pool (whose workers run with flush-to-zero
/// set). A call made from one of the pool's own threads runs directly.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    if pool.current_thread_index().is_some() {
        return f();
    }
    pool.install(f)
}

/// [`install`], except that a call of less than [`INLINE_WORK`]
/// multiply-adds (`work`) made from outside the pool runs directly on the
/// caller's thread (with flush-to-zero set for its duration), sequentially:
/// [`current_threads`] is 1 and [`join`] runs its halves in turn inside it.
pub fn install_sized<R: Send>(work: usize, f: impl FnOnce() -> R + Send) -> R {
    if work >= INLINE_WORK || INLINE.get() || pool().current_thread_index().is_some() {
        return install(f);
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            INLINE.set(false);
        }
    }
    let _ftz = FlushDenormals::new();
    INLINE.set(true);
    let _reset = Reset;
    f()
}

/// The threads the current call may use: 1 inside an inline call
/// ([`install_sized`]), else the current rayon pool's.
pub fn current_threads() -> usize {
    if INLINE.get() {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// `rayon::join`, or the two halves in turn inside an inline call.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if INLINE.get() {
        (a(), b())
    } else {
        rayon::join(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_calls_run_inline_sequentially_with_flush_to_zero() {
        let caller = std::thread::current().id();
        let before = FlushDenormals::active();
        let (thread, threads, ftz, joined) = install_sized(10, || {
            let here = std::thread::current().id();
            let joined = join(
                || std::thread::current().id(),
                || std::thread::current().id(),
            );
            (here, current_threads(), FlushDenormals::active(), joined)
        });
        assert_eq!((thread, threads), (caller, 1));
        assert_eq!(joined, (caller, caller), "join runs in turn inline");
        assert!(ftz);
        assert_eq!(FlushDenormals::active(), before, "MXCSR restored");
        // A large call goes to the pool.
        let thread = install_sized(INLINE_WORK, || std::thread::current().id());
        assert_ne!(thread, caller);
    }

    #[test]
    fn workers_flush_denormals_and_zero_threads_is_refused() {
        assert!(install(FlushDenormals::active));
        assert_eq!(set_num_threads(0), Err(ThreadsError::Zero));
        assert_eq!(
            set_num_threads(usize::MAX),
            Err(ThreadsError::TooMany(usize::MAX))
        );
        assert_eq!(
            set_num_threads(MAX_THREADS + 1),
            Err(ThreadsError::TooMany(MAX_THREADS + 1))
        );
        assert!(num_threads() >= 1);
    }
}
