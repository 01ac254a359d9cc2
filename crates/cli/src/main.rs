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
//! Errors are one line on stderr (`rnn: error: ...`) and exit code 1 (2 for
//! a bad command line); a failed or interrupted command leaves no partial
//! output: run folders are staged beside their destination and moved into
//! place whole, with a manifest written last (see `run_dir`). SIGINT,
//! SIGTERM and SIGHUP exit with 128 + the signal number (130 for Ctrl-C).

mod bench;
mod csv_data;
mod dates;
mod distributed;
mod gradients;
mod memory;
mod ntm;
mod plot;
mod predict;
mod predictor;
mod rng;
mod run_dir;
mod scaler;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Run folders (train, ntm, gradients) are written beside their destination \
(.NAME.staging-*) and moved into place whole; manifest.json, written last, \
lists their files and sizes, and `rnn predict` reads only such complete runs. \
An existing --out folder that is not empty is refused unless --overwrite, \
which replaces only an earlier run. A failed or interrupted command leaves no \
partial folder and never deletes an earlier run; `rnn ntm` stopped after a \
checkpoint keeps it as a complete run marked interrupted.

Exit codes: 0 success, 1 error (one line on stderr), 2 bad command line, \
128 + N when stopped by signal N (130 for Ctrl-C, 143 for SIGTERM).";

/// Recurrent neural networks (Elman, LSTM, GRU) and Neural Turing Machines
/// on the CPU: train, predict, study gradients, benchmark.
#[derive(Parser, Debug)]
#[command(name = "rnn", version, propagate_version = true, after_help = AFTER_HELP)]
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
    /// repeat-copy, recall, priority-sort) with checkpoints, then print how
    /// it generalises to sizes it was not trained on.
    // Boxed: its flags make it several times the size of the others.
    Ntm(Box<ntm::NtmArgs>),
    /// Draw the held-out learning curves of several `rnn ntm` runs (one
    /// task, e.g. seeds 1-5) into one PNG.
    NtmCurves(ntm::CurvesArgs),
    /// Version, SIMD level detected, thread count.
    Info,
    /// Benchmark librnn against PyTorch on this machine.
    Bench(bench::BenchArgs),
}

/// Parses a `--threads` value: 1 to the library's cap
/// ([`recurrent::kernels::threads::MAX_THREADS`]).
pub fn parse_threads(s: &str) -> Result<usize, String> {
    use recurrent::kernels::threads::MAX_THREADS;
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("not a thread count (1 to {MAX_THREADS})"))?;
    match n {
        0 => Err("the thread count must be at least 1".into()),
        n if n > MAX_THREADS => Err(format!(
            "{n} threads is more than librnn's limit of {MAX_THREADS}"
        )),
        n => Ok(n),
    }
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
    if let Err(e) = run_dir::catch_signals() {
        eprintln!("rnn: error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match &cli.command {
        Command::Train(args) => train::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Gradients(args) => gradients::run(args),
        Command::Ntm(args) => ntm::run(args),
        Command::NtmCurves(args) => ntm::run_curves(args),
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
