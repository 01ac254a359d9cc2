//! Streaming: one time step at a time, the state carried by the caller.
//!
//! [`Recurrent::step`] shares the weights and the code of the batched path
//! (each layer runs the same driver with `T = 1`), and after the first call
//! on a [`StreamState`] allocates nothing. This is how audio and online
//! users run recurrent networks.

use crate::alloc;
use crate::error::{Error, Result, check_len};
use crate::layer::{self, LayerTape};
use crate::net::Recurrent;

/// The state of a stream of `B` sequences: hidden (and cell) states
/// (`h` `[L, B, S]`, `S` = `H` or an LSTM's projection size, `c` `[L, B,
/// H]`) plus per-layer work buffers.
#[derive(Clone, Debug)]
pub struct StreamState {
    batch: usize,
    h: Vec<f32>,
    c: Vec<f32>,
    tapes: Vec<LayerTape>,
}

impl StreamState {
    /// Hidden states `[L, B, S]`.
    pub fn h(&self) -> &[f32] {
        &self.h
    }

    /// Cell states `[L, B, H]` (LSTM), else empty.
    pub fn c(&self) -> &[f32] {
        &self.c
    }

    /// Sets the hidden states, `[L, B, S]`. Errors: wrong length.
    pub fn set_h(&mut self, h: &[f32]) -> Result<()> {
        check_len("h", h, &[self.h.len()])?;
        self.h.copy_from_slice(h);
        Ok(())
    }

    /// Sets the cell states (LSTM), `[L, B, H]`. Errors: wrong length, or no cell state.
    pub fn set_c(&mut self, c: &[f32]) -> Result<()> {
        if self.c.is_empty() {
            return Err(Error::Unexpected("this network has no cell state".into()));
        }
        check_len("c", c, &[self.c.len()])?;
        self.c.copy_from_slice(c);
        Ok(())
    }

    /// Resets every state to zero.
    pub fn reset(&mut self) {
        self.h.fill(0.0);
        self.c.fill(0.0);
    }

    /// Number of sequences `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

impl Recurrent {
    /// A zero state for streaming `batch` sequences.
    ///
    /// Every buffer a step needs (states and per-layer work buffers) is
    /// allocated here, with checked sizes, so a batch that cannot be held
    /// is an error now rather than later.
    ///
    /// Errors: `batch == 0`; a bidirectional network (its reverse direction
    /// needs the whole sequence); a batch whose buffers overflow or cannot
    /// be allocated ([`Error::OutOfMemory`]).
    pub fn stream_state(&self, batch: usize) -> Result<StreamState> {
        let c = self.config();
        if batch == 0 {
            return Err(Error::ZeroSize { what: "batch" });
        }
        if c.bidirectional {
            return Err(Error::Unexpected(
                "a bidirectional network cannot stream: its reverse direction needs the whole sequence".into(),
            ));
        }
        let n = alloc::product(&[c.num_layers, batch, c.hidden_size], "stream states")?;
        // `h` is `S <= H` wide.
        let n_h = c.num_layers * batch * c.state_size();
        let mut tapes = Vec::new();
        alloc::reserve(&mut tapes, c.num_layers, "stream work buffers")?;
        for l in 0..c.num_layers {
            let mut tape = LayerTape::default();
            tape.prepare(self.cell_impl(), &self.layer_run(l, 0, 1, batch, None))?;
            tapes.push(tape);
        }
        Ok(StreamState {
            batch,
            h: alloc::zeros(n_h, "stream states h")?,
            c: if c.cell.has_cell_state() {
                alloc::zeros(n, "stream states c")?
            } else {
                Vec::new()
            },
            tapes,
        })
    }

    /// One time step: `x_t` `[B, I]` in, `y_t` `[B, S]` (the last layer's new
    /// hidden state; `S` is `H`, or an LSTM's projection size) out; `state`
    /// advanced. Equal to the batched forward run one step at a time.
    ///
    /// Errors: wrong lengths, a state made for another network or batch size.
    pub fn step(&self, x_t: &[f32], state: &mut StreamState, y_t: &mut [f32]) -> Result<()> {
        let c = self.config();
        let b = state.batch;
        let n = c.num_layers * b * c.state_size();
        if state.h.len() != n || state.tapes.len() != c.num_layers || c.bidirectional {
            return Err(Error::Unexpected(
                "stream state made for another network".into(),
            ));
        }
        check_len("x_t", x_t, &[b, c.input_size])?;
        check_len("y_t", y_t, &[b, c.state_size()])?;
        let has_c = c.cell.has_cell_state();
        let (bh, bs) = (b * c.hidden_size, b * c.state_size());
        for (l, tape) in state.tapes.iter_mut().enumerate() {
            tape.prepare(self.cell_impl(), &self.layer_run(l, 0, 1, b, None))?;
        }
        // Every layer first (each reads its state), then the new states.
        rnn_kernels::threads::install_sized(self.work(1, b), || {
            let StreamState {
                h, c: cs, tapes, ..
            } = &mut *state;
            for l in 0..c.num_layers {
                let (below, rest) = tapes.split_at_mut(l);
                let run = self.layer_run(l, 0, 1, b, None);
                let x: &[f32] = if l == 0 {
                    x_t
                } else {
                    below[l - 1].output(&run, 0)
                };
                let c0 = has_c.then(|| &cs[l * bh..(l + 1) * bh]);
                layer::forward(
                    self.cell_impl(),
                    &self.layer_weights(l, 0),
                    &run,
                    x,
                    [Some(&h[l * bs..(l + 1) * bs]), c0],
                    &mut rest[0],
                );
            }
        });
        for (l, tape) in state.tapes.iter().enumerate() {
            let run = self.layer_run(l, 0, 1, b, None);
            state.h[l * bs..(l + 1) * bs].copy_from_slice(tape.state(&run, run.last_slot()));
            if has_c {
                state.c[l * bh..(l + 1) * bh].copy_from_slice(tape.state_of(
                    &run,
                    1,
                    run.last_slot(),
                ));
            }
        }
        let run = self.layer_run(c.num_layers - 1, 0, 1, b, None);
        y_t.copy_from_slice(state.tapes[c.num_layers - 1].output(&run, 0));
        Ok(())
    }
}
