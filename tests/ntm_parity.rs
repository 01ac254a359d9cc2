//! NTM parity with the PyTorch float64 reference (`tests/fixtures/gen_ntm.py`,
//! the same machine written with torch ops from docs/ntm.md): outputs and
//! **every** gradient of every fixture in `tests/fixtures/ntm/`; and
//! `forward_into` (two memory slots) against `forward_train`, bit for bit.
//!
//! Tolerance per tensor, as for the cells: `max|ours - ref| <= 1e-5 + 1e-4 *
//! max|ref|`.

use std::path::Path;

use recurrent::TensorFile;
use recurrent::ntm::{Ntm, NtmConfig, NtmGradScratch, NtmTape};

/// `(error, bound)` of one tensor.
fn error(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), reference.len(), "lengths");
    let max_ref = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| {
            if a.is_finite() {
                (a - b).abs()
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0f32, f32::max);
    (err, 1e-5 + 1e-4 * max_ref)
}

fn check_file(path: &Path) -> Result<String, String> {
    let file = TensorFile::read(path).map_err(|e| e.to_string())?;
    let get = |k: &str| file.metadata.get(k).cloned();
    let config = NtmConfig::from_metadata(get).map_err(|e| e.to_string())?;
    let num = |k: &str| -> usize { file.metadata[k].parse().expect("size in metadata") };
    let (t, b) = (num("seq_len"), num("batch"));
    let tensors = file.tensors.keys().filter_map(|name| {
        let (shape, values) = file.f32(name)?;
        Some((name.as_str(), shape, values))
    });
    let ntm = Ntm::from_params(config, tensors).map_err(|e| e.to_string())?;
    let tensor = |name: &str| file.f32(name).map(|(_, v)| v).ok_or(format!("no {name}"));
    let x = tensor("x")?;
    let mut tape = NtmTape::new();
    ntm.forward_train(x, t, b, &mut tape)
        .map_err(|e| e.to_string())?;
    let mut grads = ntm.zero_grads();
    let mut dx = vec![0.0; x.len()];
    ntm.backward(
        &tape,
        tensor("grad_y")?,
        &mut grads,
        Some(&mut dx),
        &mut NtmGradScratch::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut checks = vec![("y".to_string(), error(tape.y(), tensor("y")?))];
    // The forward that keeps only two memory slots computes the same logits,
    // bit for bit, and its tape is refused by backward.
    let mut slim = NtmTape::new();
    ntm.forward_into(x, t, b, &mut slim)
        .map_err(|e| e.to_string())?;
    if slim.y() != tape.y() {
        return Err("forward_into's logits differ from forward_train's".into());
    }
    let refused = ntm.backward(
        &slim,
        tensor("grad_y")?,
        &mut ntm.zero_grads(),
        None,
        &mut NtmGradScratch::default(),
    );
    if refused.is_ok() || !slim.weightings().is_empty() {
        return Err("a forward_into tape was usable by backward or kept its weightings".into());
    }
    checks.push(("grad.x".into(), error(&dx, tensor("grad.x")?)));
    for (name, _, g) in grads.iter() {
        checks.push((
            format!("grad.{name}"),
            error(g, tensor(&format!("grad.{name}"))?),
        ));
    }
    let worst = checks
        .iter()
        .max_by(|a, b| (a.1.0 / a.1.1).total_cmp(&(b.1.0 / b.1.1)))
        .expect("checks");
    let failed: Vec<String> = checks
        .iter()
        .filter(|(_, (e, bound))| e.is_nan() || e > bound)
        .map(|(n, (e, bound))| format!("{n}: {e:.3e} > {bound:.3e}"))
        .collect();
    if failed.is_empty() {
        Ok(format!(
            "worst {} {:.2e} (bound {:.2e})",
            worst.0, worst.1.0, worst.1.1
        ))
    } else {
        Err(failed.join("; "))
    }
}

#[test]
fn ntm_matches_pytorch_float64_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ntm");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/ntm")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected at least 8 NTM fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        match check_file(path) {
            Ok(msg) => println!("PASS {name:60} {msg}"),
            Err(msg) => {
                println!("FAIL {name:60} {msg}");
                failures.push(name.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "NTM parity failures: {failures:?}");
}
