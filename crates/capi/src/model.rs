//! Models: create, load, save, clone, free, describe, and run forward.

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};

use rnn_models::{Output, Recurrent, SeqInput};

use crate::args::{self, OutBuf};
use crate::config::{rnn_config, rnn_config_ext};
use crate::error::{Error, Result, guard, guard_value, rnn_status};

/// A recurrent network (opaque): its configuration and parameters.
///
/// Made by `rnn_model_new`, `rnn_model_load` or `rnn_model_clone`; freed by
/// `rnn_model_free`. Calls taking a `const rnn_model *` (forward, save,
/// parameter reads) may run on one model from several threads at once;
/// calls taking an `rnn_model *` (parameter writes, optimizer steps, train
/// steps) need exclusive access.
#[allow(non_camel_case_types)]
pub struct rnn_model {
    pub(crate) net: Recurrent,
    /// Parameter names as C strings, in buffer order (for `rnn_model_param_name`).
    pub(crate) names: Vec<CString>,
    /// Unique per handle: binds trainers to their model.
    pub(crate) id: u64,
    /// Bumped by every parameter change: a trainer's tape is only valid for
    /// the parameters it was recorded with.
    pub(crate) generation: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl rnn_model {
    pub(crate) fn new(net: Recurrent) -> Result<Self> {
        let names = crate::params::c_names(net.params())?;
        Ok(Self {
            net,
            names,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: 0,
        })
    }

    /// Records a change of the parameters.
    pub(crate) fn touch(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// `(L*D, output width)`: the output is `D*H` wide, or `H` with
    /// summed directions.
    pub(crate) fn dims(&self) -> (usize, usize) {
        let c = self.net.config();
        (c.num_layers * c.directions(), c.output_size())
    }
}

// A const model may be shared between threads for forward; mutation needs
// `&mut`. Checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<rnn_model>();
};

/// Boxes `model` and stores it through `out`.
///
/// # Safety
/// `out` was checked by [`args::out_ptr`].
pub(crate) unsafe fn give<T>(out: *mut *mut T, value: T) {
    // SAFETY: `out` is non-NULL, aligned and writable (checked by the caller).
    unsafe { out.write(Box::into_raw(Box::new(value))) };
}

/// Creates a model from `*config` with PyTorch's default initialisation
/// (uniform(-1/sqrt(H), 1/sqrt(H)) from `config->seed`). On success `*out`
/// is a new model owned by the caller (free it with `rnn_model_free`); on
/// failure `*out` is NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config, out), `RNN_STATUS_INVALID_ARGUMENT`
/// (an enum field out of range, a flag not 0/1, a zero size, more than 1024
/// layers or 2^32 parameters), `RNN_STATUS_OUT_OF_MEMORY` (the parameters
/// cannot be allocated). Thread-safe.
///
/// # Safety
/// `config` is NULL or points to an `rnn_config`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_new(
    config: *const rnn_config,
    out: *mut *mut rnn_model,
) -> rnn_status {
    guard("rnn_model_new", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live rnn_config, by this function's contract.
        let config = unsafe { args::handle(config, "config") }?;
        let net = Recurrent::new(config.to_net_config()?)?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_model::new(net)?) };
        Ok(())
    })
}

/// Creates a model from `*config` and the further arguments of `*ext` (NULL:
/// the defaults of `rnn_config_ext_init`), as `rnn_model_new`.
///
/// Errors: as `rnn_model_new`, and `RNN_STATUS_INVALID_ARGUMENT` for
/// `ext->size` not written by `rnn_config_ext_init`, `merge` not an
/// `rnn_merge`, `batch_first` not 0/1, a `proj_size` on a GRU or Elman
/// network or not below `hidden_size`. Thread-safe.
///
/// # Safety
/// `config` is NULL or points to an `rnn_config`; `ext` is NULL or points to
/// an `rnn_config_ext` of `ext->size` bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_new_ext(
    config: *const rnn_config,
    ext: *const rnn_config_ext,
    out: *mut *mut rnn_model,
) -> rnn_status {
    guard("rnn_model_new_ext", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live rnn_config, by this function's contract.
        let config = unsafe { args::handle(config, "config") }?;
        // SAFETY: NULL or `ext->size` readable bytes, by this function's
        // contract.
        let ext = unsafe { rnn_config_ext::read(ext) }?;
        let net = Recurrent::new(ext.apply(config.to_net_config()?)?)?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_model::new(net)?) };
        Ok(())
    })
}

/// Loads a model from a safetensors file: metadata keys `cell` (`rnn_tanh`,
/// `rnn_relu`, `lstm`, `gru`, `gru_reset_before`), `num_layers`,
/// `bidirectional`, `bias`, `input_size`, `hidden_size` (and optional
/// `seed`, `proj_size`, `batch_first`, `merge`: see `rnn_config_ext`, which
/// `rnn_model_config_ext` fills); tensors under PyTorch's `state_dict` names
/// and shapes, float32.
/// A tensor named like a parameter (`weight_*`, `bias_*`) that the
/// configuration does not use is an error naming it (say bias tensors in a
/// file whose metadata says `bias = false`); other tensors are ignored. The
/// metadata is checked against the file's tensors before anything is
/// allocated for the model, so a load takes memory bounded by the file's
/// size, whatever its metadata claims. On success `*out` is a new model
/// owned by the caller; on failure `*out` is NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (path, out), `RNN_STATUS_IO` (missing or
/// unreadable file, not safetensors, truncated, bad or missing metadata, a
/// missing, misshapen or unused parameter tensor; the message names the file
/// and the problem), `RNN_STATUS_OUT_OF_MEMORY` (the file's parameters
/// cannot be held in memory). Thread-safe.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_load(
    path: *const std::ffi::c_char,
    out: *mut *mut rnn_model,
) -> rnn_status {
    guard("rnn_model_load", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let path = unsafe { args::path(path, "path") }?;
        let net = Recurrent::load(&path)?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_model::new(net)?) };
        Ok(())
    })
}

/// Saves the model to a safetensors file (configuration as metadata,
/// parameters under PyTorch's names), atomically: the parameters are
/// streamed to a temporary file unique to the call in the same folder, which
/// is fsynced and renamed over `path` (and the folder fsynced). A crash
/// never leaves half a file, and concurrent saves to one path (threads or
/// processes) and concurrent loads of it each see one complete file (the
/// last rename wins). The save takes no memory proportional to the model.
/// `rnn_model_load` reads it back identically.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, path), `RNN_STATUS_IO` (the file
/// could not be written; `path` is unchanged), `RNN_STATUS_OUT_OF_MEMORY`.
/// Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_save(
    m: *const rnn_model,
    path: *const std::ffi::c_char,
) -> rnn_status {
    guard("rnn_model_save", || {
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let path = unsafe { args::path(path, "path") }?;
        m.net.save(&path)?;
        Ok(())
    })
}

/// Makes an independent copy of a model (same configuration and
/// parameters). On success `*out` is a new model owned by the caller; on
/// failure `*out` is NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_OUT_OF_MEMORY`
/// (no memory for the copy). Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_clone(
    m: *const rnn_model,
    out: *mut *mut rnn_model,
) -> rnn_status {
    guard("rnn_model_clone", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_model::new(m.net.try_clone()?)?) };
        Ok(())
    })
}

/// Frees a model. NULL is accepted (nothing happens). The model must not be
/// in use by another thread, and must not be used afterwards.
///
/// # Safety
/// `m` is NULL or a model from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_free(m: *mut rnn_model) {
    // SAFETY: NULL or a handle of this library, not yet freed nor in use,
    // by this function's contract.
    guard_value((), || unsafe { args::free_handle(m) })
}

/// Writes the model's configuration to `*config`.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, config). Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_config(
    m: *const rnn_model,
    config: *mut rnn_config,
) -> rnn_status {
    guard("rnn_model_config", || {
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        let c = rnn_config::from_net_config(m.net.config());
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, c, "config") }
    })
}

/// Writes the model's arguments beyond `rnn_config` to `*ext`, whose `size`
/// the caller set (with `rnn_config_ext_init`): the fields it covers.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, ext), `RNN_STATUS_INVALID_ARGUMENT`
/// (`ext->size` smaller than this library's `rnn_config_ext`). Thread-safe on
/// a const model.
///
/// # Safety
/// `m` is NULL or a live model; `ext` is NULL or points to a writable
/// `rnn_config_ext` of `ext->size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_config_ext(
    m: *const rnn_model,
    ext: *mut rnn_config_ext,
) -> rnn_status {
    guard("rnn_model_config_ext", || {
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or `ext->size` readable bytes (the fields past this
        // library's are the caller's, not checked here).
        let ext = unsafe { args::handle_mut(ext, "ext") }?;
        let ours = std::mem::size_of::<rnn_config_ext>();
        if ext.size < ours {
            return Err(Error::invalid(format!(
                "ext->size = {}: not a size rnn_config_ext_init writes (this library's is {ours})",
                ext.size
            )));
        }
        *ext = rnn_config_ext {
            size: ext.size,
            ..rnn_config_ext::from_net_config(m.net.config())
        };
        Ok(())
    })
}

/// The caller's output buffers of a forward pass, checked before any work.
pub(crate) struct ForwardOut {
    y: Option<OutBuf<f32>>,
    h_n: Option<OutBuf<f32>>,
    c_n: Option<OutBuf<f32>>,
}

impl ForwardOut {
    /// Checks `y` (required unless `y_optional`), `h_n`, `c_n` (optional)
    /// against the sizes a forward of `seq_len x batch` produces.
    ///
    /// # Safety
    /// Each pointer is NULL or points to its length of writable floats, not
    /// overlapping any other argument.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn check(
        m: &rnn_model,
        seq_len: usize,
        batch: usize,
        y: *mut f32,
        y_cap: usize,
        h_n: *mut f32,
        h_n_cap: usize,
        c_n: *mut f32,
        c_n_cap: usize,
    ) -> Result<Self> {
        check_sizes(seq_len, batch)?;
        let (ld, dh) = m.dims();
        let c = m.net.config();
        let y_need = args::product(&[seq_len, batch, dh], "y")?;
        // `h` is the state size wide (a projection's), `c` the hidden size.
        let state = args::product(&[ld, batch, c.state_size()], "h_n")?;
        let cell_state = args::product(&[ld, batch, c.hidden_size], "c_n")?;
        if !c_n.is_null() && !m.net.config().cell.has_cell_state() {
            return Err(Error::invalid(format!(
                "c_n given, but a {} has no cell state (pass NULL)",
                m.net.config().cell.name()
            )));
        }
        // SAFETY: each pointer NULL or `len` writable floats, by this
        // function's contract.
        unsafe {
            Ok(Self {
                y: Some(OutBuf::new(y, y_cap, y_need, "y")?),
                h_n: OutBuf::optional(h_n, h_n_cap, state, "h_n")?,
                c_n: OutBuf::optional(c_n, c_n_cap, cell_state, "c_n")?,
            })
        }
    }

    pub fn write(self, out: &Output) {
        if let Some(b) = self.y {
            b.write(&out.y);
        }
        if let Some(b) = self.h_n {
            b.write(&out.h_n);
        }
        if let Some(b) = self.c_n {
            b.write(&out.c_n);
        }
    }
}

/// `seq_len` and `batch` must be positive.
fn check_sizes(seq_len: usize, batch: usize) -> Result<()> {
    if seq_len == 0 {
        return Err(Error::invalid("seq_len must be at least 1"));
    }
    if batch == 0 {
        return Err(Error::invalid("batch must be at least 1"));
    }
    Ok(())
}

/// The inputs of a forward pass as a [`SeqInput`], after checking pointers
/// and sizes. Lengths are read at their implied sizes.
///
/// # Safety
/// `x` is NULL or `seq_len * batch * I` readable floats; `lengths` NULL or
/// `batch` sizes; `h0` NULL or `L*D * batch * S` floats (`S` the state
/// size), `c0` NULL or `L*D * batch * H`; all unmodified during `'a`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn seq_input<'a>(
    m: &rnn_model,
    x: *const f32,
    seq_len: usize,
    batch: usize,
    lengths: *const usize,
    h0: *const f32,
    c0: *const f32,
) -> Result<SeqInput<'a>> {
    let c = m.net.config();
    check_sizes(seq_len, batch)?;
    let x_len = args::product(&[seq_len, batch, c.input_size], "x")?;
    let state = args::product(&[m.dims().0, batch, c.state_size()], "h0")?;
    let cell_state = args::product(&[m.dims().0, batch, c.hidden_size], "c0")?;
    if !c0.is_null() && !c.cell.has_cell_state() {
        return Err(Error::invalid(format!(
            "c0 given, but a {} has no cell state (pass NULL)",
            c.cell.name()
        )));
    }
    // SAFETY: each pointer NULL or its implied length of readable values,
    // by this function's contract.
    unsafe {
        Ok(SeqInput {
            x: args::input(x, x_len, "x")?,
            seq_len,
            batch,
            h0: args::optional_input(h0, state, "h0")?,
            c0: args::optional_input(c0, cell_state, "c0")?,
            lengths: args::optional_input(lengths, batch, "lengths")?,
        })
    }
}

/// Inference forward pass.
///
/// - `x`: `[seq_len, batch, I]`, time-major, row-major (`x[(t*batch + b)*I + i]`;
///   `[batch, seq_len, I]` for a batch-first model, see `rnn_config_ext`);
///   read at that size.
/// - `h0`, `c0`: initial states `[L*D, batch, S]` and `[L*D, batch, H]` (index
///   `layer*D + direction`, forward direction first; S = H, or an LSTM's
///   projection size), or NULL for zeros; `c0` only for an LSTM (non-NULL for
///   another cell: `RNN_STATUS_INVALID_ARGUMENT`).
/// - `y`: receives `[seq_len, batch, D*S]` (batch-first: `[batch, seq_len,
///   D*S]`; summed directions: `S` wide), the last layer's hidden state at
///   every step, directions concatenated (forward first); `y_cap` is its
///   capacity in floats. Required.
/// - `h_n`, `c_n`: receive the final states `[L*D, batch, S]` and `[L*D,
///   batch, H]`, or NULL when not wanted; `c_n` only for an LSTM.
///
/// A capacity below the needed size gives `RNN_STATUS_BUFFER_TOO_SMALL`, and
/// every check is made before any output is written: a failed call writes
/// nothing. Output buffers must not overlap each other or the inputs.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, x, y), `RNN_STATUS_INVALID_ARGUMENT`
/// (seq_len or batch 0, sizes that overflow, c0/c_n for a cell without cell
/// state, misaligned buffers), `RNN_STATUS_BUFFER_TOO_SMALL`,
/// `RNN_STATUS_OUT_OF_MEMORY` (the outputs or work buffers of `seq_len x
/// batch` cannot be allocated).
/// Thread-safe: several threads may run forward on one const model at once.
///
/// # Safety
/// `m` is NULL or a live model; each array is NULL or holds the number of
/// floats stated above (outputs: their `_cap`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_forward(
    m: *const rnn_model,
    x: *const f32,
    seq_len: usize,
    batch: usize,
    h0: *const f32,
    c0: *const f32,
    y: *mut f32,
    y_cap: usize,
    h_n: *mut f32,
    h_n_cap: usize,
    c_n: *mut f32,
    c_n_cap: usize,
) -> rnn_status {
    guard("rnn_model_forward", || {
        // SAFETY: this function's contract is forward_impl's.
        unsafe {
            forward_impl(
                m,
                x,
                seq_len,
                batch,
                std::ptr::null(),
                h0,
                c0,
                y,
                y_cap,
                h_n,
                h_n_cap,
                c_n,
                c_n_cap,
            )
        }
    })
}

/// As `rnn_model_forward`, for a batch of sequences of different lengths.
///
/// `lengths`: `[batch]`, each in `1..=seq_len`, any order, or NULL (every
/// sequence has `seq_len` steps). PyTorch's `pack_padded_sequence(
/// enforce_sorted=False)` semantics without packing: `y` is zero past a
/// sequence's end, `h_n`/`c_n` are the states at its last step, and the
/// reverse direction starts at its last step. `x` past a sequence's end is
/// ignored.
///
/// Errors: as `rnn_model_forward`, and `RNN_STATUS_INVALID_ARGUMENT` for a
/// length outside `1..=seq_len`. Thread-safe on a const model.
///
/// # Safety
/// As `rnn_model_forward`; `lengths` is NULL or `batch` readable sizes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_forward_lengths(
    m: *const rnn_model,
    x: *const f32,
    seq_len: usize,
    batch: usize,
    lengths: *const usize,
    h0: *const f32,
    c0: *const f32,
    y: *mut f32,
    y_cap: usize,
    h_n: *mut f32,
    h_n_cap: usize,
    c_n: *mut f32,
    c_n_cap: usize,
) -> rnn_status {
    guard("rnn_model_forward_lengths", || {
        // SAFETY: this function's contract is forward_impl's.
        unsafe {
            forward_impl(
                m, x, seq_len, batch, lengths, h0, c0, y, y_cap, h_n, h_n_cap, c_n, c_n_cap,
            )
        }
    })
}

/// # Safety
/// As `rnn_model_forward_lengths`.
#[allow(clippy::too_many_arguments)]
unsafe fn forward_impl(
    m: *const rnn_model,
    x: *const f32,
    seq_len: usize,
    batch: usize,
    lengths: *const usize,
    h0: *const f32,
    c0: *const f32,
    y: *mut f32,
    y_cap: usize,
    h_n: *mut f32,
    h_n_cap: usize,
    c_n: *mut f32,
    c_n_cap: usize,
) -> Result<()> {
    // SAFETY: NULL or a live model, by the caller's contract.
    let m = unsafe { args::handle(m, "m") }?;
    if x.is_null() {
        return Err(Error::null("x"));
    }
    // SAFETY: outputs NULL or their capacity of writable floats, by the
    // caller's contract.
    let outs =
        unsafe { ForwardOut::check(m, seq_len, batch, y, y_cap, h_n, h_n_cap, c_n, c_n_cap) }?;
    // SAFETY: inputs NULL or their implied sizes, by the caller's contract.
    let input = unsafe { seq_input(m, x, seq_len, batch, lengths, h0, c0) }?;
    let out = m.net.forward(input)?;
    outs.write(&out);
    Ok(())
}
