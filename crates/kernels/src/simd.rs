//! SIMD dispatch and the lane-block driver shared by every element-wise kernel.
//!
//! Kernels are written once, generic over [`pulp::Simd`], and run at the best
//! level the CPU offers (AVX-512, AVX2+FMA, or pulp's scalar fallback),
//! detected once at run time. [`with_simd_level`] forces a level on the
//! current thread so that tests and benches can cover every path.

use std::cell::Cell;
use std::sync::OnceLock;

use pulp::{Simd, WithSimd};

/// An instruction-set level the kernels can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimdLevel {
    /// pulp's portable scalar fallback (one lane).
    Scalar,
    /// x86-64-v3: AVX2 and FMA, 8 f32 lanes.
    Avx2,
    /// x86-64-v4: AVX-512, 16 f32 lanes.
    Avx512,
}

impl SimdLevel {
    /// A short lower-case name: `scalar`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    fn supported(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => pulp::x86::V3::try_new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => pulp::x86::V4::try_new().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

thread_local! {
    static FORCED: Cell<Option<SimdLevel>> = const { Cell::new(None) };
    static TWINS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the fused gate kernels (`lstm`, `gru`) called from this
/// thread computing their scalar twins instead of their SIMD bodies: the
/// same equations written one element at a time with `std` math, over the
/// same operands. The reference of the twin tests.
pub fn with_scalar_twins<R>(f: impl FnOnce() -> R) -> R {
    let previous = TWINS.with(|c| c.replace(true));
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            TWINS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Whether the gate kernels called from this thread run their scalar twins.
pub(crate) fn scalar_twins() -> bool {
    TWINS.with(|c| c.get())
}

/// The best level this CPU supports (detected once).
pub fn detected_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        [SimdLevel::Avx512, SimdLevel::Avx2]
            .into_iter()
            .find(|l| l.supported())
            .unwrap_or(SimdLevel::Scalar)
    })
}

/// Every level this CPU supports, best last.
pub fn available_levels() -> Vec<SimdLevel> {
    [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|l| l.supported())
        .collect()
}

/// The level kernels called from this thread use now.
pub fn current_level() -> SimdLevel {
    FORCED.with(|f| f.get()).unwrap_or_else(detected_level)
}

/// Runs `f` with the kernels called from this thread forced to `level`.
///
/// Returns `None` (and does not run `f`) if the CPU lacks `level`.
pub fn with_simd_level<R>(level: SimdLevel, f: impl FnOnce() -> R) -> Option<R> {
    if !level.supported() {
        return None;
    }
    let previous = FORCED.with(|c| c.replace(Some(level)));
    struct Restore(Option<SimdLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(previous);
    Some(f())
}

/// Runs `op` at the current level.
#[inline]
pub(crate) fn dispatch<Op: WithSimd>(op: Op) -> Op::Output {
    match current_level() {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => match pulp::x86::V4::try_new() {
            Some(simd) => Simd::vectorize(simd, op),
            None => Simd::vectorize(pulp::Scalar::new(), op),
        },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => match pulp::x86::V3::try_new() {
            Some(simd) => Simd::vectorize(simd, op),
            None => Simd::vectorize(pulp::Scalar::new(), op),
        },
        _ => Simd::vectorize(pulp::Scalar::new(), op),
    }
}

/// Loads `S::F32_LANES` values from the start of `s` (which holds at least that many).
#[inline(always)]
fn load<S: Simd>(s: &[f32]) -> S::f32s {
    bytemuck::pod_read_unaligned(bytemuck::cast_slice(&s[..S::F32_LANES]))
}

/// Stores one full vector at the start of `s`.
#[inline(always)]
fn store<S: Simd>(s: &mut [f32], v: S::f32s) {
    bytemuck::cast_slice_mut::<f32, u8>(&mut s[..S::F32_LANES])
        .copy_from_slice(bytemuck::bytes_of(&v));
}

/// The body of an element-wise kernel on one block of lanes: `NI` read-only
/// inputs and `NO` read-write values in, the new read-write values out.
///
/// Implementations mark `apply` `#[inline(always)]`: it must be inlined into
/// the target-feature function pulp's dispatch creates, or every SIMD
/// intrinsic inside becomes a function call (closures are not reliably
/// inlined there; measured: a closure-based LSTM kernel ran its intrinsics as
/// calls).
pub(crate) trait Lanes<const NI: usize, const NO: usize> {
    /// The new values of the read-write slices at this block.
    fn apply<S: Simd>(&self, simd: S, x: [S::f32s; NI], y: [S::f32s; NO]) -> [S::f32s; NO];
}

/// The lane-block driver: for every block of lanes `j..j+L` of `NI` read-only
/// slices and `NO` read-write slices (all of the same length), loads the
/// blocks, calls `op.apply(inputs, outputs)` and stores what it returns into
/// the read-write slices. The tail (fewer than `L` elements) uses masked loads and
/// stores, so no element past the end is touched.
///
/// # Panics
/// If the slices differ in length (a broken internal invariant).
#[inline(always)]
pub(crate) fn zip_map<S: Simd, const NI: usize, const NO: usize>(
    simd: S,
    ins: [&[f32]; NI],
    mut outs: [&mut [f32]; NO],
    op: &impl Lanes<NI, NO>,
) {
    let len = if NO > 0 { outs[0].len() } else { ins[0].len() };
    assert!(
        ins.iter().all(|s| s.len() == len),
        "zip_map: input lengths differ"
    );
    assert!(
        outs.iter().all(|s| s.len() == len),
        "zip_map: output lengths differ"
    );
    let lanes = S::F32_LANES;
    let mut j = 0;
    while j + lanes <= len {
        let x: [S::f32s; NI] = core::array::from_fn(|k| load::<S>(&ins[k][j..]));
        let y: [S::f32s; NO] = core::array::from_fn(|k| load::<S>(&outs[k][j..]));
        let r = op.apply(simd, x, y);
        for (o, v) in outs.iter_mut().zip(r) {
            store::<S>(&mut o[j..], v);
        }
        j += lanes;
    }
    if j < len {
        let x: [S::f32s; NI] = core::array::from_fn(|k| simd.partial_load_f32s(&ins[k][j..]));
        let y: [S::f32s; NO] = core::array::from_fn(|k| simd.partial_load_f32s(&outs[k][j..]));
        let r = op.apply(simd, x, y);
        for (o, v) in outs.iter_mut().zip(r) {
            simd.partial_store_f32s(&mut o[j..], v);
        }
    }
}

/// Transposes the 8 x 8 block at `src` (rows `lds` apart) into `dst` (rows
/// `ldd` apart): `dst[c * ldd + r] = src[r * lds + c]`.
///
/// # Safety
/// The CPU must have AVX; both blocks must be valid, and not overlap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) unsafe fn transpose8_avx(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    use std::arch::x86_64::{
        _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
        _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };
    // SAFETY: the caller's contract.
    let r: [_; 8] = std::array::from_fn(|k| unsafe { _mm256_loadu_ps(src.add(k * lds)) });
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let s = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    for k in 0..4 {
        // SAFETY: the caller's contract.
        unsafe {
            _mm256_storeu_ps(
                dst.add(k * ldd),
                _mm256_permute2f128_ps::<0x20>(s[k], s[k + 4]),
            );
            _mm256_storeu_ps(
                dst.add((k + 4) * ldd),
                _mm256_permute2f128_ps::<0x31>(s[k], s[k + 4]),
            );
        }
    }
}
