//! A team of threads walking through the steps of a recurrence together.
//!
//! Step `s` of a recurrence needs every result of step `s - 1`, so the work
//! of one step is cut in `chunks` independent pieces (e.g. blocks of hidden
//! units), and a piece of step `s` may start only when every piece of step
//! `s - 1` is done. Pieces are handed out as numbered tickets in step order;
//! whoever holds a ticket waits (spinning: the wait is a few microseconds)
//! for the previous step to complete, runs the piece and counts it done.
//!
//! This replaces a fork-join per step, whose cost (waking a parked worker,
//! ten to twenty microseconds here) is as large as the step itself on small
//! layers. It cannot deadlock: the caller takes tickets too, and every
//! ticket of a step is held by a thread that is running or about to run it;
//! helpers that start late (or never, when the pool is busy, e.g. with the
//! other direction of a bidirectional layer) only take the tickets left.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Spins before a waiting thread starts yielding its core.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// Runs `work(step, chunk)` for every `step < steps` and `chunk < chunks`,
/// on the calling thread and up to `threads - 1` helpers of the current
/// rayon pool. All chunks of step `s - 1` complete (their writes visible)
/// before any chunk of step `s` starts; chunks of one step may run at once,
/// so they must touch disjoint outputs.
pub fn run_steps(
    threads: usize,
    steps: usize,
    chunks: usize,
    work: &(dyn Fn(usize, usize) + Sync),
) {
    let total = steps * chunks;
    if threads <= 1 || chunks <= 1 {
        for k in 0..total {
            work(k / chunks, k % chunks);
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let participate = || {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= total {
                break;
            }
            let step = k / chunks;
            let before = step * chunks;
            let mut spins = 0u32;
            // Acquire: the previous step's writes (released below) are seen.
            while done.load(Ordering::Acquire) < before {
                if spins < SPINS_BEFORE_YIELD {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            work(step, k % chunks);
            done.fetch_add(1, Ordering::Release);
        }
    };
    rayon::scope(|s| {
        for _ in 1..threads.min(chunks) {
            s.spawn(|_| participate());
        }
        participate();
    });
}

/// Cuts `len` into `parts` nearly equal ranges whose inner boundaries are
/// multiples of `align` where possible; returns range `k`.
pub fn split_range(len: usize, parts: usize, align: usize, k: usize) -> std::ops::Range<usize> {
    let cut = |i: usize| {
        if i == 0 {
            return 0;
        }
        if i >= parts {
            return len;
        }
        let x = len * i / parts;
        let r = x / align * align;
        if r > 0 { r } else { x }
    };
    cut(k)..cut(k + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_piece_runs_once_and_steps_are_ordered() {
        for threads in [1, 2, 4] {
            for chunks in [1, 2, 3, 7] {
                let log = Mutex::new(Vec::new());
                run_steps(threads, 50, chunks, &|s, c| {
                    log.lock().unwrap().push((s, c))
                });
                let log = log.into_inner().unwrap();
                assert_eq!(log.len(), 50 * chunks);
                let mut seen = log.clone();
                seen.sort();
                seen.dedup();
                assert_eq!(seen.len(), 50 * chunks, "a piece ran twice");
                // The log is in completion order of the lock: no piece of
                // step s starts before all of step s-1 are logged.
                for (i, &(s, _)) in log.iter().enumerate() {
                    let earlier = log[..i].iter().filter(|&&(t, _)| t + 1 == s).count();
                    assert!(s == 0 || earlier == chunks, "step {s} started early");
                }
            }
        }
    }

    #[test]
    fn ranges_cover_and_align() {
        for len in [1, 7, 16, 64, 100, 1024] {
            for parts in [1, 2, 3, 4] {
                let rs: Vec<_> = (0..parts).map(|k| split_range(len, parts, 8, k)).collect();
                assert_eq!(rs[0].start, 0);
                assert_eq!(rs[parts - 1].end, len);
                for w in rs.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].start <= w[0].end);
                }
            }
        }
    }
}
