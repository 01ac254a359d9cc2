//! A team of threads walking through the steps of a recurrence together.
//!
//! Step `s` of a recurrence needs every result of step `s - 1`, so the work
//! of one step is cut in `chunks` independent pieces (e.g. blocks of hidden
//! units), and a piece of step `s` may start only when every piece of step
//! `s - 1` is done. Member `m` of the team runs chunks `m`, `m + team`, ...
//! of every step, so that a chunk's weights stay in the cache of one core
//! (handing pieces out first-come, as an earlier version did, moved a
//! chunk to the other core at about every other step: `examples/profile_cell`
//! with a temporary per-thread log). Members wait for the previous step by
//! spinning (the wait is a few microseconds).
//!
//! This replaces a fork-join per step, whose cost (waking a parked worker,
//! ten to twenty microseconds here) is as large as the step itself on small
//! layers. It cannot deadlock: a piece is claimed (once, atomically) by its
//! member or, when it is still unclaimed a while after its step began, by
//! any member waiting for that step; so helpers that start late (or never,
//! when the pool is busy, e.g. with the other direction of a bidirectional
//! layer) leave their pieces to the members that are there.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins before a waiting thread starts yielding its core.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// Spins, after a step began, before a waiting member takes over a piece of
/// that step that its member has not claimed (a member that is there claims
/// its piece within a few spins; this is for one that is absent or late).
const SPINS_BEFORE_TAKEOVER: u32 = 1 << 10;

/// The shared state of one [`run_steps`] call.
struct Team<'a> {
    steps: usize,
    chunks: usize,
    members: usize,
    /// `claimed[c]`: how many steps of chunk `c` have been claimed.
    claimed: Vec<AtomicUsize>,
    /// `started[m]`: member `m` has begun its walk. The pieces of a member
    /// that has not are taken over at once (the caller does not wait for
    /// helpers that are not coming, e.g. in a bidirectional layer whose
    /// other direction keeps the pool's other thread).
    started: Vec<AtomicBool>,
    /// Pieces completed, over all steps (step `s` began when it reached
    /// `s * chunks`).
    done: AtomicUsize,
    work: &'a (dyn Fn(usize, usize) + Sync),
}

impl Team<'_> {
    /// Claims piece (`step`, `chunk`) and runs it, unless claimed already;
    /// whether it ran here.
    fn run_if_unclaimed(&self, step: usize, chunk: usize) -> bool {
        let claimed = &self.claimed[chunk];
        // The load first: a failing compare-exchange still takes the line.
        let mine = claimed.load(Ordering::Relaxed) == step
            && claimed
                .compare_exchange(step, step + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        if mine {
            // Acquire: every piece of step - 1 done, its writes seen.
            self.wait_until(step * self.chunks, None);
            (self.work)(step, chunk);
            // Release: this piece's writes, for the pieces of step + 1.
            self.done.fetch_add(1, Ordering::Release);
        }
        mine
    }

    /// Spins (then yields) until `target` pieces are done. With
    /// `takeover = Some(step)`, pieces of `step` that are unclaimed once it
    /// began are run here: at once when their member has not started, after
    /// [`SPINS_BEFORE_TAKEOVER`] spins otherwise.
    fn wait_until(&self, target: usize, takeover: Option<usize>) {
        let mut spins = 0u32;
        let mut since_begin = 0u32;
        loop {
            let done = self.done.load(Ordering::Acquire);
            if done >= target {
                return;
            }
            if let Some(step) = takeover {
                if done >= step * self.chunks {
                    since_begin += 1;
                    let patient = since_begin <= SPINS_BEFORE_TAKEOVER;
                    if !patient {
                        since_begin = 0;
                    }
                    let mut ran = false;
                    for chunk in 0..self.chunks {
                        if !patient || !self.started[chunk % self.members].load(Ordering::Relaxed) {
                            ran |= self.run_if_unclaimed(step, chunk);
                        }
                    }
                    if ran {
                        continue;
                    }
                }
            }
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Member `me`'s walk: its own chunks of every step, then the wait for
    /// the step's other pieces.
    fn walk(&self, me: usize) {
        self.started[me].store(true, Ordering::Relaxed);
        for step in 0..self.steps {
            for chunk in (me..self.chunks).step_by(self.members) {
                self.run_if_unclaimed(step, chunk);
            }
            self.wait_until((step + 1) * self.chunks, Some(step));
        }
    }
}

/// Runs `work(step, chunk)` for every `step < steps` and `chunk < chunks`,
/// on the calling thread and up to `threads - 1` helpers of the current
/// rayon pool. All chunks of step `s - 1` complete (their writes visible)
/// before any chunk of step `s` starts; chunks of one step may run at once,
/// so they must touch disjoint outputs. Each piece runs exactly once.
pub fn run_steps(
    threads: usize,
    steps: usize,
    chunks: usize,
    work: &(dyn Fn(usize, usize) + Sync),
) {
    if threads <= 1 || chunks <= 1 {
        for k in 0..steps * chunks {
            work(k / chunks, k % chunks);
        }
        return;
    }
    let members = threads.min(chunks);
    let team = Team {
        steps,
        chunks,
        members,
        claimed: (0..chunks).map(|_| AtomicUsize::new(0)).collect(),
        started: (0..members).map(|_| AtomicBool::new(false)).collect(),
        done: AtomicUsize::new(0),
        work,
    };
    let team = &team;
    rayon::scope(|s| {
        for me in 1..team.members {
            s.spawn(move |_| team.walk(me));
        }
        team.walk(0);
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

    /// In a pool of one thread the helper cannot start before the caller
    /// is done: the caller takes over the helper's pieces at every step.
    #[test]
    fn an_absent_helper_leaves_its_pieces_to_the_caller() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let log = Mutex::new(Vec::new());
        pool.install(|| {
            run_steps(2, 20, 3, &|s, c| {
                log.lock()
                    .unwrap()
                    .push((s, c, rayon::current_thread_index()))
            })
        });
        // The caller's own chunks 0 and 2, then the helper's chunk 1.
        let expected: Vec<_> = (0..20)
            .flat_map(|s| [0, 2, 1].map(move |c| (s, c, Some(0))))
            .collect();
        assert_eq!(log.into_inner().unwrap(), expected);
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
