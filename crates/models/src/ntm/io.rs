//! NTM weight files: safetensors with the configuration in the metadata
//! (the keys of docs/ntm.md plus `model = ntm`), parameters under their
//! docs/ntm.md names; written atomically.

use std::path::Path;

use super::config::NtmConfig;
use super::model::Ntm;
use crate::error::{Error, Result};
use crate::io::{TensorFile, write_tensors};

impl Ntm {
    /// Loads a file written by [`Ntm::save`] (or by PyTorch with the same
    /// names and metadata). Errors name the file and the problem: I/O, a
    /// malformed file, missing or bad metadata, a missing or misshapen
    /// tensor.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let err = |msg: String| Error::Format {
            path: path.to_path_buf(),
            msg,
        };
        if let Some(model) = file.metadata.get("model")
            && model != "ntm"
        {
            return Err(err(format!("holds a {model:?} model, not an NTM")));
        }
        if let Some(cell) = file.metadata.get("cell") {
            return Err(err(format!(
                "holds a recurrent network ({cell}), not an NTM"
            )));
        }
        let config = NtmConfig::from_metadata(|k| file.metadata.get(k).cloned())
            .map_err(|e| err(e.to_string()))?;
        file.check_parameter_dtypes(path, super::model::is_parameter_name)?;
        Self::from_params(config, file.f32_tensors()).map_err(|e| err(e.to_string()))
    }

    /// Saves the machine (configuration as metadata) atomically: `path` is
    /// either the old file or the complete new one, never a partial file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let tensors: Vec<(&str, &[usize], &[f32])> = self.params().iter().collect();
        write_tensors(path.as_ref(), &tensors, self.config().metadata())
    }
}
