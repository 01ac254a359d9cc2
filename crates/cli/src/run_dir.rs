//! Run folders, written whole or not at all, and the signals that stop a
//! command.
//!
//! A command that writes a run folder (`rnn train`, `rnn ntm`,
//! `rnn gradients`) writes it into a staging folder beside the destination,
//! `.NAME.staging-PID-NANOS`, each file atomically; then writes
//! [`MANIFEST`] last (the format tag, the command, the files with their
//! sizes, `complete: true`), fsyncs, and renames the staging folder into
//! place. A folder with such a manifest is a *run*; `rnn predict` reads only
//! runs ([`verify_run`]).
//!
//! The destination, checked before any work and again at the move: absent
//! or an empty folder, the staging folder is renamed onto it; with
//! `--overwrite` and a run there (a manifest, and no file its manifest does
//! not list), the two are swapped: the old run is renamed aside
//! (`.NAME.replaced-PID-NANOS`), the new one renamed in, the old one removed.
//! Anything else is refused: nothing but an earlier run is ever deleted.
//!
//! On an error the staging folder is removed (and the parent folders this
//! call created, when empty). On SIGINT, SIGTERM or SIGHUP a thread
//! ([`catch_signals`]) does the same and exits with 128 + the signal number
//! (130 for SIGINT), except that a run that keeps its checkpoint
//! ([`Staging::keep_checkpoint`], `rnn ntm`) is completed from its last
//! complete checkpoint as a run marked `interrupted`. Every change to a
//! staging folder or an output file happens under one lock ([`lock`]) that
//! the signal thread takes too, so a signal never meets half a move.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

/// The manifest's file name in a run folder.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's `format`.
pub const RUN_FORMAT: &str = "librnn-run-1";

/// Files that describe a kept checkpoint: `(name, bytes)`.
pub type Files = Vec<(String, Vec<u8>)>;

/// The staging folder being written, if any.
pub struct State {
    active: Option<Active>,
}

struct Active {
    staging: PathBuf,
    dest: PathBuf,
    overwrite: bool,
    /// The top-most parent folder created for the staging folder.
    created: Option<PathBuf>,
    command: &'static str,
    keep: Option<Keep>,
}

/// A checkpoint to complete an interrupted run from.
struct Keep {
    /// Its file name in the staging folder.
    checkpoint: &'static str,
    /// What the checkpoint now in the staging folder is (`at training
    /// sequence 300`) and the files describing it.
    confirmed: Option<(String, Files)>,
    /// The same of the checkpoint being saved, with the identity of the
    /// checkpoint file before that save.
    pending: Option<((String, Files), Option<FileId>)>,
}

impl Keep {
    /// Settles `pending`: the save it announced replaced the checkpoint
    /// file (a new file, so a new identity) or did not happen. Call with no
    /// save in progress (under the lock).
    fn resolve(&mut self, staging: &Path) {
        if let Some((noted, before)) = self.pending.take() {
            let now = file_id(&staging.join(self.checkpoint));
            if now.is_some() && now != before {
                self.confirmed = Some(noted);
            }
        }
    }
}

static STATE: Mutex<State> = Mutex::new(State { active: None });

/// The lock held around every change to a staging folder or an output file,
/// and by the signal thread until the process exits.
pub type Guard = MutexGuard<'static, State>;

/// Takes the lock (see the module docs).
pub fn lock() -> Guard {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(device, inode)` of a file (following links), `None` if it is absent.
pub type FileId = (u64, u64);

/// The identity of the file at `path` (following links).
#[cfg(unix)]
pub fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The identity of the file at `path`: without inodes, a hash of its
/// canonical path.
#[cfg(not(unix))]
pub fn file_id(path: &Path) -> Option<FileId> {
    use std::hash::{Hash, Hasher};
    let p = fs::canonicalize(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    Some((0, h.finish()))
}

/// Whether `a` and `b` are the same existing file (same device and inode,
/// whatever the paths say).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (file_id(a), file_id(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A name unique to this call: `PID-NANOS-COUNTER`.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `path` without `.` components and trailing slashes.
fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

/// The folder holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A folder name that does not exist yet: `base`, else `base-2`, `base-3`...
pub fn fresh_dir(base: PathBuf) -> PathBuf {
    if fs::symlink_metadata(&base).is_err() {
        return base;
    }
    (2..)
        .map(|k| PathBuf::from(format!("{}-{k}", base.display())))
        .find(|p| fs::symlink_metadata(p).is_err())
        .expect("some suffix is free")
}

/// The top-most folder that creating `dir` would create, if any.
fn top_created(dir: &Path) -> Option<PathBuf> {
    let mut created = None;
    let mut p = Some(dir);
    while let Some(q) = p {
        if q.as_os_str().is_empty() || fs::symlink_metadata(q).is_ok() {
            break;
        }
        created = Some(q.to_path_buf());
        p = q.parent();
    }
    created
}

/// A run's manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The command that wrote the run (`train`, `ntm`, `gradients`).
    pub command: String,
    /// The run's files and their sizes in bytes.
    pub files: Vec<(String, u64)>,
}

/// Reads `dir`'s manifest. Errors: none, or not one written by rnn (a
/// message for `--out`'s and `--model`'s users).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let shown = dir.display();
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{shown}: not a complete run folder (no {MANIFEST})")
        }
        Err(e) => bail!("{}: cannot read: {e}", path.display()),
    };
    let bad = |what: &str| anyhow!("{}: not a librnn run manifest ({what})", path.display());
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
    if v["format"] != RUN_FORMAT {
        return Err(bad(&format!("format {RUN_FORMAT} expected")));
    }
    let command = v["command"]
        .as_str()
        .ok_or_else(|| bad("no command"))?
        .to_string();
    let files = v["files"]
        .as_array()
        .ok_or_else(|| bad("no files"))?
        .iter()
        .map(|f| {
            let name = f["name"]
                .as_str()
                .ok_or_else(|| bad("a file without a name"))?;
            let bytes = f["bytes"]
                .as_u64()
                .ok_or_else(|| bad("a file without a size"))?;
            let plain = Path::new(name).file_name() == Some(std::ffi::OsStr::new(name));
            if !plain || name == MANIFEST || name.starts_with('.') {
                return Err(bad(&format!("file name {name:?}")));
            }
            Ok((name.to_string(), bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    if v["complete"] != true {
        bail!("{shown}: not a complete run ({MANIFEST} does not say complete)");
    }
    Ok(Manifest { command, files })
}

/// Checks that `dir` is a complete run: its manifest, and every file it
/// lists there with its size. Errors name the folder and what is missing.
pub fn verify_run(dir: &Path) -> Result<Manifest> {
    let m = read_manifest(dir).map_err(|e| {
        anyhow!(
            "{e:#}: rnn writes {MANIFEST} last, so the run was interrupted, is still being written, or was not written by rnn"
        )
    })?;
    for (name, bytes) in &m.files {
        let p = dir.join(name);
        match fs::metadata(&p) {
            Ok(meta) if meta.is_file() && meta.len() == *bytes => {}
            Ok(meta) if meta.is_file() => bail!(
                "{}: incomplete or changed run: {name} is {} bytes, {MANIFEST} says {bytes}",
                dir.display(),
                meta.len()
            ),
            _ => bail!(
                "{}: incomplete run: {name}, listed in {MANIFEST}, is missing",
                dir.display()
            ),
        }
    }
    Ok(m)
}

/// Checks that `dir`, an existing non-empty folder, may be replaced by
/// `--overwrite`: a run whose folder holds nothing its manifest does not
/// list.
fn check_replaceable(dir: &Path) -> Result<()> {
    let shown = dir.display();
    let m = read_manifest(dir).map_err(|e| {
        anyhow!(
            "{e:#}; --overwrite replaces only an earlier run written by rnn, and nothing was changed (--out)"
        )
    })?;
    let mut extra = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("{shown}: cannot list"))? {
        let e = e.with_context(|| format!("{shown}: cannot list"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if name != MANIFEST && !(is_file && m.files.iter().any(|(n, _)| *n == name)) {
            extra.push(name);
        }
    }
    if !extra.is_empty() {
        extra.sort();
        let shown_extra: Vec<&str> = extra.iter().take(5).map(String::as_str).collect();
        bail!(
            "{shown}: holds {} that its run does not list ({}{}); --overwrite would delete {}: move {3} away first (--out)",
            if extra.len() == 1 {
                "an entry"
            } else {
                "entries"
            },
            shown_extra.join(", "),
            if extra.len() > 5 { ", ..." } else { "" },
            if extra.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .next()
        .is_none())
}

/// Checks, before any work, that a run can be written to `dest` (`--out`):
/// absent with a folder as its nearest existing ancestor, an empty folder,
/// or with `overwrite` an earlier run.
pub fn check_dest(dest: &Path, overwrite: bool) -> Result<()> {
    let dest = normalize(dest);
    let shown = dest.display();
    if dest.file_name().is_none() {
        bail!("{shown}: does not name a folder (--out)");
    }
    match fs::symlink_metadata(&dest) {
        Err(_) => {
            // The nearest existing ancestor must be a folder.
            if let Some(a) = dest
                .ancestors()
                .skip(1)
                .find(|a| !a.as_os_str().is_empty() && a.exists())
                && !a.is_dir()
            {
                bail!(
                    "{shown}: cannot be created, {} is not a folder (--out)",
                    a.display()
                );
            }
            Ok(())
        }
        Ok(m) if m.file_type().is_symlink() => {
            bail!("{shown}: is a symbolic link; give the folder itself (--out)")
        }
        Ok(m) if !m.is_dir() => bail!("{shown}: exists and is not a folder (--out)"),
        Ok(_) if is_empty_dir(&dest)? => Ok(()),
        Ok(_) if !overwrite => bail!(
            "{shown}: exists and is not empty; give another --out, or --overwrite to replace an earlier run written by rnn"
        ),
        Ok(_) => check_replaceable(&dest),
    }
}

/// A run folder being written: a staging folder beside its destination,
/// registered for the signal thread. Dropped without [`Staging::commit`],
/// it is abandoned ([`Staging::abandon`]).
pub struct Staging {
    staging: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Staging {
    /// Checks `dest` ([`check_dest`]) and creates the staging folder beside
    /// it (and the missing parent folders). `command` goes in the manifest.
    pub fn create(dest: &Path, overwrite: bool, command: &'static str) -> Result<Self> {
        check_dest(dest, overwrite)?;
        let dest = normalize(dest);
        let parent = parent_of(&dest);
        let name = dest
            .file_name()
            .expect("checked above")
            .to_string_lossy()
            .into_owned();
        let staging = parent.join(format!(".{name}.staging-{}", unique()));
        let mut g = lock();
        if g.active.is_some() {
            bail!("internal error: a run folder is already being written");
        }
        let created = top_created(&parent);
        fs::create_dir_all(&parent)
            .and_then(|()| fs::create_dir(&staging))
            .map_err(|e| {
                remove_created(&parent, created.as_deref());
                anyhow!(
                    "{}: cannot create the run folder beside it: {e}",
                    dest.display()
                )
            })?;
        g.active = Some(Active {
            staging: staging.clone(),
            dest: dest.clone(),
            overwrite,
            created,
            command,
            keep: None,
        });
        Ok(Self {
            staging,
            dest,
            done: false,
        })
    }

    /// The staging folder (where a checkpoint may be written, under
    /// [`note_checkpoint`]'s protocol).
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// From now on, a signal or an error completes the run from the
    /// checkpoint `file` of the staging folder, when one is there, instead
    /// of removing it. Its saves must follow [`note_checkpoint`]'s protocol.
    pub fn keep_checkpoint(&self, file: &'static str) {
        if let Some(a) = lock().active.as_mut() {
            a.keep = Some(Keep {
                checkpoint: file,
                confirmed: None,
                pending: None,
            });
        }
    }

    /// Writes `files` into the staging folder, then the manifest, and moves
    /// the run into place; returns the destination. On an error the
    /// staging folder is abandoned ([`Staging::abandon`]).
    pub fn commit(mut self, files: &[OutFile<'_>]) -> Result<PathBuf> {
        let mut g = lock();
        let result = (|| -> Result<PathBuf> {
            for f in files {
                let (name, path) = match f {
                    OutFile::Bytes(n, _) | OutFile::With(n, _) => (*n, self.staging.join(n)),
                };
                match f {
                    OutFile::Bytes(_, b) => write_atomic(&path, b),
                    OutFile::With(_, w) => w(&path),
                }
                .with_context(|| format!("writing {name}"))?;
            }
            let a = g.active.as_ref().expect("registered by create");
            finalize(a, None)
        })();
        match result {
            Ok(dest) => {
                g.active = None;
                self.done = true;
                Ok(dest)
            }
            Err(e) => {
                drop(g);
                let kept = self.abandon(&format!("error: {e:#}"));
                Err(match kept {
                    Some(k) => anyhow!("{e:#}; {k}"),
                    None => e,
                })
            }
        }
    }

    /// Gives up the run: removes the staging folder (and the parent folders
    /// created for it, when empty); or, when it keeps a checkpoint and one
    /// is there, completes the run from it, marked interrupted by `reason`.
    /// Returns what happened to the checkpoint, when there is one to tell.
    pub fn abandon(&mut self, reason: &str) -> Option<String> {
        if self.done {
            return None;
        }
        self.done = true;
        let mut g = lock();
        let a = g.active.take()?;
        finish_interrupted(a, reason)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.abandon("error");
    }
}

/// Records, from inside an evaluation's callback, that the checkpoint about
/// to be saved into the staging folder is `what` (`at training sequence
/// 300`), described by `files` (written beside it if the run is stopped
/// there). The
/// protocol: the caller holds `guard` ([`lock`]) from this call until the
/// save is over (the trainer's next step, or its return), so the signal
/// thread never sees half a save; the checkpoint file's identity tells
/// afterwards whether the save happened.
pub fn note_checkpoint(guard: &mut Guard, what: String, files: Files) {
    if let Some(a) = guard.active.as_mut()
        && let Some(k) = a.keep.as_mut()
    {
        k.resolve(&a.staging);
        let before = file_id(&a.staging.join(k.checkpoint));
        k.pending = Some(((what, files), before));
    }
}

/// Completes `a` from its checkpoint (marked interrupted by `reason`) when
/// it keeps one and one is there, else removes it. Returns a sentence for
/// the user when a checkpoint was kept or lost.
fn finish_interrupted(mut a: Active, reason: &str) -> Option<String> {
    if let Some(k) = a.keep.as_mut() {
        k.resolve(&a.staging);
        let checkpoint = k.checkpoint;
        if let Some((what, files)) = k.confirmed.take()
            && a.staging.join(checkpoint).is_file()
        {
            let result = (|| -> Result<PathBuf> {
                for (name, bytes) in &files {
                    write_atomic(&a.staging.join(name), bytes)?;
                }
                finalize(&a, Some(reason))
            })();
            return Some(match result {
                Ok(dest) => format!(
                    "the last checkpoint ({what}) is kept as a complete run marked interrupted in {}",
                    dest.display()
                ),
                Err(e) => {
                    discard(&a);
                    format!("the last checkpoint could not be kept: {e:#}")
                }
            });
        }
        discard(&a);
        return Some("no checkpoint was written".into());
    }
    discard(&a);
    None
}

/// Removes the staging folder and the parent folders created for it, when
/// empty.
fn discard(a: &Active) {
    let _ = fs::remove_dir_all(&a.staging);
    remove_created(&parent_of(&a.staging), a.created.as_deref());
}

/// Removes the empty folders from `dir` up to `top` (both included), when
/// `top` was created by this call.
fn remove_created(dir: &Path, top: Option<&Path>) {
    let Some(top) = top else { return };
    for d in dir.ancestors() {
        if fs::remove_dir(d).is_err() || d == top {
            break;
        }
    }
}

/// Writes the manifest into the staging folder (listing its other files,
/// after removing any leftover temporary), fsyncs, and moves it into place.
fn finalize(a: &Active, interrupted: Option<&str>) -> Result<PathBuf> {
    let staging = &a.staging;
    let mut files = Vec::new();
    for e in fs::read_dir(staging).with_context(|| format!("{}: cannot list", staging.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = e.metadata()?;
        if name.starts_with('.') || !meta.is_file() {
            // A temporary left by a failed write: not part of the run.
            let _ = if meta.is_dir() {
                fs::remove_dir_all(e.path())
            } else {
                fs::remove_file(e.path())
            };
            continue;
        }
        if name != MANIFEST {
            files.push((name, meta.len()));
        }
    }
    files.sort();
    let mut manifest = json!({
        "format": RUN_FORMAT,
        "command": a.command,
        "version": env!("CARGO_PKG_VERSION"),
        "complete": true,
        "interrupted": interrupted.is_some(),
        "files": files.iter().map(|(n, b)| json!({ "name": n, "bytes": b })).collect::<Vec<_>>(),
    });
    if let Some(r) = interrupted {
        manifest["interrupted_by"] = json!(r);
    }
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    write_atomic(&staging.join(MANIFEST), text.as_bytes())?;
    sync_dir(staging)?;
    place(a)?;
    Ok(a.dest.clone())
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot sync", dir.display()))
}

/// Moves the complete staging folder to the destination (see the module
/// docs), checking the destination again.
fn place(a: &Active) -> Result<()> {
    let (staging, dest) = (&a.staging, &a.dest);
    let shown = dest.display();
    let parent = parent_of(dest);
    let rename = |from: &Path, to: &Path| {
        fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
    };
    match fs::symlink_metadata(dest) {
        Err(_) => rename(staging, dest)?,
        Ok(m) if m.is_dir() && !m.file_type().is_symlink() && is_empty_dir(dest)? => {
            // rename(2) replaces an empty folder in one step.
            rename(staging, dest)?
        }
        Ok(m) if m.is_dir() && !m.file_type().is_symlink() && a.overwrite => {
            check_replaceable(dest)?;
            let name = dest.file_name().expect("checked").to_string_lossy();
            let aside = parent.join(format!(".{name}.replaced-{}", unique()));
            rename(dest, &aside)?;
            if let Err(e) = rename(staging, dest) {
                let _ = fs::rename(&aside, dest);
                return Err(e);
            }
            if let Err(e) = fs::remove_dir_all(&aside) {
                eprintln!(
                    "rnn: warning: the earlier run, set aside as {}, could not be removed: {e}",
                    aside.display()
                );
            }
        }
        Ok(_) => bail!(
            "{shown}: appeared while the run was written and is not an earlier run to replace; the new run is not kept"
        ),
    }
    // The run is in place: a failed sync of its parent is no error of it.
    let _ = sync_dir(&parent);
    Ok(())
}

/// Writes `bytes` to `path` atomically with the library's writer; the
/// error names the file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    recurrent::io::write_atomic(path, bytes).map_err(|e| anyhow!("cannot write {e}"))
}

/// Writes one output file (not a run folder) atomically, under the lock:
/// a signal never leaves a temporary behind.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let _g = lock();
    write_atomic(path, bytes)
}

/// One file of a run: a name inside the folder and its content or writer.
pub enum OutFile<'a> {
    Bytes(&'a str, &'a [u8]),
    /// A file whose writer writes atomically itself (e.g. `Recurrent::save`).
    With(&'a str, &'a dyn Fn(&Path) -> Result<()>),
}

/// Starts the thread that handles SIGINT, SIGTERM and SIGHUP (see the
/// module docs).
pub fn catch_signals() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install the signal handlers")?;
    std::thread::Builder::new()
        .name("rnn-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                on_signal(sig);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn on_signal(sig: i32) -> ! {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let name = match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    };
    // Held until the process exits: nothing moves after this.
    let mut g = lock();
    match g.active.take() {
        Some(a) => {
            let dest = a.dest.clone();
            match finish_interrupted(a, name) {
                Some(what) => eprintln!("\nrnn: interrupted ({name}): {what}"),
                None => eprintln!(
                    "\nrnn: interrupted ({name}): nothing was written to {}",
                    dest.display()
                ),
            }
        }
        None => eprintln!("\nrnn: interrupted ({name})"),
    }
    std::process::exit(128 + sig)
}
