//! Safetensors files: read named `f32` tensors with their metadata, and save
//! and load whole models.
//!
//! A model file's `__metadata__` holds the configuration under the keys of
//! the parity fixtures (`cell`, `num_layers`, `bidirectional`, `bias`,
//! `input_size`, `hidden_size`, plus `seed`); its tensors use PyTorch's
//! names, so a PyTorch `state_dict` saved as safetensors (with that metadata)
//! loads as is, and extra tensors are ignored. Files are written to a
//! temporary file in the same folder and renamed, so a crash never leaves
//! half a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::{CellKind, NetConfig};
use crate::error::{Error, Result};
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
    /// Every tensor: name -> (shape, values).
    pub tensors: HashMap<String, (Vec<usize>, TensorData)>,
}

fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

impl TensorFile {
    /// Reads `path`. Errors: I/O, a malformed or truncated file, a dtype other
    /// than F32 or I64.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| format_err(path, format!("not a valid safetensors file: {e}")))?;
        let (_, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| format_err(path, e.to_string()))?;
        let mut out = TensorFile {
            metadata: meta.metadata().clone().unwrap_or_default(),
            tensors: HashMap::new(),
        };
        for (name, view) in st.tensors() {
            let data = view.data();
            let values = match view.dtype() {
                Dtype::F32 => TensorData::F32(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                Dtype::I64 => TensorData::I64(
                    data.chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect(),
                ),
                other => {
                    return Err(format_err(
                        path,
                        format!("tensor {name}: dtype {other:?} not supported (F32 or I64)"),
                    ));
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
        Ok(NetConfig {
            cell,
            input_size: usize_of("input_size")?,
            hidden_size: usize_of("hidden_size")?,
            num_layers: usize_of("num_layers")?,
            bias: bool_of("bias")?,
            bidirectional: bool_of("bidirectional")?,
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
        ("seed".to_string(), config.seed.to_string()),
        ("format".to_string(), "librnn-1".to_string()),
    ])
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a
/// rename, so readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| format_err(path, "not a file path"))?
        .to_string_lossy();
    let tmp: PathBuf = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

impl Recurrent {
    /// Loads a model file (see the module docs). Errors name the file and the
    /// problem: I/O, malformed file, bad metadata, a missing or misshapen
    /// tensor.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let config = file.net_config(path)?;
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
/// safetensors file, atomically. Errors: a length that disagrees with its
/// shape, I/O.
pub fn write_tensors(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            TensorView::new(Dtype::F32, s.to_vec(), b)
                .map(|v| (n.to_string(), v))
                .map_err(|e| format_err(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let data = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| format_err(path, e.to_string()))?;
    write_atomic(path, &data)
}
