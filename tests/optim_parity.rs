//! `torch.optim` parity: replays every trajectory in `tests/fixtures/optim/`
//! (or in the folder named by `RNN_OPTIM_FIXTURES`; written by `tests/fixtures/gen_optim.py`, format in
//! `tests/fixtures/README.md`) with our optimizers and gradient clipping, and
//! checks the parameters after **every** step against PyTorch's float32
//! results, element by element:
//!
//! `|ours - ref| <= 1e-6 * max(1, |ref|)`.
//!
//! The run keeps its own state across the steps (it never resets to the
//! reference), so errors may accumulate over the S steps; they stay within
//! the bound (see the per-file lines printed by `--nocapture`). Clip-norm
//! cases also check the returned norm with the same relative bound.
//!
//! Margins (torch 2.15, S = 5): most cases use 0.03-0.3 of the bound (1-3
//! float32 ulps); RMSprop with momentum uses ~0.7 of it. That case is not
//! pure rounding: `RmsProp` computes `1 - alpha` in f32 (0.0099999905),
//! torch in f64 then rounds (0.0099999998), a 9.3e-7 relative difference
//! in every `square_avg` update that momentum accumulates. With 50 steps
//! (`gen_optim.py --steps 50`) the RMSprop+momentum cases reach ~1.5-1.9e-6
//! and fail this bound. The bound is kept at 1e-6, not widened.
//!
//! Also: `check_finite` finds a NaN / +-Inf and names the tensor, and every
//! optimizer rejects mismatched lengths without changing the parameters or
//! its own state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use recurrent::optim::{
    Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig, check_finite,
    clip_grad_norm, clip_grad_value,
};
use recurrent::{Error, Params, TensorFile};

const REL_TOL: f32 = 1e-6;

fn fixture_dir() -> PathBuf {
    match std::env::var_os("RNN_OPTIM_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim"),
    }
}

fn bound(reference: f32) -> f32 {
    REL_TOL * reference.abs().max(1.0)
}

/// Metadata accessors that fail on a missing or malformed key (no defaults:
/// the file must spell out every hyper-parameter).
struct Meta<'a>(&'a HashMap<String, String>);

impl Meta<'_> {
    fn str(&self, k: &str) -> Result<&str, String> {
        self.0
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("metadata {k:?} missing"))
    }
    fn f32(&self, k: &str) -> Result<f32, String> {
        let v = self.str(k)?;
        v.trim()
            .parse()
            .map_err(|_| format!("metadata {k}={v:?} is not a number"))
    }
    fn f64(&self, k: &str) -> Result<f64, String> {
        let v = self.str(k)?;
        v.trim()
            .parse()
            .map_err(|_| format!("metadata {k}={v:?} is not a number"))
    }
    fn opt_f32(&self, k: &str) -> Result<Option<f32>, String> {
        if self.0.contains_key(k) {
            self.f32(k).map(Some)
        } else {
            Ok(None)
        }
    }
    fn bool(&self, k: &str) -> Result<bool, String> {
        match self.str(k)? {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(format!("metadata {k}={v:?} is not true/false")),
        }
    }
}

fn build_optimizer(m: &Meta) -> Result<Box<dyn Optimizer>, String> {
    let lr = m.f64("lr")?;
    let opt: Box<dyn Optimizer> = match m.str("optimizer")? {
        "sgd" => Box::new(
            Sgd::new(SgdConfig {
                lr,
                momentum: m.f64("momentum")?,
                dampening: m.f64("dampening")?,
                weight_decay: m.f64("weight_decay")?,
                nesterov: m.bool("nesterov")?,
            })
            .map_err(|e| e.to_string())?,
        ),
        kind @ ("adam" | "adamw") => Box::new(
            Adam::new(AdamConfig {
                lr,
                beta1: m.f64("beta1")?,
                beta2: m.f64("beta2")?,
                eps: m.f64("eps")?,
                weight_decay: m.f64("weight_decay")?,
                decoupled: kind == "adamw",
            })
            .map_err(|e| e.to_string())?,
        ),
        "rmsprop" => Box::new(
            RmsProp::new(RmsPropConfig {
                lr,
                alpha: m.f64("alpha")?,
                eps: m.f64("eps")?,
                weight_decay: m.f64("weight_decay")?,
                momentum: m.f64("momentum")?,
                centered: m.bool("centered")?,
            })
            .map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("unknown optimizer {other:?}")),
    };
    Ok(opt)
}

/// The worst element of a file, by error / bound.
#[derive(Debug, Default)]
struct Worst {
    what: String,
    err: f32,
    bound: f32,
}

impl Worst {
    fn update(&mut self, what: impl FnOnce() -> String, err: f32, bound: f32) {
        if self.what.is_empty() || err / bound > self.err / self.bound {
            *self = Worst {
                what: what(),
                err,
                bound,
            };
        }
    }
}

fn tensor<'a>(file: &'a TensorFile, name: &str, shape: &[usize]) -> Result<&'a [f32], String> {
    let (s, v) = file
        .f32(name)
        .ok_or_else(|| format!("f32 tensor {name} missing"))?;
    if s != shape {
        return Err(format!("tensor {name}: shape {s:?}, expected {shape:?}"));
    }
    Ok(v)
}

/// Replays one file. Returns the worst element and the failures.
fn run_file(path: &Path) -> Result<(Worst, Vec<String>), String> {
    let file = TensorFile::read(path).map_err(|e| e.to_string())?;
    let meta = Meta(&file.metadata);
    let (_, p0) = file.f32("params0").ok_or("f32 tensor params0 missing")?;
    let n = p0.len();
    let (gshape, _) = file.f32("grads").ok_or("f32 tensor grads missing")?;
    let s = gshape.first().copied().ok_or("grads is 0-d")?;
    if s == 0 || n == 0 {
        return Err("empty trajectory".into());
    }
    let grads = tensor(&file, "grads", &[s, n])?;
    let expected = tensor(&file, "params", &[s, n])?;
    let clip_norm = meta.opt_f32("clip_norm")?;
    let clip_value = meta.opt_f32("clip_value")?;
    if clip_norm.is_some() && clip_value.is_some() {
        return Err("both clip_norm and clip_value".into());
    }
    let norms = match clip_norm {
        Some(_) => Some(tensor(&file, "norms", &[s])?),
        None => None,
    };
    let mut opt = build_optimizer(&meta)?;

    let mut params = p0.to_vec();
    let mut worst = Worst::default();
    let mut failures = Vec::new();
    for step in 0..s {
        let mut g = grads[step * n..(step + 1) * n].to_vec();
        if let Some(max_norm) = clip_norm {
            let ours = clip_grad_norm(&mut g, max_norm);
            let reference = norms.unwrap()[step];
            let (err, b) = ((ours - reference).abs(), bound(reference));
            if err.is_nan() || err > b {
                failures.push(format!(
                    "step {step}: norm {ours} vs torch {reference} (err {err:.3e} > {b:.3e})"
                ));
            }
            worst.update(|| format!("norm@{step}"), err, b);
        }
        if let Some(limit) = clip_value {
            clip_grad_value(&mut g, limit);
        }
        opt.step(&mut params, &g)
            .map_err(|e| format!("step {step}: {e}"))?;
        let want = &expected[step * n..(step + 1) * n];
        for (k, (&ours, &reference)) in params.iter().zip(want).enumerate() {
            let (err, b) = ((ours - reference).abs(), bound(reference));
            if err.is_nan() || err > b {
                // NaN fails here too.
                if failures.len() < 10 {
                    failures.push(format!(
                        "step {step} [{k}]: ours {ours:.9e} torch {reference:.9e} (err {err:.3e} > {b:.3e})"
                    ));
                }
            }
            worst.update(|| format!("params[{step},{k}]"), err, b);
        }
    }
    Ok((worst, failures))
}

#[test]
fn torch_optim_parity() {
    let dir = fixture_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read fixture folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .safetensors fixture files in {}",
        dir.display()
    );

    let mut failed = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match run_file(path) {
            Ok((w, why)) => {
                let verdict = if why.is_empty() { "PASS" } else { "FAIL" };
                println!(
                    "{verdict} {name:44} worst {:16} err {:.3e} (bound {:.3e}, {:.3} of it)",
                    w.what,
                    w.err,
                    w.bound,
                    w.err / w.bound
                );
                for f in &why {
                    println!("       {f}");
                }
                if !why.is_empty() {
                    failed.push(name);
                }
            }
            Err(e) => {
                println!("ERROR {name}: {e}");
                failed.push(name);
            }
        }
    }
    println!(
        "\n{} files in {}: {} failed",
        files.len(),
        dir.display(),
        failed.len()
    );
    assert!(failed.is_empty(), "torch.optim parity failures: {failed:?}");
}

#[test]
fn check_finite_names_the_tensor() {
    let mut set = Params::zeros([
        ("weight_ih_l0".to_string(), vec![2, 3]),
        ("bias_hh_l0".to_string(), vec![4]),
    ]);
    check_finite(&set, "ok").expect("a zero set is finite");
    for (name, idx, bad) in [
        ("bias_hh_l0", 2, f32::NAN),
        ("weight_ih_l0", 5, f32::INFINITY),
        ("weight_ih_l0", 0, f32::NEG_INFINITY),
    ] {
        let mut probe = set.clone();
        probe.get_mut(name).unwrap()[idx] = bad;
        match check_finite(&probe, "gradients at step 7") {
            Err(Error::NonFinite(msg)) => {
                assert!(
                    msg.contains(&format!("{name}[{idx}]")),
                    "{msg:?} does not name {name}[{idx}]"
                );
                assert!(
                    msg.contains("gradients at step 7"),
                    "{msg:?} lacks the context"
                );
            }
            other => panic!("{name}[{idx}] = {bad}: expected NonFinite, got {other:?}"),
        }
    }
    // Large finite values are fine.
    set.get_mut("bias_hh_l0").unwrap()[3] = f32::MAX;
    check_finite(&set, "ok").expect("f32::MAX is finite");
}

fn all_optimizers() -> Vec<(&'static str, Box<dyn Optimizer>)> {
    vec![
        ("sgd", Box::new(Sgd::new(SgdConfig::new(0.1)).unwrap())),
        (
            "sgd momentum",
            Box::new(
                Sgd::new(SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 0.01,
                    ..SgdConfig::new(0.1)
                })
                .unwrap(),
            ),
        ),
        ("adam", Box::new(Adam::new(AdamConfig::new(0.01)).unwrap())),
        (
            "adamw",
            Box::new(Adam::new(AdamConfig::adamw(0.01)).unwrap()),
        ),
        (
            "rmsprop",
            Box::new(
                RmsProp::new(RmsPropConfig {
                    momentum: 0.9,
                    centered: true,
                    ..RmsPropConfig::new(0.01)
                })
                .unwrap(),
            ),
        ),
    ]
}

#[test]
fn mismatched_lengths_change_nothing() {
    let p0: Vec<f32> = (0..7).map(|i| 0.3 * i as f32 - 1.0).collect();
    let g: Vec<f32> = (0..7).map(|i| 0.7 - 0.2 * i as f32).collect();
    for ((name, mut opt), (_, mut fresh)) in all_optimizers().into_iter().zip(all_optimizers()) {
        // params and grads differ in length, on the first call (empty state)...
        let mut p = p0.clone();
        let err = opt.step(&mut p, &g[..6]).expect_err(name);
        assert!(matches!(err, Error::Shape { .. }), "{name}: {err}");
        assert_eq!(p, p0, "{name}: params changed by a failed step");
        let err = opt.step(&mut p[..6], &g).expect_err(name);
        assert!(matches!(err, Error::Shape { .. }), "{name}: {err}");
        assert_eq!(p, p0, "{name}: params changed by a failed step");

        // ...and after a good step (state sized).
        opt.step(&mut p, &g).unwrap();
        let after_one = p.clone();
        let err = opt.step(&mut p, &g[..5]).expect_err(name);
        assert!(matches!(err, Error::Shape { .. }), "{name}: {err}");
        assert_eq!(p, after_one, "{name}: params changed by a failed step");

        // The failed calls left the state alone: two more good steps match a
        // fresh optimizer that never saw an error.
        let mut q = p0.clone();
        for _ in 0..3 {
            fresh.step(&mut q, &g).unwrap();
        }
        opt.step(&mut p, &g).unwrap();
        opt.step(&mut p, &g).unwrap();
        assert_eq!(p, q, "{name}: a failed step changed the optimizer state");
    }
}

#[test]
fn stateful_optimizers_reject_a_new_length() {
    // Optimizers with per-element state size it on the first call and must
    // refuse a buffer of another length afterwards (plain SGD has no state).
    for (name, mut opt) in all_optimizers().into_iter().skip(1) {
        let mut p = vec![0.5f32; 4];
        opt.step(&mut p, &[1.0; 4]).unwrap();
        let mut longer = vec![0.5f32; 5];
        let err = opt.step(&mut longer, &[1.0; 5]).expect_err(name);
        assert!(matches!(err, Error::Shape { .. }), "{name}: {err}");
        assert_eq!(
            longer,
            vec![0.5f32; 5],
            "{name}: params changed by a failed step"
        );
    }
}
