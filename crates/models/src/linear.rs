//! A dense (fully connected) layer, `y = x W^T + b`, with backward: the
//! read-out head of the sequence architectures.

use rnn_kernels::{Mat, MatMut, Op, gemm, reduce};

use crate::config::check_nonzero;
use crate::error::{Error, Result, check_len};
use crate::params::Params;
use crate::rng::SplitMix64;

/// `y [N, out] = x [N, in] W^T + b`, PyTorch's `nn.Linear` (parameters
/// `weight` `[out, in]` and `bias` `[out]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
    bias: bool,
    params: Params,
}

impl Linear {
    /// PyTorch's default initialisation, uniform(-1/sqrt(in), 1/sqrt(in)) for
    /// weight and bias, from `seed`. Errors: a zero size.
    pub fn new(in_features: usize, out_features: usize, bias: bool, seed: u64) -> Result<Self> {
        check_nonzero(&[("in_features", in_features), ("out_features", out_features)])?;
        let mut layout = vec![("weight".to_string(), vec![out_features, in_features])];
        if bias {
            layout.push(("bias".to_string(), vec![out_features]));
        }
        let mut params = Params::try_zeros(layout)?;
        let k = 1.0 / (in_features as f32).sqrt();
        let mut rng = SplitMix64::new(seed);
        params
            .as_mut_slice()
            .iter_mut()
            .for_each(|v| *v = rng.uniform(-k, k));
        Ok(Self {
            in_features,
            out_features,
            bias,
            params,
        })
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The parameters (`weight`, `bias`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The parameter values, mutable.
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.params.as_mut_slice()
    }

    fn rows_of(&self, x: &[f32]) -> Result<usize> {
        if x.len() % self.in_features != 0 {
            return Err(Error::shape(
                "x",
                &[x.len() / self.in_features, self.in_features],
                &[x.len()],
            ));
        }
        Ok(x.len() / self.in_features)
    }

    /// `y = x W^T + b`. `x`: `[N, in]` (any `N`, inferred); `y` is resized to
    /// `[N, out]`. Errors: `x.len()` not a multiple of `in`.
    pub fn forward(&self, x: &[f32], y: &mut Vec<f32>) -> Result<()> {
        let n = self.rows_of(x)?;
        let (i, o) = (self.in_features, self.out_features);
        y.resize(n * o, 0.0);
        let w = self.params.get("weight").expect("weight");
        match self.params.get("bias") {
            Some(b) => reduce::broadcast_rows(b, y),
            None => y.fill(0.0),
        }
        gemm(
            1.0,
            Mat::new(x, n, i),
            Op::N,
            Mat::new(w, o, i),
            Op::T,
            1.0,
            MatMut::new(y, n, o),
        );
        Ok(())
    }

    /// Backward of [`Linear::forward`] on the same `x`: `dx = dy W` (`[N, in]`,
    /// resized) and the parameter gradients into `grads` (overwritten; its
    /// layout is reset to this layer's when it differs).
    /// Errors: `x`/`dy` lengths that disagree.
    pub fn backward(
        &self,
        x: &[f32],
        dy: &[f32],
        dx: &mut Vec<f32>,
        grads: &mut Params,
    ) -> Result<()> {
        let n = self.rows_of(x)?;
        let (i, o) = (self.in_features, self.out_features);
        check_len("dy", dy, &[n, o])?;
        if grads.infos() != self.params.infos() {
            *grads = self.params.zeros_like();
        }
        let w = self.params.get("weight").expect("weight");
        dx.resize(n * i, 0.0);
        let dy_view = Mat::new(dy, n, o);
        input_grad(dy_view, Mat::new(w, o, i), 0.0, MatMut::new(dx, n, i));
        let dw = grads.get_mut("weight").expect("weight");
        weight_grad(dy_view, Mat::new(x, n, i), MatMut::new(dw, o, i));
        if self.bias {
            bias_grad(dy, grads.get_mut("bias").expect("bias"));
        }
        Ok(())
    }
}

// The three products of a dense layer's backward, `y = x W^T + b` with `x`
// `[N, in]`, `W` `[out, in]` and `dy` `[N, out]`: those of [`Linear`] and of
// the NTM's controller, head and output layers.

/// `dx = beta dx + dy W` `[N, in]`: the gradient w.r.t. the layer's input
/// (`beta` 0 writes it, 1 adds to it).
pub(crate) fn input_grad(dy: Mat<'_>, w: Mat<'_>, beta: f32, dx: MatMut<'_>) {
    gemm(1.0, dy, Op::N, w, Op::N, beta, dx);
}

/// `dW = dy^T x` `[out, in]`, written: the gradient w.r.t. the weight.
pub(crate) fn weight_grad(dy: Mat<'_>, x: Mat<'_>, dw: MatMut<'_>) {
    gemm(1.0, dy, Op::T, x, Op::N, 0.0, dw);
}

/// `db = sum_n dy[n]` `[out]`, written: the gradient w.r.t. the bias.
pub(crate) fn bias_grad(dy: &[f32], db: &mut [f32]) {
    db.fill(0.0);
    reduce::colsum_add(dy, db);
}
