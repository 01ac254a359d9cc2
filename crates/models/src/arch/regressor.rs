//! Many-to-one regression: values per sequence, read from the final hidden
//! states; and [`WindowRegression`], sliding windows over a series as an
//! [`Objective`] for the [`crate::train::Trainer`].

use super::{Body, scatter_top_state, top_state};
use crate::config::NetConfig;
use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::net::{OutputGrads, Recurrent, SeqInput};
use crate::optim::Optimizer;
use crate::params::Params;
use crate::train::Objective;

/// Many-to-one regressor: `pred [B, O] = Linear(top layer's h_n)`
/// (directions concatenated), trained on the squared error. Variable
/// lengths are honoured through `h_n` (each sequence's last valid step).
#[derive(Clone, Debug)]
pub struct SequenceRegressor {
    body: Body,
    feat: Vec<f32>,
    pred: Vec<f32>,
    dpred: Vec<f32>,
    dfeat: Vec<f32>,
    grad_h_n: Vec<f32>,
    grad_y: Vec<f32>,
}

impl SequenceRegressor {
    /// A network from `config` and a head to `outputs` values (seeded from
    /// `config.seed + 1`; made first, so its errors come first). The head
    /// reads the final states `h_n`, whatever `merge` does to the outputs.
    /// Errors: invalid sizes, `batch_first`.
    pub fn new(config: NetConfig, outputs: usize) -> Result<Self> {
        check_time_major(&config)?;
        let features = config.directions() * config.state_size();
        let head = Linear::new(features, outputs, true, config.seed.wrapping_add(1))?;
        Ok(Self::from_body(Body::new(Recurrent::new(config)?, head)))
    }

    /// A regressor from a trained network and head. Errors: a head whose
    /// input is not the network's top-layer final states (`D*S` features),
    /// a `batch_first` network.
    pub fn from_parts(net: Recurrent, head: Linear) -> Result<Self> {
        check_time_major(net.config())?;
        let c = net.config();
        let features = c.directions() * c.state_size();
        if head.in_features() != features {
            return Err(Error::shape(
                "head.weight",
                &[head.out_features(), features],
                &[head.out_features(), head.in_features()],
            ));
        }
        Ok(Self::from_body(Body::new(net, head)))
    }

    fn from_body(body: Body) -> Self {
        Self {
            body,
            feat: Vec::new(),
            pred: Vec::new(),
            dpred: Vec::new(),
            dfeat: Vec::new(),
            grad_h_n: Vec::new(),
            grad_y: Vec::new(),
        }
    }

    /// The recurrent network.
    pub fn net(&self) -> &Recurrent {
        &self.body.net
    }

    /// The read-out head, `[O, D*S]` and `[O]`.
    pub fn head(&self) -> &Linear {
        &self.body.head
    }

    /// `O`, values per sequence.
    pub fn outputs(&self) -> usize {
        self.body.head.out_features()
    }

    /// Parameters of the network and the head together.
    pub fn num_params(&self) -> usize {
        self.body.net.params().num_elements() + self.body.head.params().num_elements()
    }

    /// Predictions `[B, O]` for `input` (`x` `[T, B, I]`, optional lengths
    /// and initial states), by inference (no dropout).
    pub fn predict(&self, input: SeqInput<'_>) -> Result<Vec<f32>> {
        let out = self.body.net.forward(input)?;
        let mut feat = Vec::new();
        top_state(&self.body.net, &out.h_n, input.batch, &mut feat);
        let mut pred = Vec::new();
        self.body.head.forward(&feat, &mut pred)?;
        Ok(pred)
    }

    /// A training pass on a batch with `targets` `[B, O]`: returns the sum
    /// over the batch of each sequence's mean squared error over its `O`
    /// values, and keeps that sum's gradients ([`SequenceRegressor::grads`]).
    /// Errors: shapes.
    pub fn loss_and_grads(&mut self, input: SeqInput<'_>, targets: &[f32]) -> Result<f64> {
        let (b, o) = (input.batch, self.outputs());
        crate::error::check_len("targets", targets, &[b, o])?;
        let body = &mut self.body;
        let out = body.net.forward_train(input, &mut body.tape)?;
        top_state(&body.net, &out.h_n, b, &mut self.feat);
        body.head.forward(&self.feat, &mut self.pred)?;
        self.dpred.resize(self.pred.len(), 0.0);
        let mut sum = 0.0f64;
        for ((d, &p), &t) in self.dpred.iter_mut().zip(&self.pred).zip(targets) {
            let e = p - t;
            sum += f64::from(e) * f64::from(e);
            *d = 2.0 * e / o as f32;
        }
        body.head.backward(
            &self.feat,
            &self.dpred,
            &mut self.dfeat,
            &mut body.head_grads,
        )?;
        scatter_top_state(&body.net, &self.dfeat, b, &mut self.grad_h_n);
        self.grad_y.clear();
        self.grad_y
            .resize(input.seq_len * b * body.net.config().output_size(), 0.0);
        body.net.backward(
            &mut body.tape,
            OutputGrads::new(&self.grad_y).h_n(&self.grad_h_n),
            &mut body.net_grads,
        )?;
        Ok(sum / o as f64)
    }

    /// The gradients of the last [`SequenceRegressor::loss_and_grads`]:
    /// the network's and the head's.
    pub fn grads(&self) -> (&Params, &Params) {
        (&self.body.net_grads.params, &self.body.head_grads)
    }

    /// One training step: [`SequenceRegressor::loss_and_grads`] scaled to
    /// the batch's mean, a NaN/Inf guard, optional clipping, one update of
    /// the network and the head. Returns the mean loss before the update.
    pub fn train_step(
        &mut self,
        input: SeqInput<'_>,
        targets: &[f32],
        opt: &mut dyn Optimizer,
        clip: Option<f32>,
    ) -> Result<f64> {
        let sum = self.loss_and_grads(input, targets)?;
        let scale = 1.0 / input.batch as f32;
        for (_, g) in self.body.parts() {
            g.as_mut_slice().iter_mut().for_each(|v| *v *= scale);
        }
        self.body.update(opt, clip)?;
        Ok(sum / input.batch as f64)
    }

    /// The network's and the head's parameter buffers (the optimizer's
    /// order).
    pub fn params_mut(&mut self) -> [&mut [f32]; 2] {
        [self.body.net.params_mut(), self.body.head.params_mut()]
    }

    /// The name of element `index` of the network's parameters followed by
    /// the head's (`weight_hh_l0[17]`, `head.bias[0]`).
    pub fn param_name(&self, index: usize) -> String {
        let mut at = 0;
        for (prefix, params) in [
            ("", self.body.net.params()),
            ("head.", self.body.head.params()),
        ] {
            for (name, _, values) in params.iter() {
                if index < at + values.len() {
                    return format!("{prefix}{name}[{}]", index - at);
                }
                at += values.len();
            }
        }
        format!("parameter {index}")
    }
}

/// The regressor's windows are time-major: a `batch_first` network is an
/// error naming it.
fn check_time_major(config: &NetConfig) -> Result<()> {
    if config.batch_first {
        return Err(Error::Config(
            "batch_first: the regressor reads time-major windows [T, B, F]".into(),
        ));
    }
    Ok(())
}

/// Builds the time-major batch `[W, B, F]` of the windows starting at rows
/// `starts` of `rows` `[N, F]` (`out` resized). The caller keeps every
/// `start + W <= N`.
pub fn gather_windows(
    rows: &[f32],
    features: usize,
    window: usize,
    starts: &[usize],
    out: &mut Vec<f32>,
) {
    let (b, f) = (starts.len(), features);
    out.resize(window * b * f, 0.0);
    for t in 0..window {
        for (j, &s) in starts.iter().enumerate() {
            let row = s + t;
            out[(t * b + j) * f..(t * b + j + 1) * f]
                .copy_from_slice(&rows[row * f..(row + 1) * f]);
        }
    }
}

/// As [`gather_windows`], each window made relative to its last row:
/// feature `c` of row `t` becomes `(v[t][c] - v[W-1][c]) / scale[c]` (with
/// log prices as rows: log returns to the window's last day, so a window
/// looks the same whatever the price level). `scale` `[F]`.
pub fn gather_relative_windows(
    rows: &[f32],
    features: usize,
    window: usize,
    starts: &[usize],
    scale: &[f32],
    out: &mut Vec<f32>,
) {
    gather_windows(rows, features, window, starts, out);
    let (b, f) = (starts.len(), features);
    for (j, &s) in starts.iter().enumerate() {
        let last = &rows[(s + window - 1) * f..(s + window) * f];
        for t in 0..window {
            let v = &mut out[(t * b + j) * f..(t * b + j + 1) * f];
            for ((v, &l), &k) in v.iter_mut().zip(last).zip(scale) {
                *v = (*v - l) / k;
            }
        }
    }
}

/// Forecasting from sliding windows as an [`Objective`]: example `k` is
/// the window of `W` rows starting at row `k` of `rows` `[N, F]` (made
/// relative to its last row with [`WindowRegression::relative_to_last`]),
/// and its target row `k` of `targets` `[n, O]`.
pub struct WindowRegression<'a> {
    /// The model being fitted.
    pub model: &'a mut SequenceRegressor,
    rows: &'a [f32],
    features: usize,
    window: usize,
    targets: &'a [f32],
    relative: Option<&'a [f32]>,
    xb: Vec<f32>,
    tb: Vec<f32>,
}

impl<'a> WindowRegression<'a> {
    /// `rows` `[N, F]` (`F` the network's input size), windows of `window`
    /// rows, `targets` `[n, O]` with `n + window <= N`. Errors: sizes that
    /// disagree.
    pub fn new(
        model: &'a mut SequenceRegressor,
        rows: &'a [f32],
        window: usize,
        targets: &'a [f32],
    ) -> Result<Self> {
        let features = model.net().config().input_size;
        let o = model.outputs();
        if window == 0 {
            return Err(Error::ZeroSize { what: "window" });
        }
        if rows.len() % features != 0 {
            return Err(Error::shape(
                "rows",
                &[rows.len() / features, features],
                &[rows.len()],
            ));
        }
        let n_rows = rows.len() / features;
        if targets.len() % o != 0 || targets.len() / o + window > n_rows {
            return Err(Error::Config(format!(
                "{} targets of {o} values need {} rows for windows of {window}; there are {n_rows}",
                targets.len() / o,
                targets.len() / o + window
            )));
        }
        Ok(Self {
            model,
            rows,
            features,
            window,
            targets,
            relative: None,
            xb: Vec::new(),
            tb: Vec::new(),
        })
    }

    /// Each window relative to its last row, divided by `scale` `[F]`
    /// ([`gather_relative_windows`]). Errors: `scale`'s length.
    pub fn relative_to_last(mut self, scale: &'a [f32]) -> Result<Self> {
        crate::error::check_len("scale", scale, &[self.features])?;
        self.relative = Some(scale);
        Ok(self)
    }

    /// The windows starting at `starts` into `self.xb`, `[W, B, F]`.
    fn gather(&mut self, starts: &[usize]) {
        let (rows, f, w) = (self.rows, self.features, self.window);
        match self.relative {
            Some(scale) => gather_relative_windows(rows, f, w, starts, scale, &mut self.xb),
            None => gather_windows(rows, f, w, starts, &mut self.xb),
        }
    }

    /// Examples `0..n`.
    pub fn len(&self) -> usize {
        self.targets.len() / self.model.outputs()
    }

    /// Whether there is no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Predictions `[len, O]` for `examples`, by inference, `chunk` windows
    /// per call.
    pub fn predict(&mut self, examples: &[usize], chunk: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(examples.len() * self.model.outputs());
        for part in examples.chunks(chunk.max(1)) {
            self.check(part)?;
            self.gather(part);
            let p = self
                .model
                .predict(SeqInput::new(&self.xb, self.window, part.len()))?;
            out.extend_from_slice(&p);
        }
        Ok(out)
    }

    fn check(&self, examples: &[usize]) -> Result<()> {
        match examples.iter().find(|&&k| k >= self.len()) {
            Some(k) => Err(Error::Config(format!(
                "example {k}: there are {} windows",
                self.len()
            ))),
            None => Ok(()),
        }
    }

    fn gather_targets(&mut self, examples: &[usize]) {
        let o = self.model.outputs();
        self.tb.clear();
        for &k in examples {
            self.tb.extend_from_slice(&self.targets[k * o..(k + 1) * o]);
        }
    }
}

impl Objective for WindowRegression<'_> {
    fn params_mut(&mut self) -> Vec<&mut [f32]> {
        self.model.params_mut().into()
    }

    fn loss_and_grads(&mut self, examples: &[usize], grads: &mut [f32]) -> Result<f64> {
        self.check(examples)?;
        gather_windows(
            self.rows,
            self.features,
            self.window,
            examples,
            &mut self.xb,
        );
        self.gather_targets(examples);
        let input = SeqInput::new(&self.xb, self.window, examples.len());
        let sum = self.model.loss_and_grads(input, &self.tb)?;
        let (net, head) = self.model.grads();
        let (a, b) = (net.as_slice(), head.as_slice());
        crate::error::check_len("grads", grads, &[a.len() + b.len()])?;
        grads[..a.len()].copy_from_slice(a);
        grads[a.len()..].copy_from_slice(b);
        Ok(sum)
    }

    fn loss(&mut self, examples: &[usize]) -> Result<f64> {
        let pred = self.predict(examples, 512)?;
        self.gather_targets(examples);
        let o = self.model.outputs();
        let sum: f64 = pred
            .iter()
            .zip(&self.tb)
            .map(|(&p, &t)| {
                let e = f64::from(p - t);
                e * e
            })
            .sum();
        Ok(sum / o as f64)
    }

    fn param_name(&self, index: usize) -> String {
        self.model.param_name(index)
    }
}
