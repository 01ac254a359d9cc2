//! `rnn`: the librnn command-line tool. This first version has `rnn info`;
//! training, prediction, the gradient study and the benchmark come with the
//! CLI and benchmark issues.

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: rnn <command>\n\ncommands:\n  info    version, SIMD level detected, thread count"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("info") => {
            println!("librnn {}", env!("CARGO_PKG_VERSION"));
            println!("simd: {}", recurrent::kernels::simd::detected_level());
            println!("threads: {}", recurrent::num_threads());
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "help") => {
            println!("{}", usage());
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("rnn: unknown command {other:?}\n{}", usage());
            ExitCode::from(2)
        }
        None => {
            eprintln!("{}", usage());
            ExitCode::from(2)
        }
    }
}
