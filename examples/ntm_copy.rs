//! Trains a Neural Turing Machine on the copy task from Rust and prints the
//! held-out bit errors as it goes.
//!
//! ```text
//! cargo run --release --example ntm_copy -- [seed] [max_sequences] [batch] [lr] [stop|nostop]
//! ```

use recurrent::ntm::{
    Ntm, NtmConfig, NtmOptimizer, NtmTrainConfig, NtmTrainer, Progress, Task, TrainPlan, evaluate,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.into());
    let seed: u64 = arg(0, "1").parse()?;
    let max_sequences: usize = arg(1, "20000").parse()?;
    let batch: usize = arg(2, "1").parse()?;
    let lr: f64 = arg(3, "1e-4").parse()?;
    let stop = arg(4, "stop") == "stop";

    let task = Task::copy();
    let ntm = Ntm::new(NtmConfig {
        seed,
        ..NtmConfig::copy_task(8)
    })?;
    let config = NtmTrainConfig {
        batch,
        seed,
        optimizer: NtmOptimizer::RmsProp {
            lr,
            momentum: 0.9,
            alpha: 0.95,
            eps: 1e-10,
        },
        ..NtmTrainConfig::default()
    };
    let mut trainer = NtmTrainer::new(ntm, task, config)?;
    let plan = TrainPlan {
        max_sequences,
        eval_every: 1000,
        eval_sequences: 640,
        eval_size: 20,
        eval_seed: 12345,
        stop_below: stop.then_some(0.1),
        checkpoint: None,
        select: None,
    };
    let mut recent = 0.0;
    let report = trainer.run(&plan, |p| match p {
        Progress::Step { stats, .. } => recent = 0.99 * recent + 0.01 * stats.bit_errors,
        Progress::Evaluated(e) => println!(
            "{:>6} sequences: held-out loss {:.4}, bit errors/seq {:.3} (training avg {:.2})",
            e.sequences, e.loss, e.bit_errors, recent
        ),
    })?;
    println!(
        "{} sequences in {:.1} s; converged at {:?}",
        report.sequences, report.seconds, report.converged_at
    );
    println!("generalisation (bit errors per sequence, 8 bits per step):");
    for len in [10, 20, 30, 40, 60, 80, 100, 120] {
        let n = if len <= 40 { 640 } else { 128 };
        let errors = evaluate(trainer.ntm(), &Task::copy(), len, n, 777)?.errors_per_sequence();
        println!(
            "  length {len:>3}: {errors:8.3} ({:.2}% of {} bits)",
            100.0 * errors / (8 * len) as f64,
            8 * len
        );
    }
    Ok(())
}
