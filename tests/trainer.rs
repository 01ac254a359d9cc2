//! The training loop as a library type: `Trainer` over a `WindowRegression`
//! learns a series and keeps its best epoch; data parallelism through
//! `AllReduce` follows the single-process run (workers simulated by
//! threads with a shared table, slices of equal and unequal sizes); replicas
//! that differ and workers that disagree are errors on every worker.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use recurrent::arch::{SequenceRegressor, WindowRegression};
use recurrent::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use recurrent::train::{
    AllReduce, History, Objective, SingleProcess, Trainer, TrainerConfig, check_same, slice_of,
};
use recurrent::{CellKind, Error, NetConfig};

/// A noisy sine as rows `[N, 1]` and the next value of each window of `W`.
fn series(n: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let rows: Vec<f32> = (0..n)
        .map(|k| (k as f32 * 0.31).sin() + 0.05 * ((k * 7919) % 13) as f32 / 13.0)
        .collect();
    let targets = (0..n - w).map(|k| rows[k + w]).collect();
    (rows, targets)
}

fn regressor(seed: u64) -> SequenceRegressor {
    let mut c = NetConfig::new(CellKind::Lstm, 1, 8);
    c.seed = seed;
    SequenceRegressor::new(c, 1).unwrap()
}

fn config(epochs: usize, batch: usize) -> TrainerConfig {
    TrainerConfig {
        patience: 0,
        clip: Some(1.0),
        seed: 3,
        ..TrainerConfig::new(epochs, batch)
    }
}

const W: usize = 6;

/// Fits a regressor of `seed` on the series with `reduce`; returns the
/// history and the flat parameters.
fn fit(
    reduce: &mut dyn AllReduce,
    seed: u64,
    c: TrainerConfig,
    opt: &mut dyn Optimizer,
) -> recurrent::Result<(History, Vec<f32>)> {
    let (rows, targets) = series(90, W);
    let mut model = regressor(seed);
    let n = targets.len();
    let (train, val): (Vec<usize>, Vec<usize>) = ((0..n - 20).collect(), (n - 20..n).collect());
    let mut task = WindowRegression::new(&mut model, &rows, W, &targets)?;
    let h = Trainer::new(c, reduce)?.fit(&mut task, opt, &train, &val, &mut |_| {})?;
    let params = task.params_mut().iter().flat_map(|p| p.to_vec()).collect();
    Ok((h, params))
}

#[test]
fn the_trainer_learns_and_keeps_the_best_epoch() {
    let (rows, targets) = series(120, W);
    let mut model = regressor(1);
    let n = targets.len();
    let train: Vec<usize> = (0..n - 30).collect();
    let val: Vec<usize> = (n - 30..n).collect();
    let mut task = WindowRegression::new(&mut model, &rows, W, &targets).unwrap();
    let first_val = task.loss(&val).unwrap() / val.len() as f64;
    let mut opt = Adam::new(AdamConfig::new(1e-2)).unwrap();
    let mut reports = Vec::new();
    let h = Trainer::new(config(30, 8), &mut SingleProcess)
        .unwrap()
        .fit(&mut task, &mut opt, &train, &val, &mut |r| {
            reports.push(r.clone())
        })
        .unwrap();
    assert_eq!(reports.len(), 30);
    assert_eq!(h.train_loss.len(), 30);
    assert_eq!(h.step_loss.len(), 30 * train.len().div_ceil(8));
    assert!(
        h.best_val < 0.2 * first_val,
        "{} vs {first_val}",
        h.best_val
    );
    // The model holds the best epoch's weights.
    let now = task.loss(&val).unwrap() / val.len() as f64;
    assert!(
        (now - h.best_val).abs() <= 1e-6 * h.best_val.max(1e-12),
        "{now} vs {}",
        h.best_val
    );
    let best = h.val_loss.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(best, h.best_val);
    assert_eq!(h.val_loss[h.best_epoch - 1], h.best_val);
}

#[test]
fn early_stopping_and_bad_settings() {
    let (rows, targets) = series(60, W);
    let mut model = regressor(1);
    let mut task = WindowRegression::new(&mut model, &rows, W, &targets).unwrap();
    // A learning rate of zero never improves: it stops after `patience`.
    let mut opt = Sgd::new(SgdConfig::new(0.0)).unwrap();
    let c = TrainerConfig {
        patience: 2,
        ..config(50, 8)
    };
    let h = Trainer::new(c, &mut SingleProcess)
        .unwrap()
        .fit(&mut task, &mut opt, &[0, 1, 2, 3], &[10, 11], &mut |_| {})
        .unwrap();
    assert!(h.early_stopped);
    assert_eq!(h.train_loss.len(), 3);
    assert_eq!(h.best_epoch, 1);
    for (c, what) in [
        (config(0, 8), "epochs"),
        (config(1, 0), "batch_size"),
        (
            TrainerConfig {
                clip: Some(-1.0),
                ..config(1, 8)
            },
            "clip",
        ),
    ] {
        let e = Trainer::new(c, &mut SingleProcess).err().expect(what);
        assert!(e.to_string().contains(what), "{e}");
    }
    // An example past the data is an error, not a panic.
    let e = Trainer::new(config(1, 8), &mut SingleProcess)
        .unwrap()
        .fit(&mut task, &mut opt, &[0, 1000], &[], &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("1000"), "{e}");
}

/// A barrier whose wait gives up after a minute: a worker that failed (and
/// so never arrives) fails the others instead of hanging the test.
struct Barrier {
    state: Mutex<(usize, u64)>,
    turned: Condvar,
    world: usize,
}

impl Barrier {
    fn new(world: usize) -> Self {
        Self {
            state: Mutex::new((0, 0)),
            turned: Condvar::new(),
            world,
        }
    }

    fn wait(&self) -> recurrent::Result<()> {
        let mut s = self.state.lock().unwrap();
        let generation = s.1;
        s.0 += 1;
        if s.0 == self.world {
            *s = (0, generation + 1);
            self.turned.notify_all();
            return Ok(());
        }
        let (s, timeout) = self
            .turned
            .wait_timeout_while(s, Duration::from_secs(60), |s| s.1 == generation)
            .unwrap();
        drop(s);
        if timeout.timed_out() {
            return Err(Error::Collective("a worker did not arrive".into()));
        }
        Ok(())
    }
}

/// A worker of an in-process "cluster": threads that meet at a barrier
/// and add their buffers in rank order through a shared table.
struct ThreadWorker {
    rank: usize,
    world: usize,
    table: Arc<Mutex<Vec<Vec<f32>>>>,
    barrier: Arc<Barrier>,
    /// Skip the first broadcast (a broken worker, for the replica check).
    deaf: bool,
}

impl AllReduce for ThreadWorker {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn sum(&mut self, buf: &mut [f32]) -> recurrent::Result<()> {
        self.table.lock().unwrap()[self.rank] = buf.to_vec();
        self.barrier.wait()?;
        {
            let table = self.table.lock().unwrap();
            buf.fill(0.0);
            for part in table.iter() {
                for (b, v) in buf.iter_mut().zip(part) {
                    *b += v;
                }
            }
        }
        self.barrier.wait()
    }

    fn broadcast(&mut self, buf: &mut [f32]) -> recurrent::Result<()> {
        if self.rank == 0 {
            self.table.lock().unwrap()[0] = buf.to_vec();
        }
        self.barrier.wait()?;
        if !std::mem::take(&mut self.deaf) {
            buf.copy_from_slice(&self.table.lock().unwrap()[0]);
        }
        self.barrier.wait()
    }
}

/// Runs `job(worker)` on `world` threads; returns their results by rank.
fn cluster<T: Send + 'static>(
    world: usize,
    deaf: Option<usize>,
    job: impl Fn(&mut ThreadWorker) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let table = Arc::new(Mutex::new(vec![Vec::new(); world]));
    let barrier = Arc::new(Barrier::new(world));
    let job = Arc::new(job);
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let mut w = ThreadWorker {
                rank,
                world,
                table: table.clone(),
                barrier: barrier.clone(),
                deaf: deaf == Some(rank),
            };
            let job = job.clone();
            thread::spawn(move || job(&mut w))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn workers_follow_the_single_process_run() {
    let adam = || Adam::new(AdamConfig::new(1e-2)).unwrap();
    // Batch 8 on 2 workers (4 + 4), batch 7 on 2 (4 + 3) and on 3 (3 + 2 +
    // 2): every global batch the single process's.
    for (world, batch) in [(2, 8), (2, 7), (3, 7)] {
        let (one, one_params) = fit(&mut SingleProcess, 5, config(4, batch), &mut adam()).unwrap();
        // Each worker starts from its own seed: the broadcast makes them
        // rank 0's.
        let runs = cluster(world, None, move |w| {
            let seed = 5 + w.rank as u64;
            let c = TrainerConfig {
                check_replicas: true,
                ..config(4, batch)
            };
            fit(w, seed, c, &mut adam())
        });
        let runs: Vec<(History, Vec<f32>)> = runs
            .into_iter()
            .enumerate()
            .map(|(rank, r)| {
                r.unwrap_or_else(|e| panic!("world {world} batch {batch} rank {rank}: {e}"))
            })
            .collect();
        for (rank, (h, params)) in runs.iter().enumerate() {
            assert_eq!(
                params, &runs[0].1,
                "world {world}: rank {rank} differs from rank 0"
            );
            assert_eq!(h.step_loss.len(), one.step_loss.len());
            // The first 20 steps within 1e-5 (rounding differs: sums of
            // slices against one sum), then every step within 1e-3.
            for (k, (a, b)) in h.step_loss.iter().zip(&one.step_loss).enumerate() {
                let tol = if k < 20 { 1e-5 } else { 1e-3 };
                assert!(
                    (a - b).abs() <= tol * b.abs(),
                    "world {world} batch {batch} step {k}: {a} vs {b}"
                );
            }
            assert_eq!(h.best_epoch, one.best_epoch);
        }
        let worst = runs[0]
            .1
            .iter()
            .zip(&one_params)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-4,
            "world {world} batch {batch}: parameters differ by {worst}"
        );
    }
    // Slices that are not weighted by their size would not follow it: with
    // batch 7 on 2 workers, the mean of the two slices' means differs.
    assert_eq!(slice_of(7, 0, 2).len(), 4);
    assert_eq!(slice_of(7, 1, 2).len(), 3);
}

#[test]
fn replicas_that_differ_are_an_error_on_every_worker() {
    // Worker 1 ignores the initial broadcast: its parameters stay its own.
    let results = cluster(2, Some(1), |w| {
        let seed = 5 + w.rank as u64;
        let c = TrainerConfig {
            check_replicas: true,
            ..config(3, 8)
        };
        fit(w, seed, c, &mut Adam::new(AdamConfig::new(1e-2)).unwrap()).map(|_| ())
    });
    for r in results {
        match r {
            Err(Error::Collective(m)) => assert!(m.contains("after epoch 1"), "{m}"),
            other => panic!("expected a replica error, got {other:?}"),
        }
    }
    // Values that differ between workers, compared by check_same.
    let results = cluster(3, None, |w| {
        let value = 7 + u64::from(w.rank == 2);
        check_same(w, value, "the options")
    });
    for r in results {
        let e = r.unwrap_err();
        assert!(e.to_string().contains("the options differ"), "{e}");
        assert!(e.to_string().contains("1 of 3"), "{e}");
    }
    let results = cluster(3, None, |w| check_same(w, u64::MAX - 3, "the options"));
    assert!(results.iter().all(Result::is_ok));
}
