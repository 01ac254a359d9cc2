//! Parameter access by name: count, name by index, shape, get, set.
//!
//! Names, shapes and layout are PyTorch's `state_dict`'s: per layer `k` and
//! direction suffix `s` (`""` or `"_reverse"`), `weight_ih_l{k}{s}`
//! `[G*H, I_k]`, `weight_hh_l{k}{s}` `[G*H, H]`, then (with biases)
//! `bias_ih_l{k}{s}`, `bias_hh_l{k}{s}` `[G*H]`; row-major.

use std::ffi::c_char;

use rnn_models::alloc;

use crate::args::{self, OutBuf};
use crate::error::{Error, Result, guard, rnn_status};
use crate::model::rnn_model;

/// The parameters' names as C strings, in buffer order (kept by a handle for
/// its `*_param_name` function).
/// The table is allocated fallibly (its length grows with `num_layers`).
pub(crate) fn c_names(params: &rnn_models::Params) -> Result<Vec<std::ffi::CString>> {
    let infos = params.infos();
    let mut names = Vec::new();
    alloc::reserve(&mut names, infos.len(), "parameter name table")?;
    for i in infos {
        let mut bytes = Vec::new();
        alloc::reserve(&mut bytes, i.name.len() + 1, "parameter name")?;
        bytes.extend_from_slice(i.name.as_bytes());
        let name = std::ffi::CString::new(bytes)
            .map_err(|_| Error::invalid("a parameter name contains a NUL byte"))?;
        names.push(name);
    }
    Ok(names)
}

/// Writes `names[index]` (owned by the handle) through `out`, or an error
/// naming the range.
///
/// # Safety
/// `out` was checked by [`args::out_ptr`].
pub(crate) unsafe fn write_name(
    names: &[std::ffi::CString],
    index: usize,
    out: *mut *const c_char,
) -> Result<()> {
    let s = names.get(index).ok_or_else(|| {
        Error::invalid(format!(
            "index {index} out of range ({} parameters)",
            names.len()
        ))
    })?;
    // SAFETY: `out` is non-NULL, aligned and writable (the caller's contract).
    unsafe { out.write(s.as_ptr()) };
    Ok(())
}

/// The index of parameter `name`, or an error naming it.
pub(crate) fn find(params: &rnn_models::Params, name: &str) -> Result<usize> {
    params
        .infos()
        .iter()
        .position(|i| i.name == name)
        .ok_or_else(|| Error::invalid(format!("no parameter named {name:?}")))
}

/// Writes the number of parameter tensors to `*count` (2 or 4 per layer and
/// direction).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, count). Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_param_count(
    m: *const rnn_model,
    count: *mut usize,
) -> rnn_status {
    guard("rnn_model_param_count", || {
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(count, m.net.params().len(), "count") }
    })
}

/// Writes the name of parameter `index` (`0 <= index < count`, buffer order)
/// to `*name`: a NUL-terminated string owned by the model, valid until the
/// model is freed.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name), `RNN_STATUS_INVALID_ARGUMENT`
/// (index out of range). Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `name` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_param_name(
    m: *const rnn_model,
    index: usize,
    name: *mut *const c_char,
) -> rnn_status {
    guard("rnn_model_param_name", || {
        // SAFETY: NULL or writable, by this function's contract.
        let name = unsafe { args::out_ptr(name, std::ptr::null(), "name") }?;
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: `name` checked above.
        unsafe { write_name(&m.names, index, name) }
    })
}

/// Writes the shape of parameter `name`: its number of dimensions to `*ndim`
/// (1 or 2) and the dimensions to `shape[0..ndim]`. `shape_cap` is the
/// capacity of `shape`; 2 always suffices. The element count is the product.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name, shape, ndim),
/// `RNN_STATUS_INVALID_ARGUMENT` (unknown name),
/// `RNN_STATUS_BUFFER_TOO_SMALL` (shape_cap < ndim; nothing written).
/// Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `name` NULL or NUL-terminated; `shape` NULL
/// or `shape_cap` writable sizes; `ndim` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_param_shape(
    m: *const rnn_model,
    name: *const c_char,
    shape: *mut usize,
    shape_cap: usize,
    ndim: *mut usize,
) -> rnn_status {
    guard("rnn_model_param_shape", || {
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let name = unsafe { args::string(name, "name") }?;
        if ndim.is_null() {
            return Err(Error::null("ndim"));
        }
        let params = m.net.params();
        let info = &params.infos()[find(params, name)?];
        // SAFETY: NULL or `shape_cap` writable sizes, by this function's contract.
        let buf = unsafe { OutBuf::new(shape, shape_cap, info.shape.len(), "shape") }?;
        buf.write(&info.shape);
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(ndim, info.shape.len(), "ndim") }
    })
}

/// Copies parameter `name` (row-major, `numel` floats) into `out`, whose
/// capacity is `out_cap` floats.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_BUFFER_TOO_SMALL`
/// (nothing written). Thread-safe on a const model.
///
/// # Safety
/// `m` is NULL or a live model; `name` NULL or NUL-terminated; `out` NULL or
/// `out_cap` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_param_get(
    m: *const rnn_model,
    name: *const c_char,
    out: *mut f32,
    out_cap: usize,
) -> rnn_status {
    guard("rnn_model_param_get", || {
        // SAFETY: NULL or a live model, by this function's contract.
        let m = unsafe { args::handle(m, "m") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let name = unsafe { args::string(name, "name") }?;
        // SAFETY: NULL or writable floats, by this function's contract.
        unsafe { copy_param(m.net.params(), name, out, out_cap, "out") }
    })
}

/// Copies tensor `name` of `params` into a caller's buffer.
///
/// # Safety
/// `out` is NULL or `out_cap` writable floats.
pub(crate) unsafe fn copy_param(
    params: &rnn_models::Params,
    name: &str,
    out: *mut f32,
    out_cap: usize,
    arg: &'static str,
) -> Result<()> {
    if out.is_null() {
        return Err(Error::null(arg));
    }
    let info = &params.infos()[find(params, name)?];
    // SAFETY: NULL or `out_cap` writable floats, by this function's contract.
    let buf = unsafe { OutBuf::new(out, out_cap, info.len(), arg) }?;
    buf.write(&params.as_slice()[info.offset..info.offset + info.len()]);
    Ok(())
}

/// Sets parameter `name` from `values` (row-major), which must hold exactly
/// the parameter's element count (`len`). Invalidates the tapes of trainers
/// on this model (run forward again before backward).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (m, name, values),
/// `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_SHAPE_MISMATCH`
/// (len differs); nothing is changed on error. Needs exclusive access to the
/// model.
///
/// # Safety
/// `m` is NULL or a live model used by no other thread; `name` NULL or
/// NUL-terminated; `values` NULL or `len` readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_model_param_set(
    m: *mut rnn_model,
    name: *const c_char,
    values: *const f32,
    len: usize,
) -> rnn_status {
    guard("rnn_model_param_set", || {
        // SAFETY: NULL or a live, exclusive model, by this function's contract.
        let m = unsafe { args::handle_mut(m, "m") }?;
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let name = unsafe { args::string(name, "name") }?;
        // SAFETY: NULL or `len` readable floats, by this function's contract.
        let values = unsafe { args::input(values, len, "values") }?;
        let info = &m.net.params().infos()[find(m.net.params(), name)?];
        if info.len() != len {
            return Err(Error::shape(format!(
                "{name}: shape {:?} needs {} values, got {len}",
                info.shape,
                info.len()
            )));
        }
        m.net.set_param(name, values)?;
        m.touch();
        Ok(())
    })
}
