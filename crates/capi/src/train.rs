//! Training: a trainer handle holds the tape of a training forward and the
//! gradients of a backward pass; clipping; the one-call MSE train step.

use std::ffi::{c_char, c_int, c_void};

use rnn_models::optim::clip_grad_norm;
use rnn_models::{Gradients, OutputGrads, Tape, alloc};

use crate::args::{self, OutBuf};
use crate::error::{Error, Result, guard, guard_value, rnn_status};
use crate::model::{ForwardOut, give, rnn_model, seq_input};
use crate::optim::{check_grads_finite, rnn_optimizer};
use crate::params::copy_param;

/// Training state for one model (opaque): the tape of the last training
/// forward and the gradients of the last backward.
///
/// Made by `rnn_trainer_new` for one model and usable only with that model;
/// freed by `rnn_trainer_free`. Its buffers are reused across calls. One
/// trainer must not be used by two threads at once.
#[allow(non_camel_case_types)]
pub struct rnn_trainer {
    model_id: u64,
    tape: Tape,
    grads: Gradients,
    /// The model's generation at the last successful forward.
    forward_gen: Option<u64>,
    /// `(seq_len, batch)` of the last successful forward.
    shape: (usize, usize),
    /// Whether `grads` holds a backward pass's result.
    has_grads: bool,
    /// dL/dy of the train step's loss.
    dy: Vec<f32>,
    /// The caller's all-reduce (`rnn_trainer_set_allreduce`), if any.
    allreduce: Option<AllReduce>,
    /// Its buffer: the gradients, the loss and the batch, each weighted.
    reduce_buf: Vec<f32>,
}

/// Sums `len` floats at `buf` across the caller's workers, in place, so that
/// every worker ends with the same sums (an `MPI_Allreduce` with `MPI_SUM`,
/// for example); returns 0 on success, anything else on failure.
/// `user_data` is the pointer given to `rnn_trainer_set_allreduce`.
#[allow(non_camel_case_types)]
pub type rnn_allreduce_fn =
    Option<unsafe extern "C" fn(buf: *mut f32, len: usize, user_data: *mut c_void) -> c_int>;

/// A caller's all-reduce callback and its pointer.
struct AllReduce {
    sum: unsafe extern "C" fn(buf: *mut f32, len: usize, user_data: *mut c_void) -> c_int,
    user_data: *mut c_void,
}

// SAFETY: the library never dereferences `user_data`; it only hands it
// back to the caller's callback, from whichever thread uses the trainer,
// as `rnn_trainer_set_allreduce`'s contract states.
unsafe impl Send for AllReduce {}

impl rnn_trainer {
    pub(crate) fn check_model(&self, m: &rnn_model) -> Result<()> {
        if self.model_id != m.id {
            return Err(Error::invalid(
                "the trainer was made for another model (see rnn_trainer_new)",
            ));
        }
        Ok(())
    }

    /// The parameter gradients of the last backward.
    pub(crate) fn param_grads(&self) -> Result<&rnn_models::Params> {
        if !self.has_grads {
            return Err(Error::invalid(
                "no gradients yet: run rnn_trainer_backward first",
            ));
        }
        Ok(&self.grads.params)
    }

    fn check_forward(&self, m: &rnn_model) -> Result<()> {
        match self.forward_gen {
            None => Err(Error::invalid(
                "no training forward to go back through: run rnn_trainer_forward first",
            )),
            Some(g) if g != m.generation => Err(Error::invalid(
                "the model's parameters changed since rnn_trainer_forward: run it again",
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Creates a trainer for `m`, with its gradient buffer (the size of the
/// model's parameters). On success `*out` is a new trainer owned by the
/// caller (free it with `rnn_trainer_free`); on failure NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_OUT_OF_MEMORY`
/// (no memory for the gradients). Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_new(
    m: *const rnn_model,
    out: *mut *mut rnn_trainer,
) -> rnn_status {
    guard("rnn_trainer_new", || {
        // SAFETY: NULL or writable, by this function's contract.
        let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        let t = rnn_trainer {
            model_id: m.id,
            tape: Tape::new(),
            grads: Gradients::try_for_net(&m.net)?,
            forward_gen: None,
            shape: (0, 0),
            has_grads: false,
            dy: Vec::new(),
            allreduce: None,
            reduce_buf: Vec::new(),
        };
        // SAFETY: `out` checked above.
        unsafe { give(out, t) };
        Ok(())
    })
}

/// Frees a trainer. NULL is accepted.
///
/// # Safety
/// `t` is NULL or a trainer from this library, not yet freed nor in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_free(t: *mut rnn_trainer) {
    // SAFETY: NULL or a handle of this library, not yet freed nor in use,
    // by this function's contract.
    guard_value((), || unsafe { args::free_handle(t) })
}

/// Training forward pass: as `rnn_model_forward_lengths` (same arguments,
/// shapes and errors; `lengths` may be NULL), and records in the trainer
/// what `rnn_trainer_backward` needs.
///
/// Errors: as `rnn_model_forward_lengths` (`RNN_STATUS_OUT_OF_MEMORY` also
/// for the tape of `seq_len x batch`), and `RNN_STATUS_NULL_POINTER` (t),
/// `RNN_STATUS_INVALID_ARGUMENT` (a trainer made for another model).
/// Thread-safe on a const model; the trainer needs exclusive access.
///
/// # Safety
/// As `rnn_model_forward_lengths`; `t` is NULL or a live trainer used by no
/// other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_forward(
    t: *mut rnn_trainer,
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
    guard("rnn_trainer_forward", || {
        // SAFETY: NULL or a live, exclusive trainer, by this function's contract.
        let t = unsafe { args::handle_mut(t, "t") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        t.check_model(m)?;
        if x.is_null() {
            return Err(Error::null("x"));
        }
        // SAFETY: outputs NULL or their capacity of writable floats, by this
        // function's contract.
        let outs =
            unsafe { ForwardOut::check(m, seq_len, batch, y, y_cap, h_n, h_n_cap, c_n, c_n_cap) }?;
        // SAFETY: inputs NULL or their implied sizes, by this function's contract.
        let input = unsafe { seq_input(m, x, seq_len, batch, lengths, h0, c0) }?;
        t.forward_gen = None;
        let out = m.net.forward_train(input, &mut t.tape)?;
        t.forward_gen = Some(m.generation);
        t.shape = (seq_len, batch);
        outs.write(&out);
        Ok(())
    })
}

/// Backpropagation through time from the last `rnn_trainer_forward`, whose
/// model parameters must be unchanged since.
///
/// - `grad_y`: dL/dy `[seq_len, batch, D*H]` (sizes of the last forward);
///   required, read at that size.
/// - `grad_h_n`, `grad_c_n`: dL/dh_n, dL/dc_n `[L*D, batch, H]`, or NULL for
///   zero; `grad_c_n` only for an LSTM.
///
/// Afterwards every parameter's gradient (`rnn_trainer_grad`, overwritten,
/// not accumulated) and dL/dx, dL/dh0, dL/dc0 (`rnn_trainer_input_grads`)
/// are readable.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (t, m, grad_y),
/// `RNN_STATUS_INVALID_ARGUMENT` (no forward yet, parameters changed since,
/// another model, grad_c_n for a cell without cell state),
/// `RNN_STATUS_OUT_OF_MEMORY` (the input gradients or work buffers).
/// Thread-safe on a const model; the trainer needs exclusive access.
///
/// # Safety
/// `t` is NULL or a live trainer used by no other thread; `m` NULL or a live
/// model; each array NULL or its stated size of readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_backward(
    t: *mut rnn_trainer,
    m: *const rnn_model,
    grad_y: *const f32,
    grad_h_n: *const f32,
    grad_c_n: *const f32,
) -> rnn_status {
    guard("rnn_trainer_backward", || {
        // SAFETY: NULL or a live, exclusive trainer, by this function's contract.
        let t = unsafe { args::handle_mut(t, "t") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        t.check_model(m)?;
        if grad_y.is_null() {
            return Err(Error::null("grad_y"));
        }
        t.check_forward(m)?;
        let c = m.net.config();
        if !grad_c_n.is_null() && !c.cell.has_cell_state() {
            return Err(Error::invalid(format!(
                "grad_c_n given, but a {} has no cell state (pass NULL)",
                c.cell.name()
            )));
        }
        let (seq_len, batch) = t.shape;
        let (ld, dh) = m.dims();
        let y_len = args::product(&[seq_len, batch, dh], "grad_y")?;
        let state = args::product(&[ld, batch, c.state_size()], "grad_h_n")?;
        let cell_state = args::product(&[ld, batch, c.hidden_size], "grad_c_n")?;
        // SAFETY: NULL or their stated sizes of readable floats, by this
        // function's contract.
        let grads = unsafe {
            OutputGrads {
                y: args::input(grad_y, y_len, "grad_y")?,
                h_n: args::optional_input(grad_h_n, state, "grad_h_n")?,
                c_n: args::optional_input(grad_c_n, cell_state, "grad_c_n")?,
            }
        };
        t.has_grads = false;
        m.net.backward(&mut t.tape, grads, &mut t.grads)?;
        t.has_grads = true;
        Ok(())
    })
}

/// Copies the gradient of parameter `name` (same shape and layout as the
/// parameter) from the last backward into `out` (capacity `out_cap`).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (t, name, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (unknown name, no backward yet),
/// `RNN_STATUS_BUFFER_TOO_SMALL`. Thread-safe on a trainer no thread is
/// changing.
///
/// # Safety
/// `t` is NULL or a live trainer; `name` NULL or NUL-terminated; `out` NULL
/// or `out_cap` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_grad(
    t: *const rnn_trainer,
    name: *const c_char,
    out: *mut f32,
    out_cap: usize,
) -> rnn_status {
    guard("rnn_trainer_grad", || {
        // SAFETY: NULL or a live trainer, by this function's contract.
        let t = unsafe { args::handle(t, "t") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let name = unsafe { args::string(name, "name") }?;
        if out.is_null() {
            return Err(Error::null("out"));
        }
        t.param_grads()?;
        // SAFETY: NULL or `out_cap` writable floats, by this function's contract.
        unsafe { copy_param(&t.grads.params, name, out, out_cap, "out") }
    })
}

/// Copies the input gradients of the last backward: `dx` `[seq_len, batch,
/// I]`, `dh0` and (LSTM) `dc0` `[L*D, batch, H]`, each into a buffer of the
/// given capacity, or NULL when not wanted.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (t), `RNN_STATUS_INVALID_ARGUMENT` (no
/// backward yet; dc0 for a cell without cell state),
/// `RNN_STATUS_BUFFER_TOO_SMALL` (nothing written). Thread-safe on a trainer
/// no thread is changing.
///
/// # Safety
/// `t` is NULL or a live trainer; each buffer NULL or its capacity of
/// writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_input_grads(
    t: *const rnn_trainer,
    dx: *mut f32,
    dx_cap: usize,
    dh0: *mut f32,
    dh0_cap: usize,
    dc0: *mut f32,
    dc0_cap: usize,
) -> rnn_status {
    guard("rnn_trainer_input_grads", || {
        // SAFETY: NULL or a live trainer, by this function's contract.
        let t = unsafe { args::handle(t, "t") }?;
        t.param_grads()?;
        let g = &t.grads;
        if !dc0.is_null() && g.c0.is_empty() {
            return Err(Error::invalid("dc0 given, but the cell has no cell state"));
        }
        // SAFETY: NULL or their capacity of writable floats, by this
        // function's contract.
        let bufs = unsafe {
            [
                OutBuf::optional(dx, dx_cap, g.x.len(), "dx")?,
                OutBuf::optional(dh0, dh0_cap, g.h0.len(), "dh0")?,
                OutBuf::optional(dc0, dc0_cap, g.c0.len(), "dc0")?,
            ]
        };
        for (buf, src) in bufs.into_iter().zip([&g.x, &g.h0, &g.c0]) {
            if let Some(b) = buf {
                b.write(src);
            }
        }
        Ok(())
    })
}

fn check_max_norm(max_norm: f32, zero_ok: bool) -> Result<()> {
    if !max_norm.is_finite() || max_norm < 0.0 || (!zero_ok && max_norm == 0.0) {
        return Err(Error::invalid(format!(
            "max_norm = {max_norm}: must be finite and {}",
            if zero_ok { ">= 0" } else { "> 0" }
        )));
    }
    Ok(())
}

/// Scales the parameter gradients of the last backward so that their global
/// L2 norm is at most `max_norm` (`torch.nn.utils.clip_grad_norm_`), and
/// writes the norm before clipping to `*norm` (may be NULL).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (t), `RNN_STATUS_INVALID_ARGUMENT`
/// (max_norm not finite and > 0, no backward yet). The trainer needs
/// exclusive access.
///
/// # Safety
/// `t` is NULL or a live trainer used by no other thread; `norm` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_clip_grad_norm(
    t: *mut rnn_trainer,
    max_norm: f32,
    norm: *mut f32,
) -> rnn_status {
    guard("rnn_trainer_clip_grad_norm", || {
        // SAFETY: NULL or a live, exclusive trainer, by this function's contract.
        let t = unsafe { args::handle_mut(t, "t") }?;
        check_max_norm(max_norm, false)?;
        t.param_grads()?;
        let norm = if norm.is_null() {
            None
        } else {
            Some(args::check_out(norm, "norm")?)
        };
        let n = clip_grad_norm(t.grads.params.as_mut_slice(), max_norm);
        if let Some(p) = norm {
            // SAFETY: non-NULL and aligned (check_out above), writable by
            // this function's contract.
            unsafe { p.write(n) };
        }
        Ok(())
    })
}

/// Makes `rnn_trainer_step_mse` a data-parallel step: each worker (a
/// process or thread of the caller's, with its own model, trainer and
/// optimizer, all started from the same parameters) passes its slice of the
/// global batch, and between its backward pass and the clipping the step
/// calls `sum(buf, len, user_data)` once. `buf` holds this worker's
/// parameter gradients times its batch size, then its loss times its batch
/// size, then its batch size (`len` = parameters + 2); the callback must
/// replace it with the element-wise sum over all workers, the same on
/// every worker. The step then divides by the summed batch size, so every
/// worker clips and applies the gradient of the global batch's mean loss
/// (slices of unequal sizes are weighted by their sizes) and reports that
/// loss. `sum` NULL: back to a single worker.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (t). A nonzero return of the callback
/// makes the step fail with `RNN_STATUS_COLLECTIVE` (parameters not
/// updated). The trainer needs exclusive access; `user_data` is the
/// caller's (the library never reads it).
///
/// # Safety
/// `t` is NULL or a live trainer used by no other thread; `sum`, when not
/// NULL, is safe to call with a buffer of `len` floats and `user_data`,
/// for as long as the trainer uses it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_set_allreduce(
    t: *mut rnn_trainer,
    sum: rnn_allreduce_fn,
    user_data: *mut c_void,
) -> rnn_status {
    guard("rnn_trainer_set_allreduce", || {
        // SAFETY: NULL or a live, exclusive trainer, by this function's contract.
        let t = unsafe { args::handle_mut(t, "t") }?;
        t.allreduce = sum.map(|sum| AllReduce { sum, user_data });
        Ok(())
    })
}

/// One training step on the mean squared error between `y` and `target`:
/// training forward (as `rnn_trainer_forward`, outputs kept inside), loss
/// `mean((y - target)^2)` over all `seq_len*batch*D*H` elements, backward,
/// a check that the loss and every gradient are finite, clipping of the
/// gradients' global norm to `max_grad_norm` (0: no clipping), and one
/// update of `m`'s parameters by `opt`. Writes the loss (before the update)
/// to `*loss` (may be NULL). The clipped gradients stay readable through
/// `rnn_trainer_grad`.
///
/// `target`: `[seq_len, batch, D*H]`, read at that size. With `lengths`,
/// `y` is zero past each sequence's end, so `target` should be too.
///
/// Errors: as `rnn_trainer_forward` (y/h_n/c_n excepted), and
/// `RNN_STATUS_NULL_POINTER` (opt, target), `RNN_STATUS_INVALID_ARGUMENT`
/// (max_grad_norm negative or not finite), `RNN_STATUS_NUMERICAL` (a
/// non-finite loss or gradient: the parameters are not updated),
/// `RNN_STATUS_OUT_OF_MEMORY` (the tape, the gradients, or the optimizer's
/// state, sized at its first step: the parameters are not updated).
/// Needs exclusive access to the model, the trainer and the optimizer.
///
/// # Safety
/// `t`, `m`, `opt` are NULL or live handles used by no other thread; `x`,
/// `lengths`, `h0`, `c0`, `target` NULL or their stated sizes; `loss` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_trainer_step_mse(
    t: *mut rnn_trainer,
    m: *mut rnn_model,
    opt: *mut rnn_optimizer,
    x: *const f32,
    seq_len: usize,
    batch: usize,
    lengths: *const usize,
    h0: *const f32,
    c0: *const f32,
    target: *const f32,
    max_grad_norm: f32,
    loss: *mut f64,
) -> rnn_status {
    guard("rnn_trainer_step_mse", || {
        // SAFETY: NULL or live, exclusive handles, by this function's contract.
        let (t, m, opt) = unsafe {
            (
                args::handle_mut(t, "t")?,
                args::handle_mut(m, "m")?,
                args::handle_mut(opt, "opt")?,
            )
        };
        t.check_model(m)?;
        if x.is_null() {
            return Err(Error::null("x"));
        }
        if target.is_null() {
            return Err(Error::null("target"));
        }
        check_max_norm(max_grad_norm, true)?;
        let loss = if loss.is_null() {
            None
        } else {
            Some(args::check_out(loss, "loss")?)
        };
        // SAFETY: inputs NULL or their implied sizes, by this function's contract.
        let input = unsafe { seq_input(m, x, seq_len, batch, lengths, h0, c0) }?;
        let y_len = args::product(&[seq_len, batch, m.dims().1], "target")?;
        // SAFETY: NULL or `y_len` readable floats, by this function's contract.
        let target = unsafe { args::input(target, y_len, "target") }?;

        t.forward_gen = None;
        t.has_grads = false;
        let out = m.net.forward_train(input, &mut t.tape)?;
        t.forward_gen = Some(m.generation);
        t.shape = (seq_len, batch);
        alloc::resize(&mut t.dy, out.y.len(), "dL/dy of the loss")?;
        let value = rnn_models::loss::mse(&out.y, target, &mut t.dy)?;
        if !value.is_finite() {
            return Err(Error::new(
                rnn_status::Numerical,
                format!("the loss is {value}: parameters not updated"),
            ));
        }
        m.net
            .backward(&mut t.tape, OutputGrads::new(&t.dy), &mut t.grads)?;
        let value = match &t.allreduce {
            Some(r) => reduce(
                r,
                &mut t.reduce_buf,
                t.grads.params.as_mut_slice(),
                value,
                batch,
            )?,
            None => value,
        };
        t.has_grads = true;
        check_grads_finite(&t.grads.params)?;
        if max_grad_norm > 0.0 {
            clip_grad_norm(t.grads.params.as_mut_slice(), max_grad_norm);
        }
        opt.step(m, t)?;
        if let Some(p) = loss {
            // SAFETY: non-NULL and aligned (check_out above), writable by
            // this function's contract.
            unsafe { p.write(value) };
        }
        Ok(())
    })
}

/// One all-reduce of a step through the caller's callback (see
/// `rnn_trainer_set_allreduce`): `grads` and `loss` become the global
/// batch's; returns that loss.
fn reduce(
    r: &AllReduce,
    buf: &mut Vec<f32>,
    grads: &mut [f32],
    loss: f64,
    batch: usize,
) -> Result<f64> {
    let n = grads.len();
    alloc::resize(buf, n + 2, "the all-reduce buffer")?;
    let weight = batch as f32;
    for (b, g) in buf.iter_mut().zip(grads.iter()) {
        *b = g * weight;
    }
    buf[n] = (loss * batch as f64) as f32;
    buf[n + 1] = weight;
    // SAFETY: `buf` holds `n + 2` floats; the callback's contract is the
    // caller's (rnn_trainer_set_allreduce).
    let status = unsafe { (r.sum)(buf.as_mut_ptr(), n + 2, r.user_data) };
    if status != 0 {
        return Err(Error::new(
            rnn_status::Collective,
            format!("the all-reduce callback returned {status}: parameters not updated"),
        ));
    }
    let total = buf[n + 1];
    if !(total.is_finite() && total >= 1.0) {
        return Err(Error::new(
            rnn_status::Collective,
            format!(
                "the all-reduce callback summed the batch sizes to {total}: parameters not updated"
            ),
        ));
    }
    let inv = 1.0 / total;
    for (g, b) in grads.iter_mut().zip(buf.iter()) {
        *g = b * inv;
    }
    Ok(f64::from(buf[n]) / f64::from(total))
}
