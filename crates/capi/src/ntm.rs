//! Neural Turing Machines from C (docs/ntm.md): create, load, save, free,
//! forward, parameters by name, and the gradients of one sequence batch.
//!
//! Shapes are time-major and row-major: `x` `[T, B, I]`, `y` and `dy`
//! `[T, B, O]`; parameter names and shapes are those of docs/ntm.md
//! (`controller.weight_ih`, `heads.weight`, `init.weight_logits`, ...).

use std::ffi::{CString, c_char};

use rnn_models::alloc;
use rnn_models::ntm::{Controller, MemoryInit, Ntm, NtmConfig, NtmGradScratch, NtmTape};

use crate::args::{self, OutBuf};
use crate::error::{Error, Result, guard, guard_value, rnn_status};
use crate::model::give;
use crate::params::{c_names, find, write_name};

/// The NTM's controller (values of `rnn_ntm_config.controller`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rnn_ntm_controller {
    /// An LSTM cell with a learned initial state.
    Lstm = 0,
    /// One feed-forward layer, `h = tanh(W u + b)`.
    FeedForward = 1,
}

/// The description of a Neural Turing Machine. Fill it with
/// `rnn_ntm_config_init` (the copy task of Graves et al. 2014), then change
/// fields.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct rnn_ntm_config {
    /// An `rnn_ntm_controller`.
    pub controller: u32,
    /// Input features per step, I (>= 1).
    pub input_size: usize,
    /// Output logits per step, O (>= 1).
    pub output_size: usize,
    /// Controller units, C (>= 1).
    pub controller_size: usize,
    /// Memory rows, N (>= 1).
    pub memory_rows: usize,
    /// Memory width, M (>= 1).
    pub memory_width: usize,
    /// Read heads, R (1 to 64).
    pub read_heads: usize,
    /// Write heads, W (0 to 64).
    pub write_heads: usize,
    /// The heads shift by -S..=S rows (S < N).
    pub shift_range: usize,
    /// 1: the initial memory is a learned parameter `init.memory`; 0: every
    /// cell starts at `memory_init`.
    pub learned_memory: u32,
    /// The constant initial memory (finite; read when `learned_memory` is 0).
    pub memory_init: f32,
    /// Seed of the initialisation.
    pub seed: u64,
}

impl rnn_ntm_config {
    fn to_config(self) -> Result<NtmConfig> {
        let controller = match self.controller {
            0 => Controller::Lstm,
            1 => Controller::FeedForward,
            v => {
                return Err(Error::invalid(format!(
                    "controller = {v}: not an rnn_ntm_controller"
                )));
            }
        };
        let memory = if args::flag(self.learned_memory, "learned_memory")? {
            MemoryInit::Learned
        } else {
            MemoryInit::Constant(self.memory_init)
        };
        let c = NtmConfig {
            controller,
            input_size: self.input_size,
            output_size: self.output_size,
            controller_size: self.controller_size,
            memory_rows: self.memory_rows,
            memory_width: self.memory_width,
            read_heads: self.read_heads,
            write_heads: self.write_heads,
            shift_range: self.shift_range,
            memory,
            seed: self.seed,
        };
        c.validate()?;
        Ok(c)
    }
}

/// Fills `*config` with the copy-task machine of Graves et al. 2014: LSTM
/// controller of 100 units, memory 128 x 20 (constant 1e-6), one read and
/// one write head, shifts -1..=1, 9 inputs (8 bits and a delimiter), 8
/// outputs, seed 0.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
///
/// # Safety
/// `config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_config_init(config: *mut rnn_ntm_config) -> rnn_status {
    guard("rnn_ntm_config_init", || {
        let value = c_config(&NtmConfig::copy_task(8));
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, value, "config") }
    })
}

/// A Neural Turing Machine (opaque): its configuration and parameters.
///
/// Made by `rnn_ntm_new` or `rnn_ntm_load`, freed by `rnn_ntm_free`. Calls
/// taking a `const rnn_ntm *` may run on one machine from several threads at
/// once; `rnn_ntm_param_set` needs exclusive access.
#[allow(non_camel_case_types)]
pub struct rnn_ntm {
    ntm: Ntm,
    /// Parameter names as C strings, in buffer order.
    names: Vec<CString>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<rnn_ntm>();
};

impl rnn_ntm {
    fn new(ntm: Ntm) -> Result<Self> {
        let names = c_names(ntm.params())?;
        Ok(Self { ntm, names })
    }

    /// `(I, O)`.
    fn io(&self) -> (usize, usize) {
        let c = self.ntm.config();
        (c.input_size, c.output_size)
    }
}

/// Creates a machine from `*config` (initialisation of docs/ntm.md, from
/// `config->seed`). On success `*out` is a new machine owned by the caller
/// (free it with `rnn_ntm_free`); on failure `*out` is NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (a zero size, too many heads, a shift range
/// of N or more, a non-finite `memory_init`, a flag not 0/1, more than 2^32
/// parameters), `RNN_STATUS_OUT_OF_MEMORY` (the parameters cannot be
/// allocated). Thread-safe.
///
/// # Safety
/// `config` is NULL or points to an `rnn_ntm_config`; `out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_new(
    config: *const rnn_ntm_config,
    out: *mut *mut rnn_ntm,
) -> rnn_status {
    guard("rnn_ntm_new", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live rnn_ntm_config, by this function's contract.
        let config = unsafe { args::handle(config, "config") }?;
        let ntm = Ntm::new(config.to_config()?)?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_ntm::new(ntm)?) };
        Ok(())
    })
}

/// Loads a machine saved by `rnn_ntm_save` (or `rnn ntm`'s
/// `model.safetensors`). On success `*out` is a new machine owned by the
/// caller; on failure `*out` is NULL.
///
/// The configuration in the metadata is checked against the file's tensors
/// before anything is allocated for the machine, so a load takes memory
/// bounded by the file's size, whatever its metadata claims. A tensor of the
/// NTM's parameter groups (`controller.*`, `heads.*`, `output.*`, `init.*`)
/// that the configuration does not use is an error naming it; other
/// tensors are ignored.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (path, out), `RNN_STATUS_IO` (missing,
/// unreadable, truncated or malformed file, not an NTM, bad metadata, a
/// missing, misshapen or unused parameter tensor; the message names the
/// file), `RNN_STATUS_OUT_OF_MEMORY` (the file's parameters cannot be held
/// in memory). Thread-safe.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_load(path: *const c_char, out: *mut *mut rnn_ntm) -> rnn_status {
    guard("rnn_ntm_load", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let path = unsafe { args::path(path, "path") }?;
        let ntm = Ntm::load(&path)?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_ntm::new(ntm)?) };
        Ok(())
    })
}

/// Saves the machine (configuration as metadata), atomically, as
/// `rnn_model_save`: a temporary file unique to the call, fsynced and
/// renamed; a crash never leaves half a file, and concurrent saves and loads
/// of one path each see one complete file.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, path), `RNN_STATUS_IO`,
/// `RNN_STATUS_OUT_OF_MEMORY`. Thread-safe on a const machine.
///
/// # Safety
/// `m` is NULL or a live machine; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_save(m: *const rnn_ntm, path: *const c_char) -> rnn_status {
    guard("rnn_ntm_save", || {
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let path = unsafe { args::path(path, "path") }?;
        m.ntm.save(&path)?;
        Ok(())
    })
}

/// Makes an independent copy of a machine (same configuration and
/// parameters), as `rnn_model_clone` does for models. On success `*out` is
/// a new machine owned by the caller; on failure `*out` is NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_OUT_OF_MEMORY`
/// (no memory for the copy). Thread-safe on a const machine.
///
/// # Safety
/// `m` is NULL or a live machine; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_clone(m: *const rnn_ntm, out: *mut *mut rnn_ntm) -> rnn_status {
    guard("rnn_ntm_clone", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: `out` checked above.
        unsafe { give(out, rnn_ntm::new(m.ntm.try_clone()?)?) };
        Ok(())
    })
}

/// Frees a machine. NULL is accepted (nothing happens).
///
/// # Safety
/// `m` is NULL or a machine from this library, not yet freed nor in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_free(m: *mut rnn_ntm) {
    // SAFETY: NULL or a handle of this library, not yet freed nor in use,
    // by this function's contract.
    guard_value((), || unsafe { args::free_handle(m) })
}

/// Writes the machine's configuration to `*config` (`memory_init` is 0 for
/// a learned memory).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, config). Thread-safe on a const
/// machine.
///
/// # Safety
/// `m` is NULL or a live machine; `config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_get_config(
    m: *const rnn_ntm,
    config: *mut rnn_ntm_config,
) -> rnn_status {
    guard("rnn_ntm_get_config", || {
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        let value = c_config(m.ntm.config());
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, value, "config") }
    })
}

/// `c` as the C struct (`memory_init` 0 for a learned memory).
fn c_config(c: &NtmConfig) -> rnn_ntm_config {
    let (learned_memory, memory_init) = match c.memory {
        MemoryInit::Learned => (1, 0.0),
        MemoryInit::Constant(v) => (0, v),
    };
    rnn_ntm_config {
        controller: match c.controller {
            Controller::Lstm => rnn_ntm_controller::Lstm as u32,
            Controller::FeedForward => rnn_ntm_controller::FeedForward as u32,
        },
        input_size: c.input_size,
        output_size: c.output_size,
        controller_size: c.controller_size,
        memory_rows: c.memory_rows,
        memory_width: c.memory_width,
        read_heads: c.read_heads,
        write_heads: c.write_heads,
        shift_range: c.shift_range,
        learned_memory,
        memory_init,
        seed: c.seed,
    }
}

/// Runs the machine over `x` `[seq_len, batch, I]` (`x_len` floats) and
/// writes the logits `[seq_len, batch, O]` to `y` (capacity `y_cap`).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, x, y), `RNN_STATUS_INVALID_ARGUMENT`
/// (seq_len or batch 0, sizes that overflow), `RNN_STATUS_SHAPE_MISMATCH`
/// (x_len is not `seq_len * batch * I`), `RNN_STATUS_BUFFER_TOO_SMALL`
/// (y_cap), `RNN_STATUS_OUT_OF_MEMORY` (the work buffers of `seq_len x
/// batch`: memories, addressing weights, controller states); nothing is
/// written on error. Thread-safe on a const machine.
///
/// # Safety
/// `m` is NULL or a live machine; `x` is NULL or `x_len` readable floats;
/// `y` is NULL or `y_cap` writable floats, not overlapping `x`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_forward(
    m: *const rnn_ntm,
    x: *const f32,
    x_len: usize,
    seq_len: usize,
    batch: usize,
    y: *mut f32,
    y_cap: usize,
) -> rnn_status {
    guard("rnn_ntm_forward", || {
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or `x_len` readable floats, by this function's contract.
        let x = unsafe { args::input(x, x_len, "x") }?;
        let (_, o) = m.io();
        let need = args::product(&[seq_len, batch, o], "y")?;
        // SAFETY: NULL or `y_cap` writable floats, by this function's contract.
        let y = unsafe { OutBuf::new(y, y_cap, need, "y") }?;
        let out = m.ntm.forward(x, seq_len, batch)?;
        y.write(&out);
        Ok(())
    })
}

/// The gradients of `sum(y * dy)` for one batch: runs the machine over `x`
/// `[seq_len, batch, I]`, backpropagates `dy` `[seq_len, batch, O]` (the
/// gradient w.r.t. the logits, e.g. `(sigmoid(y) - target) / n` for a mean
/// binary cross-entropy), and writes every parameter's gradient to `grads`
/// as one flat buffer in parameter order (`rnn_ntm_param_name` order, each
/// tensor row-major; `grads_cap` >= the total parameter count, see
/// `rnn_ntm_param_total`), and, if `dx` is not NULL, the gradient w.r.t.
/// `x` `[seq_len, batch, I]` (capacity `dx_cap`). If `y` is not NULL the
/// logits are written there too (capacity `y_cap`).
///
/// Errors: as `rnn_ntm_forward` (`RNN_STATUS_OUT_OF_MEMORY` also for the
/// tape of the whole sequence and the gradients), plus
/// `RNN_STATUS_NULL_POINTER` (dy, grads), `RNN_STATUS_SHAPE_MISMATCH`
/// (dy_len), `RNN_STATUS_BUFFER_TOO_SMALL` (grads_cap, dx_cap, y_cap);
/// nothing is written on error. Thread-safe on
/// a const machine.
///
/// # Safety
/// Pointers are NULL or valid for their lengths; outputs do not overlap
/// inputs or each other.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_gradients(
    m: *const rnn_ntm,
    x: *const f32,
    x_len: usize,
    seq_len: usize,
    batch: usize,
    dy: *const f32,
    dy_len: usize,
    grads: *mut f32,
    grads_cap: usize,
    dx: *mut f32,
    dx_cap: usize,
    y: *mut f32,
    y_cap: usize,
) -> rnn_status {
    guard("rnn_ntm_gradients", || {
        // SAFETY (every call below): the pointers are NULL or valid for the
        // given lengths, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        let x = unsafe { args::input(x, x_len, "x") }?;
        let dy = unsafe { args::input(dy, dy_len, "dy") }?;
        let (i, o) = m.io();
        let total = m.ntm.params().num_elements();
        let grads = unsafe { OutBuf::new(grads, grads_cap, total, "grads") }?;
        let dx_need = args::product(&[seq_len, batch, i], "dx")?;
        let dx = unsafe { OutBuf::optional(dx, dx_cap, dx_need, "dx") }?;
        let y_need = args::product(&[seq_len, batch, o], "y")?;
        let y = unsafe { OutBuf::optional(y, y_cap, y_need, "y") }?;
        let mut tape = NtmTape::new();
        m.ntm.forward_train(x, seq_len, batch, &mut tape)?;
        let mut g = m.ntm.params().try_zeros_like()?;
        let mut dx_buf = alloc::zeros(if dx.is_some() { dx_need } else { 0 }, "dx")?;
        let dx_arg = dx.is_some().then_some(dx_buf.as_mut_slice());
        m.ntm
            .backward(&tape, dy, &mut g, dx_arg, &mut NtmGradScratch::default())?;
        grads.write(g.as_slice());
        if let Some(dx) = dx {
            dx.write(&dx_buf);
        }
        if let Some(y) = y {
            y.write(tape.y());
        }
        Ok(())
    })
}

/// Writes the number of parameter tensors to `*count`.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, count). Thread-safe on a const
/// machine.
///
/// # Safety
/// `m` is NULL or a live machine; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_param_count(m: *const rnn_ntm, count: *mut usize) -> rnn_status {
    guard("rnn_ntm_param_count", || {
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(count, m.ntm.params().len(), "count") }
    })
}

/// Writes the total number of parameter values (all tensors) to `*total`:
/// the length of `rnn_ntm_gradients`' `grads`.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, total). Thread-safe on a const
/// machine.
///
/// # Safety
/// `m` is NULL or a live machine; `total` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_param_total(m: *const rnn_ntm, total: *mut usize) -> rnn_status {
    guard("rnn_ntm_param_total", || {
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(total, m.ntm.params().num_elements(), "total") }
    })
}

/// Writes the name of parameter `index` (buffer order) to `*name`: a
/// NUL-terminated string owned by the machine, valid until it is freed.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name), `RNN_STATUS_INVALID_ARGUMENT`
/// (index out of range). Thread-safe on a const machine.
///
/// # Safety
/// `m` is NULL or a live machine; `name` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_param_name(
    m: *const rnn_ntm,
    index: usize,
    name: *mut *const c_char,
) -> rnn_status {
    guard("rnn_ntm_param_name", || {
        // SAFETY: NULL or writable, by this function's contract.
        let name = unsafe { args::out_ptr(name, std::ptr::null(), "name") }?;
        // SAFETY: NULL or a live machine, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: `name` checked above.
        unsafe { write_name(&m.names, index, name) }
    })
}

/// Copies parameter `name` (row-major, its element count = the product of
/// its docs/ntm.md shape) to `out` (capacity `out_cap`) and writes the count
/// to `*len` (if `len` is not NULL).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_BUFFER_TOO_SMALL`.
/// Thread-safe on a const machine.
///
/// # Safety
/// `m` is NULL or a live machine; `name` is NULL or NUL-terminated; `out` is
/// NULL or `out_cap` writable floats; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_param_get(
    m: *const rnn_ntm,
    name: *const c_char,
    out: *mut f32,
    out_cap: usize,
    len: *mut usize,
) -> rnn_status {
    guard("rnn_ntm_param_get", || {
        // SAFETY (every call below): by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        let name = unsafe { args::string(name, "name") }?;
        let params = m.ntm.params();
        let info = &params.infos()[find(params, name)?];
        let values = &params.as_slice()[info.offset..info.offset + info.len()];
        let out = unsafe { OutBuf::new(out, out_cap, values.len(), "out") }?;
        if !len.is_null() {
            unsafe { args::write_out(len, values.len(), "len") }?;
        }
        out.write(values);
        Ok(())
    })
}

/// Sets parameter `name` from `values` (`values_len` floats, exactly its
/// element count).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name, values),
/// `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_SHAPE_MISMATCH`
/// (values_len); nothing changes on error. Needs exclusive access.
///
/// # Safety
/// `m` is NULL or a live machine used by no other thread; `name` is NULL or
/// NUL-terminated; `values` is NULL or `values_len` readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_ntm_param_set(
    m: *mut rnn_ntm,
    name: *const c_char,
    values: *const f32,
    values_len: usize,
) -> rnn_status {
    guard("rnn_ntm_param_set", || {
        // SAFETY (every call below): by this function's contract.
        let m = unsafe { args::handle_mut(m, "m") }?;
        let name = unsafe { args::string(name, "name") }?;
        let values = unsafe { args::input(values, values_len, "values") }?;
        let params = m.ntm.params();
        let info = params.infos()[find(params, name)?].clone();
        if values.len() != info.len() {
            return Err(Error::new(
                rnn_status::ShapeMismatch,
                format!(
                    "{name}: needs {} values (shape {:?}), got {}",
                    info.len(),
                    info.shape,
                    values.len()
                ),
            ));
        }
        m.ntm.params_mut()[info.offset..info.offset + info.len()].copy_from_slice(values);
        Ok(())
    })
}
