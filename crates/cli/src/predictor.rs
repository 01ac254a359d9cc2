//! A forecaster: a recurrent network read by a dense head from the top
//! layer's final hidden state (directions concatenated), with the scalers and
//! the column names it was trained on; saved as two safetensors files.
//!
//! - `model.safetensors`: the network alone, written by
//!   [`recurrent::Recurrent::save`] (PyTorch names; loads in PyTorch).
//! - `head.safetensors`: `head.weight` `[1, D*H]`, `head.bias` `[1]` (f32),
//!   `scaler.x_min`, `scaler.x_max` `[F]`, `scaler.y_min`, `scaler.y_max`
//!   `[1]` (f64), and metadata: `format`, `features` (a JSON list), `target`,
//!   `window`, `mode`, `date_column`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use recurrent::arch::{SequenceRegressor, gather_relative_windows, gather_windows};
use recurrent::optim::check_finite;
use recurrent::{Linear, Recurrent, SeqInput};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::scaler::MinMax;

pub const MODEL_FILE: &str = "model.safetensors";
pub const HEAD_FILE: &str = "head.safetensors";
const HEAD_FORMAT: &str = "librnn-forecaster-1";

/// What the network is trained to output for the next value of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The scaled value itself.
    Level,
    /// The scaled change from the last input step (prediction = today +
    /// change).
    Delta,
    /// Every window relative to its last row: log ratios of each feature
    /// to its value on the window's last day, and the target's next log
    /// ratio (prediction = today x exp(ratio)); scales fitted on the
    /// training windows. Needs positive values.
    Relative,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Level => "level",
            Self::Delta => "delta",
            Self::Relative => "relative",
        }
    }
}

/// Network and head, scalers and the names of the columns they were
/// fitted on.
#[derive(Clone, Debug)]
pub struct Predictor {
    pub model: SequenceRegressor,
    pub features: Vec<String>,
    pub target: String,
    pub window: usize,
    pub mode: Mode,
    pub date_column: Option<String>,
    pub x_scaler: MinMax,
    pub y_scaler: MinMax,
}

impl Predictor {
    /// The network's rows `[N, F]` of `f32` from the feature columns
    /// (`columns[c]` is feature `c`): min-max scaled values, or (relative
    /// mode) their logarithms. Errors: a value that scales beyond f32's
    /// range, or (relative) that is not positive.
    pub fn scale_rows(&self, columns: &[Vec<f64>]) -> Result<Vec<f32>> {
        match self.mode {
            Mode::Relative => log_rows(&self.features, columns),
            Mode::Level | Mode::Delta => scale_rows(&self.x_scaler, &self.features, columns),
        }
    }

    /// Relative mode's per-feature scales of the log ratios, `[F]`.
    pub fn relative_scales(&self) -> Vec<f32> {
        (0..self.features.len())
            .map(|c| self.x_scaler.scale_delta(c, 1.0).recip() as f32)
            .collect()
    }

    /// The network's outputs (scaled) for the windows starting at `starts`,
    /// batched by `chunk` windows.
    pub fn forward(&self, x: &[f32], starts: &[usize], chunk: usize) -> Result<Vec<f32>> {
        let f = self.features.len();
        let mut out = Vec::with_capacity(starts.len());
        let mut xb = Vec::new();
        let scales = self.relative_scales();
        for part in starts.chunks(chunk.max(1)) {
            match self.mode {
                Mode::Relative => {
                    gather_relative_windows(x, f, self.window, part, &scales, &mut xb);
                }
                Mode::Level | Mode::Delta => gather_windows(x, f, self.window, part, &mut xb),
            }
            let y = self
                .model
                .predict(SeqInput::new(&xb, self.window, part.len()))?;
            out.extend_from_slice(&y);
        }
        Ok(out)
    }

    /// The training target of window `start` (scaled), from the raw target
    /// column: the value at row `start + W` (level) or its change from row
    /// `start + W - 1` (delta).
    pub fn scaled_target(&self, y: &[f64], start: usize) -> f64 {
        let next = start + self.window;
        match self.mode {
            Mode::Level => self.y_scaler.scale(0, y[next]),
            Mode::Delta => self.y_scaler.scale_delta(0, y[next] - y[next - 1]),
            Mode::Relative => self.y_scaler.scale_delta(0, (y[next] / y[next - 1]).ln()),
        }
    }

    /// A forecast in the target's units from the network's output `s` for
    /// window `start`; `last` is the target's value at the window's last row
    /// (needed in delta mode).
    pub fn unscale(&self, s: f64, last: Option<f64>) -> Result<f64> {
        Ok(match self.mode {
            Mode::Level => self.y_scaler.unscale(0, s),
            Mode::Delta | Mode::Relative => {
                let last = last.ok_or_else(|| {
                    anyhow!(
                        "this model forecasts changes of {:?}: the data needs that column",
                        self.target
                    )
                })?;
                match self.mode {
                    Mode::Relative => last * self.y_scaler.unscale_delta(0, s).exp(),
                    _ => last + self.y_scaler.unscale_delta(0, s),
                }
            }
        })
    }

    /// Serialises the head, the scalers and the metadata
    /// (`head.safetensors`).
    pub fn head_bytes(&self) -> Result<Vec<u8>> {
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let f64_bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let head = self.model.head().params();
        for info in head.infos() {
            let v = head.get(&info.name).expect("head parameter");
            tensors.push((
                format!("head.{}", info.name),
                Dtype::F32,
                info.shape.clone(),
                f32_bytes(v),
            ));
        }
        let f = self.features.len();
        for (name, v, n) in [
            ("scaler.x_min", &self.x_scaler.min, f),
            ("scaler.x_max", &self.x_scaler.max, f),
            ("scaler.y_min", &self.y_scaler.min, 1),
            ("scaler.y_max", &self.y_scaler.max, 1),
        ] {
            tensors.push((name.to_string(), Dtype::F64, vec![n], f64_bytes(v)));
        }
        let views = tensors
            .iter()
            .map(|(n, d, s, b)| {
                TensorView::new(*d, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| anyhow!("head tensor {n}: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), HEAD_FORMAT.to_string());
        meta.insert(
            "features".to_string(),
            serde_json::to_string(&self.features)?,
        );
        meta.insert("target".to_string(), self.target.clone());
        meta.insert("window".to_string(), self.window.to_string());
        meta.insert("mode".to_string(), self.mode.name().to_string());
        if let Some(d) = &self.date_column {
            meta.insert("date_column".to_string(), d.clone());
        }
        Ok(safetensors::tensor::serialize(views, Some(meta))?)
    }

    /// Loads a forecaster from a run folder (or the path of its
    /// `model.safetensors`, with `head.safetensors` beside it).
    pub fn load(path: &Path) -> Result<Self> {
        let (model_path, head_path): (PathBuf, PathBuf) = if path.is_dir() {
            (path.join(MODEL_FILE), path.join(HEAD_FILE))
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            (path.to_path_buf(), dir.join(HEAD_FILE))
        };
        if !model_path.exists() {
            bail!("{}: no such file", model_path.display());
        }
        if !head_path.exists() {
            bail!(
                "{}: no such file (a model saved by `rnn train` has its head and scalers there)",
                head_path.display()
            );
        }
        let net = Recurrent::load(&model_path)?;
        let shown = head_path.display();
        let bytes = std::fs::read(&head_path).with_context(|| format!("{shown}: cannot read"))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow!("{shown}: not a valid safetensors file: {e}"))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow!("{shown}: not a valid safetensors file: {e}"))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let key = |k: &str| -> Result<String> {
            meta.get(k)
                .cloned()
                .ok_or_else(|| anyhow!("{shown}: metadata key {k:?} missing"))
        };
        if key("format")? != HEAD_FORMAT {
            bail!("{shown}: not a librnn forecaster head (format {HEAD_FORMAT} expected)");
        }
        let features: Vec<String> = serde_json::from_str(&key("features")?)
            .map_err(|e| anyhow!("{shown}: metadata features: {e}"))?;
        let target = key("target")?;
        let window: usize = key("window")?
            .parse()
            .map_err(|_| anyhow!("{shown}: metadata window is not a positive integer"))?;
        let mode = match key("mode")?.as_str() {
            "level" => Mode::Level,
            "delta" => Mode::Delta,
            "relative" => Mode::Relative,
            m => bail!("{shown}: metadata mode {m:?} (expected level, delta or relative)"),
        };
        let date_column = meta.get("date_column").cloned();
        let c = net.config();
        if features.is_empty() || window == 0 || c.input_size != features.len() {
            bail!(
                "{shown}: {} features and window {window} do not fit {} (input size {})",
                features.len(),
                model_path.display(),
                c.input_size
            );
        }
        let read = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<Vec<u8>> {
            let t = st
                .tensor(name)
                .map_err(|_| anyhow!("{shown}: tensor {name} missing"))?;
            if t.dtype() != dtype || t.shape() != shape {
                bail!(
                    "{shown}: tensor {name}: expected {dtype:?} {shape:?}, got {:?} {:?}",
                    t.dtype(),
                    t.shape()
                );
            }
            Ok(t.data().to_vec())
        };
        let as_f32 = |b: Vec<u8>| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let as_f64 = |b: Vec<u8>| -> Vec<f64> {
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        let feat = c.directions() * c.state_size();
        let mut head = Linear::new(feat, 1, true, 0)?;
        let infos = head.params().infos().to_vec();
        for info in infos {
            let v = as_f32(read(
                &format!("head.{}", info.name),
                Dtype::F32,
                &info.shape,
            )?);
            head.params_mut()[info.offset..info.offset + info.len()].copy_from_slice(&v);
        }
        let f = features.len();
        let x_scaler = MinMax {
            min: as_f64(read("scaler.x_min", Dtype::F64, &[f])?),
            max: as_f64(read("scaler.x_max", Dtype::F64, &[f])?),
        };
        let y_scaler = MinMax {
            min: as_f64(read("scaler.y_min", Dtype::F64, &[1])?),
            max: as_f64(read("scaler.y_max", Dtype::F64, &[1])?),
        };
        for (kind, s) in [("x", &x_scaler), ("y", &y_scaler)] {
            for (c, (&lo, &hi)) in s.min.iter().zip(&s.max).enumerate() {
                for (end, v) in [("min", lo), ("max", hi)] {
                    if !v.is_finite() {
                        bail!("{shown}: scaler.{kind}_{end}[{c}] is {v}, not a finite number");
                    }
                }
                if hi < lo || !(hi - lo).is_finite() {
                    bail!(
                        "{shown}: scaler.{kind}_min[{c}] = {lo} and scaler.{kind}_max[{c}] = {hi} are not a range"
                    );
                }
            }
        }
        check_finite(head.params(), &shown.to_string())
            .map_err(|e| anyhow!("{e}: the head's parameters must be finite"))?;
        check_finite(net.params(), &model_path.display().to_string())
            .map_err(|e| anyhow!("{e}: the network's parameters must be finite"))?;
        Ok(Self {
            model: SequenceRegressor::from_parts(net, head)?,
            features,
            target,
            window,
            mode,
            date_column,
            x_scaler,
            y_scaler,
        })
    }
}

/// Scales feature columns (`columns[c]` is the column named `names[c]`)
/// into rows `[N, F]` of `f32`. Errors: a value that scales to a number
/// beyond f32's range (named by column and row), no memory.
pub fn scale_rows(scaler: &MinMax, names: &[String], columns: &[Vec<f64>]) -> Result<Vec<f32>> {
    let n = columns.first().map_or(0, Vec::len);
    let f = columns.len();
    let len = n
        .checked_mul(f)
        .ok_or_else(|| anyhow!("{n} rows of {f} columns: too many values"))?;
    let mut x: Vec<f32> = crate::memory::zeros(len, "the scaled data")?;
    for (c, col) in columns.iter().enumerate() {
        for (r, &v) in col.iter().enumerate() {
            let s = scaler.scale(c, v);
            if !(s as f32).is_finite() {
                bail!(
                    "column {:?}, {}: {v} scales to {s}, beyond f32's range (the scaler's range for this column is [{}, {}])",
                    names.get(c).map_or("?", String::as_str),
                    crate::csv_data::row_ref(r),
                    scaler.min[c],
                    scaler.max[c]
                );
            }
            x[r * f + c] = s as f32;
        }
    }
    Ok(x)
}

/// The natural logarithms of feature columns (`columns[c]` is the column
/// named `names[c]`) as rows `[N, F]` of `f32`. Errors: a value that is
/// not positive (named by column and row), no memory.
pub fn log_rows(names: &[String], columns: &[Vec<f64>]) -> Result<Vec<f32>> {
    let n = columns.first().map_or(0, Vec::len);
    let f = columns.len();
    let len = n
        .checked_mul(f)
        .ok_or_else(|| anyhow!("{n} rows of {f} columns: too many values"))?;
    let mut x: Vec<f32> = crate::memory::zeros(len, "the log data")?;
    for (c, col) in columns.iter().enumerate() {
        for (r, &v) in col.iter().enumerate() {
            if v.is_nan() || v <= 0.0 {
                bail!(
                    "column {:?}, {}: {v} is not positive; --mode relative takes ratios of positive values (try --mode delta)",
                    names.get(c).map_or("?", String::as_str),
                    crate::csv_data::row_ref(r),
                );
            }
            x[r * f + c] = v.ln() as f32;
        }
    }
    Ok(x)
}
