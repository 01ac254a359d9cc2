//! Safetensors files: read named `f32` tensors with their metadata, and save
//! and load whole models.
//!
//! A model file's `__metadata__` holds the configuration under the keys of
//! the parity fixtures (`cell`, `num_layers`, `bidirectional`, `bias`,
//! `input_size`, `hidden_size`, plus `seed`, and `proj_size`, `merge`
//! (`concat` or `sum`), `batch_first` (`true`/`false`), `dropout` and
//! `recurrent_dropout` (the training-time probabilities, for the record),
//! which a file may lack: absent, they are 0, `concat`, `false`, 0 and 0);
//! its tensors use
//! PyTorch's
//! names, so a PyTorch `state_dict` saved as safetensors (with that metadata)
//! loads as is; other tensors are ignored, except unused ones named like a
//! parameter (`weight_*`, `bias_*`), which are an error. A file is checked
//! against its configuration before anything is allocated for it, so the
//! memory a load takes is bounded by the file's size, whatever its metadata
//! claims.
//!
//! Files are written through [`write_atomic_with`]: a temporary file unique
//! to the call in the destination folder, fsynced, renamed over the
//! destination, and the folder fsynced, so that readers (and a crash) see the
//! old file or the complete new one, never half of one, even when several
//! threads or processes save to the same path at once. Tensors are streamed
//! to the file in small chunks: saving a model takes no memory beyond it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::alloc;
use crate::config::{CellKind, Merge, NetConfig};
use crate::error::{Error, Result, check_len};
use crate::net::Recurrent;

/// One tensor read from a file: shape and values (`f32`, or `i64` as
/// integers).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// An `f32` tensor.
    F32(Vec<f32>),
    /// An `i64` tensor (e.g. sequence lengths).
    I64(Vec<i64>),
}

/// The contents of a safetensors file.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// The `__metadata__` map.
    pub metadata: HashMap<String, String>,
    /// Every `f32` and `i64` tensor: name -> (shape, values).
    pub tensors: HashMap<String, (Vec<usize>, TensorData)>,
    /// The tensors of other dtypes, not read: name -> dtype (`F64`,
    /// `I32`, ...). A file may hold such tensors beside a model; a model's
    /// parameter of such a dtype is an error of the loader.
    pub other: HashMap<String, String>,
}

fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

impl TensorFile {
    /// Reads `path`: the metadata, the `f32` and `i64` tensors, and the
    /// names and dtypes of the others. Errors: I/O, a malformed or truncated
    /// file, no memory for its values.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::OutOfMemory {
                Error::OutOfMemory {
                    what: format!("the contents of {}", path.display()),
                    bytes: std::fs::metadata(path).map_or(usize::MAX, |m| {
                        usize::try_from(m.len()).unwrap_or(usize::MAX)
                    }),
                }
            } else {
                Error::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| format_err(path, format!("not a valid safetensors file: {e}")))?;
        let (_, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| format_err(path, e.to_string()))?;
        let mut out = TensorFile {
            metadata: meta.metadata().clone().unwrap_or_default(),
            tensors: HashMap::new(),
            other: HashMap::new(),
        };
        for (name, view) in st.tensors() {
            let data = view.data();
            let what = || format!("{}: tensor {name}", path.display());
            let values = match view.dtype() {
                Dtype::F32 => {
                    let mut v = Vec::new();
                    alloc::reserve(&mut v, data.len() / 4, &what())?;
                    v.extend(
                        data.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    TensorData::F32(v)
                }
                Dtype::I64 => {
                    let mut v = Vec::new();
                    alloc::reserve(&mut v, data.len() / 8, &what())?;
                    v.extend(data.chunks_exact(8).map(|b| {
                        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    }));
                    TensorData::I64(v)
                }
                other => {
                    out.other.insert(name, format!("{other:?}"));
                    continue;
                }
            };
            out.tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(out)
    }

    /// The `f32` tensor `name`: `(shape, values)`.
    pub fn f32(&self, name: &str) -> Option<(&[usize], &[f32])> {
        match self.tensors.get(name)? {
            (shape, TensorData::F32(v)) => Some((shape, v)),
            _ => None,
        }
    }

    /// Every `f32` tensor as `(name, shape, values)`.
    pub fn f32_tensors(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        self.tensors
            .iter()
            .filter_map(|(name, (shape, data))| match data {
                TensorData::F32(v) => Some((name.as_str(), shape.as_slice(), v.as_slice())),
                TensorData::I64(_) => None,
            })
    }

    /// The `i64` tensor `name`: `(shape, values)`.
    pub fn i64(&self, name: &str) -> Option<(&[usize], &[i64])> {
        match self.tensors.get(name)? {
            (shape, TensorData::I64(v)) => Some((shape, v)),
            _ => None,
        }
    }

    /// Checks that every tensor named like a parameter (`param_like`) is an
    /// `f32` tensor: a parameter of another dtype is an error naming it and
    /// its dtype, rather than a "missing" one.
    pub fn check_parameter_dtypes(
        &self,
        path: &Path,
        param_like: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let mut bad: Vec<(&str, String)> = self
            .tensors
            .iter()
            .filter_map(|(n, (_, d))| match d {
                TensorData::I64(_) => Some((n.as_str(), "I64".to_string())),
                TensorData::F32(_) => None,
            })
            .chain(self.other.iter().map(|(n, d)| (n.as_str(), d.clone())))
            .filter(|(n, _)| param_like(n))
            .collect();
        bad.sort();
        match bad.first() {
            Some((name, dtype)) => Err(format_err(
                path,
                format!("tensor {name}: dtype {dtype} not supported (parameters are F32)"),
            )),
            None => Ok(()),
        }
    }

    /// The metadata value `key`, or a format error naming `path`.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format_err(path, format!("metadata key {key:?} missing")))
    }

    /// A network configuration from the metadata keys (see the module docs).
    pub fn net_config(&self, path: &Path) -> Result<NetConfig> {
        let usize_of = |k: &str| -> Result<usize> {
            let v = self.meta(path, k)?;
            v.trim().parse().map_err(|_| {
                format_err(
                    path,
                    format!("metadata {k}={v:?} is not a non-negative integer"),
                )
            })
        };
        let bool_of = |k: &str| -> Result<bool> {
            match self.meta(path, k)? {
                "true" | "True" | "1" => Ok(true),
                "false" | "False" | "0" => Ok(false),
                v => Err(format_err(
                    path,
                    format!("metadata {k}={v:?} is not true/false"),
                )),
            }
        };
        let cell = CellKind::from_name(self.meta(path, "cell")?)
            .map_err(|e| format_err(path, e.to_string()))?;
        let seed = match self.metadata.get("seed") {
            Some(s) => s.trim().parse().map_err(|_| {
                format_err(
                    path,
                    format!("metadata seed={s:?} is not a non-negative integer"),
                )
            })?,
            None => 0,
        };
        // Keys newer files carry; a file without them is what it was before.
        let merge = match self.metadata.get("merge") {
            Some(m) => Merge::from_name(m).map_err(|e| format_err(path, e.to_string()))?,
            None => Merge::Concat,
        };
        let batch_first = match self.metadata.get("batch_first") {
            Some(_) => bool_of("batch_first")?,
            None => false,
        };
        let proj_size = match self.metadata.get("proj_size") {
            Some(_) => usize_of("proj_size")?,
            None => 0,
        };
        let probability = |k: &str| -> Result<f32> {
            match self.metadata.get(k) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format_err(path, format!("metadata {k}={v:?} is not a number"))),
                None => Ok(0.0),
            }
        };
        let dropout = probability("dropout")?;
        let recurrent_dropout = probability("recurrent_dropout")?;
        Ok(NetConfig {
            cell,
            input_size: usize_of("input_size")?,
            hidden_size: usize_of("hidden_size")?,
            proj_size,
            num_layers: usize_of("num_layers")?,
            bias: bool_of("bias")?,
            bidirectional: bool_of("bidirectional")?,
            merge,
            dropout,
            recurrent_dropout,
            batch_first,
            seed,
        })
    }
}

/// The metadata that describes `config` in a model file.
pub fn config_metadata(config: &NetConfig) -> HashMap<String, String> {
    HashMap::from([
        ("cell".to_string(), config.cell.name().to_string()),
        ("num_layers".to_string(), config.num_layers.to_string()),
        (
            "bidirectional".to_string(),
            config.bidirectional.to_string(),
        ),
        ("bias".to_string(), config.bias.to_string()),
        ("input_size".to_string(), config.input_size.to_string()),
        ("hidden_size".to_string(), config.hidden_size.to_string()),
        ("proj_size".to_string(), config.proj_size.to_string()),
        ("merge".to_string(), config.merge.name().to_string()),
        ("dropout".to_string(), config.dropout.to_string()),
        (
            "recurrent_dropout".to_string(),
            config.recurrent_dropout.to_string(),
        ),
        ("batch_first".to_string(), config.batch_first.to_string()),
        ("seed".to_string(), config.seed.to_string()),
        ("format".to_string(), "librnn-1".to_string()),
    ])
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Distinguishes the temporary files of calls in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `path` through `write` atomically: `write` fills a temporary file
/// unique to this call (`.NAME.PID-N.tmp`, created exclusively) in the
/// destination folder; the file is fsynced, renamed over `path` and the
/// folder fsynced. Readers see the old file or the complete new one, never
/// half of one, also when several threads or processes write `path` at once
/// (the last rename wins). On any error the temporary file is removed and
/// `path` is untouched.
///
/// Errors: `path` has no file name, I/O (naming `path`).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| format_err(path, "not a file path"))?
        .to_string_lossy()
        .into_owned();
    let (tmp, file) = loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{file_name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            // Left by an earlier process with the same id: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e)),
        }
    };
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 16, file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    sync_parent(path).map_err(io)
}

/// Fsyncs the folder holding `path`, so that a rename into it is durable.
/// Filesystems that cannot sync a folder (`EINVAL`) are not an error.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match File::open(parent).and_then(|d| d.sync_all()) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

impl Recurrent {
    /// Loads a model file (see the module docs). Errors name the file and the
    /// problem: I/O, malformed file, bad metadata, a missing or misshapen
    /// tensor.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let config = file.net_config(path)?;
        file.check_parameter_dtypes(path, crate::net::is_parameter_name)?;
        Self::from_params(config, file.f32_tensors()).map_err(|e| format_err(path, e.to_string()))
    }

    /// Saves the model (configuration as metadata, parameters under PyTorch
    /// names) atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let tensors: Vec<(&str, &[usize], &[f32])> = self.params().iter().collect();
        write_tensors(path.as_ref(), &tensors, config_metadata(self.config()))
    }
}

/// Writes `f32` tensors `(name, shape, values)` and `metadata` as a
/// safetensors file, atomically ([`write_atomic_with`]), in the given order.
/// The values are streamed to the file in 64 KiB chunks, so no copy of the
/// tensors is made.
///
/// Errors: a length that disagrees with its shape, a name given twice, I/O.
pub fn write_tensors(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let header = safetensors_header(path, tensors, &metadata)?;
    write_atomic_with(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        let mut chunk = [0u8; 1 << 16];
        for (_, _, values) in tensors {
            for part in values.chunks(chunk.len() / 4) {
                for (dst, v) in chunk.chunks_exact_mut(4).zip(part) {
                    dst.copy_from_slice(&v.to_le_bytes());
                }
                w.write_all(&chunk[..part.len() * 4])?;
            }
        }
        Ok(())
    })
}

/// The JSON header of a safetensors file holding `tensors` (F32, in order,
/// back to back) and `metadata` (keys sorted), padded with spaces to a
/// multiple of 8 bytes as the format's reference writer does.
fn safetensors_header(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut h = String::from("{");
    if !metadata.is_empty() {
        let mut keys: Vec<&String> = metadata.keys().collect();
        keys.sort();
        h.push_str("\"__metadata__\":{");
        for (i, k) in keys.into_iter().enumerate() {
            if i > 0 {
                h.push(',');
            }
            json_string(&mut h, k);
            h.push(':');
            json_string(&mut h, &metadata[k]);
        }
        h.push('}');
    }
    let mut seen = std::collections::HashSet::new();
    let mut offset = 0usize;
    for (i, (name, shape, values)) in tensors.iter().enumerate() {
        if !seen.insert(*name) || *name == "__metadata__" {
            return Err(format_err(path, format!("tensor {name} given twice")));
        }
        check_len(name, values, shape).map_err(|e| format_err(path, e.to_string()))?;
        let end = values
            .len()
            .checked_mul(4)
            .and_then(|n| offset.checked_add(n))
            .ok_or_else(|| alloc::overflow("tensor data"))?;
        if i > 0 || !metadata.is_empty() {
            h.push(',');
        }
        json_string(&mut h, name);
        h.push_str(":{\"dtype\":\"F32\",\"shape\":[");
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        h.push_str(&dims.join(","));
        h.push_str(&format!("],\"data_offsets\":[{offset},{end}]}}"));
        offset = end;
    }
    h.push('}');
    while h.len() % 8 != 0 {
        h.push(' ');
    }
    Ok(h.into_bytes())
}

/// Appends `s` to `out` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
