//! Sizes, thread counts and files that must come back as a status (issue
//! 13), in-process: a stream batch too large for memory, thread counts above
//! the cap, concurrent saves to one path, and parameter tensors a file's
//! configuration does not use or lacks. The cases that need a lowered
//! address-space limit run in bindings/c/tests/test_limits.c.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rnn::*;
use rnn_models::io::{config_metadata, write_tensors};
use rnn_models::{CellKind, NetConfig, Recurrent};

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(rnn_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnn-capi-limits-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn c_path(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

fn new_lstm(input: usize, hidden: usize, seed: u64) -> *mut rnn_model {
    let mut c = rnn_config {
        cell: 0,
        activation: 0,
        gru_variant: 0,
        bias: 0,
        bidirectional: 0,
        input_size: 0,
        hidden_size: 0,
        num_layers: 0,
        seed: 0,
    };
    // SAFETY: writable config.
    let st = unsafe { rnn_config_init(&mut c, rnn_cell_kind::Lstm as u32, input, hidden) };
    assert_eq!(st, rnn_status::Ok, "{}", last_error());
    c.seed = seed;
    let mut m = null_mut();
    // SAFETY: valid config and out-pointer.
    let st = unsafe { rnn_model_new(&c, &mut m) };
    assert_eq!(st, rnn_status::Ok, "{}", last_error());
    m
}

#[test]
fn the_out_of_memory_status_is_appended() {
    assert_eq!(rnn_status::OutOfMemory as u32, 8);
    assert_eq!(rnn_status::from_u32(8), Some(rnn_status::OutOfMemory));
    // SAFETY: a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(rnn_status_string(8)) };
    assert_eq!(s.to_str().unwrap(), "out of memory");
    // It came with 0.2: a library that has it is 0.2 or later in major 0.
    let v = rnn_abi_version();
    assert!(
        v >> 16 == 0 && (v >> 8) & 0xff >= 2,
        "OUT_OF_MEMORY came with 0.2"
    );
}

#[test]
fn stream_batches_that_cannot_be_held_are_errors() {
    let m = new_lstm(16, 16, 1);
    for batch in [1usize << 40, usize::MAX, 1 << 60, usize::MAX / 16 + 2] {
        let mut s: *mut rnn_stream = std::ptr::dangling_mut();
        // SAFETY: a live model, a writable out-pointer.
        let st = unsafe { rnn_stream_new(m, batch, &mut s) };
        assert!(
            matches!(st, rnn_status::OutOfMemory | rnn_status::InvalidArgument),
            "batch {batch}: {st:?} {}",
            last_error()
        );
        assert!(s.is_null(), "batch {batch}: *out not NULL after a failure");
        assert!(last_error().contains("rnn_stream_new"), "{}", last_error());
    }
    // A good batch still works.
    let mut s = null_mut();
    // SAFETY: as above.
    assert_eq!(unsafe { rnn_stream_new(m, 3, &mut s) }, rnn_status::Ok);
    let (x, mut y) = (vec![0.25f32; 3 * 16], vec![0.0f32; 3 * 16]);
    // SAFETY: buffers of the sizes the stream needs.
    let st = unsafe { rnn_stream_step(s, m, x.as_ptr(), y.as_mut_ptr(), y.len()) };
    assert_eq!(st, rnn_status::Ok, "{}", last_error());
    // SAFETY: live handles, freed once.
    unsafe {
        rnn_stream_free(s);
        rnn_model_free(m);
    }
}

#[test]
fn thread_counts_above_the_cap_are_refused_at_once() {
    assert_eq!(RNN_MAX_THREADS, 1024);
    let mut before = 0;
    // SAFETY: writable out-pointer.
    assert_eq!(unsafe { rnn_get_num_threads(&mut before) }, rnn_status::Ok);
    let start = Instant::now();
    for n in [RNN_MAX_THREADS + 1, usize::MAX] {
        assert_eq!(rnn_set_num_threads(n), rnn_status::InvalidArgument);
        assert!(last_error().contains("1024"), "{}", last_error());
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    let mut after = 0;
    // SAFETY: writable out-pointer.
    assert_eq!(unsafe { rnn_get_num_threads(&mut after) }, rnn_status::Ok);
    assert_eq!(after, before, "a refused count changed the pool");
}

#[test]
fn concurrent_saves_to_one_path_are_atomic() {
    const SAVES: usize = 200;
    let dir = tmp_dir("saves");
    let path = c_path(&dir.join("model.safetensors"));
    let models = [new_lstm(3, 32, 7) as usize, new_lstm(3, 32, 8) as usize];
    let bias = |m: usize| {
        let mut b = vec![0.0f32; 4 * 32];
        // SAFETY: a live model, a buffer of the parameter's size.
        let st = unsafe {
            rnn_model_param_get(
                m as *const rnn_model,
                c"bias_hh_l0".as_ptr(),
                b.as_mut_ptr(),
                b.len(),
            )
        };
        assert_eq!(st, rnn_status::Ok);
        b
    };
    let biases = [bias(models[0]), bias(models[1])];
    // SAFETY: a live model, a NUL-terminated path.
    assert_eq!(
        unsafe { rnn_model_save(models[0] as *const rnn_model, path.as_ptr()) },
        rnn_status::Ok
    );
    let done = AtomicBool::new(false);
    let (save_failures, (loads, load_failures, torn)) = std::thread::scope(|scope| {
        let savers: Vec<_> = models
            .iter()
            .map(|&m| {
                let path = &path;
                scope.spawn(move || {
                    (0..SAVES)
                        .filter(|_| {
                            // SAFETY: a live const model shared for saving (thread-safe).
                            let st =
                                unsafe { rnn_model_save(m as *const rnn_model, path.as_ptr()) };
                            st != rnn_status::Ok
                        })
                        .count()
                })
            })
            .collect();
        let loader = scope.spawn(|| {
            let (mut loads, mut failures, mut torn) = (0, 0, 0);
            while !done.load(Ordering::Acquire) || loads < 10 {
                loads += 1;
                let mut m = null_mut();
                // SAFETY: a NUL-terminated path, a writable out-pointer.
                if unsafe { rnn_model_load(path.as_ptr(), &mut m) } != rnn_status::Ok {
                    failures += 1;
                    continue;
                }
                if !biases.contains(&bias(m as usize)) {
                    torn += 1;
                }
                // SAFETY: a live model, freed once.
                unsafe { rnn_model_free(m) };
            }
            (loads, failures, torn)
        });
        let failed: usize = savers.into_iter().map(|h| h.join().unwrap()).sum();
        done.store(true, Ordering::Release);
        (failed, loader.join().unwrap())
    });
    assert_eq!(save_failures, 0, "failed saves of {}", 2 * SAVES);
    assert_eq!(
        (load_failures, torn),
        (0, 0),
        "failed and torn loads of {loads}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "model.safetensors")
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    // SAFETY: live models, freed once.
    unsafe {
        rnn_model_free(models[0] as *mut rnn_model);
        rnn_model_free(models[1] as *mut rnn_model);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tensor: name, shape, values.
type Tensor<'a> = (&'a str, &'a [usize], &'a [f32]);

/// Writes the tensors of a small LSTM (with biases) under `metadata` edited
/// by `meta`, without the tensors `drop`, plus `extra` tensors.
fn write_edited(path: &Path, meta: &[(&str, &str)], drop: &[&str], extra: &[Tensor<'_>]) {
    let net = Recurrent::new(NetConfig::new(CellKind::Lstm, 2, 3)).unwrap();
    let mut metadata: HashMap<String, String> = config_metadata(net.config());
    for (k, v) in meta {
        metadata.insert(k.to_string(), v.to_string());
    }
    let mut tensors: Vec<Tensor<'_>> = net
        .params()
        .iter()
        .filter(|(n, _, _)| !drop.contains(n))
        .collect();
    tensors.extend_from_slice(extra);
    write_tensors(path, &tensors, metadata).unwrap();
}

fn load(path: &Path) -> (rnn_status, String, *mut rnn_model) {
    let p = c_path(path);
    let mut m: *mut rnn_model = std::ptr::dangling_mut();
    // SAFETY: a NUL-terminated path, a writable out-pointer.
    let st = unsafe { rnn_model_load(p.as_ptr(), &mut m) };
    (st, last_error(), m)
}

/// A file edited from a small LSTM's, and the names its error must give.
struct Edit<'a> {
    file: &'a str,
    meta: &'a [(&'a str, &'a str)],
    drop: &'a [&'a str],
    extra: &'a [Tensor<'a>],
    names: &'a [&'a str],
}

#[test]
fn unused_or_missing_parameter_tensors_are_errors_naming_them() {
    let dir = tmp_dir("tensors");
    let stray = [0.5f32; 12];
    let edits = [
        // bias = false, bias tensors present: not dropped silently.
        Edit {
            file: "bias_false.safetensors",
            meta: &[("bias", "false")],
            drop: &[],
            extra: &[],
            names: &["bias_ih_l0", "bias_hh_l0"],
        },
        // A parameter-like name the configuration does not have.
        Edit {
            file: "extra_layer.safetensors",
            meta: &[],
            drop: &[],
            extra: &[("weight_ih_l1", &[12, 1], &stray)],
            names: &["weight_ih_l1"],
        },
        // A missing weight.
        Edit {
            file: "missing.safetensors",
            meta: &[],
            drop: &["weight_hh_l0"],
            extra: &[],
            names: &["weight_hh_l0"],
        },
    ];
    for e in edits {
        let path = dir.join(e.file);
        write_edited(&path, e.meta, e.drop, e.extra);
        let (st, msg, m) = load(&path);
        assert_eq!(st, rnn_status::Io, "{}: {msg}", e.file);
        assert!(m.is_null());
        assert!(msg.contains(e.file), "{msg}");
        for n in e.names {
            assert!(msg.contains(n), "{}: {msg} does not name {n}", e.file);
        }
    }
    // Tensors not named like a parameter (the parity fixtures' inputs and
    // references) are ignored.
    let path = dir.join("other_tensors.safetensors");
    write_edited(
        &path,
        &[],
        &[],
        &[("x", &[12], &stray), ("y_ref", &[12], &stray)],
    );
    let (st, msg, m) = load(&path);
    assert_eq!(st, rnn_status::Ok, "{msg}");
    // SAFETY: a live model, freed once.
    unsafe { rnn_model_free(m) };
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metadata_claiming_larger_tensors_is_a_format_error() {
    // The memory bound itself is checked under RLIMIT_AS by test_limits.c;
    // here, the status: the shapes disagree (IO), not OUT_OF_MEMORY.
    let dir = tmp_dir("claims");
    for h in ["8000", "30000"] {
        let path = dir.join(format!("claims_h{h}.safetensors"));
        write_edited(&path, &[("hidden_size", h)], &[], &[]);
        let (st, msg, m) = load(&path);
        assert_eq!(st, rnn_status::Io, "{msg}");
        assert!(m.is_null());
        assert!(msg.contains("weight_ih_l0"), "{msg}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
