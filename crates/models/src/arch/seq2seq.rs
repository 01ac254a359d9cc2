//! Encoder-decoder: a sequence of symbols from another, through the
//! encoder's final state (the seed's translation architecture).

use super::{Body, argmax_rows, one_hot, update};
use crate::alloc;
use crate::config::NetConfig;
use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::loss::softmax_cross_entropy;
use crate::net::{Gradients, OutputGrads, Recurrent, SeqInput, Tape};
use crate::optim::Optimizer;

/// Encoder-decoder of symbol sequences.
///
/// The encoder reads the one-hot source `[S, B, V_src]`; its final states
/// `h_n` (and `c_n`) start the decoder, which reads `[start, y_0, ...,
/// y_{T-2}]` (one-hot over `V_tgt + 1`, the last symbol being `start`;
/// teacher forcing in training, its own greedy outputs in [`Seq2Seq::translate`])
/// and predicts `y_t` through a linear head, trained with softmax
/// cross-entropy. Gradients flow from the decoder into the encoder through
/// the initial states.
#[derive(Clone, Debug)]
pub struct Seq2Seq {
    encoder: Recurrent,
    /// The decoder and its read-out head, with their training buffers and
    /// the count of training steps.
    decoder: Body,
    src_vocab: usize,
    tgt_vocab: usize,
    enc_tape: Tape,
    enc_grads: Gradients,
    buf: Vec<f32>,
    dec_x: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dy: Vec<f32>,
    zeros: Vec<f32>,
}

impl Seq2Seq {
    /// `config` describes the encoder (its `input_size` is ignored and set to
    /// `src_vocab`); the decoder has the same cell, sizes and layers. Errors:
    /// a bidirectional, `batch_first` or `merge = sum` config, zero sizes.
    pub fn new(config: NetConfig, src_vocab: usize, tgt_vocab: usize) -> Result<Self> {
        super::check_layout(&config)?;
        if config.bidirectional {
            return Err(Error::Config(
                "Seq2Seq uses unidirectional encoder and decoder".into(),
            ));
        }
        if tgt_vocab == 0 {
            return Err(Error::ZeroSize { what: "tgt_vocab" });
        }
        let enc_cfg = NetConfig {
            input_size: src_vocab,
            ..config.clone()
        };
        let dec_cfg = NetConfig {
            input_size: tgt_vocab + 1,
            seed: config.seed.wrapping_add(1),
            ..config.clone()
        };
        let encoder = Recurrent::new(enc_cfg)?;
        let decoder = Recurrent::new(dec_cfg)?;
        let head = Linear::new(
            config.state_size(),
            tgt_vocab,
            true,
            config.seed.wrapping_add(2),
        )?;
        Ok(Self {
            enc_grads: Gradients::for_net(&encoder),
            encoder,
            decoder: Body::new(decoder, head),
            src_vocab,
            tgt_vocab,
            enc_tape: Tape::new(),
            buf: Vec::new(),
            dec_x: Vec::new(),
            logits: Vec::new(),
            dlogits: Vec::new(),
            dy: Vec::new(),
            zeros: Vec::new(),
        })
    }

    fn check_tokens(name: &str, tokens: &[usize], vocab: usize) -> Result<()> {
        match tokens.iter().position(|&t| t >= vocab) {
            Some(i) => Err(Error::Config(format!(
                "{name}[{i}] = {} >= vocabulary {vocab}",
                tokens[i]
            ))),
            None => Ok(()),
        }
    }

    /// Encodes `src` `[S, B]`; returns `(h_n, c_n)`.
    fn encode(
        &mut self,
        src: &[usize],
        src_len: usize,
        batch: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if src_len == 0 || batch == 0 || src.len() != src_len * batch {
            return Err(Error::shape("src", &[src_len, batch], &[src.len()]));
        }
        Self::check_tokens("src", src, self.src_vocab)?;
        one_hot(src, self.src_vocab, &mut self.buf);
        let out = self
            .encoder
            .forward_train(SeqInput::new(&self.buf, src_len, batch), &mut self.enc_tape)?;
        Ok((out.h_n, out.c_n))
    }

    /// One teacher-forced training step on `src` `[S, B]` and `tgt` `[T, B]`;
    /// returns the mean cross-entropy per target symbol before the update.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step(
        &mut self,
        src: &[usize],
        src_len: usize,
        tgt: &[usize],
        tgt_len: usize,
        batch: usize,
        opt: &mut dyn Optimizer,
        clip: Option<f32>,
    ) -> Result<f64> {
        if tgt_len == 0 || tgt.len() != tgt_len * batch {
            return Err(Error::shape("tgt", &[tgt_len, batch], &[tgt.len()]));
        }
        Self::check_tokens("tgt", tgt, self.tgt_vocab)?;
        let (h_n, c_n) = self.encode(src, src_len, batch)?;
        let start = self.tgt_vocab;
        let dec_in: Vec<usize> = (0..tgt_len * batch)
            .map(|k| if k < batch { start } else { tgt[k - batch] })
            .collect();
        one_hot(&dec_in, self.tgt_vocab + 1, &mut self.dec_x);
        let dec = &mut self.decoder;
        let lstm = dec.net.config().cell.has_cell_state();
        let mut input = SeqInput::new(&self.dec_x, tgt_len, batch).h0(&h_n);
        if lstm {
            input = input.c0(&c_n);
        }
        let out = dec.net.forward_train(input, &mut dec.tape)?;
        dec.head.forward(&out.y, &mut self.logits)?;
        self.dlogits.resize(self.logits.len(), 0.0);
        let loss = softmax_cross_entropy(&self.logits, self.tgt_vocab, tgt, &mut self.dlogits)?;
        dec.backward_per_step(&out.y, &self.dlogits, &mut self.dy)?;
        let h = self.encoder.config().state_size();
        self.zeros.clear();
        self.zeros.resize(src_len * batch * h, 0.0);
        let mut enc_up = OutputGrads::new(&self.zeros).h_n(&dec.net_grads.h0);
        if lstm {
            enc_up = enc_up.c_n(&dec.net_grads.c0);
        }
        self.encoder
            .backward(&mut self.enc_tape, enc_up, &mut self.enc_grads)?;
        dec.steps += 1;
        let step = dec.steps;
        let [decoder, head] = dec.parts();
        let encoder = (self.encoder.params_mut(), &mut self.enc_grads.params);
        update(step, vec![encoder, decoder, head], opt, clip)?;
        Ok(loss)
    }

    /// Greedy decoding of `out_len` symbols per sequence: `[T, B]`.
    pub fn translate(
        &mut self,
        src: &[usize],
        src_len: usize,
        batch: usize,
        out_len: usize,
    ) -> Result<Vec<usize>> {
        let (h_n, c_n) = self.encode(src, src_len, batch)?;
        let dec = &mut self.decoder;
        let mut state = dec.net.stream_state(batch)?;
        state.set_h(&h_n)?;
        if dec.net.config().cell.has_cell_state() {
            state.set_c(&c_n)?;
        }
        let h = dec.net.config().state_size();
        let mut y = vec![0.0; batch * h];
        let mut prev = vec![self.tgt_vocab; batch];
        let mut result = Vec::new();
        alloc::reserve(
            &mut result,
            alloc::product(&[out_len, batch], "translation")?,
            "translation",
        )?;
        let mut x = Vec::new();
        let mut logits = Vec::new();
        for _ in 0..out_len {
            one_hot(&prev, self.tgt_vocab + 1, &mut x);
            dec.net.step(&x, &mut state, &mut y)?;
            dec.head.forward(&y, &mut logits)?;
            prev = argmax_rows(&logits, self.tgt_vocab);
            result.extend_from_slice(&prev);
        }
        Ok(result)
    }
}
