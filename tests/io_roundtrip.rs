//! Model files: [`Recurrent::save`] then [`Recurrent::load`] gives back the
//! same network, and a bad file is an error that names it, never a panic.
//!
//! Proves:
//! - a round trip for every cell kind (and, by proptest, random
//!   configurations) keeps the configuration, every parameter bit for bit
//!   (including -0, subnormals, infinities and NaN payloads) and so the
//!   forward outputs bit for bit;
//! - every truncation of a saved file (each prefix), an empty file, random
//!   garbage, broken headers, a missing file, and files with wrong metadata
//!   (unknown `cell`, a size that is not a number, a missing key, zero or
//!   mismatched sizes) or wrong tensors (a wrong shape, a missing tensor, an
//!   unsupported dtype) load as `Err` whose message names the file (and the
//!   key or tensor at fault), without panicking;
//! - saving into a missing folder, onto a folder, or to a path without a
//!   file name fails and leaves no file behind (no temp file either);
//!   saving over an existing file replaces it and leaves no temp file.
//!
//! Each test works in its own folder under `std::env::temp_dir()`, removed
//! at the end.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use recurrent::{
    CellKind, Error, GruVariant, Merge, NetConfig, Nonlinearity, Recurrent, SeqInput, TensorData,
    TensorFile,
};
use safetensors::tensor::{Dtype, TensorView};

const CELLS: [CellKind; 5] = [
    CellKind::Elman(Nonlinearity::Tanh),
    CellKind::Elman(Nonlinearity::Relu),
    CellKind::Lstm,
    CellKind::Gru(GruVariant::LinearBeforeReset),
    CellKind::Gru(GruVariant::ResetBeforeLinear),
];

/// A fresh folder under the system temp folder, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("librnn-io-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test folder");
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// The names in the folder, sorted.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read the test folder")
            .map(|e| {
                e.expect("folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SplitMix64: a small seeded generator for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    fn signed(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.signed()).collect()
    }
}

/// A network of `config` with random parameters in [-2, 2).
fn random_net(config: NetConfig, rng: &mut Rng) -> Recurrent {
    let mut net = Recurrent::new(config).expect("valid config");
    net.params_mut()
        .iter_mut()
        .for_each(|v| *v = 2.0 * rng.signed());
    net
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts `loaded` is `saved`: configuration, layout, every parameter bit.
#[track_caller]
fn assert_same_net(loaded: &Recurrent, saved: &Recurrent) {
    assert_eq!(loaded.config(), saved.config());
    assert_eq!(loaded.params().infos(), saved.params().infos());
    assert_eq!(
        bits(loaded.params().as_slice()),
        bits(saved.params().as_slice())
    );
}

/// Asserts both networks give bit-identical outputs on a random batch.
#[track_caller]
fn assert_same_outputs(a: &Recurrent, b: &Recurrent, rng: &mut Rng) {
    let c = a.config();
    let (t, batch) = (5, 3);
    let n_state = c.num_layers * c.directions() * batch * c.hidden_size;
    let n_h = c.num_layers * c.directions() * batch * c.state_size();
    let (x, h0, c0) = (
        rng.vec(t * batch * c.input_size),
        rng.vec(n_h),
        rng.vec(n_state),
    );
    let input = SeqInput::new(&x, t, batch).h0(&h0);
    let input = if c.cell.has_cell_state() {
        input.c0(&c0)
    } else {
        input
    };
    let (oa, ob) = (
        a.forward(input).expect("forward"),
        b.forward(input).expect("forward"),
    );
    assert_eq!(bits(&oa.y), bits(&ob.y), "y");
    assert_eq!(bits(&oa.h_n), bits(&ob.h_n), "h_n");
    assert_eq!(bits(&oa.c_n), bits(&ob.c_n), "c_n");
}

/// Loads `path`, requiring an `Err` (not a panic) whose message names the
/// file and contains every one of `needles`; returns the error.
#[track_caller]
fn assert_load_fails(path: &Path, needles: &[&str]) -> Error {
    let r = catch_unwind(|| Recurrent::load(path))
        .unwrap_or_else(|_| panic!("load({}) panicked", path.display()));
    let err = r.expect_err(&format!("load({}) must fail", path.display()));
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the message does not name the file: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in the message: {msg}");
    }
    err
}

/// One tensor to write: name, dtype, shape, raw little-endian bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The metadata and tensors of a saved file, to edit and write back.
fn contents(path: &Path) -> (HashMap<String, String>, Vec<RawTensor>) {
    let file = TensorFile::read(path).expect("a good file");
    let mut tensors: Vec<RawTensor> = file
        .tensors
        .iter()
        .map(|(name, (shape, data))| match data {
            TensorData::F32(v) => (name.clone(), Dtype::F32, shape.clone(), f32_bytes(v)),
            TensorData::I64(_) => panic!("no i64 tensors in a model file"),
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    (file.metadata, tensors)
}

/// Writes a safetensors file with safetensors' own serializer.
fn write_safetensors(
    path: &Path,
    metadata: Option<HashMap<String, String>>,
    tensors: &[RawTensor],
) {
    let views = tensors.iter().map(|(n, dtype, shape, bytes)| {
        (
            n.clone(),
            TensorView::new(*dtype, shape.clone(), bytes).expect("a valid view"),
        )
    });
    let bytes = safetensors::tensor::serialize(views, metadata).expect("serialize");
    std::fs::write(path, bytes).expect("write the file");
}

/// A small saved LSTM (2 layers, I = 2, H = 3) in a new folder.
fn saved_lstm(name: &str) -> (TestDir, PathBuf, Recurrent) {
    let dir = TestDir::new(name);
    let config = NetConfig {
        num_layers: 2,
        seed: 3,
        ..NetConfig::new(CellKind::Lstm, 2, 3)
    };
    let net = random_net(config, &mut Rng(1));
    let path = dir.path("model.safetensors");
    net.save(&path).expect("save");
    (dir, path, net)
}

#[test]
fn round_trip_every_cell_kind() {
    let mut rng = Rng(7);
    for cell in CELLS {
        for (i, h, num_layers, bidirectional, bias, merge) in [
            (3, 4, 2, true, true, Merge::Concat),
            (5, 2, 1, false, false, Merge::Concat),
            (1, 1, 3, true, false, Merge::Concat),
            (3, 4, 2, true, true, Merge::Sum),
        ] {
            let config = NetConfig {
                num_layers,
                bidirectional,
                bias,
                merge,
                batch_first: merge == Merge::Sum,
                // An LSTM's projection, with the newer keys.
                proj_size: if cell == CellKind::Lstm && merge == Merge::Sum {
                    2
                } else {
                    0
                },
                seed: rng.next_u64(),
                ..NetConfig::new(cell, i, h)
            };
            let net = random_net(config, &mut rng);
            let dir = TestDir::new("every-cell");
            let path = dir.path("model.safetensors");
            net.save(&path).expect("save");
            assert_eq!(dir.listing(), ["model.safetensors"], "only the model file");
            let loaded = Recurrent::load(&path).expect("load");
            assert_same_net(&loaded, &net);
            assert_eq!(loaded, net);
            assert_same_outputs(&loaded, &net, &mut rng);
        }
    }
}

#[test]
fn round_trip_keeps_special_values_bit_exact() {
    let dir = TestDir::new("special");
    let mut net = Recurrent::new(NetConfig::new(
        CellKind::Gru(GruVariant::ResetBeforeLinear),
        2,
        2,
    ))
    .expect("valid");
    let special = [
        -0.0,
        0.0,
        f32::from_bits(1),            // smallest subnormal
        -f32::from_bits(0x007f_ffff), // largest negative subnormal
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234), // quiet NaN with a payload
        f32::from_bits(0xff80_0001), // signalling NaN, negative
        1.0 + f32::EPSILON,
    ];
    let n = net.params().num_elements();
    assert!(n >= special.len());
    for (k, v) in net.params_mut().iter_mut().enumerate() {
        *v = special[k % special.len()];
    }
    let path = dir.path("special.safetensors");
    net.save(&path).expect("save");
    let loaded = Recurrent::load(&path).expect("load");
    assert_same_net(&loaded, &net);
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    let (dir, path, _) = saved_lstm("truncated");
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path("cut.safetensors");
    for len in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).expect("write");
        assert_load_fails(&cut, &[]);
    }
    // The whole file still loads: the loop above tested every proper prefix.
    std::fs::write(&cut, &bytes).expect("write");
    Recurrent::load(&cut).expect("the untruncated copy loads");
}

#[test]
fn garbage_is_an_error_naming_the_file() {
    let (dir, good, _) = saved_lstm("garbage");
    let good_bytes = std::fs::read(&good).expect("read");
    let header_len = u64::from_le_bytes(good_bytes[..8].try_into().expect("8 bytes"));
    let path = dir.path("bad.safetensors");
    let mut rng = Rng(11);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("huge header length".into(), u64::MAX.to_le_bytes().to_vec()),
        (
            "header length past the end".into(),
            [(1u64 << 20).to_le_bytes().as_slice(), b"{}"].concat(),
        ),
        (
            "header not JSON".into(),
            [6u64.to_le_bytes().as_slice(), b"abcdef"].concat(),
        ),
        (
            "header not UTF-8".into(),
            [4u64.to_le_bytes().as_slice(), &[0xff, 0xfe, 0x7b, 0x7d]].concat(),
        ),
        (
            "header a JSON list".into(),
            [2u64.to_le_bytes().as_slice(), b"[]"].concat(),
        ),
        ("offsets past the data".into(), {
            let h = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
            [(h.len() as u64).to_le_bytes().as_slice(), h, &[0; 4]].concat()
        }),
        ("shape product overflows".into(), {
            let h =
                br#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#;
            [(h.len() as u64).to_le_bytes().as_slice(), h].concat()
        }),
        ("header length one byte short".into(), {
            let mut b = good_bytes.clone();
            b[..8].copy_from_slice(&(header_len - 1).to_le_bytes());
            b
        }),
        ("header length one byte long".into(), {
            let mut b = good_bytes.clone();
            b[..8].copy_from_slice(&(header_len + 1).to_le_bytes());
            b
        }),
        (
            "one data byte too many".into(),
            [good_bytes.as_slice(), &[0]].concat(),
        ),
    ];
    for n in [1, 7, 8, 9, 64, 1000, 5000] {
        let noise: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        files.push((format!("{n} random bytes"), noise));
    }
    // The good header over random data, and random bytes in the header.
    for k in 0..8 {
        let mut b = good_bytes.clone();
        let at = 8 + (rng.next_u64() % header_len) as usize;
        b[at] = b[at].wrapping_add(1 + (k as u8 % 255));
        files.push((format!("header byte {at} changed"), b));
    }
    for (what, bytes) in &files {
        std::fs::write(&path, bytes).expect("write");
        let r = catch_unwind(|| Recurrent::load(&path))
            .unwrap_or_else(|_| panic!("{what}: load panicked"));
        if what.starts_with("header byte") {
            // A changed header byte may still be a valid file (e.g. a digit
            // of a value in the metadata): it must load or fail cleanly.
            if let Err(e) = r {
                assert!(
                    e.to_string().contains(&path.display().to_string()),
                    "{what}: {e}"
                );
            }
            continue;
        }
        let err = r.expect_err(what);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{what}: {err}"
        );
        assert!(matches!(err, Error::Format { .. }), "{what}: {err:?}");
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = TestDir::new("missing");
    let path = dir.path("no-such-model.safetensors");
    let err = assert_load_fails(&path, &["no-such-model.safetensors"]);
    match err {
        Error::Io { path: p, source } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // A folder is not a model file either.
    assert_load_fails(&dir.0, &[]);
}

#[test]
fn wrong_metadata_is_an_error_naming_the_file_and_the_key() {
    let (dir, good, net) = saved_lstm("metadata");
    let (meta, tensors) = contents(&good);
    let path = dir.path("edited.safetensors");
    // A copy written by the test's own writer loads: the edits below are
    // the only problems.
    write_safetensors(&path, Some(meta.clone()), &tensors);
    assert_same_net(&Recurrent::load(&path).expect("unedited copy"), &net);

    // (key, new value or None to remove it, the message names one of these)
    let edits: [(&str, Option<&str>, &[&str]); 18] = [
        ("cell", Some("transformer"), &["\"transformer\""]),
        ("cell", Some("LSTM"), &["\"LSTM\""]),
        ("cell", None, &["\"cell\""]),
        ("hidden_size", Some("three"), &["hidden_size"]),
        ("hidden_size", Some("-3"), &["hidden_size"]),
        ("hidden_size", Some(""), &["hidden_size"]),
        ("hidden_size", Some("3.0"), &["hidden_size"]),
        (
            "hidden_size",
            Some("99999999999999999999999"),
            &["hidden_size"],
        ),
        ("hidden_size", Some("0"), &["hidden_size"]),
        // The tensors are for H = 3: whichever is checked first is named.
        (
            "hidden_size",
            Some("4"),
            &["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"],
        ),
        ("input_size", None, &["\"input_size\""]),
        ("num_layers", Some("0"), &["num_layers"]),
        ("num_layers", Some("3"), &["weight_ih_l2"]),
        ("bias", Some("maybe"), &["bias=\"maybe\""]),
        ("bidirectional", Some("yes"), &["bidirectional=\"yes\""]),
        // Layer 1 then reads 2H = 6 features, and _reverse tensors are due.
        ("bidirectional", Some("true"), &["_reverse", "weight_ih_l1"]),
        ("merge", Some("avg"), &["merge \"avg\""]),
        ("batch_first", Some("yes"), &["batch_first=\"yes\""]),
    ];
    for (key, value, any_of) in edits {
        let mut m = meta.clone();
        match value {
            Some(v) => m.insert(key.to_string(), v.to_string()),
            None => m.remove(key),
        };
        write_safetensors(&path, Some(m), &tensors);
        let msg = assert_load_fails(&path, &[]).to_string();
        assert!(
            any_of.iter().any(|n| msg.contains(n)),
            "{key}={value:?}: none of {any_of:?} in: {msg}"
        );
    }
    write_safetensors(&path, None, &tensors);
    assert_load_fails(&path, &["\"cell\""]);

    // Files written before `merge` and `batch_first` existed lack them:
    // concatenated, time-major.
    let mut old = meta.clone();
    assert_eq!(old.remove("merge").as_deref(), Some("concat"));
    assert_eq!(old.remove("batch_first").as_deref(), Some("false"));
    write_safetensors(&path, Some(old), &tensors);
    let loaded = Recurrent::load(&path).expect("a file without the newer keys");
    assert_eq!(loaded.config(), net.config());
}

#[test]
fn wrong_tensors_are_an_error_naming_the_file_and_the_tensor() {
    let (dir, good, _) = saved_lstm("tensors");
    let (meta, tensors) = contents(&good);
    let path = dir.path("edited.safetensors");
    let edit = |name: &str, f: &dyn Fn(&mut RawTensor)| -> Vec<RawTensor> {
        let mut t = tensors.clone();
        f(t.iter_mut().find(|t| t.0 == name).expect("tensor present"));
        t
    };
    // weight_hh_l1 is [12, 3]: 36 values.
    let cases: Vec<(&str, Vec<RawTensor>, &[&str])> = vec![
        (
            "missing",
            tensors
                .iter()
                .filter(|t| t.0 != "bias_ih_l1")
                .cloned()
                .collect(),
            &["bias_ih_l1"],
        ),
        (
            "transposed",
            edit("weight_hh_l1", &|t| t.2 = vec![3, 12]),
            &["weight_hh_l1", "[12, 3]", "[3, 12]"],
        ),
        (
            "flat",
            edit("weight_hh_l1", &|t| t.2 = vec![36]),
            &["weight_hh_l1", "[36]"],
        ),
        (
            "one row short",
            edit("weight_hh_l1", &|t| {
                t.2 = vec![11, 3];
                t.3.truncate(33 * 4);
            }),
            &["weight_hh_l1", "[11, 3]"],
        ),
        (
            "f64",
            edit("weight_hh_l1", &|t| {
                t.1 = Dtype::F64;
                t.3 = [t.3.as_slice(), t.3.as_slice()].concat();
            }),
            &["weight_hh_l1", "F64"],
        ),
        (
            "i64 (read, then not a parameter)",
            edit("bias_hh_l0", &|t| {
                t.1 = Dtype::I64;
                t.3 = [t.3.as_slice(), t.3.as_slice()].concat();
            }),
            &["bias_hh_l0"],
        ),
        (
            "f16",
            edit("bias_hh_l0", &|t| {
                t.1 = Dtype::F16;
                t.3.truncate(t.3.len() / 2);
            }),
            &["bias_hh_l0", "F16"],
        ),
    ];
    for (what, t, needles) in cases {
        write_safetensors(&path, Some(meta.clone()), &t);
        let r = catch_unwind(AssertUnwindSafe(|| Recurrent::load(&path)));
        assert!(r.is_ok(), "{what}: load panicked");
        assert_load_fails(&path, needles);
    }
}

#[test]
fn parameters_the_configuration_does_not_use_are_an_error_naming_them() {
    // A bias-free configuration whose file carries biases: loading it must
    // not drop them silently (that changes every forecast).
    let (dir, good, net) = saved_lstm("unused");
    let (mut meta, tensors) = contents(&good);
    let path = dir.path("edited.safetensors");
    meta.insert("bias".into(), "false".into());
    write_safetensors(&path, Some(meta.clone()), &tensors);
    assert_load_fails(
        &path,
        &["bias_hh_l0", "bias_ih_l0", "bias_ih_l1", "not used"],
    );
    // One layer declared, two in the file.
    let mut one_layer = meta.clone();
    one_layer.insert("bias".into(), "true".into());
    one_layer.insert("num_layers".into(), "1".into());
    write_safetensors(&path, Some(one_layer), &tensors);
    assert_load_fails(&path, &["weight_ih_l1", "weight_hh_l1", "not used"]);
    // A reverse direction in a unidirectional file.
    let mut with_reverse = tensors.clone();
    let w = with_reverse
        .iter()
        .find(|t| t.0 == "weight_hh_l0")
        .cloned()
        .expect("tensor");
    with_reverse.push(("weight_hh_l0_reverse".into(), w.1, w.2, w.3));
    meta.insert("bias".into(), "true".into());
    write_safetensors(&path, Some(meta.clone()), &with_reverse);
    assert_load_fails(&path, &["weight_hh_l0_reverse"]);
    // Tensors of other names (inputs, references) are still ignored.
    let mut with_inputs = tensors.clone();
    with_inputs.push(("x".into(), Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0])));
    let (dtype, shape, bytes) = w_like(&tensors);
    with_inputs.push(("grad.weight_hh_l0".into(), dtype, shape, bytes));
    // ... whatever their dtype.
    with_inputs.push(("x64".into(), Dtype::F64, vec![1], vec![0; 8]));
    with_inputs.push((
        "lengths32".into(),
        Dtype::I32,
        vec![2],
        vec![1, 0, 0, 0, 2, 0, 0, 0],
    ));
    write_safetensors(&path, Some(meta), &with_inputs);
    assert_same_net(&Recurrent::load(&path).expect("load"), &net);
}

/// A copy of `weight_hh_l0`'s dtype, shape and bytes.
fn w_like(tensors: &[RawTensor]) -> (Dtype, Vec<usize>, Vec<u8>) {
    let t = tensors
        .iter()
        .find(|t| t.0 == "weight_hh_l0")
        .expect("tensor");
    (t.1, t.2.clone(), t.3.clone())
}

/// Sizes in the metadata beyond what the file holds are an error found
/// before anything is allocated for them (the allocation bound itself is
/// checked by `tests/load_mutations.rs`).
#[test]
fn metadata_claiming_more_than_the_file_holds_is_an_error() {
    let (dir, good, _) = saved_lstm("claims");
    let (meta, tensors) = contents(&good);
    let path = dir.path("edited.safetensors");
    for (key, value, needle) in [
        // Past the parameter limit: refused from the metadata alone.
        ("hidden_size", "30000", "hidden_size 30000"),
        ("input_size", "4000000000", "input_size 4000000000"),
        // Within it: refused on the first tensor of another shape.
        ("hidden_size", "8000", "weight_ih_l0"),
        ("num_layers", "1000", "weight_ih_l2"),
    ] {
        let mut m = meta.clone();
        m.insert(key.into(), value.into());
        write_safetensors(&path, Some(m), &tensors);
        let started = std::time::Instant::now();
        assert_load_fails(&path, &[needle]);
        // Zeroing the 1 GB that hidden_size = 8000 asks for takes far longer.
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{key} = {value}: {:?}",
            started.elapsed()
        );
    }
}

/// An NTM file's metadata is read as strictly as a network's: a seed that
/// is not a number is an error (it was read as 0), and unused parameters
/// (`init.memory` under a constant memory) are an error naming them.
#[test]
fn ntm_metadata_and_unused_parameters_are_checked() {
    use recurrent::ntm::{MemoryInit, Ntm, NtmConfig};
    let dir = TestDir::new("ntm");
    let good = dir.path("ntm.safetensors");
    let learned = NtmConfig {
        controller_size: 6,
        memory_rows: 8,
        memory_width: 4,
        memory: MemoryInit::Learned,
        ..NtmConfig::copy_task(3)
    };
    Ntm::new(learned).expect("valid").save(&good).expect("save");
    let (meta, tensors) = contents(&good);
    let path = dir.path("edited.safetensors");
    let load_err = |meta: &HashMap<String, String>| {
        write_safetensors(&path, Some(meta.clone()), &tensors);
        Ntm::load(&path).expect_err("must fail").to_string()
    };
    for seed in ["abc", "-1", ""] {
        let mut m = meta.clone();
        m.insert("seed".into(), seed.into());
        let msg = load_err(&m);
        assert!(
            msg.contains("seed") && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }
    let mut constant = meta.clone();
    constant.insert("memory".into(), "constant".into());
    constant.insert("memory_init".into(), "0.000001".into());
    let msg = load_err(&constant);
    assert!(msg.contains("init.memory"), "{msg}");
    write_safetensors(&path, Some(meta), &tensors);
    Ntm::load(&path).expect("the unedited file loads");
}

/// Two threads save two different networks to one path, 200 times each,
/// while a third loads it: every save succeeds and every load sees one of
/// the two networks whole (each save uses its own temporary file).
#[test]
fn concurrent_saves_to_one_path_are_atomic() {
    let (dir, path, a) = saved_lstm("concurrent");
    let b = random_net(a.config().clone(), &mut Rng(99));
    let done = std::sync::atomic::AtomicBool::new(false);
    let loads = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let loaded = Recurrent::load(&path).expect("a concurrent load");
                assert!(loaded == a || loaded == b, "a torn or foreign model");
                n += 1;
            }
            n
        });
        let writers: Vec<_> = [&a, &b]
            .into_iter()
            .map(|net| {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..200 {
                        net.save(path).expect("a concurrent save");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        done.store(true, Ordering::Relaxed);
        reader.join().expect("reader")
    });
    assert!(loads > 0);
    assert_eq!(
        dir.listing(),
        ["model.safetensors"],
        "no temporary file left"
    );
}

#[test]
fn saving_into_a_missing_folder_fails_and_leaves_nothing() {
    let (dir, _, net) = saved_lstm("missing-folder");
    let before = dir.listing();
    let path = dir.path("no-such-folder").join("model.safetensors");
    let err = net.save(&path).expect_err("no folder");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(dir.listing(), before, "something was written");
    assert!(!dir.path("no-such-folder").exists());
}

#[test]
fn saving_onto_a_folder_fails_and_removes_its_temp_file() {
    let (dir, _, net) = saved_lstm("onto-folder");
    let target = dir.path("taken");
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::write(target.join("inside"), b"keep").expect("write");
    let before = dir.listing();
    let err = net.save(&target).expect_err("a folder is in the way");
    assert!(
        err.to_string().contains(&target.display().to_string()),
        "{err}"
    );
    assert_eq!(dir.listing(), before, "a temp file was left behind");
    assert_eq!(std::fs::read(target.join("inside")).expect("read"), b"keep");

    // A path with no file name.
    let err = net.save(dir.0.join("..")).expect_err("no file name");
    assert!(
        matches!(err, Error::Format { .. } | Error::Io { .. }),
        "{err:?}"
    );
    assert_eq!(dir.listing(), before);
}

#[test]
fn saving_over_a_file_replaces_it_and_leaves_no_temp_file() {
    let (dir, path, first) = saved_lstm("replace");
    let mut rng = Rng(5);
    let second = random_net(
        NetConfig {
            bidirectional: true,
            ..NetConfig::new(CellKind::Elman(Nonlinearity::Relu), 4, 5)
        },
        &mut rng,
    );
    second.save(&path).expect("save over the first");
    assert_eq!(dir.listing(), ["model.safetensors"]);
    let loaded = Recurrent::load(&path).expect("load");
    assert_same_net(&loaded, &second);
    assert_ne!(loaded, first);

    // Over a bigger file of garbage: replaced, not overwritten in place.
    std::fs::write(&path, vec![0xAB; 1 << 16]).expect("write");
    first.save(&path).expect("save over garbage");
    assert_eq!(dir.listing(), ["model.safetensors"]);
    assert_same_net(&Recurrent::load(&path).expect("load"), &first);
    assert!(std::fs::metadata(&path).expect("stat").len() < 1 << 16);
}

/// A 1 KB file whose metadata claims sizes that cannot be allocated
/// (`input_size` = `hidden_size` = 2^27: 2^57 f32, more than any address
/// space) is an error naming the file, not an abort of the process. The
/// load runs in a child process (this test binary again, with
/// `RNN_TEST_CHILD` set to the file), so that an abort, which
/// `catch_unwind` cannot catch, fails this test only.
#[test]
fn unallocatable_sizes_in_a_file_are_an_error_not_an_abort() {
    if let Some(path) = std::env::var_os("RNN_TEST_CHILD") {
        println!("child error: {}", assert_load_fails(Path::new(&path), &[]));
        return;
    }
    let (dir, good, _) = saved_lstm("unallocatable");
    let (mut meta, tensors) = contents(&good);
    meta.insert("input_size".into(), (1u64 << 27).to_string());
    meta.insert("hidden_size".into(), (1u64 << 27).to_string());
    let path = dir.path("huge.safetensors");
    write_safetensors(&path, Some(meta), &tensors);
    let name = "unallocatable_sizes_in_a_file_are_an_error_not_an_abort";
    let out = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("RNN_TEST_CHILD", &path)
        .output()
        .expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the child process failed ({}): {text}",
        out.status
    );
}

fn cell() -> impl Strategy<Value = CellKind> {
    prop::sample::select(CELLS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_random_configs(
        cell in cell(),
        input_size in 1..6usize,
        hidden_size in 1..6usize,
        num_layers in 1..4usize,
        bidirectional in any::<bool>(),
        bias in any::<bool>(),
        sum in any::<bool>(),
        batch_first in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let merge = if sum { Merge::Sum } else { Merge::Concat };
        let config = NetConfig { num_layers, bidirectional, bias, merge, batch_first, seed, ..NetConfig::new(cell, input_size, hidden_size) };
        let mut rng = Rng(seed);
        let net = random_net(config, &mut rng);
        let dir = TestDir::new("prop");
        let path = dir.path("m.safetensors");
        net.save(&path).expect("save");
        let loaded = Recurrent::load(&path).expect("load");
        prop_assert_eq!(loaded.config(), net.config());
        prop_assert_eq!(bits(loaded.params().as_slice()), bits(net.params().as_slice()));
        assert_same_outputs(&loaded, &net, &mut rng);
        prop_assert_eq!(dir.listing(), ["m.safetensors"]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random mutations of a valid file (overwritten bytes, a cut, inserted
    /// bytes) load as an error or as a working model, never a panic.
    #[test]
    fn mutated_files_load_or_fail_cleanly(
        cell in cell(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        insert in prop::option::of((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..16))),
    ) {
        let config = NetConfig { num_layers: 2, ..NetConfig::new(cell, 3, 4) };
        let net = Recurrent::new(config).expect("valid config");
        let dir = TestDir::new("mutate");
        let path = dir.path("m.safetensors");
        net.save(&path).expect("save");
        let mut bytes = std::fs::read(&path).expect("read back");
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some((at, extra)) = &insert {
            let i = at.index(bytes.len());
            bytes.splice(i..i, extra.iter().copied());
        }
        if let Some(at) = cut {
            bytes.truncate(at.index(bytes.len()));
        }
        std::fs::write(&path, &bytes).expect("write mutated");
        let outcome = catch_unwind(AssertUnwindSafe(|| match Recurrent::load(&path) {
            Ok(loaded) => {
                // A mutation that kept the file valid must give a usable model.
                let c = loaded.config().clone();
                let x = vec![0.5f32; 2 * c.input_size];
                loaded.forward(SeqInput::new(&x, 2, 1)).map(|_| ()).map_err(|e| e.to_string())
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("m.safetensors"), "error does not name the file: {msg}");
                Ok(())
            }
        }));
        prop_assert!(outcome.is_ok(), "load panicked on a mutated file");
        let forward = outcome.unwrap_or(Ok(()));
        prop_assert!(forward.is_ok(), "a loaded mutated model failed forward: {:?}", forward);
    }
}
