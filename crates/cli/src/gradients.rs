//! `rnn gradients`: the seed's vanishing/exploding gradient illustration,
//! measured. For each network, the Frobenius norm of the Jacobian
//! `d h_T / d x_t` against the lag `T - t` (lag 0: the last input), by BPTT.
//!
//! One backward pass gives the whole Jacobian: the sequence is repeated over
//! a batch of `H` rows, and row `b` back-propagates the unit vector `e_b`
//! from the last output, so `grads.x[t, b, :]` is row `b` of
//! `d h_T / d x_t`.
//!
//! Elman networks get recurrent weights `W_hh = s Q` with `Q` a random
//! orthogonal matrix (every singular value is `s`) and zero biases; the LSTM
//! keeps the default initialisation, once as is and once with the
//! forget-gate bias raised.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use recurrent::{
    CellKind, Gradients, NetConfig, Nonlinearity, OutputGrads, Recurrent, SeqInput, Tape,
};

use crate::dates::utc_timestamp;
use crate::memory;
use crate::plot::{self, Chart, Line, PALETTE};
use crate::rng::Rng;
use crate::run_dir::{OutFile, Staging, check_dest, fresh_dir};
use plotters::chart::SeriesLabelPosition;

/// Arguments of `rnn gradients`.
#[derive(clap::Args, Debug)]
pub struct GradientsArgs {
    /// Sequence length T.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Scales s of the Elman recurrent weights (W_hh = s Q, Q orthogonal),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.8, 1.2, 2.0])]
    pub scales: Vec<f64>,
    /// Forget-gate bias of the second LSTM curve (the first keeps the default
    /// initialisation).
    #[arg(long, default_value_t = 3.0)]
    pub forget_bias: f32,
    /// Standard deviation of the random inputs x_t.
    #[arg(long, default_value_t = 0.1)]
    pub input_std: f64,
    /// Seed of the weights and the inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder [default: runs/gradients-<UTC timestamp>/], written
    /// whole with manifest.json last (as `rnn train --out`); an existing
    /// folder that is not empty is refused unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace --out if it holds an earlier run written by rnn (see
    /// `rnn train --help`); nothing else is ever replaced.
    #[arg(long)]
    pub overwrite: bool,
}

/// Bytes the study needs, about (`None`: more than can be counted): one
/// LSTM over a batch of `H` copies of the sequence, its tape and backward
/// (`T * H * H * 12` floats), and the orthogonal matrix.
fn need(steps: usize, hidden: usize) -> Option<u64> {
    let floats = memory::product(&[steps, hidden, hidden, 12])?;
    floats
        .checked_mul(4)?
        .checked_add(memory::product(&[hidden, hidden, 16])?)
}

/// A random `n x n` orthogonal matrix (Gram-Schmidt on Gaussian columns),
/// row-major.
fn orthogonal(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(n);
    while cols.len() < n {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            for c in &cols {
                let d: f64 = v.iter().zip(c).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(c).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-8 {
            v.iter_mut().for_each(|a| *a /= norm);
            cols.push(v);
        }
    }
    let mut m = vec![0.0; n * n];
    for (j, c) in cols.iter().enumerate() {
        for (i, &v) in c.iter().enumerate() {
            m[i * n + j] = v;
        }
    }
    m
}

/// `|d h_T / d x_t|_F` for t = T-1 down to 0, i.e. indexed by the lag.
fn jacobian_norms(net: &Recurrent, x: &[f32], steps: usize) -> Result<Vec<f64>> {
    let h = net.config().hidden_size;
    let i = net.config().input_size;
    let b = h;
    // The same sequence in every batch row: [T, B, I].
    let mut xb: Vec<f32> = memory::zeros(steps * b * i, "the batch of sequences")?;
    for t in 0..steps {
        for r in 0..b {
            xb[(t * b + r) * i..(t * b + r + 1) * i].copy_from_slice(&x[t * i..(t + 1) * i]);
        }
    }
    let mut tape = Tape::new();
    net.forward_train(SeqInput::new(&xb, steps, b), &mut tape)?;
    let mut grad_y: Vec<f32> = memory::zeros(steps * b * h, "the output gradients")?;
    for r in 0..b {
        grad_y[((steps - 1) * b + r) * h + r] = 1.0;
    }
    let mut grads = Gradients::for_net(net);
    net.backward(&mut tape, OutputGrads::new(&grad_y), &mut grads)?;
    Ok((0..steps)
        .rev()
        .map(|t| {
            grads.x[t * b * i..(t + 1) * b * i]
                .iter()
                .map(|&g| (g as f64) * (g as f64))
                .sum::<f64>()
                .sqrt()
        })
        .collect())
}

pub fn run(a: &GradientsArgs) -> Result<()> {
    if a.steps < 2 {
        bail!("--steps must be at least 2");
    }
    if a.hidden == 0 {
        bail!("--hidden must be at least 1");
    }
    if a.scales.is_empty() || a.scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("--scales must be positive numbers");
    }
    if !(a.input_std.is_finite() && a.input_std >= 0.0 && a.forget_bias.is_finite()) {
        bail!("--input-std and --forget-bias must be finite (--input-std >= 0)");
    }
    match &a.out {
        Some(out) => check_dest(out, a.overwrite)?,
        None if a.overwrite => bail!("--overwrite applies to an --out folder only"),
        None => {}
    }
    // The option further above its default (the need grows as T * H^2).
    let h_ratio = (a.hidden as f64 / 32.0).powi(2);
    let what = if h_ratio >= a.steps as f64 / 100.0 {
        format!("--hidden {}", a.hidden)
    } else {
        format!("--steps {}", a.steps)
    };
    memory::check(need(a.steps, a.hidden), &what)?;
    let out_dir = match &a.out {
        Some(p) => p.clone(),
        None => fresh_dir(PathBuf::from("runs").join(format!("gradients-{}", utc_timestamp()))),
    };
    let stage = Staging::create(&out_dir, a.overwrite, "gradients")?;
    let (t, h) = (a.steps, a.hidden);
    let mut rng = Rng::new(a.seed);
    let x: Vec<f32> = (0..t)
        .map(|_| (a.input_std * rng.normal()) as f32)
        .collect();

    // One orthogonal Q and one W_ih (same seed) for every Elman network:
    // the curves differ only by the scale and the activation.
    let q = orthogonal(h, &mut rng);
    let mut curves: Vec<(String, Vec<f64>)> = Vec::new();
    for act in [Nonlinearity::Tanh, Nonlinearity::Relu] {
        for &s in &a.scales {
            let mut c = NetConfig::new(CellKind::Elman(act), 1, h);
            c.seed = a.seed;
            let mut net = Recurrent::new(c)?;
            let w: Vec<f32> = q.iter().map(|v| (s * v) as f32).collect();
            net.set_param("weight_hh_l0", &w)?;
            net.set_param("bias_ih_l0", &vec![0.0; h])?;
            net.set_param("bias_hh_l0", &vec![0.0; h])?;
            let name = match act {
                Nonlinearity::Relu => "relu",
                _ => "tanh",
            };
            curves.push((
                format!("Elman {name}, W_hh = {s} Q"),
                jacobian_norms(&net, &x, t)?,
            ));
        }
    }
    let mut c = NetConfig::new(CellKind::Lstm, 1, h);
    c.seed = a.seed;
    let lstm = Recurrent::new(c)?;
    curves.push(("LSTM, default init".into(), jacobian_norms(&lstm, &x, t)?));
    let mut lstm_f = lstm.clone();
    // Gates i, f, g, o: the forget block is rows H..2H of the biases.
    let mut b = lstm_f
        .params()
        .get("bias_ih_l0")
        .expect("lstm bias")
        .to_vec();
    b[h..2 * h].iter_mut().for_each(|v| *v += a.forget_bias);
    lstm_f.set_param("bias_ih_l0", &b)?;
    curves.push((
        format!("LSTM, forget bias +{}", a.forget_bias),
        jacobian_norms(&lstm_f, &x, t)?,
    ));

    // Print.
    let mut lags: Vec<usize> = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .filter(|&l| l < t)
        .collect();
    if lags.last() != Some(&(t - 1)) {
        lags.push(t - 1);
    }
    println!(
        "|d h_T / d x_t| (Frobenius) against the lag T - t; T = {t}, hidden {h}, inputs N(0, {}^2), seed {}",
        a.input_std, a.seed
    );
    print!("{:<28}", "lag");
    for l in &lags {
        print!(" {l:>9}");
    }
    println!(" {:>12}", "per step");
    for (name, v) in &curves {
        print!("{name:<28}");
        for &l in &lags {
            print!(" {:>9.2e}", v[l]);
        }
        // Geometric mean of the per-step ratio between lag 1 and the last.
        let factor = if v[1] > 0.0 && v[t - 1] > 0.0 {
            format!(
                "x{:.3}",
                (v[t - 1] / v[1]).powf(1.0 / (t - 2).max(1) as f64)
            )
        } else {
            "-".to_string()
        };
        println!(" {factor:>12}");
    }

    // Plot and CSV.
    let lag_x: Vec<f64> = (0..t).map(|l| l as f64).collect();
    let lines: Vec<Line<'_>> = curves
        .iter()
        .enumerate()
        .map(|(k, (name, v))| Line {
            label: name.clone(),
            x: &lag_x,
            y: v,
            color: PALETTE[k % PALETTE.len()],
            width: 2,
            dashed: name.starts_with("LSTM"),
        })
        .collect();
    let title = format!("Gradient norm |dh_T/dx_t| against the lag T - t (T = {t}, H = {h})");
    let png = plot::lines(
        &Chart {
            title: &title,
            x_desc: "lag T - t (steps)",
            y_desc: "|dh_T / dx_t| (log scale)",
            axis: None,
            log_y: true,
            vline: None,
            legend: SeriesLabelPosition::LowerLeft,
            size: (1200, 700),
        },
        &lines,
    )?;
    let mut csv = String::from("lag");
    for (name, _) in &curves {
        csv.push_str(&format!(",{}", crate::predict::csv_field(name)));
    }
    csv.push('\n');
    for l in 0..t {
        csv.push_str(&l.to_string());
        for (_, v) in &curves {
            csv.push_str(&format!(",{:e}", v[l]));
        }
        csv.push('\n');
    }
    let out_dir = stage
        .commit(&[
            OutFile::Bytes("gradients.png", &png),
            OutFile::Bytes("gradients.csv", csv.as_bytes()),
        ])
        .with_context(|| format!("writing the run folder {}", out_dir.display()))?;
    println!(
        "wrote {}/gradients.png and gradients.csv",
        out_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_is_orthogonal() {
        let n = 6;
        let q = orthogonal(n, &mut Rng::new(3));
        for i in 0..n {
            for j in 0..n {
                let d: f64 = (0..n).map(|k| q[i * n + k] * q[j * n + k]).sum();
                assert!((d - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn linear_regime_grows_as_s_to_the_lag() {
        // Zero inputs and biases keep a tanh network at h = 0 (tanh' = 1):
        // |dh_T/dx_t| = s^lag |W_ih| exactly.
        let (t, h, s) = (12, 8, 1.5);
        let mut net =
            Recurrent::new(NetConfig::new(CellKind::Elman(Nonlinearity::Tanh), 1, h)).unwrap();
        let q = orthogonal(h, &mut Rng::new(5));
        let w: Vec<f32> = q.iter().map(|v| (s * v) as f32).collect();
        net.set_param("weight_hh_l0", &w).unwrap();
        net.set_param("bias_ih_l0", &vec![0.0; h]).unwrap();
        net.set_param("bias_hh_l0", &vec![0.0; h]).unwrap();
        let wih = net.params().get("weight_ih_l0").unwrap();
        let n0 = wih.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let v = jacobian_norms(&net, &vec![0.0; t], t).unwrap();
        for (lag, &g) in v.iter().enumerate() {
            let want = n0 * s.powi(lag as i32);
            assert!((g - want).abs() <= 1e-4 * want, "lag {lag}: {g} vs {want}");
        }
    }
}
