//! Writing a command's output files at the end, all or nothing: each file
//! through a temporary file and a rename, and on any failure the files
//! written so far (and a folder this call created) are removed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Writes `bytes` to `path` atomically (temporary file and rename), with
/// the library's writer; the error names the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    recurrent::io::write_atomic(path, bytes).map_err(|e| anyhow::anyhow!("cannot write {e}"))
}

/// A folder name that does not exist yet: `base`, else `base-2`, `base-3`...
pub fn fresh_dir(base: PathBuf) -> PathBuf {
    if !base.exists() {
        return base;
    }
    (2..)
        .map(|k| PathBuf::from(format!("{}-{k}", base.display())))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// Checks before any work that `dir` can be an output folder (absent, or
/// a folder).
pub fn check_out_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{}: exists and is not a folder (--out)", dir.display());
    }
    // The nearest existing ancestor must be a folder, or the folder cannot
    // be created.
    if let Some(a) = dir
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.exists())
    {
        if !a.is_dir() {
            bail!(
                "{}: cannot be created, {} is not a folder (--out)",
                dir.display(),
                a.display()
            );
        }
    }
    Ok(())
}

/// One output file: a name inside the folder and a writer.
pub enum OutFile<'a> {
    Bytes(&'a str, &'a [u8]),
    /// A file whose writer writes atomically itself (e.g. `Recurrent::save`).
    With(&'a str, &'a dyn Fn(&Path) -> Result<()>),
}

/// The top-most folder that creating `dir` would create, if any (to remove
/// again when what goes in it fails).
pub fn top_created(dir: &Path) -> Option<PathBuf> {
    let mut created = None;
    let mut p = Some(dir);
    while let Some(q) = p {
        if q.as_os_str().is_empty() || q.exists() {
            break;
        }
        created = Some(q.to_path_buf());
        p = q.parent();
    }
    created
}

/// Creates `dir` (and missing parents) and writes `files` into it. On error,
/// removes what it wrote and the folders it created.
pub fn write_all(dir: &Path, files: &[OutFile<'_>]) -> Result<()> {
    // The top-most folder this call creates, to remove on failure.
    let created = top_created(dir);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<()> {
        for f in files {
            let path = match f {
                OutFile::Bytes(n, _) | OutFile::With(n, _) => dir.join(n),
            };
            match f {
                OutFile::Bytes(_, b) => write_atomic(&path, b)?,
                OutFile::With(_, w) => w(&path)?,
            }
            written.push(path);
        }
        Ok(())
    })();
    if result.is_err() {
        match &created {
            Some(top) => {
                let _ = std::fs::remove_dir_all(top);
            }
            None => written.iter().for_each(|p| {
                let _ = std::fs::remove_file(p);
            }),
        }
    }
    result
}
