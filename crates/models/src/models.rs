//! The typed front doors: [`Rnn`], [`Lstm`], [`Gru`], each built from its
//! config builder and running on the shared [`Recurrent`] engine.

use crate::config::{GruConfig, LstmConfig, RnnConfig};
use crate::error::Result;
use crate::net::{Gradients, Output, OutputGrads, Recurrent, SeqInput, Tape};
use crate::params::Params;

macro_rules! typed_net {
    ($(#[$doc:meta])* $name:ident, $config:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name(Recurrent);

        impl $name {
            /// A network with PyTorch's default initialisation from the
            /// config's seed. Errors: a zero size.
            pub fn new(config: $config) -> Result<Self> {
                Recurrent::new(config.into_net_config()).map(Self)
            }

            /// Inference forward: `x` `[T, B, I]` (and optional `h0`/`c0`
            /// `[L*D, B, H]`) to `y` `[T, B, D*H]`, `h_n` (`c_n`) `[L*D, B, H]`.
            /// See [`Recurrent::forward`].
            pub fn forward(&self, input: SeqInput<'_>) -> Result<Output> {
                self.0.forward(input)
            }

            /// Training forward, recording into `tape`. See
            /// [`Recurrent::forward_train`].
            pub fn forward_train(&self, input: SeqInput<'_>, tape: &mut Tape) -> Result<Output> {
                self.0.forward_train(input, tape)
            }

            /// Backpropagation through time. See [`Recurrent::backward`].
            pub fn backward(&self, tape: &mut Tape, grads: OutputGrads<'_>, out: &mut Gradients) -> Result<()> {
                self.0.backward(tape, grads, out)
            }

            /// The parameters (PyTorch names).
            pub fn params(&self) -> &Params {
                self.0.params()
            }

            /// The shared engine.
            pub fn as_recurrent(&self) -> &Recurrent {
                &self.0
            }

            /// The shared engine, mutable.
            pub fn as_recurrent_mut(&mut self) -> &mut Recurrent {
                &mut self.0
            }

            /// Unwraps the shared engine.
            pub fn into_recurrent(self) -> Recurrent {
                self.0
            }
        }
    };
}

typed_net!(
    /// Elman network, `h' = act(W_ih x + b_ih + W_hh h + b_hh)`, act tanh or relu
    /// (PyTorch's `nn.RNN`).
    Rnn,
    RnnConfig
);
typed_net!(
    /// LSTM network, gates `i, f, g, o` (PyTorch's `nn.LSTM`).
    Lstm,
    LstmConfig
);
typed_net!(
    /// GRU network, gates `r, z, n`, either formulation (PyTorch's `nn.GRU` by
    /// default).
    Gru,
    GruConfig
);
