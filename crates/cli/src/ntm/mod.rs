//! `rnn ntm <copy|repeat-copy|recall|priority-sort>`: trains a Neural
//! Turing Machine (docs/ntm.md) on one of the algorithmic tasks of Graves et
//! al. 2014, with a progress bar, a held-out evaluation and a checkpoint every
//! `--eval-every` sequences, then measures how it generalises to sizes it
//! was not trained on. Writes `model.safetensors` (at every evaluation),
//! `metrics.json`, `learning.png` (the held-out curve), `weightings.png`
//! and `manifest.json` (last) into the run folder, staged beside its
//! destination (`crate::run_dir`).
//!
//! - `args`: the flags, their checks, the task and machine they make;
//! - `report`: descriptions, the generalisation table, metrics, the
//!   learning curve and weightings plots;
//! - `curves`: `rnn ntm-curves`, the learning curves of several runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recurrent::ntm::{
    Controller, Evaluation, MAX_HEADS, MemoryInit, Ntm, NtmConfig, NtmOptimizer, NtmTape,
    NtmTrainConfig, NtmTrainer, Progress, Selection, Task, TaskBatch, TrainPlan, TrainReport,
    evaluate,
};
use recurrent::rng::SplitMix64;
use serde_json::json;

use crate::dates::utc_timestamp;
use crate::distributed::Workers;
use crate::plot::{self, Chart, Heatmap, Line};
use crate::run_dir::{self, OutFile, Staging, check_dest, fresh_dir};
use recurrent::train::{AllReduce, slice_of};

mod args;
mod curves;
mod report;

pub use args::NtmArgs;
use args::*;
pub use curves::{CurvesArgs, run_curves};
use report::*;

/// The checkpoint's file name in the run folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Seed of the held-out sets: fixed, so that runs with different `--seed`s
/// are evaluated on the same sequences.
const EVAL_SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// Seed of the selection set (`--select-size`): fixed, and not the seed of
/// the held-out sets the generalisation table reports.
const SELECT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

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

/// The largest sequence count (`--max-sequences`, `--eval-every`)
/// accepted: 2^50, far more than a run reaches, and no overflow when the
/// trainer adds them up.
const MAX_COUNT: usize = 1 << 50;

/// Runs `rnn ntm`: checks the flags and the memory the run needs, builds
/// or loads the machine, trains (unless `--max-sequences 0`), prints the
/// generalisation table and writes the run folder (staged, see
/// `crate::run_dir`; on an error or a signal after a checkpoint, the
/// checkpoint is kept as a run marked interrupted).
pub fn run(a: &NtmArgs) -> Result<()> {
    check_args(a)?;
    let mut workers = Workers::new(a.distributed)?;
    let result = run_on(a, &mut workers);
    workers.finish(result)
}

/// The run on one worker: every rank of a distributed run trains; rank 0
/// alone prints, evaluates the generalisation and writes.
fn run_on(a: &NtmArgs, workers: &mut Workers) -> Result<()> {
    let started = Instant::now();
    let world = workers.world_size();
    workers.check_same_command()?;
    if a.batch < world {
        bail!(
            "--batch {} is smaller than the {world} ranks: each rank needs a row of every batch",
            a.batch
        );
    }
    if let Some(n) = a.threads {
        recurrent::set_num_threads(n).map_err(|e| anyhow!("--threads {n}: {e}"))?;
    }
    let (machine, bits) = make_machine(a)?;
    let task = make_task(a, bits)?;
    let eval_size = a.eval_size.unwrap_or_else(|| longest(&task));
    let max_sequences = a.max_sequences.unwrap_or(match a.task {
        TaskArg::Copy => 30_000,
        TaskArg::RepeatCopy => 60_000,
        TaskArg::Recall => 100_000,
        TaskArg::PrioritySort => 100_000,
    });
    let evaluate_only = max_sequences == 0;
    if evaluate_only && world > 1 {
        bail!("--distributed trains: --max-sequences 0 only evaluates (run it without mpirun)");
    }
    check_memory(a, machine.config(), &task, eval_size, !evaluate_only)?;
    let ntm = machine.build()?;
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
    let select = selection(a, &task).map(|(t, size)| Selection {
        task: Some(t),
        size,
        sequences: a.select_sequences,
        seed: SELECT_SEED,
    });
    let plan = TrainPlan {
        max_sequences,
        eval_every: eval_every(a),
        eval_sequences: a.eval_sequences,
        eval_size,
        eval_seed: EVAL_SEED,
        stop_below,
        checkpoint: None,
        select,
    };
    let config = ntm.config().clone();
    if workers.rank() != 0 {
        // The same steps and evaluations as rank 0 (so the same stops),
        // with nothing printed or written.
        NtmTrainer::new(ntm, task, train_config)?.run_with(&plan, workers, |_| {})?;
        return Ok(());
    }
    let out_dir = match &a.out {
        Some(p) => Some(p.clone()),
        None if evaluate_only => None,
        None => Some(fresh_dir(PathBuf::from("runs").join(format!(
            "ntm-{}-{}",
            task.name(),
            utc_timestamp()
        )))),
    };
    // Staged beside its destination from now on.
    let mut stage = match &out_dir {
        Some(d) => Some(Staging::create(d, a.overwrite, "ntm")?),
        None => None,
    };
    let (opt_name, momentum) = match optimizer {
        NtmOptimizer::RmsProp { momentum, .. } => ("rmsprop", Some(momentum)),
        NtmOptimizer::Adam { .. } => ("adam", None),
    };
    let threads = recurrent::num_threads();
    let simd = recurrent::kernels::simd::detected_level();
    let train_json = json!({
        "batch": a.batch,
        "optimizer": opt_name,
        "lr": a.lr,
        "momentum": momentum,
        "clip_value": train_config.clip_value,
        "clip_norm": a.clip_norm,
        "seed": a.seed,
        "max_sequences": max_sequences,
        "eval_every": eval_every(a),
        "eval_sequences": a.eval_sequences,
        "eval_size": eval_size,
        "stop_below": stop_below,
        "select_size": select.map(|s| s.size),
        "select_repeats": select.and_then(|s| match s.task {
            Some(Task::RepeatCopy { max_repeats, .. }) => Some(max_repeats),
            _ => None,
        }),
        "select_sequences": select.map(|s| s.sequences),
        "threads": threads,
        "simd": simd.to_string(),
    });
    // What every metrics.json says of the run; a run stopped at a
    // checkpoint says no more, with "interrupted": true.
    let run_json = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "task": task.name(),
        "task_config": task_json(&task),
        "config": config_json(&config),
        "loaded_from": a.load.as_ref().map(|p| p.display().to_string()),
        "train_config": train_json,
    });
    let mut interrupted_json = run_json.clone();
    interrupted_json["interrupted"] = json!(true);

    let outcome = (|| -> Result<Option<RunFiles>> {
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
                eval_every(a),
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
            let stage = stage.as_ref().expect("training has an output folder");
            let plan = TrainPlan {
                checkpoint: Some(stage.path().join(MODEL_FILE)),
                ..plan.clone()
            };
            let (ntm, report) = train(
                a,
                ntm,
                task,
                train_config.clone(),
                stage,
                &interrupted_json,
                &plan,
                &mut *workers,
            )?;
            (ntm, Some(report))
        };

        // Convergence: the first held-out evaluation under the threshold
        // (also with --no-stop, where training goes on past it).
        let threshold = a.stop_below.unwrap_or(0.1);
        let converged_at = report.as_ref().and_then(|(r, _)| {
            r.evaluations
                .iter()
                .find(|e| e.bit_errors < threshold)
                .map(|e| e.sequences)
        });
        if let Some((r, _)) = &report {
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
            if let Some(sel) = plan.select {
                // The trainer prefers machines under `plan.stop_below`.
                let among = match plan.stop_below {
                    Some(s) if r.evaluations.iter().any(|e| e.bit_errors < s) => {
                        let n = r.evaluations.iter().filter(|e| e.bit_errors < s).count();
                        format!("the {n} machines under {s} held-out bit errors/seq")
                    }
                    _ => "all machines".into(),
                };
                match r.selected.map(|k| &r.evaluations[k]) {
                    Some(e) => println!(
                        "selected the machine of {} sequences: lowest loss on {} sequences of {} \
                         among {among} ({:.3e}; {:.3} bit errors/seq)",
                        e.sequences,
                        sel.sequences,
                        selection_label(&sel),
                        e.selection.map_or(f64::NAN, |s| s.loss),
                        e.selection.map_or(f64::NAN, |s| s.bit_errors),
                    ),
                    None => println!("no finite selection loss: kept the last machine"),
                }
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

        if out_dir.is_none() {
            return Ok(None);
        }
        let png = weightings_png(&ntm, &task, eval_size).context("drawing weightings.png")?;
        // The held-out curve of a run that trained.
        let learning = match &report {
            Some((r, _)) => {
                let curve = Curve {
                    label: format!("seed {}", a.seed),
                    sequences: r.evaluations.iter().map(|e| e.sequences as f64).collect(),
                    bit_errors: r.evaluations.iter().map(|e| e.bit_errors).collect(),
                };
                let title = format!(
                    "NTM {}: held-out {} ({} sequences)",
                    task.name(),
                    size_label(&task, eval_size),
                    a.eval_sequences
                );
                Some(learning_png(&title, &[curve], threshold).context("drawing learning.png")?)
            }
            None => None,
        };
        let (evaluations, converged_at, sequences, seconds, step_loss) = match &report {
            Some((r, steps)) => (
                r.evaluations.iter().map(eval_json).collect(),
                converged_at,
                r.sequences,
                r.seconds,
                steps.clone(),
            ),
            None => (Vec::new(), None, 0, 0.0, Vec::new()),
        };
        let mut metrics = run_json.clone();
        let results = json!({
            "evaluations": evaluations,
            "converged_at": converged_at,
            "selected_at": report.as_ref().and_then(|(r, _)| r.selected.map(|k| r.evaluations[k].sequences)),
            "sequences": sequences,
            "seconds": seconds,
            "sequences_per_second": if seconds > 0.0 { sequences as f64 / seconds } else { 0.0 },
            "generalisation": table.iter().map(|r| json!({
                "size": r.size,
                "repeats": r.repeats,
                "sequences": r.sequences,
                "loss": r.loss,
                "bit_errors_per_sequence": r.errors_per_sequence,
                "bits_per_sequence": r.bits_per_sequence,
                "bit_error_rate": r.rate(),
            })).collect::<Vec<_>>(),
            "wall_seconds": started.elapsed().as_secs_f64(),
            "training": { "step_loss": step_loss },
            "world_size": world,
            "per_rank_batch": (0..world).map(|r| slice_of(a.batch, r, world).len()).collect::<Vec<_>>(),
        });
        if let (Some(m), serde_json::Value::Object(r)) = (metrics.as_object_mut(), results) {
            m.extend(r);
        }
        Ok(Some(RunFiles {
            metrics: serde_json::to_string_pretty(&metrics)? + "\n",
            learning,
            weightings: png,
        }))
    })();

    let RunFiles {
        metrics,
        learning,
        weightings: png,
    } = match outcome {
        Ok(Some(files)) => files,
        Ok(None) => return Ok(()),
        Err(e) => {
            let kept = stage
                .as_mut()
                .and_then(|s| s.abandon(&format!("error: {e:#}")));
            return Err(match kept {
                Some(k) => anyhow!("{e:#}; {k}"),
                None => e,
            });
        }
    };
    let stage = stage.expect("an output folder");
    let dest = stage
        .commit(
            &[
                Some(OutFile::Bytes("metrics.json", metrics.as_bytes())),
                learning.as_ref().map(|l| OutFile::Bytes("learning.png", l)),
                Some(OutFile::Bytes("weightings.png", &png)),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
        )
        .map_err(|e| anyhow!("writing the run folder: {e:#}"))?;
    let model = if evaluate_only {
        ""
    } else {
        "model.safetensors "
    };
    let learning = if learning.is_some() {
        "learning.png "
    } else {
        ""
    };
    println!(
        "wrote {}/: {model}metrics.json {learning}weightings.png manifest.json ({:.1} s in all)",
        dest.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The files of a run besides its checkpoint and manifest.
struct RunFiles {
    /// metrics.json.
    metrics: String,
    /// learning.png, for a run that trained.
    learning: Option<Vec<u8>>,
    /// weightings.png.
    weightings: Vec<u8>,
}

/// The selection set's sequences in words: `length 120`, or `length 10
/// x 20 repeats`.
fn selection_label(sel: &Selection) -> String {
    match sel.task {
        Some(t @ Task::RepeatCopy { max_repeats, .. }) => {
            format!("{} x {max_repeats} repeats", size_label(&t, sel.size))
        }
        Some(t) => size_label(&t, sel.size),
        None => format!("size {}", sel.size),
    }
}

/// An evaluation as metrics.json writes it.
fn eval_json(e: &Evaluation) -> serde_json::Value {
    let mut v = json!({ "sequences": e.sequences, "loss": e.loss, "bit_errors": e.bit_errors });
    if let Some(s) = e.selection {
        v["selection_loss"] = json!(s.loss);
        v["selection_bit_errors"] = json!(s.bit_errors);
    }
    v
}

/// Trains with a progress bar, printing every evaluation and checkpointing
/// into the staging folder. Each checkpoint is saved under the run folder's
/// lock (from its evaluation to the next step), and noted with the
/// metrics.json of a run stopped there (`interrupted` plus the evaluations
/// so far), so that a signal or an error keeps it as a run marked
/// interrupted.
#[allow(clippy::too_many_arguments)]
fn train(
    a: &NtmArgs,
    ntm: Ntm,
    task: Task,
    train_config: NtmTrainConfig,
    stage: &Staging,
    interrupted_json: &serde_json::Value,
    plan: &TrainPlan,
    workers: &mut Workers,
) -> Result<(Ntm, (TrainReport, Vec<f64>))> {
    let max_sequences = plan.max_sequences;
    let mut trainer =
        NtmTrainer::new(ntm, task, train_config).map_err(|e| anyhow!("the trainer: {e}"))?;
    stage.keep_checkpoint(MODEL_FILE);

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
    let select_head = match plan.select {
        Some(s) => format!(
            " {:>14} {:>15}",
            format!("select {} loss", s.size),
            "select err/seq"
        ),
        None => String::new(),
    };
    println!(
        "{:>10} {:>14} {:>15} {:>10}{select_head}",
        "sequences", "held-out loss", "bit errors/seq", "elapsed s"
    );
    let start = Instant::now();
    // Training means since the last evaluation, per sequence.
    let (mut sum_errors, mut sum_loss, mut seen) = (0.0f64, 0.0f64, 0usize);
    let mut last_eval: Option<(usize, f64)> = None;
    let mut evaluations: Vec<serde_json::Value> = Vec::new();
    // Held from an evaluation (whose checkpoint the trainer saves next) to
    // the next step.
    let mut guard: Option<run_dir::Guard> = None;
    let mut step_loss = Vec::new();
    if workers.world_size() > 1 {
        println!(
            "distributed: {} ranks, rows {:?} of each batch",
            workers.world_size(),
            (0..workers.world_size())
                .map(|r| slice_of(a.batch, r, workers.world_size()).len())
                .collect::<Vec<_>>()
        );
    }
    let result = trainer.run_with(plan, workers, |p| match p {
        Progress::Step { sequences, stats } => {
            guard = None;
            step_loss.push(stats.loss);
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
            guard = None;
            last_eval = Some((e.sequences, e.bit_errors));
            evaluations.push(eval_json(&e));
            let mut metrics = interrupted_json.clone();
            metrics["evaluations"] = json!(evaluations);
            metrics["checkpoint_sequences"] = json!(e.sequences);
            let text = serde_json::to_string_pretty(&metrics).unwrap_or_default() + "\n";
            let mut g = run_dir::lock();
            run_dir::note_checkpoint(
                &mut g,
                format!("at training sequence {}", e.sequences),
                vec![("metrics.json".to_string(), text.into_bytes())],
            );
            guard = Some(g);
            (sum_errors, sum_loss, seen) = (0.0, 0.0, 0);
            let select = match e.selection {
                Some(s) => format!(" {:>14.3e} {:>15.3}", s.loss, s.bit_errors),
                None => String::new(),
            };
            bar.suspend(|| {
                println!(
                    "{:>10} {:>14.4} {:>15.3} {:>10.1}{select}",
                    e.sequences,
                    e.loss,
                    e.bit_errors,
                    start.elapsed().as_secs_f64()
                );
            });
        }
    });
    drop(guard);
    bar.finish_and_clear();
    match result {
        Ok(report) => Ok((trainer.into_ntm(), (report, step_loss))),
        Err(e) if matches!(e, recurrent::Error::NonFinite(_)) => Err(anyhow!(
            "training diverged: {e} (try a lower --lr or a --clip-norm)"
        )),
        Err(e) => Err(anyhow!("{e}")),
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
