//! `rnn predict`: a model saved by `rnn train` over a CSV with the same
//! feature columns; writes one forecast per window as CSV (atomically).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::csv_data::Table;
use crate::output::write_atomic;
use crate::predictor::{MODEL_FILE, Mode, Predictor};
use crate::train::DEFAULT_DATA;

/// Arguments of `rnn predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A run folder written by `rnn train` (or the path of its
    /// model.safetensors, with head.safetensors beside it).
    #[arg(long)]
    pub model: PathBuf,
    /// CSV with the model's feature columns, oldest row first.
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Output CSV [default: predictions.csv in the model's folder].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Threads of the library [default: all cores, or RNN_NUM_THREADS].
    #[arg(long)]
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
    if a.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
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
    let model = Predictor::load(&a.model)?;
    let data = crate::train::resolve_data(&a.data);
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
    let x = model.scale_rows(&columns);
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
    write_atomic(&output, csv.as_bytes())?;
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
