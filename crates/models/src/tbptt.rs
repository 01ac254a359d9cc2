//! Truncated backpropagation through time with carried state: one of the
//! seed's remedies for exploding and vanishing gradients, and the way to
//! train on sequences too long to unroll.
//!
//! A long sequence `[T, B, I]` is cut into chunks of `k` steps. Each chunk
//! starts from the final states of the previous one, taken as constants:
//! forward values are those of the full sequence, while gradients stop at
//! the chunk boundary. The sequences are time-major: chunk the `[T, B, I]`
//! input of a network whose configuration is not `batch_first`.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::net::{Output, SeqInput};

/// The chunking and the carried states (see the module docs).
#[derive(Clone, Debug)]
pub struct TruncatedBptt {
    chunk: usize,
    h: Vec<f32>,
    c: Vec<f32>,
}

impl TruncatedBptt {
    /// Chunks of `chunk` steps. Errors: `chunk == 0`.
    pub fn new(chunk: usize) -> Result<Self> {
        if chunk == 0 {
            return Err(Error::ZeroSize { what: "chunk" });
        }
        Ok(Self {
            chunk,
            h: Vec::new(),
            c: Vec::new(),
        })
    }

    /// The time ranges of the chunks of a sequence of `seq_len` steps (the
    /// last one may be shorter).
    pub fn chunks(&self, seq_len: usize) -> impl Iterator<Item = Range<usize>> + use<> {
        let k = self.chunk;
        (0..seq_len.div_ceil(k)).map(move |i| i * k..((i + 1) * k).min(seq_len))
    }

    /// The input of the chunk `steps` of `x` (`[T, B, I]`, time-major, `T =
    /// seq_len`), with the carried states as `h0` (and `c0`) once there are
    /// some. Errors: `x` not `[seq_len, batch, _]`, `steps` empty or past `T`.
    pub fn input<'a>(
        &'a self,
        x: &'a [f32],
        seq_len: usize,
        batch: usize,
        steps: Range<usize>,
    ) -> Result<SeqInput<'a>> {
        if seq_len == 0 || batch == 0 || x.len() % (seq_len * batch) != 0 {
            return Err(Error::shape("x", &[seq_len, batch], &[x.len()]));
        }
        if steps.is_empty() || steps.end > seq_len {
            return Err(Error::Config(format!(
                "chunk {steps:?} is outside 0..{seq_len}"
            )));
        }
        let step_len = x.len() / seq_len;
        let chunk = &x[steps.start * step_len..steps.end * step_len];
        let mut input = SeqInput::new(chunk, steps.len(), batch);
        if !self.h.is_empty() {
            input = input.h0(&self.h);
        }
        if !self.c.is_empty() {
            input = input.c0(&self.c);
        }
        Ok(input)
    }

    /// Keeps the chunk's final states for the next chunk (values only: the
    /// gradient is cut there).
    pub fn carry(&mut self, out: &Output) {
        self.h.clone_from(&out.h_n);
        self.c.clone_from(&out.c_n);
    }

    /// Forgets the carried states (a new sequence starts from zeros).
    pub fn reset(&mut self) {
        self.h.clear();
        self.c.clear();
    }
}
