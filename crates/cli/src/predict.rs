//! `rnn predict`: a model saved by `rnn train` over a CSV with the same
//! feature columns; writes one forecast per window as CSV (atomically).
//!
//! It reads only a complete run (its manifest.json, every file listed there
//! with its size), never writes over one of its inputs (the model, the head,
//! the manifest, the data: compared by file identity, whatever the path),
//! and writes no forecast that is not a finite number.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::csv_data::Table;
use crate::predictor::{HEAD_FILE, MODEL_FILE, Mode, Predictor};
use crate::run_dir::{MANIFEST, same_file, verify_run, write_file};
use crate::train::DEFAULT_DATA;

/// Arguments of `rnn predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A run folder written by `rnn train` (or the path of its
    /// model.safetensors). The folder must be a complete run: its
    /// manifest.json lists every file with its size.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV with the model's feature columns, oldest row first.
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Output CSV, written atomically [default: predictions.csv in the
    /// model's folder]. It may not be one of the inputs (model, head,
    /// manifest, data), whatever path names it.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Threads of the library, 1 to 1024 [default: all cores, or
    /// RNN_NUM_THREADS].
    #[arg(long, value_parser = crate::parse_threads)]
    pub threads: Option<usize>,
}

/// A CSV field, quoted when it needs to be.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn run(a: &PredictArgs) -> Result<()> {
    if let Some(n) = a.threads {
        recurrent::set_num_threads(n).map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
    }
    let output = match &a.output {
        Some(p) => p.clone(),
        None => {
            let dir = if a.model.is_dir() {
                a.model.clone()
            } else {
                a.model.parent().unwrap_or(Path::new(".")).to_path_buf()
            };
            dir.join("predictions.csv")
        }
    };
    if output.is_dir() {
        bail!("{}: is a folder (--output names a file)", output.display());
    }
    if !a.model.exists() {
        bail!("{}: no such file or folder (--model)", a.model.display());
    }
    // A complete run of `rnn train`, holding the model file given.
    let run = if a.model.is_dir() {
        a.model.clone()
    } else {
        a.model.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let run = if run.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        run
    };
    let manifest = verify_run(&run).map_err(|e| anyhow::anyhow!("--model: {e:#}"))?;
    if manifest.command != "train" {
        bail!(
            "--model {}: a run of `rnn {}`, not of `rnn train`",
            run.display(),
            manifest.command
        );
    }
    let model_file = if a.model.is_dir() {
        run.join(MODEL_FILE)
    } else {
        a.model.clone()
    };
    let head_file = run.join(HEAD_FILE);
    for f in [&model_file, &head_file] {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        if !manifest.files.iter().any(|(n, _)| Some(n) == name.as_ref()) {
            bail!(
                "--model: {}: not a file of the run ({} does not list it)",
                f.display(),
                run.join(MANIFEST).display()
            );
        }
    }
    let data = crate::train::resolve_data(&a.data);
    // Never write over an input, whatever path names it.
    for (what, input) in [
        ("the model", &model_file),
        ("the model's head", &head_file),
        ("the run's manifest", &run.join(MANIFEST)),
        ("the data", &data),
    ] {
        if same_file(&output, input) {
            bail!(
                "--output {}: is {what} ({}); refusing to write over an input",
                output.display(),
                input.display()
            );
        }
    }
    let model = Predictor::load(&model_file)?;
    let mut table = Table::read(&data, None)?;
    if let Some(name) = &model.date_column {
        let has_other = table.date.as_ref().is_none_or(|d| &d.name != name);
        if has_other && table.columns.iter().any(|(n, _)| n == name) {
            table = Table::read(&data, Some(name))?;
        }
    }
    let shown = data.display();
    let columns: Vec<Vec<f64>> = model
        .features
        .iter()
        .map(|n| table.series(n))
        .collect::<Result<_>>()?;
    let has_target = table.columns.iter().any(|(n, _)| *n == model.target);
    let y = if has_target {
        Some(table.series(&model.target)?)
    } else if model.mode == Mode::Delta {
        bail!(
            "{shown}: no column {:?}: this model forecasts its changes and needs it",
            model.target
        );
    } else {
        None
    };
    let (rows, w) = (table.rows, model.window);
    if rows < w {
        bail!("{shown}: {rows} rows is fewer than the model's window of {w}");
    }
    let x = model
        .scale_rows(&columns)
        .map_err(|e| anyhow::anyhow!("{shown}: {e:#}"))?;
    let starts: Vec<usize> = (0..=rows - w).collect();
    let out = model.forward(&x, &starts, 512)?;
    let date_of = |row: usize| -> String {
        match &table.date {
            Some(d) => d.labels[row].clone(),
            None => format!("{}", row + 1),
        }
    };
    let t = &model.target;
    let mut csv = format!("input_end_date,forecast_date,predicted_{t},actual_{t}\n");
    let (mut se, mut se_p, mut n_known) = (0.0, 0.0, 0usize);
    let mut last_pred = 0.0;
    for (&k, &s) in starts.iter().zip(&out) {
        let last_row = k + w - 1;
        let pred = model.unscale(s as f64, y.as_ref().map(|y| y[last_row]))?;
        if !pred.is_finite() {
            bail!(
                "{}: the forecast after {} is {pred} (network output {s}), not a finite number; nothing written",
                model_file.display(),
                date_of(last_row)
            );
        }
        last_pred = pred;
        let next = last_row + 1;
        let (date, actual) = if next < rows {
            (
                date_of(next),
                y.as_ref().map_or(String::new(), |y| y[next].to_string()),
            )
        } else {
            (String::new(), String::new())
        };
        if let (Some(y), true) = (&y, next < rows) {
            se += (pred - y[next]).powi(2);
            se_p += (y[last_row] - y[next]).powi(2);
            n_known += 1;
        }
        csv.push_str(&format!(
            "{},{},{pred},{actual}\n",
            csv_field(&date_of(last_row)),
            csv_field(&date)
        ));
    }
    write_file(&output, csv.as_bytes())?;
    println!(
        "model: {} ({} window {w}, features {}); data: {shown}, {rows} rows",
        a.model
            .join(if a.model.is_dir() { MODEL_FILE } else { "" })
            .display(),
        model.mode.name(),
        model.features.join(", ")
    );
    if n_known > 0 {
        let n = n_known as f64;
        println!(
            "{n_known} forecasts with a known next {t}: RMSE {:.4} (persistence {:.4}); rows the model was trained on are included",
            (se / n).sqrt(),
            (se_p / n).sqrt()
        );
    }
    println!(
        "forecast of {t} after the last row ({}): {last_pred:.4}",
        date_of(rows - 1)
    );
    println!("wrote {} forecasts to {}", starts.len(), output.display());
    Ok(())
}
