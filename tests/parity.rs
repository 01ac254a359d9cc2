//! PyTorch parity: runs every fixture file in `tests/fixtures/parity/` (or in
//! the folder named by `RNN_PARITY_FIXTURES`) and checks the outputs, final
//! states and **every** gradient against PyTorch's float64 reference.
//!
//! Tolerance per tensor: `max|ours - ref| <= 1e-5 + 1e-4 * max|ref|`.
//! The file format is described in `tests/fixtures/README.md`.

use std::path::{Path, PathBuf};

use recurrent::{Gradients, OutputGrads, Recurrent, SeqInput, Tape, TensorFile};

fn fixture_dir() -> PathBuf {
    match std::env::var_os("RNN_PARITY_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity"),
    }
}

/// Worst tensor of one file: (name, error, bound).
#[derive(Debug)]
struct Worst {
    tensor: String,
    err: f32,
    bound: f32,
}

enum Verdict {
    Pass(Worst),
    Fail(Worst, Vec<String>),
}

fn compare(
    name: &str,
    ours: &[f32],
    reference: &[f32],
    worst: &mut Worst,
    failures: &mut Vec<String>,
) {
    if ours.len() != reference.len() {
        failures.push(format!(
            "{name}: length {} vs reference {}",
            ours.len(),
            reference.len()
        ));
        return;
    }
    let max_ref = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let bound = 1e-5 + 1e-4 * max_ref;
    let err = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| {
            if a.is_nan() || b.is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0f32, f32::max);
    if err > bound {
        failures.push(format!(
            "{name}: max abs error {err:.3e} > bound {bound:.3e}"
        ));
    }
    if err / bound > worst.err / worst.bound.max(f32::MIN_POSITIVE) || worst.tensor.is_empty() {
        *worst = Worst {
            tensor: name.to_string(),
            err,
            bound,
        };
    }
}

fn run_file(path: &Path) -> Result<Verdict, String> {
    let file = TensorFile::read(path).map_err(|e| e.to_string())?;
    let config = file.net_config(path).map_err(|e| e.to_string())?;
    let meta = |k: &str| -> Result<usize, String> {
        file.meta(path, k)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|_| format!("metadata {k} not an integer"))
    };
    let (t, b) = (meta("seq_len")?, meta("batch")?);
    let tensor = |n: &str| {
        file.f32(n)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("tensor {n} missing"))
    };
    let params = file
        .tensors
        .keys()
        .filter_map(|n| file.f32(n).map(|(s, v)| (n.as_str(), s, v)));
    let net = Recurrent::from_params(config.clone(), params).map_err(|e| e.to_string())?;
    let lstm = config.cell.has_cell_state();

    let lengths: Option<Vec<usize>> = match file.tensors.get("lengths") {
        None => None,
        Some(_) => {
            let (_, l) = file.i64("lengths").ok_or("tensor lengths is not i64")?;
            Some(
                l.iter()
                    .map(|&v| usize::try_from(v).map_err(|_| format!("negative length {v}")))
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    let mut input = SeqInput::new(tensor("x")?, t, b).h0(tensor("h0")?);
    if let Some(l) = &lengths {
        input = input.lengths(l);
    }
    if lstm {
        input = input.c0(tensor("c0")?);
    }
    let mut tape = Tape::new();
    let out = net
        .forward_train(input, &mut tape)
        .map_err(|e| e.to_string())?;
    let mut grads_in = OutputGrads::new(tensor("grad_y")?).h_n(tensor("grad_h_n")?);
    if lstm {
        grads_in = grads_in.c_n(tensor("grad_c_n")?);
    }
    let mut grads = Gradients::for_net(&net);
    net.backward(&mut tape, grads_in, &mut grads)
        .map_err(|e| e.to_string())?;

    let mut worst = Worst {
        tensor: String::new(),
        err: 0.0,
        bound: 1.0,
    };
    let mut failures = Vec::new();
    let mut check = |name: &str, ours: &[f32], ref_name: &str| match file.f32(ref_name) {
        Some((_, r)) => compare(name, ours, r, &mut worst, &mut failures),
        None => failures.push(format!("reference tensor {ref_name} missing")),
    };
    check("y", &out.y, "y");
    check("h_n", &out.h_n, "h_n");
    check("grad.x", &grads.x, "grad.x");
    check("grad.h0", &grads.h0, "grad.h0");
    if lstm {
        check("c_n", &out.c_n, "c_n");
        check("grad.c0", &grads.c0, "grad.c0");
    }
    for (name, _, values) in grads.params.iter() {
        let g = format!("grad.{name}");
        check(&g, values, &g);
    }
    Ok(if failures.is_empty() {
        Verdict::Pass(worst)
    } else {
        Verdict::Fail(worst, failures)
    })
}

#[test]
fn pytorch_parity() {
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

    let (mut passed, mut failed) = (0, Vec::new());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match run_file(path) {
            Ok(Verdict::Pass(w)) => {
                passed += 1;
                println!(
                    "PASS {name:55} worst {:14} {:.2e} (bound {:.2e})",
                    w.tensor, w.err, w.bound
                );
            }
            Ok(Verdict::Fail(w, why)) => {
                println!(
                    "FAIL {name:55} worst {:14} {:.2e} (bound {:.2e})",
                    w.tensor, w.err, w.bound
                );
                for f in &why {
                    println!("       {f}");
                }
                failed.push(name);
            }
            Err(e) => {
                println!("ERROR {name}: {e}");
                failed.push(name);
            }
        }
    }
    println!(
        "\n{} files in {}: {passed} passed, {} failed",
        files.len(),
        dir.display(),
        failed.len()
    );
    assert!(failed.is_empty(), "parity failures: {failed:?}");
    assert!(passed > 0, "no fixture file passed");
}
