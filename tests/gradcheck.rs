//! Finite-difference gradient checks of BPTT for every cell kind.
//!
//! Proves that [`Recurrent::backward`] returns the gradient of the forward
//! pass: for each cell kind (Elman tanh, Elman relu, LSTM, both GRU
//! variants) and seven configurations (1 and 2 layers, one or two
//! directions, with and without biases, `B` = 1 and 3, `T` = 1, 7 and 8,
//! `I != H`), with random non-zero `h0` (and `c0`), the scalar loss
//!
//! `L = sum(y * gy) + sum(h_n * ghn) (+ sum(c_n * gcn))`
//!
//! (fixed random `gy`, `ghn`, `gcn`; `L` summed in f64 from the f32 outputs)
//! has, along random unit directions `v`, a central difference
//! `fd = (L(p + e v) - L(p - e v)) / 2e` that matches the analytic
//! `an = grad . v` to a relative error `|fd - an| / max(|fd|, |an|, 1e-12)`
//! below [`TOL`] = 1e-2. [`DIRECTIONS`] directions are drawn over each of
//! (a) the whole flat parameter buffer, (a') each named parameter tensor
//! alone (a wrong gradient in a small tensor such as one bias would hide in
//! (a)), (b) `x`, (c) `h0` and (d) `c0`. `checker_rejects_a_wrong_gradient`
//! shows the checker fails on a 5% error in one bias.
//!
//! Step: [`EPS`] = 1e-2 along a unit direction. The model is f32, so `L`
//! carries a rounding noise that the central difference divides by `2e`,
//! while its truncation error grows as `e^2`. Worst relative error over
//! all cell kinds and configs, measured with the rules below: `e = 1e-3`:
//! 1.3e-2 (noise); `3e-3`: 3.1e-3; `1e-2`: 1.3e-3; `3e-2`: 3.0e-3;
//! `1e-1`: 3.2e-2 (truncation, bias directions). Because
//! `p +- e v` is rounded to f32, `an` is `grad . (p_plus - p_minus) / 2e`
//! with the *rounded* points, so rounding the perturbation is not an error.
//!
//! Redrawn directions (counted and printed):
//! - near-orthogonal ones, `|grad . v| < 0.2 |grad| / sqrt(n)`
//!   ([`MIN_ALIGNMENT`]; `|grad| / sqrt(n)` is the typical size of
//!   `grad . v`): there `fd` is mostly rounding noise (the failures at
//!   `e = 1e-2` before this rule all had `|grad . v|` under 0.02 of its
//!   typical size). The rule looks at the analytic gradient only, so an
//!   error in it still shows in `fd`; where the analytic gradient is zero
//!   over the whole range (a unit that is off for good), the check instead
//!   requires `fd` to be exactly zero.
//! - for relu, ones whose segment `[p - e v, p + e v]` moves a
//!   pre-activation across the kink at 0. A crossing is detected exactly:
//!   every layer's full output `[T, B, D*H]` is recomputed by running that
//!   layer alone (a 1-layer network with its parameters), and
//!   `relu(a) == 0` iff `a <= 0`, so the zero patterns at `p - e v`, `p`
//!   and `p + e v` must agree.
//!
//! Relu problems are also drawn away from the kink: parameters from
//! uniform(+-2/sqrt(H)) ([`RELU_PARAM_SCALE`] times PyTorch's range, so
//! activations keep their size through the layers), and the whole problem
//! (parameters, `x`, `h0`) is redrawn until every pre-activation has
//! `|a| >= 2e-3` ([`RELU_MARGIN`]), computed in f64 by the test from the
//! layers' outputs (which also checks those outputs against `relu(a)`).

use recurrent::{
    CellKind, Gradients, GruVariant, Merge, NetConfig, Nonlinearity, OutputGrads, Recurrent,
    SeqInput, Tape,
};

/// Central-difference step along a unit direction (see the module docs).
const EPS: f64 = 1e-2;
/// Largest accepted relative error.
const TOL: f64 = 1e-2;
/// Random directions per target (all parameters, each tensor, x, h0, c0).
const DIRECTIONS: usize = 3;
/// Directions with `|grad . v|` under this fraction of its typical size
/// `|grad| / sqrt(n)` are redrawn (see the module docs).
const MIN_ALIGNMENT: f64 = 0.2;
/// Draws (of a direction, or of a relu problem) before giving up.
const MAX_TRIES: usize = 50;
/// Relu problems are redrawn until every pre-activation is at least this
/// far from the kink at 0.
const RELU_MARGIN: f64 = 2e-3;
/// Relu parameters are PyTorch's default initialisation times this.
const RELU_PARAM_SCALE: f32 = 2.0;

/// SplitMix64: a small seeded generator for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi) as f32).collect()
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// What a direction perturbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Params,
    X,
    H0,
    C0,
}

/// Everything `L` depends on, as flat f32 buffers.
#[derive(Clone, Debug)]
struct Point {
    params: Vec<f32>,
    x: Vec<f32>,
    h0: Vec<f32>,
    /// Empty unless the cell has a cell state.
    c0: Vec<f32>,
}

impl Point {
    fn get(&self, t: Target) -> &[f32] {
        match t {
            Target::Params => &self.params,
            Target::X => &self.x,
            Target::H0 => &self.h0,
            Target::C0 => &self.c0,
        }
    }

    fn get_mut(&mut self, t: Target) -> &mut [f32] {
        match t {
            Target::Params => &mut self.params,
            Target::X => &mut self.x,
            Target::H0 => &mut self.h0,
            Target::C0 => &mut self.c0,
        }
    }
}

/// One network (its configuration and layout), point and loss weights.
struct Problem {
    /// Supplies the configuration and parameter layout; the parameter
    /// values are always taken from a [`Point`].
    net: Recurrent,
    seq_len: usize,
    batch: usize,
    point: Point,
    gy: Vec<f32>,
    ghn: Vec<f32>,
    /// Empty unless the cell has a cell state.
    gcn: Vec<f32>,
}

impl Problem {
    fn new(config: NetConfig, seq_len: usize, batch: usize, rng: &mut Rng) -> Self {
        let net = Recurrent::new(config.clone()).expect("valid test config");
        let lstm = config.cell.has_cell_state();
        let scale = if config.cell == CellKind::Elman(Nonlinearity::Relu) {
            RELU_PARAM_SCALE
        } else {
            1.0
        };
        let (dirs, h) = (config.directions(), config.hidden_size);
        // `h` is the state size wide (a projection's), `c` `H`.
        let state = config.num_layers * dirs * batch * config.state_size();
        let cell_state = config.num_layers * dirs * batch * h;
        let point = Point {
            params: net.params().as_slice().iter().map(|v| v * scale).collect(),
            x: rng.vec(seq_len * batch * config.input_size, -1.0, 1.0),
            h0: rng.vec(state, -0.8, 0.8),
            c0: if lstm {
                rng.vec(cell_state, -1.0, 1.0)
            } else {
                Vec::new()
            },
        };
        Self {
            gy: rng.vec(seq_len * batch * config.output_size(), -1.0, 1.0),
            ghn: rng.vec(state, -1.0, 1.0),
            gcn: if lstm {
                rng.vec(cell_state, -1.0, 1.0)
            } else {
                Vec::new()
            },
            net,
            seq_len,
            batch,
            point,
        }
    }

    fn lstm(&self) -> bool {
        self.net.config().cell.has_cell_state()
    }

    fn is_relu(&self) -> bool {
        self.net.config().cell == CellKind::Elman(Nonlinearity::Relu)
    }

    fn net_at(&self, p: &Point) -> Recurrent {
        let mut net = self.net.clone();
        net.params_mut().copy_from_slice(&p.params);
        net
    }

    fn input<'a>(&self, p: &'a Point) -> SeqInput<'a> {
        let input = SeqInput::new(&p.x, self.seq_len, self.batch).h0(&p.h0);
        if self.lstm() { input.c0(&p.c0) } else { input }
    }

    /// `L` at `p`, summed in f64.
    fn loss(&self, p: &Point) -> f64 {
        let out = self.net_at(p).forward(self.input(p)).expect("forward");
        dot(&out.y, &self.gy) + dot(&out.h_n, &self.ghn) + dot(&out.c_n, &self.gcn)
    }

    /// The analytic gradients of `L` at the problem's point.
    fn gradients(&self) -> Gradients {
        let p = &self.point;
        let net = self.net_at(p);
        let mut tape = Tape::new();
        net.forward_train(self.input(p), &mut tape)
            .expect("forward_train");
        let mut og = OutputGrads::new(&self.gy).h_n(&self.ghn);
        if self.lstm() {
            og = og.c_n(&self.gcn);
        }
        let mut grads = Gradients::for_net(&net);
        net.backward(&mut tape, og, &mut grads).expect("backward");
        grads
    }

    /// Every layer's full output `[T, B, D*H]`, each layer rerun alone as a
    /// 1-layer network with its parameters (renamed to `_l0`).
    fn layer_outputs(&self, p: &Point) -> Vec<Vec<f32>> {
        let c = self.net.config();
        let net = self.net_at(p);
        let slot = c.directions() * self.batch * c.hidden_size;
        let mut outputs: Vec<Vec<f32>> = Vec::new();
        for k in 0..c.num_layers {
            let sub = NetConfig {
                input_size: c.layer_input_size(k),
                num_layers: 1,
                ..c.clone()
            };
            let renamed: Vec<(String, &[usize], &[f32])> = net
                .params()
                .iter()
                .filter_map(|(name, shape, v)| {
                    let (stem, suffix) = match name.strip_suffix("_reverse") {
                        Some(stem) => (stem, "_reverse"),
                        None => (name, ""),
                    };
                    let base = stem.strip_suffix(&format!("_l{k}"))?;
                    Some((format!("{base}_l0{suffix}"), shape, v))
                })
                .collect();
            let layer =
                Recurrent::from_params(sub, renamed.iter().map(|(n, s, v)| (n.as_str(), *s, *v)))
                    .expect("one layer of the network");
            let layer_in = if k == 0 { &p.x } else { &outputs[k - 1] };
            let h0 = &p.h0[k * slot..(k + 1) * slot];
            let y = layer
                .forward(SeqInput::new(layer_in, self.seq_len, self.batch).h0(h0))
                .expect("forward of one layer")
                .y;
            outputs.push(y);
        }
        outputs
    }

    /// For a relu network: which entries of every layer's output are
    /// positive (`relu(a) > 0` iff `a > 0`). Empty for other cells.
    fn relu_pattern(&self, p: &Point) -> Vec<bool> {
        if !self.is_relu() {
            return Vec::new();
        }
        self.layer_outputs(p)
            .iter()
            .flatten()
            .map(|&v| v > 0.0)
            .collect()
    }

    /// For a relu network: the smallest `|a|` over every pre-activation
    /// `a = W_ih x_t + b_ih + W_hh h_prev + b_hh` of every layer, direction,
    /// step, batch row and unit, in f64 from the layers' f32 outputs (and
    /// asserts that those outputs are `relu(a)`). Infinite for other cells.
    ///
    /// Skipped: a pre-activation of a network without biases whose whole
    /// input (`x_t` and `h_prev`) is exactly zero (a layer above units that
    /// are all off). It is 0 on a whole neighbourhood of the point, since the
    /// units feeding it are off by at least the margin, and contributes
    /// nothing to any gradient whatever the convention for `relu'(0)`.
    fn relu_margin(&self, p: &Point) -> f64 {
        if !self.is_relu() {
            return f64::INFINITY;
        }
        let c = self.net.config();
        let net = self.net_at(p);
        let (t_len, b_len, h, dirs) = (self.seq_len, self.batch, c.hidden_size, c.directions());
        let outputs = self.layer_outputs(p);
        let mut margin = f64::INFINITY;
        for (k, out) in outputs.iter().enumerate() {
            let in_size = c.layer_input_size(k);
            let layer_in = if k == 0 { &p.x } else { &outputs[k - 1] };
            for d in 0..dirs {
                let s = if d == 1 { "_reverse" } else { "" };
                let param = |n: &str| net.params().get(&format!("{n}_l{k}{s}"));
                let w_ih = param("weight_ih").expect("weight_ih");
                let w_hh = param("weight_hh").expect("weight_hh");
                let bias: Vec<f32> = match (param("bias_ih"), param("bias_hh")) {
                    (Some(bi), Some(bh)) => bi.iter().zip(bh).map(|(a, b)| a + b).collect(),
                    _ => vec![0.0; h],
                };
                for t in 0..t_len {
                    let prev_t = if d == 0 {
                        t.checked_sub(1)
                    } else {
                        Some(t + 1).filter(|&u| u < t_len)
                    };
                    for b in 0..b_len {
                        let h_prev = match prev_t {
                            Some(u) => &out[(u * b_len + b) * dirs * h + d * h..][..h],
                            None => &p.h0[((k * dirs + d) * b_len + b) * h..][..h],
                        };
                        let x_t = &layer_in[(t * b_len + b) * in_size..][..in_size];
                        if !c.bias && x_t.iter().chain(h_prev).all(|&v| v == 0.0) {
                            continue;
                        }
                        for (j, &bias_j) in bias.iter().enumerate() {
                            let row_ih = &w_ih[j * in_size..(j + 1) * in_size];
                            let row_hh = &w_hh[j * h..(j + 1) * h];
                            let a = f64::from(bias_j) + dot(row_ih, x_t) + dot(row_hh, h_prev);
                            let size = f64::from(bias_j.abs())
                                + abs_dot(row_ih, x_t)
                                + abs_dot(row_hh, h_prev);
                            let y = f64::from(out[(t * b_len + b) * dirs * h + d * h + j]);
                            assert!(
                                (a.max(0.0) - y).abs() <= 1e-5 * (1.0 + size),
                                "layer {k} dir {d} t {t} b {b} unit {j}: output {y} is not relu({a})"
                            );
                            margin = margin.min(a.abs());
                        }
                    }
                }
            }
        }
        margin
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| f64::from(a * b).abs()).sum()
}

/// Why a drawn direction was not used.
#[derive(Clone, Copy, Debug)]
enum Redraw {
    /// `|grad . v|` is under [`MIN_ALIGNMENT`] times its typical size.
    Orthogonal,
    /// The segment moves a relu pre-activation across 0.
    Kink,
}

/// How many directions were redrawn, by reason.
#[derive(Debug, Default)]
struct Redrawn {
    orthogonal: usize,
    kink: usize,
}

/// The outcome of one directional check.
#[derive(Clone, Debug)]
struct Check {
    what: String,
    fd: f64,
    an: f64,
    rel: f64,
}

/// Checks `grad` (the analytic gradient of the whole `target` buffer) along
/// a random unit direction supported on `range` of `target`: `(fd, an)`,
/// or why the direction must be redrawn (see the module docs).
fn directional_check(
    prob: &Problem,
    grad: &[f32],
    target: Target,
    range: std::ops::Range<usize>,
    rng: &mut Rng,
) -> Result<(f64, f64), Redraw> {
    let base = &prob.point;
    assert_eq!(
        grad.len(),
        base.get(target).len(),
        "{target:?}: gradient length"
    );
    let mut v: Vec<f64> = range.clone().map(|_| rng.normal()).collect();
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    v.iter_mut().for_each(|a| *a /= norm);

    let (mut plus, mut minus) = (base.clone(), base.clone());
    for (i, vi) in range.clone().zip(&v) {
        let p0 = f64::from(base.get(target)[i]);
        plus.get_mut(target)[i] = (p0 + EPS * vi) as f32;
        minus.get_mut(target)[i] = (p0 - EPS * vi) as f32;
    }
    let an = range
        .clone()
        .map(|i| {
            f64::from(grad[i]) * (f64::from(plus.get(target)[i]) - f64::from(minus.get(target)[i]))
        })
        .sum::<f64>()
        / (2.0 * EPS);
    let n = range.len() as f64;
    let typical = range
        .map(|i| f64::from(grad[i]).powi(2))
        .sum::<f64>()
        .sqrt()
        / n.sqrt();
    if an.abs() < MIN_ALIGNMENT * typical {
        return Err(Redraw::Orthogonal);
    }
    let pattern = prob.relu_pattern(base);
    if prob.relu_pattern(&plus) != pattern || prob.relu_pattern(&minus) != pattern {
        return Err(Redraw::Kink);
    }
    let fd = (prob.loss(&plus) - prob.loss(&minus)) / (2.0 * EPS);
    Ok((fd, an))
}

/// `|fd - an| / max(|fd|, |an|, 1e-12)`: 0 when both are exactly zero.
fn relative_error(fd: f64, an: f64) -> f64 {
    (fd - an).abs() / fd.abs().max(an.abs()).max(1e-12)
}

/// Collects the checks of one problem.
struct Checker<'a> {
    prob: &'a Problem,
    rng: &'a mut Rng,
    out: Vec<Check>,
    redrawn: &'a mut Redrawn,
}

impl Checker<'_> {
    /// Runs [`DIRECTIONS`] usable checks of `grad` over `range` of `target`.
    fn check(&mut self, grad: &[f32], target: Target, range: std::ops::Range<usize>, what: &str) {
        for d in 0..DIRECTIONS {
            let mut why = Vec::new();
            let (fd, an) = loop {
                assert!(
                    why.len() < MAX_TRIES,
                    "{what}: no usable direction in {MAX_TRIES} draws: {why:?}"
                );
                match directional_check(self.prob, grad, target, range.clone(), self.rng) {
                    Ok(r) => break r,
                    Err(w) => why.push(w),
                }
            };
            for w in why {
                match w {
                    Redraw::Orthogonal => self.redrawn.orthogonal += 1,
                    Redraw::Kink => self.redrawn.kink += 1,
                }
            }
            self.out.push(Check {
                what: format!("{what} dir {d}"),
                fd,
                an,
                rel: relative_error(fd, an),
            });
        }
    }
}

/// Every directional check of `prob` against the analytic gradients `grads`.
fn check_problem(
    prob: &Problem,
    grads: &Gradients,
    rng: &mut Rng,
    redrawn: &mut Redrawn,
) -> Vec<Check> {
    let p = &prob.point;
    assert_eq!(
        grads.params.infos(),
        prob.net.params().infos(),
        "gradient layout"
    );
    assert_eq!(grads.params.as_slice().len(), p.params.len());
    let mut c = Checker {
        prob,
        rng,
        out: Vec::new(),
        redrawn,
    };
    let g = grads.params.as_slice();
    c.check(g, Target::Params, 0..p.params.len(), "all params");
    for info in grads.params.infos() {
        c.check(
            g,
            Target::Params,
            info.offset..info.offset + info.len(),
            &info.name,
        );
    }
    c.check(&grads.x, Target::X, 0..p.x.len(), "x");
    c.check(&grads.h0, Target::H0, 0..p.h0.len(), "h0");
    if prob.lstm() {
        c.check(&grads.c0, Target::C0, 0..p.c0.len(), "c0");
    } else {
        assert!(
            grads.c0.is_empty(),
            "c0 gradient for a cell without cell state"
        );
    }
    c.out
}

/// `(input_size, hidden_size, num_layers, bidirectional, bias, seq_len, batch)`.
const CONFIGS: [(usize, usize, usize, bool, bool, usize, usize); 7] = [
    (3, 4, 1, false, true, 1, 1),
    (5, 4, 1, true, true, 8, 3),
    (3, 5, 2, false, false, 8, 3),
    (4, 3, 2, true, true, 7, 3),
    (2, 3, 2, true, false, 1, 1),
    (6, 2, 1, false, false, 8, 1),
    (4, 6, 2, false, true, 1, 3),
];

/// Checks every config of `cell`; prints the worst relative error; fails
/// listing every check at or above [`TOL`].
fn gradcheck_cell(cell: CellKind, seed: u64) {
    gradcheck_configs(cell, seed, |c| c);
}

/// [`gradcheck_cell`] with every configuration passed through `tweak`.
fn gradcheck_configs(cell: CellKind, seed: u64, tweak: fn(NetConfig) -> NetConfig) {
    let mut rng = Rng(seed);
    let mut worst: Option<(String, Check)> = None;
    let (mut failures, mut count, mut redrawn) = (Vec::new(), 0, Redrawn::default());
    for (i, h, num_layers, bidirectional, bias, t, b) in CONFIGS {
        let label =
            format!("I={i} H={h} L={num_layers} bidir={bidirectional} bias={bias} T={t} B={b}");
        let mut draws = 0;
        let prob = loop {
            draws += 1;
            assert!(
                draws <= MAX_TRIES,
                "{label}: no problem with relu margin {RELU_MARGIN} in {MAX_TRIES} draws"
            );
            let config = tweak(NetConfig {
                num_layers,
                bidirectional,
                bias,
                seed: rng.next_u64(),
                ..NetConfig::new(cell, i, h)
            });
            let prob = Problem::new(config, t, b, &mut rng);
            if prob.relu_margin(&prob.point) >= RELU_MARGIN {
                break prob;
            }
        };
        let grads = prob.gradients();
        for c in check_problem(&prob, &grads, &mut rng, &mut redrawn) {
            count += 1;
            if c.rel.is_nan() || c.rel >= TOL {
                failures.push(format!(
                    "{label} {}: fd {:.6e} an {:.6e} rel {:.2e}",
                    c.what, c.fd, c.an, c.rel
                ));
            }
            if worst.as_ref().is_none_or(|(_, w)| c.rel > w.rel) {
                worst = Some((label.clone(), c));
            }
        }
    }
    let (label, w) = worst.expect("at least one check");
    println!(
        "{:17} {count} checks (redrawn: {} near-orthogonal, {} kink-crossing); worst rel error {:.2e} at {label} {} (fd {:.6e}, an {:.6e})",
        cell.name(),
        redrawn.orthogonal,
        redrawn.kink,
        w.rel,
        w.what,
        w.fd,
        w.an
    );
    assert!(
        failures.is_empty(),
        "{} gradient checks failed:\n{}",
        cell.name(),
        failures.join("\n")
    );
}

#[test]
fn gradcheck_rnn_tanh() {
    gradcheck_cell(CellKind::Elman(Nonlinearity::Tanh), 11);
}

#[test]
fn gradcheck_rnn_relu() {
    gradcheck_cell(CellKind::Elman(Nonlinearity::Relu), 12);
}

#[test]
fn gradcheck_lstm() {
    gradcheck_cell(CellKind::Lstm, 13);
}

#[test]
fn gradcheck_gru_linear_before_reset() {
    gradcheck_cell(CellKind::Gru(GruVariant::LinearBeforeReset), 14);
}

#[test]
fn gradcheck_gru_reset_before_linear() {
    gradcheck_cell(CellKind::Gru(GruVariant::ResetBeforeLinear), 15);
}

/// The checker itself can fail: a gradient wrong in one small tensor only
/// (one bias scaled by 1.05), or in one entry of `x`, is caught by the
/// per-tensor and per-input directions.
/// Summed directions (`merge = sum`: both directions receive the whole
/// `dy`, and the layer above reads `H` features) and batch-first sequences,
/// on the configurations above.
#[test]
fn gradcheck_summed_directions_batch_first() {
    let tweak = |c: NetConfig| NetConfig {
        merge: Merge::Sum,
        batch_first: true,
        ..c
    };
    for (cell, seed) in [
        (CellKind::Lstm, 21),
        (CellKind::Gru(GruVariant::LinearBeforeReset), 22),
        (CellKind::Elman(Nonlinearity::Tanh), 23),
    ] {
        gradcheck_configs(cell, seed, tweak);
    }
}

/// An LSTM with a projection (`proj_size` = H/2): `W_hr`'s gradient and
/// the `P`-wide states, on the configurations above (each with `H >= 2`).
#[test]
fn gradcheck_lstm_projection() {
    gradcheck_configs(CellKind::Lstm, 24, |c| NetConfig {
        proj_size: c.hidden_size / 2,
        ..c
    });
}

#[test]
fn checker_rejects_a_wrong_gradient() {
    let mut rng = Rng(99);
    let config = NetConfig {
        num_layers: 2,
        bidirectional: true,
        ..NetConfig::new(CellKind::Lstm, 3, 4)
    };
    let prob = Problem::new(config, 5, 2, &mut rng);
    let good = prob.gradients();
    let mut redrawn = Redrawn::default();
    let ok = check_problem(&prob, &good, &mut rng, &mut redrawn);
    assert!(
        ok.iter().all(|c| c.rel < TOL),
        "the true gradient must pass: {ok:?}"
    );

    let mut bad = good.clone();
    bad.params
        .get_mut("bias_hh_l1_reverse")
        .expect("tensor exists")
        .iter_mut()
        .for_each(|g| *g *= 1.05);
    let checks = check_problem(&prob, &bad, &mut rng, &mut redrawn);
    let flagged: Vec<&str> = checks
        .iter()
        .filter(|c| c.rel >= TOL)
        .map(|c| c.what.as_str())
        .collect();
    assert!(
        flagged.iter().any(|w| w.starts_with("bias_hh_l1_reverse")),
        "a 5% error in bias_hh_l1_reverse went unnoticed: {flagged:?}"
    );

    let mut bad = good;
    bad.x[7] += 5.0;
    let checks = check_problem(&prob, &bad, &mut rng, &mut redrawn);
    assert!(
        checks
            .iter()
            .any(|c| c.what.starts_with("x ") && c.rel >= TOL),
        "a wrong x gradient went unnoticed"
    );
}

/// The checks above use a fresh tape and gradient buffer per call; a tape
/// and a `Gradients` reused across calls of other sizes (larger, then
/// smaller, then larger again) give bit-identical gradients.
#[test]
fn reused_tape_and_gradients_give_the_same_gradients() {
    let mut rng = Rng(7);
    for cell in [
        CellKind::Elman(Nonlinearity::Tanh),
        CellKind::Elman(Nonlinearity::Relu),
        CellKind::Lstm,
        CellKind::Gru(GruVariant::LinearBeforeReset),
        CellKind::Gru(GruVariant::ResetBeforeLinear),
    ] {
        let config = NetConfig {
            num_layers: 2,
            bidirectional: true,
            ..NetConfig::new(cell, 3, 4)
        };
        let problems: Vec<Problem> = [(9, 4), (3, 2), (1, 1), (6, 3)]
            .into_iter()
            .map(|(t, b)| Problem::new(config.clone(), t, b, &mut rng))
            .collect();
        let mut tape = Tape::new();
        let mut grads = Gradients::for_net(&problems[0].net);
        for p in &problems {
            let net = p.net_at(&p.point);
            let out = net
                .forward_train(p.input(&p.point), &mut tape)
                .expect("forward_train");
            assert_eq!(
                out,
                net.forward(p.input(&p.point)).expect("forward"),
                "forward_train != forward"
            );
            let mut og = OutputGrads::new(&p.gy).h_n(&p.ghn);
            if p.lstm() {
                og = og.c_n(&p.gcn);
            }
            net.backward(&mut tape, og, &mut grads).expect("backward");
            assert_eq!(
                grads,
                p.gradients(),
                "{} T={} B={}: reused buffers",
                cell.name(),
                p.seq_len,
                p.batch
            );
        }
    }
}
