//! Whole-sequence Elman kernels: `h_t = act(P_t)`, `P_t = X_t + h_{t-1}
//! W_hh^T` (`X_t` the input projection with both biases), on the team time
//! loop shared with the LSTM and GRU ([`crate::team`]; the per-step product
//! over `W_hh` packed once per call), the activation per thread on its
//! units. Rows past their sequence's end keep their state (forward) and
//! pass their gradient through (backward).

use crate::activation::{self, Activation};
use crate::sequence::{
    self, BwdPhase, FwdPhase, Loop, Part, RecurrentMask, SeqShape, Shared, Slots, Upstream,
    part_mut, part_ref,
};

/// The buffers of a whole Elman layer-direction's forward pass (row-major).
pub struct Sequence<'a> {
    /// The activation.
    pub act: Activation,
    /// `[T, B, H]`: the input projections with the biases in; the
    /// pre-activations `P_t` out.
    pub pre: &'a mut [f32],
    /// `[H, H]`, the recurrent weights.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots: forward, the state before step `t`
    /// is slot `t` and after it slot `t + 1`; reverse, before is `t + 1` and
    /// after is `t`. The initial state is in place.
    pub states: &'a mut [f32],
    /// A mask on `h_{t-1}` in the recurrent product, if any.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// The whole forward pass of one layer-direction: per step, `P_t += h_{t-1}
/// W_hh^T`, then `h_t = act(P_t)`, the hidden units split over up to
/// `threads` threads that walk the steps together ([`crate::team`]).
///
/// # Panics
/// If a buffer's length disagrees with the sizes (a broken internal
/// invariant).
pub fn forward_sequence(seq: Sequence<'_>, threads: usize) {
    let (t_len, b, hd) = seq.shape.sizes();
    let bh = b * hd;
    assert_eq!(seq.pre.len(), t_len * bh, "pre");
    assert_eq!(seq.states.len(), (t_len + 1) * bh, "states");
    let l = Loop::new(seq.shape, 1, threads);
    let (pre, states, act) = (Shared::new(seq.pre), Shared::new(seq.states), seq.act);
    let kernel = move |p: &Part| {
        let (u0, n) = (p.units.start, p.units.len());
        for r in 0..p.rows {
            // SAFETY: row `r < B`, units `u0 + n <= H` of step `t`'s `P` and
            // slot `out`'s `h`, inside the buffers (asserted above) and this
            // thread's alone during the step (the team's contract).
            let x = unsafe { part_ref(pre.get(), (p.t * b + r) * hd + u0, n) };
            let h = unsafe { part_mut(states.get(), (p.out * b + r) * hd + u0, n) };
            activation::forward(act, x, h);
        }
    };
    let phase = FwdPhase::into_gates(&l, seq.w_hh, pre, &kernel);
    let states = Slots {
        buf: states,
        width: hd,
    };
    // SAFETY: sizes asserted above; the kernel touches only its units.
    unsafe { sequence::forward(l, &[phase], states, &[], seq.mask) }
}

/// The buffers of a whole Elman layer-direction's backward pass (row-major;
/// slots as in [`Sequence`]).
pub struct SequenceGrads<'a> {
    /// The activation.
    pub act: Activation,
    /// `[H, H]`.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots from the forward pass.
    pub states: &'a [f32],
    /// The upstream gradient w.r.t. the outputs.
    pub up: Upstream<'a>,
    /// `[T, B, H]`, the gradient w.r.t. the pre-activations, written.
    pub dpre: &'a mut [f32],
    /// `[B, H]`: the gradient w.r.t. the final hidden state in, w.r.t. the
    /// initial one out.
    pub dh: &'a mut [f32],
    /// `[B, H]` scratch.
    pub dh_spare: &'a mut [f32],
    /// The forward pass's mask (with `[B, H]` scratch), if any.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// The whole backward pass of one layer-direction (without the weight
/// gradients): per step in reverse, `dh_t += dy_t`, `dP_t = dh_t act'(h_t)`,
/// then `dh_{t-1} = dP_t W_hh`, the hidden units split over up to `threads`
/// threads as in [`forward_sequence`].
///
/// # Panics
/// If a buffer's length disagrees with the sizes.
pub fn backward_sequence(g: SequenceGrads<'_>, threads: usize) {
    let (t_len, b, hd) = g.shape.sizes();
    let bh = b * hd;
    assert_eq!(g.dpre.len(), t_len * bh, "dpre");
    assert_eq!(g.states.len(), (t_len + 1) * bh, "states");
    let l = Loop::new(g.shape, 1, threads);
    let dpre = Shared::new(g.dpre);
    let (states, act) = (g.states, g.act);
    let kernel = move |p: &Part, dh: *mut f32, _: *mut f32| {
        let (u0, n) = (p.units.start, p.units.len());
        for r in 0..p.rows {
            // SAFETY: row `r < B`, units `u0 + n <= H` of `[B, H]` and `[T,
            // B, H]` buffers (sized by `sequence::backward` and above), this
            // thread's alone during the phase.
            let dh = unsafe { part_ref(dh, r * hd + u0, n) };
            let h = &states[(p.out * b + r) * hd + u0..][..n];
            let dp = unsafe { part_mut(dpre.get(), (p.t * b + r) * hd + u0, n) };
            activation::backward(act, h, dh, dp);
        }
    };
    let phases = BwdPhase::one_product(&l, g.w_hh, &kernel, dpre, false);
    // SAFETY: the buffers have the sizes asserted above and are borrowed
    // mutably for the call; the kernel writes only its units.
    unsafe { sequence::backward(l, &phases, g.up, g.dh, g.dh_spare, g.mask, None) }
}
