//! NTM memory access for one batch row (Graves et al. 2014, eqs. 2-4): read
//! `r = sum_i w_i M_i`, and the write of `W` heads, all erases before all
//! adds: `M'_i = M_i * prod_h (1 - w^h_i e^h) + sum_h w^h_i a^h`.
//!
//! Memory `[N, M]`, weightings `[N]` (or `[W, N]` for the write heads),
//! erase and add vectors `[W, M]`, all row-major. Backward functions
//! accumulate (`+=`) into their gradient outputs. The reference equations,
//! generic over the float type; the model runs them as the SIMD kernels of
//! `rnn_kernels::addressing`.

use super::addressing::Real;

/// Read (eq. 2): `r` `[M]`, written.
pub fn read<T: Real>(w: &[T], mem: &[T], r: &mut [T]) {
    let m = r.len();
    r.iter_mut().for_each(|v| *v = T::of(0.0));
    for (&wi, row) in w.iter().zip(mem.chunks_exact(m)) {
        for (o, &x) in r.iter_mut().zip(row) {
            *o += wi * x;
        }
    }
}

/// Backward of [`read`]: accumulates `dw` `[N]` and `dmem` `[N, M]`.
pub fn read_backward<T: Real>(w: &[T], mem: &[T], dr: &[T], dw: &mut [T], dmem: &mut [T]) {
    let m = dr.len();
    for (((&wi, row), drow), dwi) in w
        .iter()
        .zip(mem.chunks_exact(m))
        .zip(dmem.chunks_exact_mut(m))
        .zip(dw.iter_mut())
    {
        let mut acc = T::of(0.0);
        for ((&x, &d), dm) in row.iter().zip(dr).zip(drow.iter_mut()) {
            acc += d * x;
            *dm += wi * d;
        }
        *dwi += acc;
    }
}

/// Write (eqs. 3-4) of `W` heads on a memory of width `m`: `w` `[W, N]`, `erase` (after the sigmoid)
/// and `add` `[W, M]`; `mem_prev` `[N, M]` in, `mem` `[N, M]` written.
pub fn write<T: Real>(m: usize, w: &[T], erase: &[T], add: &[T], mem_prev: &[T], mem: &mut [T]) {
    let n = mem_prev.len() / m;
    let one = T::of(1.0);
    // Head by head along each row (the loops over `j` vectorise): every
    // erase first, then every add.
    for (i, (row, out)) in mem_prev
        .chunks_exact(m)
        .zip(mem.chunks_exact_mut(m))
        .enumerate()
    {
        out.copy_from_slice(row);
        for (h, e) in erase.chunks_exact(m).enumerate() {
            let wi = w[h * n + i];
            for (o, &e) in out.iter_mut().zip(e) {
                *o = *o * (one - wi * e);
            }
        }
        for (h, a) in add.chunks_exact(m).enumerate() {
            let wi = w[h * n + i];
            for (o, &a) in out.iter_mut().zip(a) {
                *o += wi * a;
            }
        }
    }
}

/// Backward of [`write()`]: from `dmem` `[N, M]` (gradient w.r.t. the new
/// memory), accumulates `dmem_prev` `[N, M]`, `dw` `[W, N]`, `derase`
/// (w.r.t. the erase vectors after the sigmoid) and `dadd` `[W, M]`.
#[allow(clippy::too_many_arguments)]
pub fn write_backward<T: Real>(
    m: usize,
    w: &[T],
    erase: &[T],
    add: &[T],
    mem_prev: &[T],
    dmem: &[T],
    dmem_prev: &mut [T],
    dw: &mut [T],
    derase: &mut [T],
    dadd: &mut [T],
) {
    let n = mem_prev.len() / m;
    let heads = w.len() / n;
    let one = T::of(1.0);
    for i in 0..n {
        for j in 0..m {
            let d = dmem[i * m + j];
            let x = mem_prev[i * m + j];
            let mut keep_all = one;
            for h in 0..heads {
                keep_all = keep_all * (one - w[h * n + i] * erase[h * m + j]);
            }
            dmem_prev[i * m + j] += d * keep_all;
            for h in 0..heads {
                let wi = w[h * n + i];
                let e = erase[h * m + j];
                // The product of the other heads' keep factors, without a
                // division (a keep factor can be exactly 0).
                let mut others = one;
                for k in (0..heads).filter(|&k| k != h) {
                    others = others * (one - w[k * n + i] * erase[k * m + j]);
                }
                dw[h * n + i] += d * (add[h * m + j] - x * e * others);
                derase[h * m + j] += -d * x * wi * others;
                dadd[h * m + j] += d * wi;
            }
        }
    }
}
