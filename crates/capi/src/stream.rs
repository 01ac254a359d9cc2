//! Streaming: one time step at a time, the state held in a handle.

use rnn_models::{NetConfig, StreamState, alloc};

use crate::args::{self, OutBuf};
use crate::error::{Error, Result, guard, guard_value, rnn_status};
use crate::model::{give, rnn_model};

/// The state of a stream of `batch` sequences (opaque): hidden (and cell)
/// states `[L, batch, H]` plus work buffers.
///
/// Made by `rnn_stream_new`, freed by `rnn_stream_free`. A stream works with
/// any model of the configuration it was made for. One stream must not be
/// used by two threads at once; distinct streams on one const model may run
/// on different threads.
#[allow(non_camel_case_types)]
pub struct rnn_stream {
    config: NetConfig,
    state: StreamState,
    /// Scratch `[batch, H]` for one step's output (sized once).
    y: Vec<f32>,
}

impl rnn_stream {
    fn check_model(&self, m: &rnn_model) -> Result<()> {
        if m.net.config() != &self.config {
            return Err(Error::invalid(
                "the stream was made for a model of another configuration",
            ));
        }
        Ok(())
    }
}

/// Creates a zero state for streaming `batch` sequences through `m` (or any
/// model of the same configuration). On success `*out` is a new stream
/// owned by the caller (free it with `rnn_stream_free`); on failure NULL.
///
/// The states (`[L, batch, H]`, twice for an LSTM) and the work buffer of a
/// step's output (`[batch, H]`) are allocated here, so a batch too large for
/// memory fails here, not at a later step.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_INVALID_ARGUMENT`
/// (batch 0; a bidirectional model, whose reverse direction needs the whole
/// sequence), `RNN_STATUS_OUT_OF_MEMORY` (the states of `batch` sequences
/// cannot be allocated, or their size overflows). Thread-safe on a const
/// model.
///
/// # Safety
/// `m` is NULL or a live model; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_stream_new(
    m: *const rnn_model,
    batch: usize,
    out: *mut *mut rnn_stream,
) -> rnn_status {
    guard("rnn_stream_new", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        let c = m.net.config();
        // Everything is allocated here, up front (sizes checked, allocations
        // fallible): a batch that cannot be held fails now, not at a step.
        let state = m.net.stream_state(batch)?;
        let y_len = alloc::product(&[batch, c.state_size()], "stream output [batch, S]")?;
        let y = alloc::zeros(y_len, "stream output [batch, S]")?;
        let s = rnn_stream {
            config: c.clone(),
            state,
            y,
        };
        // SAFETY: `out` checked above.
        unsafe { give(out, s) };
        Ok(())
    })
}

/// Runs one time step: `x_t` `[batch, I]` in (read at that size), `y_t`
/// `[batch, H]` out (the last layer's new hidden state; `y_t_cap` is its
/// capacity), the state advanced. Equal to `rnn_model_forward` run one step
/// at a time.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (s, m, x_t, y_t),
/// `RNN_STATUS_INVALID_ARGUMENT` (a model of another configuration),
/// `RNN_STATUS_BUFFER_TOO_SMALL`, `RNN_STATUS_OUT_OF_MEMORY` (a work
/// buffer); on error the state is unchanged.
/// Thread-safe on a const model; the stream needs exclusive access.
///
/// # Safety
/// `s` is NULL or a live stream used by no other thread; `m` NULL or a live
/// model; `x_t` NULL or `batch * I` readable floats; `y_t` NULL or
/// `y_t_cap` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_stream_step(
    s: *mut rnn_stream,
    m: *const rnn_model,
    x_t: *const f32,
    y_t: *mut f32,
    y_t_cap: usize,
) -> rnn_status {
    guard("rnn_stream_step", || {
        // SAFETY: NULL or a live, exclusive stream, by this function's contract.
        let s = unsafe { args::handle_mut(s, "s") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        s.check_model(m)?;
        let c = m.net.config();
        let b = s.state.batch();
        let x_len = args::product(&[b, c.input_size], "x_t")?;
        // SAFETY: NULL or `batch * I` readable floats, by this function's contract.
        let x_t = unsafe { args::input(x_t, x_len, "x_t") }?;
        let y_need = args::product(&[b, c.state_size()], "y_t")?;
        // SAFETY: NULL or `y_t_cap` writable floats, by this function's contract.
        let y_buf = unsafe { OutBuf::new(y_t, y_t_cap, y_need, "y_t") }?;
        alloc::resize(&mut s.y, y_need, "stream output [batch, S]")?;
        m.net.step(x_t, &mut s.state, &mut s.y)?;
        y_buf.write(&s.y);
        Ok(())
    })
}

/// Resets the stream's states to zero.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (s). The stream needs exclusive access.
///
/// # Safety
/// `s` is NULL or a live stream used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_stream_reset(s: *mut rnn_stream) -> rnn_status {
    guard("rnn_stream_reset", || {
        // SAFETY: NULL or a live, exclusive stream, by this function's contract.
        let s = unsafe { args::handle_mut(s, "s") }?;
        s.state.reset();
        Ok(())
    })
}

/// Copies the stream's states out: `h` receives the hidden states
/// `[L, batch, H]` (capacity `h_cap`), `c` the cell states (LSTM only).
/// Either may be NULL when not wanted.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (s), `RNN_STATUS_INVALID_ARGUMENT` (c
/// for a cell without cell state), `RNN_STATUS_BUFFER_TOO_SMALL` (nothing
/// written). Thread-safe on a stream no thread is stepping.
///
/// # Safety
/// `s` is NULL or a live stream; `h`, `c` NULL or their length of writable
/// floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_stream_get_state(
    s: *const rnn_stream,
    h: *mut f32,
    h_cap: usize,
    c: *mut f32,
    c_cap: usize,
) -> rnn_status {
    guard("rnn_stream_get_state", || {
        // SAFETY: NULL or a live stream, by this function's contract.
        let s = unsafe { args::handle(s, "s") }?;
        let has_c = s.config.cell.has_cell_state();
        if !c.is_null() && !has_c {
            return Err(Error::invalid("c given, but the cell has no cell state"));
        }
        // SAFETY: NULL or their length of writable floats, by this
        // function's contract.
        let (hb, cb) = unsafe {
            (
                OutBuf::optional(h, h_cap, s.state.h().len(), "h")?,
                OutBuf::optional(c, c_cap, s.state.c().len(), "c")?,
            )
        };
        if let Some(b) = hb {
            b.write(s.state.h());
        }
        if let Some(b) = cb {
            b.write(s.state.c());
        }
        Ok(())
    })
}

/// Sets the stream's states: `h` the hidden states `[L, batch, H]`, exactly
/// `h_cap` floats; `c` the cell states (LSTM only). Either may be NULL to
/// leave that state as it is.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (s), `RNN_STATUS_INVALID_ARGUMENT` (c
/// for a cell without cell state), `RNN_STATUS_SHAPE_MISMATCH` (a length
/// differs); nothing is changed on error. The stream needs exclusive access.
///
/// # Safety
/// `s` is NULL or a live stream used by no other thread; `h`, `c` NULL or
/// their length of readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_stream_set_state(
    s: *mut rnn_stream,
    h: *const f32,
    h_len: usize,
    c: *const f32,
    c_len: usize,
) -> rnn_status {
    guard("rnn_stream_set_state", || {
        // SAFETY: NULL or a live, exclusive stream, by this function's contract.
        let s = unsafe { args::handle_mut(s, "s") }?;
        let has_c = s.config.cell.has_cell_state();
        if !c.is_null() && !has_c {
            return Err(Error::invalid("c given, but the cell has no cell state"));
        }
        // SAFETY: NULL or their length of readable floats, by this
        // function's contract.
        let (h, c) = unsafe {
            (
                args::optional_input(h, h_len, "h")?,
                args::optional_input(c, c_len, "c")?,
            )
        };
        let want = s.state.h().len();
        for (name, v) in [("h", h), ("c", c)] {
            if let Some(v) = v
                && v.len() != want
            {
                return Err(Error::shape(format!(
                    "{name}: needs {want} floats ([L, batch, H]), got {}",
                    v.len()
                )));
            }
        }
        if let Some(h) = h {
            s.state.set_h(h)?;
        }
        if let Some(c) = c {
            s.state.set_c(c)?;
        }
        Ok(())
    })
}

/// Frees a stream. NULL is accepted.
///
/// # Safety
/// `s` is NULL or a stream from this library, not yet freed nor in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_stream_free(s: *mut rnn_stream) {
    // SAFETY: NULL or a handle of this library, not yet freed nor in use,
    // by this function's contract.
    guard_value((), || unsafe { args::free_handle(s) })
}
