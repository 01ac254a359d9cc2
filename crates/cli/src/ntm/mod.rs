//! `rnn ntm <copy|repeat-copy|recall>`: trains a Neural Turing Machine
//! (docs/ntm.md) on one of the algorithmic tasks of Graves et al. 2014, with
//! a progress bar, a held-out evaluation and a checkpoint every
//! `--eval-every` sequences, then measures how it generalises to sizes it
//! was not trained on. Writes `model.safetensors` (at every evaluation),
//! `metrics.json` and `weightings.png` into the run folder.
//!
//! - `args`: the flags, their checks, the task and machine they make;
//! - `report`: descriptions, the generalisation table, metrics, the
//!   weightings plot.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recurrent::ntm::{
    Controller, MAX_HEADS, MemoryInit, Ntm, NtmConfig, NtmOptimizer, NtmTape, NtmTrainConfig,
    NtmTrainer, Progress, Task, TaskBatch, TrainPlan, TrainReport, evaluate,
};
use recurrent::rng::SplitMix64;
use serde_json::json;

use crate::dates::utc_timestamp;
use crate::output::{OutFile, check_out_dir, fresh_dir, top_created, write_all};
use crate::plot::{self, Heatmap};

mod args;
mod report;

pub use args::NtmArgs;
use args::*;
use report::*;

/// The checkpoint's file name in the run folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Seed of the held-out sets: fixed, so that runs with different `--seed`s
/// are evaluated on the same sequences.
const EVAL_SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// Sequences longer than this many steps are evaluated on at most
/// [`LONG_CAP`] sequences per size in the generalisation table (others on
/// at most [`SHORT_CAP`]): copy lengths up to 40 get 640, longer ones 128.
const LONG_STEPS: usize = 81;
/// Most held-out sequences per size of up to [`LONG_STEPS`] steps.
const SHORT_CAP: usize = 640;
/// Most held-out sequences per size of more than [`LONG_STEPS`] steps.
const LONG_CAP: usize = 128;

/// The largest size (length, repeats, items, eval size) accepted.
const MAX_SIZE: usize = 100_000;

/// Runs `rnn ntm`: checks the flags, builds or loads the machine, trains
/// (unless `--max-sequences 0`), prints the generalisation table and writes
/// the run folder.
pub fn run(a: &NtmArgs) -> Result<()> {
    check_args(a)?;
    let started = Instant::now();
    if let Some(n) = a.threads {
        recurrent::set_num_threads(n).map_err(|e| anyhow!("--threads {n}: {e}"))?;
    }
    let (ntm, bits) = make_machine(a)?;
    let task = make_task(a, bits)?;
    let eval_size = a.eval_size.unwrap_or_else(|| longest(&task));
    let max_sequences = a.max_sequences.unwrap_or(match a.task {
        TaskArg::Copy => 20_000,
        TaskArg::RepeatCopy => 60_000,
        TaskArg::Recall => 40_000,
    });
    let stop_below = if a.no_stop {
        None
    } else {
        Some(a.stop_below.unwrap_or(0.1))
    };
    let optimizer = match a.optimizer {
        NtmOptArg::Rmsprop => NtmOptimizer::RmsProp {
            lr: a.lr,
            momentum: a.momentum.unwrap_or(0.9),
            alpha: 0.95,
            eps: 1e-10,
        },
        NtmOptArg::Adam => NtmOptimizer::Adam { lr: a.lr },
    };
    let train_config = NtmTrainConfig {
        batch: a.batch,
        optimizer,
        clip_value: (a.clip_value > 0.0).then_some(a.clip_value),
        clip_norm: a.clip_norm,
        seed: a.seed,
    };
    let config = ntm.config().clone();
    let evaluate_only = max_sequences == 0;
    let out_dir = match &a.out {
        Some(p) => Some(p.clone()),
        None if evaluate_only => None,
        None => Some(fresh_dir(PathBuf::from("runs").join(format!(
            "ntm-{}-{}",
            task.name(),
            utc_timestamp()
        )))),
    };

    // What the run is.
    println!(
        "task: {}; held-out: {} sequences of {}",
        describe_task(&task),
        a.eval_sequences,
        size_label(&task, eval_size)
    );
    println!(
        "machine: {} ({})",
        describe_machine(&config),
        match &a.load {
            Some(p) => format!("loaded from {}", p.display()),
            None => format!("new, seed {}", config.seed),
        }
    );
    let opt_label = match optimizer {
        NtmOptimizer::RmsProp { lr, momentum, .. } => {
            format!("rmsprop (lr {lr:e}, momentum {momentum})")
        }
        NtmOptimizer::Adam { lr } => format!("adam (lr {lr:e})"),
    };
    let threads = recurrent::num_threads();
    let simd = recurrent::kernels::simd::detected_level();
    if evaluate_only {
        println!("evaluation only (--max-sequences 0); {threads} threads, simd {simd}");
    } else {
        println!(
            "training: {opt_label}, batch {}, gradients clamped to {}, clip norm {}, up to {max_sequences} sequences, evaluated every {}, {}; data seed {}, {threads} threads, simd {simd}",
            a.batch,
            match train_config.clip_value {
                Some(v) => format!("[-{v}, {v}]"),
                None => "off".into(),
            },
            a.clip_norm.map_or("off".into(), |v| v.to_string()),
            a.eval_every,
            match stop_below {
                Some(s) => format!("stop below {s} bit errors/seq"),
                None => "no early stop".into(),
            },
            a.seed,
        );
    }
    if let Some(d) = &out_dir {
        println!("output: {}/", d.display());
    }

    // Training (or only the held-out evaluation of a loaded machine).
    let (ntm, report) = if evaluate_only {
        let held_out = evaluate(&ntm, &task, eval_size, a.eval_sequences, EVAL_SEED)?;
        let (loss, bit_errors) = (held_out.loss(), held_out.errors_per_sequence());
        println!(
            "held-out: loss {loss:.4}, {bit_errors:.3} bit errors/seq ({} sequences of {})",
            a.eval_sequences,
            size_label(&task, eval_size)
        );
        (ntm, None)
    } else {
        let dir = out_dir.as_ref().expect("training has an output folder");
        let (ntm, report) = train(
            a,
            ntm,
            task,
            train_config.clone(),
            dir,
            max_sequences,
            eval_size,
            stop_below,
        )?;
        (ntm, Some(report))
    };

    // Convergence: the first held-out evaluation under the threshold (also
    // with --no-stop, where training goes on past it).
    let threshold = a.stop_below.unwrap_or(0.1);
    let converged_at = report.as_ref().and_then(|r| {
        r.evaluations
            .iter()
            .find(|e| e.bit_errors < threshold)
            .map(|e| e.sequences)
    });
    if let Some(r) = &report {
        let last = r.evaluations.last().map_or(f64::NAN, |e| e.bit_errors);
        match converged_at {
            Some(n) => println!(
                "converged at {n} sequences (first held-out evaluation under {threshold} \
                 bit errors/seq); last held-out: {last:.3} bit errors/seq"
            ),
            None => println!(
                "not converged within {} sequences (no held-out evaluation under \
                 {threshold}; last: {last:.3} bit errors/seq)",
                r.sequences
            ),
        }
        println!(
            "wall-clock: {:.1} s for {} sequences, {:.1} sequences/s (with the evaluations)",
            r.seconds,
            r.sequences,
            r.sequences as f64 / r.seconds.max(1e-9)
        );
    }

    let table = generalisation(&ntm, &task, a.eval_sequences)?;
    print_table(&task, &table);

    let Some(out_dir) = out_dir else {
        return Ok(());
    };
    let png = weightings_png(&ntm, &task, eval_size).context("drawing weightings.png")?;
    let (evaluations, converged_at, sequences, seconds) = match &report {
        Some(r) => (
            r.evaluations
                .iter()
                .map(|e| json!({ "sequences": e.sequences, "loss": e.loss, "bit_errors": e.bit_errors }))
                .collect(),
            converged_at,
            r.sequences,
            r.seconds,
        ),
        None => (Vec::new(), None, 0, 0.0),
    };
    let (opt_name, momentum) = match optimizer {
        NtmOptimizer::RmsProp { momentum, .. } => ("rmsprop", Some(momentum)),
        NtmOptimizer::Adam { .. } => ("adam", None),
    };
    let metrics = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "task": task.name(),
        "task_config": task_json(&task),
        "config": config_json(&config),
        "loaded_from": a.load.as_ref().map(|p| p.display().to_string()),
        "train_config": {
            "batch": a.batch,
            "optimizer": opt_name,
            "lr": a.lr,
            "momentum": momentum,
            "clip_value": train_config.clip_value,
            "clip_norm": a.clip_norm,
            "seed": a.seed,
            "max_sequences": max_sequences,
            "eval_every": a.eval_every,
            "eval_sequences": a.eval_sequences,
            "eval_size": eval_size,
            "stop_below": stop_below,
            "threads": threads,
            "simd": simd.to_string(),
        },
        "evaluations": evaluations,
        "converged_at": converged_at,
        "sequences": sequences,
        "seconds": seconds,
        "sequences_per_second": if seconds > 0.0 { sequences as f64 / seconds } else { 0.0 },
        "generalisation": table.iter().map(|r| json!({
            "size": r.size,
            "sequences": r.sequences,
            "loss": r.loss,
            "bit_errors_per_sequence": r.errors_per_sequence,
            "bits_per_sequence": r.bits_per_sequence,
            "bit_error_rate": r.rate(),
        })).collect::<Vec<_>>(),
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    let metrics = serde_json::to_string_pretty(&metrics)? + "\n";
    write_all(
        &out_dir,
        &[
            OutFile::Bytes("metrics.json", metrics.as_bytes()),
            OutFile::Bytes("weightings.png", &png),
        ],
    )
    .with_context(|| format!("writing the run folder {}", out_dir.display()))?;
    let model = if evaluate_only {
        ""
    } else {
        "model.safetensors "
    };
    println!(
        "wrote {}/: {model}metrics.json weightings.png ({:.1} s in all)",
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Trains with a progress bar, printing every evaluation and checkpointing
/// into `dir` (created here). On an error the last checkpoint is kept; a
/// folder created here with no checkpoint in it is removed again.
#[allow(clippy::too_many_arguments)]
fn train(
    a: &NtmArgs,
    ntm: Ntm,
    task: Task,
    train_config: NtmTrainConfig,
    dir: &Path,
    max_sequences: usize,
    eval_size: usize,
    stop_below: Option<f64>,
) -> Result<(Ntm, TrainReport)> {
    let mut trainer =
        NtmTrainer::new(ntm, task, train_config).map_err(|e| anyhow!("the trainer: {e}"))?;
    let plan = TrainPlan {
        max_sequences,
        eval_every: a.eval_every,
        eval_sequences: a.eval_sequences,
        eval_size,
        eval_seed: EVAL_SEED,
        stop_below,
        checkpoint: Some(dir.join(MODEL_FILE)),
    };
    let created = top_created(dir);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the folder", dir.display()))?;

    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b =
            ProgressBar::with_draw_target(Some(max_sequences as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{pos:>6}/{len} [{bar:20}] {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    };
    println!(
        "{:>10} {:>14} {:>15} {:>10}",
        "sequences", "held-out loss", "bit errors/seq", "elapsed s"
    );
    let start = Instant::now();
    // Training means since the last evaluation, per sequence.
    let (mut sum_errors, mut sum_loss, mut seen) = (0.0f64, 0.0f64, 0usize);
    let mut last_eval: Option<(usize, f64)> = None;
    let result = trainer.run(&plan, |p| match p {
        Progress::Step { sequences, stats } => {
            sum_errors += stats.bit_errors * a.batch as f64;
            sum_loss += stats.loss * a.batch as f64;
            seen += a.batch;
            bar.set_position(sequences as u64);
            let held = last_eval.map_or("-".into(), |(_, e)| format!("{e:.2}"));
            bar.set_message(format!(
                "train {:.2} bit err/seq, loss {:.3}; held-out {held}; {:.0} seq/s",
                sum_errors / seen as f64,
                sum_loss / seen as f64,
                sequences as f64 / start.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        Progress::Evaluated(e) => {
            last_eval = Some((e.sequences, e.bit_errors));
            (sum_errors, sum_loss, seen) = (0.0, 0.0, 0);
            bar.suspend(|| {
                println!(
                    "{:>10} {:>14.4} {:>15.3} {:>10.1}",
                    e.sequences,
                    e.loss,
                    e.bit_errors,
                    start.elapsed().as_secs_f64()
                );
            });
        }
    });
    bar.finish_and_clear();
    match result {
        Ok(report) => Ok((trainer.into_ntm(), report)),
        Err(e) => {
            let kept = match last_eval {
                Some((n, _)) if dir.join(MODEL_FILE).is_file() => format!(
                    "; the last checkpoint, at training sequence {n}, is kept in {}",
                    dir.join(MODEL_FILE).display()
                ),
                _ => {
                    if let Some(top) = &created {
                        let _ = std::fs::remove_dir_all(top);
                    }
                    "; no checkpoint was written".into()
                }
            };
            if matches!(e, recurrent::Error::NonFinite(_)) {
                Err(anyhow!(
                    "training diverged: {e}{kept} (try a lower --lr or a --clip-norm)"
                ))
            } else {
                Err(anyhow!("{e}{kept}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_fit_the_machine() {
        assert_eq!(bits_for(TaskArg::Copy, 9, 8), Some(8));
        assert_eq!(bits_for(TaskArg::RepeatCopy, 10, 9), Some(8));
        assert_eq!(bits_for(TaskArg::Recall, 8, 6), Some(6));
        assert_eq!(bits_for(TaskArg::Recall, 9, 8), None);
        // The sizes alone: a copy machine fits repeat-copy with a bit fewer.
        assert_eq!(bits_for(TaskArg::RepeatCopy, 9, 8), Some(7));
        assert_eq!(bits_for(TaskArg::RepeatCopy, 8, 8), None);
        assert_eq!(bits_for(TaskArg::RepeatCopy, 1, 0), None);
    }

    #[test]
    fn table_caps_follow_the_sequence_length() {
        let copy = Task::copy();
        assert_eq!(max_steps(&copy, 40), LONG_STEPS);
        assert!(max_steps(&copy, 60) > LONG_STEPS);
        assert_eq!(longest(&copy), 20);
        assert_eq!(longest(&Task::repeat_copy()), 10);
        assert_eq!(longest(&Task::associative_recall()), 6);
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(62_860), "62,860");
        assert_eq!(group_digits(100), "100");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }

    #[test]
    fn scored_bits_of_copy() {
        let ntm = Ntm::new(NtmConfig {
            controller_size: 4,
            memory_rows: 8,
            memory_width: 3,
            ..NtmConfig::copy_task(2)
        })
        .unwrap();
        let task = Task::Copy {
            bits: 2,
            min_len: 1,
            max_len: 3,
        };
        let s = score_set(&ntm, &task, 5, 70, 7).unwrap();
        assert_eq!(s.bits_per_sequence, 10.0);
        assert!(s.errors_per_sequence <= 10.0 && s.rate() <= 1.0);
    }
}
