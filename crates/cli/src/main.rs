//! `rnn`: the librnn command-line tool.
//!
//! - `rnn train`: train a recurrent network to forecast a column of a CSV
//!   time series (default: Apple's next-day close from `data/finance.csv`),
//!   against the naive persistence baseline; writes the model, metrics and
//!   plots into a run folder.
//! - `rnn predict`: run a saved model over a CSV and write the forecasts.
//! - `rnn gradients`: the vanishing/exploding gradient study, measured.
//! - `rnn ntm`: train a Neural Turing Machine on copy, repeat copy or
//!   associative recall; prints how it generalises to longer sequences.
//! - `rnn info`: version, SIMD level, thread count.
//! - `rnn bench`: librnn against PyTorch on this machine.
//!
//! Errors are one line on stderr (`rnn: error: ...`) and a non-zero exit;
//! a failed command leaves no partial output.

mod bench;
mod csv_data;
mod dates;
mod gradients;
mod ntm;
mod output;
mod plot;
mod predict;
mod predictor;
mod rng;
mod scaler;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Recurrent neural networks (Elman, LSTM, GRU) and Neural Turing Machines
/// on the CPU: train, predict, study gradients, benchmark.
#[derive(Parser, Debug)]
#[command(name = "rnn", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a network to forecast a CSV time series (default: Apple's
    /// next-day close) and compare it with the persistence baseline.
    Train(train::TrainArgs),
    /// Forecast with a saved model over a CSV; writes a CSV of predictions.
    Predict(predict::PredictArgs),
    /// Measure |d h_T / d x_t| against the lag T - t (vanishing and
    /// exploding gradients) for Elman networks and an LSTM; draws a PNG.
    Gradients(gradients::GradientsArgs),
    /// Train a Neural Turing Machine on an algorithmic task (copy,
    /// repeat-copy, recall) with checkpoints, then print how it generalises
    /// to sizes it was not trained on.
    Ntm(ntm::NtmArgs),
    /// Version, SIMD level detected, thread count.
    Info,
    /// Benchmark librnn against PyTorch on this machine.
    Bench(bench::BenchArgs),
}

fn info() -> anyhow::Result<()> {
    println!("librnn {}", env!("CARGO_PKG_VERSION"));
    println!("simd: {}", recurrent::kernels::simd::detected_level());
    println!("threads: {}", recurrent::num_threads());
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's first line, without its "error: " prefix.
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("rnn: error: {first} (see rnn --help)");
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Train(args) => train::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Gradients(args) => gradients::run(args),
        Command::Ntm(args) => ntm::run(args),
        Command::Info => info(),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain on one line.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("rnn: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
