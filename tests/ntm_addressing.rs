//! Finite-difference checks, in f64, of every NTM addressing step and of the
//! memory read and write (`recurrent::ntm::{addressing, memory}`, docs/ntm.md),
//! each step on its own, forward against backward; the edge cases of the
//! addressing (zero memory rows, key strength near 0, exact zeros in the
//! weightings, `gamma == 1`, `g` at 0 and 1, one-hot shifts, full erase);
//! and the agreement of these functions' f32 forwards with their f64 ones (the
//! model's SIMD kernels are held to the f64 forms in tests/ntm_kernels.rs).
//!
//! Method: the inputs of a step are flattened into one vector `x`; for a
//! random upstream gradient `dy` and `L(x) = sum(f(x) * dy)`, the analytic
//! directional derivative `an = grad L . v` (from the step's backward) is
//! compared with the central difference
//! `fd = (L(x + eps v) - L(x - eps v)) / 2 eps`, `eps` = [`EPS`], for
//! random unit directions `v` over all the inputs jointly and over each input
//! alone, [`SEEDS`] random problems per shape. The relative error
//! `|fd - an| / max(|fd|, |an|, 1e-8)` must be at most [`TOL`] = 1e-6. `an`
//! uses the rounded points, `grad . (x_plus - x_minus) / 2 eps`, so the
//! rounding of `x +- eps v` is not counted as an error. Every check also
//! calls the backward a second time on gradient buffers prefilled with
//! random values and requires it to have *added* the same gradient (the
//! `+=` contract).
//!
//! Looser where it must be (each place says why):
//! - rounding noise: `L` is computed to about 1e-16 of the size of its terms,
//!   so `fd` carries an absolute noise of about 1e-16 / eps (bounded in
//!   [`difference`], ~1e-9 here); a directional derivative under
//!   `noise / TOL` (~1e-3: near-orthogonal directions, saturated softmax or
//!   sharpening, N = 1 where the output is constant, beta near 0) cannot be
//!   resolved to 1e-6 by any difference at this `eps`, and is checked
//!   absolutely, `|fd - an| <= noise`. The report counts those directions
//!   and prints their worst `|fd - an| / noise`.
//! - zero memory rows (curvature on the scale sqrt(COSINE_EPS) = 1e-4):
//!   Richardson extrapolation of the central differences at eps and eps / 2;
//! - weightings on the boundary of their domain (ws_i = 0): one-sided
//!   differences, upwards only.
//!
//! `cargo test --release --test ntm_addressing -- --nocapture --test-threads=1`
//! prints the worst relative error of every check.
//! `checker_rejects_a_wrong_gradient` shows that the checker fails on a
//! gradient wrong by 1e-4 relative in one component.

use recurrent::ntm::addressing::{
    COSINE_EPS, Real, content, content_backward, interpolate, interpolate_backward, sharpen,
    sharpen_backward, shift, shift_backward, sigmoid, softmax_backward, softmax_in_place, softplus,
};
use recurrent::ntm::memory::{read, read_backward, write, write_backward};
use recurrent::rng::SplitMix64;

/// Finite-difference step along a unit direction.
const EPS: f64 = 1e-6;
/// Largest accepted relative error.
const TOL: f64 = 1e-6;
/// Floor of the denominator of the relative error.
const FLOOR: f64 = 1e-8;
/// Unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;
/// Random problems per shape.
const SEEDS: u64 = 20;
/// Random directions per group (all inputs, each input alone) and problem.
const DIRS: usize = 3;

// ---------------------------------------------------------------------------
// Random inputs.

struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    fn normal(&mut self) -> f64 {
        f64::from(self.0.normal())
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * f64::from(self.0.next_f32())
    }

    fn normals(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| scale * self.normal()).collect()
    }

    /// A positive weighting that sums to 1 (a softmax of random logits).
    fn simplex(&mut self, n: usize) -> Vec<f64> {
        let mut v = self.normals(n, 1.5);
        softmax_in_place(&mut v);
        v
    }

    fn index(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
}

/// `x` cut into consecutive pieces of the given lengths.
fn parts<const K: usize>(x: &[f64], lens: [usize; K]) -> [&[f64]; K] {
    assert_eq!(lens.iter().sum::<usize>(), x.len());
    let mut rest = x;
    lens.map(|l| {
        let (a, b) = rest.split_at(l);
        rest = b;
        a
    })
}

/// `x` cut into consecutive mutable pieces of the given lengths.
fn parts_mut<const K: usize>(x: &mut [f64], lens: [usize; K]) -> [&mut [f64]; K] {
    assert_eq!(lens.iter().sum::<usize>(), x.len());
    let mut rest = x;
    lens.map(|l| {
        let (a, b) = std::mem::take(&mut rest).split_at_mut(l);
        rest = b;
        a
    })
}

fn rel(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(floor)
}

/// The largest absolute value.
fn amax(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, b| a.max(b.abs()))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ---------------------------------------------------------------------------
// The checker.

/// Worst errors per check, printed at the end of a test: the worst relative
/// error of the directions whose derivative the difference resolves, and of
/// the others (under the noise floor, checked as `|fd - an| <= noise`) the
/// worst `|fd - an| / noise`.
#[derive(Default)]
struct Report(Vec<Entry>);

#[derive(Default)]
struct Entry {
    key: String,
    worst: f64,
    count: usize,
    noise_limited: usize,
    worst_over_noise: f64,
}

impl Report {
    fn entry(&mut self, key: String) -> &mut Entry {
        let i = match self.0.iter().position(|e| e.key == key) {
            Some(i) => i,
            None => {
                self.0.push(Entry {
                    key,
                    ..Entry::default()
                });
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    /// A measured value (a relative error, or as the key says).
    fn value(&mut self, key: String, r: f64) {
        let e = self.entry(key);
        e.worst = e.worst.max(r);
        e.count += 1;
    }

    /// A direction under the noise floor: `|fd - an| / noise`.
    fn noise_limited(&mut self, key: String, over_noise: f64) {
        let e = self.entry(key);
        e.noise_limited += 1;
        e.worst_over_noise = e.worst_over_noise.max(over_noise);
    }

    fn print(&self, test: &str) {
        let mut s = String::new();
        for e in &self.0 {
            s.push_str(&format!(
                "[{test}] {}: worst {:.2e} ({})",
                e.key, e.worst, e.count
            ));
            if e.noise_limited > 0 {
                s.push_str(&format!(
                    "; under the noise floor: {}, worst |fd - an| / noise {:.2}",
                    e.noise_limited, e.worst_over_noise
                ));
            }
            s.push('\n');
        }
        print!("{s}");
    }
}

/// A step: its input pieces (name, length), its forward `x -> y` and its
/// backward `(x, dy, gx)`, which accumulates `dL/dx` into `gx` (laid out as
/// `x`).
struct Step<'a> {
    name: &'a str,
    segs: Vec<(&'static str, usize)>,
    f: &'a dyn Fn(&[f64]) -> Vec<f64>,
    b: &'a Backward<'a>,
}

/// A backward on flat buffers: `(x, dy, gx)`, accumulating into `gx`.
type Backward<'a> = dyn Fn(&[f64], &[f64], &mut [f64]) + 'a;

/// How to difference.
#[derive(Clone)]
struct Fd {
    eps: f64,
    tol: f64,
    /// Second-order one-sided difference `(-3 L(x) + 4 L(x + e v) -
    /// L(x + 2e v)) / 2e` instead of the central one (for points on the
    /// boundary of the domain).
    one_sided: bool,
    /// Richardson extrapolation of the central difference,
    /// `(4 D(eps / 2) - D(eps)) / 3`: truncation `O(eps^4)` instead of
    /// `O(eps^2)` (for curvature on a scale much finer than 1).
    richardson: bool,
    /// Coordinates whose direction component must be >= 0 (empty: none).
    nonneg: Vec<bool>,
    /// Groups to check (`"all"` or a piece name); empty: all of them.
    only: Vec<&'static str>,
}

impl Default for Fd {
    fn default() -> Self {
        Self {
            eps: EPS,
            tol: TOL,
            one_sided: false,
            richardson: false,
            nonneg: Vec::new(),
            only: Vec::new(),
        }
    }
}

fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// The gradient from the backward, after checking that it accumulates.
fn gradient(step: &Step, x: &[f64], dy: &[f64], rng: &mut Rng, ctx: &str) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    (step.b)(x, dy, &mut g);
    assert!(all_finite(&g), "{ctx}: non-finite gradient {g:?}");
    let pre = rng.normals(x.len(), 1.0);
    let mut g2 = pre.clone();
    (step.b)(x, dy, &mut g2);
    for i in 0..x.len() {
        let added = g2[i] - pre[i];
        assert!(
            (added - g[i]).abs() <= 1e-12 * (1.0 + pre[i].abs() + g[i].abs()),
            "{ctx}: backward does not accumulate at {i}: added {added}, alone {}",
            g[i]
        );
    }
    g
}

/// A difference quotient of `L = f . dy` along `v`.
struct Diff {
    fd: f64,
    /// The direction actually taken (from the rounded points), for `an`.
    dv: Vec<f64>,
    /// A bound of the rounding noise of `fd`.
    noise: f64,
}

/// The difference quotient at `x` along `v`, with its rounding noise: each
/// `L` is computed to within about `(n_out + 8) u |dy|_1 max|f|` (the
/// outputs to a few ulps of their size, then the sum), and the quotient
/// combines two such errors (central) or 3 + 4 + 1 = 8 (one-sided) over
/// `2 eps`. Below `noise / tol` a relative error of `tol` cannot be resolved
/// by any difference with this `eps`, so the check there is absolute,
/// `|fd - an| <= noise` (the floor of the relative error is `noise / tol`).
/// With `|dy|_1 max|f|` of a few units, `noise` is about 1e-9 at
/// `eps = 1e-6`: it only bites on directions nearly orthogonal to the
/// gradient or steps whose gradient is tiny (saturated softmax, beta near 0).
fn difference(f: &dyn Fn(&[f64]) -> Vec<f64>, dy: &[f64], x: &[f64], v: &[f64], o: &Fd) -> Diff {
    let mut ymax: f64 = 0.0;
    let mut loss = |p: &[f64]| {
        let y = f(p);
        ymax = y.iter().fold(ymax, |a, b| a.max(b.abs()));
        dot(&y, dy)
    };
    let at = |t: f64| -> Vec<f64> { x.iter().zip(v).map(|(a, b)| a + t * b).collect() };
    let (fd, dv, evals) = if o.richardson {
        // (4 D(eps / 2) - D(eps)) / 3 of central differences D: noise
        // (4 * 2 * 2 + 2) / 3 = 6 evaluations' worth over 2 eps.
        let central = |h: f64, loss: &mut dyn FnMut(&[f64]) -> f64| -> (f64, Vec<f64>) {
            let (p, m) = (at(h), at(-h));
            let fd = (loss(&p) - loss(&m)) / (2.0 * h);
            (
                fd,
                p.iter().zip(&m).map(|(a, b)| (a - b) / (2.0 * h)).collect(),
            )
        };
        let (d1, v1) = central(o.eps, &mut loss);
        let (d2, v2) = central(o.eps / 2.0, &mut loss);
        let dv = v1
            .iter()
            .zip(&v2)
            .map(|(a, b)| (4.0 * b - a) / 3.0)
            .collect();
        ((4.0 * d2 - d1) / 3.0, dv, 6.0)
    } else if o.one_sided {
        let (p1, p2) = (at(o.eps), at(2.0 * o.eps));
        let fd = (-3.0 * loss(x) + 4.0 * loss(&p1) - loss(&p2)) / (2.0 * o.eps);
        let dv = x.iter().zip(&p1).map(|(a, b)| (b - a) / o.eps).collect();
        (fd, dv, 8.0)
    } else {
        let (p, m) = (at(o.eps), at(-o.eps));
        let fd = (loss(&p) - loss(&m)) / (2.0 * o.eps);
        let dv = p
            .iter()
            .zip(&m)
            .map(|(a, b)| (a - b) / (2.0 * o.eps))
            .collect();
        (fd, dv, 2.0)
    };
    let dy_l1: f64 = dy.iter().map(|d| d.abs()).sum();
    let per_eval = (dy.len() as f64 + 8.0) * U * dy_l1 * ymax;
    Diff {
        fd,
        dv,
        noise: evals * per_eval / (2.0 * o.eps),
    }
}

/// Compares `an = g . dv` with `fd`: an error past `o.tol` is returned,
/// otherwise noted in `report`.
fn compare(
    d: &Diff,
    g: &[f64],
    o: &Fd,
    report: &mut Report,
    key: String,
    msg: &dyn Fn() -> String,
) -> Result<(), String> {
    let an = dot(g, &d.dv);
    let floor = FLOOR.max(d.noise / o.tol);
    let r = rel(d.fd, an, floor);
    if r > o.tol {
        return Err(format!(
            "{}: fd {:e} analytic {an:e} rel err {r:e} (noise {:e})",
            msg(),
            d.fd,
            d.noise
        ));
    }
    if d.fd.abs().max(an.abs()) < floor {
        report.noise_limited(key, (d.fd - an).abs() / d.noise);
    } else {
        report.value(key, r);
    }
    Ok(())
}

/// Checks `step` at `x` along random directions over all the inputs and
/// over each input alone; notes the worst errors in `report`; panics on the
/// first direction past the tolerance.
fn check(step: &Step, x: &[f64], o: &Fd, rng: &mut Rng, report: &mut Report, ctx: &str) {
    if let Err(e) = try_check(step, x, o, rng, report, ctx) {
        panic!("{e}");
    }
}

/// [`check`], returning the first failure.
fn try_check(
    step: &Step,
    x: &[f64],
    o: &Fd,
    rng: &mut Rng,
    report: &mut Report,
    ctx: &str,
) -> Result<(), String> {
    let ctx = format!("{} {ctx}", step.name);
    assert_eq!(step.segs.iter().map(|s| s.1).sum::<usize>(), x.len());
    let y = (step.f)(x);
    assert!(all_finite(&y), "{ctx}: non-finite output {y:?}");
    let dy = rng.normals(y.len(), 1.0);
    let g = gradient(step, x, &dy, rng, &ctx);
    let mut groups = vec![("all", 0..x.len())];
    let mut start = 0;
    for &(name, len) in &step.segs {
        groups.push((name, start..start + len));
        start += len;
    }
    for (name, range) in groups {
        if range.is_empty() || !(o.only.is_empty() || o.only.contains(&name)) {
            continue;
        }
        for _ in 0..DIRS {
            let mut v = vec![0.0; x.len()];
            v[range.clone()].iter_mut().for_each(|e| *e = rng.normal());
            let norm = dot(&v, &v).sqrt();
            for (i, e) in v.iter_mut().enumerate() {
                *e /= norm;
                if o.nonneg.get(i) == Some(&true) {
                    *e = e.abs();
                }
            }
            let d = difference(step.f, &dy, x, &v, o);
            let key = format!("{} d/d{name}", step.name);
            compare(&d, &g, o, report, key, &|| {
                format!("{ctx}: d/d{name} (x {x:?}, v {v:?}, dy {dy:?})")
            })?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The steps, on flat inputs.

fn softmax_f(x: &[f64]) -> Vec<f64> {
    let mut p = x.to_vec();
    softmax_in_place(&mut p);
    p
}

fn softmax_b(x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let p = softmax_f(x);
    softmax_backward(&p, dy, gx);
}

fn softmax_step<'a>() -> Step<'a> {
    Step {
        name: "softmax",
        segs: Vec::new(),
        f: &softmax_f,
        b: &softmax_b,
    }
}

/// `x = [key [M], beta, mem [N, M]]` -> `wc [N]` (with `sim [N]`).
fn content_fwd(m: usize, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() - m - 1) / m;
    let [key, beta, mem] = parts(x, [m, 1, n * m]);
    let (mut sim, mut wc) = (vec![0.0; n], vec![0.0; n]);
    content(key, beta[0], mem, &mut sim, &mut wc);
    (sim, wc)
}

fn content_bwd(m: usize, x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let n = (x.len() - m - 1) / m;
    let [key, beta, mem] = parts(x, [m, 1, n * m]);
    let (sim, wc) = content_fwd(m, x);
    // `content_backward` overwrites its scratch: NaN garbage must not leak.
    let mut scratch = vec![f64::NAN; n];
    let [dkey, dbeta, dmem] = parts_mut(gx, [m, 1, n * m]);
    content_backward(
        key,
        beta[0],
        mem,
        &sim,
        &wc,
        dy,
        &mut scratch,
        dkey,
        &mut dbeta[0],
        dmem,
    );
}

/// `x = [g, wc [N], w_prev [N]]` -> `wg [N]`.
fn interpolate_f(x: &[f64]) -> Vec<f64> {
    let n = (x.len() - 1) / 2;
    let [g, wc, wp] = parts(x, [1, n, n]);
    let mut wg = vec![0.0; n];
    interpolate(g[0], wc, wp, &mut wg);
    wg
}

fn interpolate_b(x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let n = (x.len() - 1) / 2;
    let [g, wc, wp] = parts(x, [1, n, n]);
    let [dg, dwc, dwp] = parts_mut(gx, [1, n, n]);
    interpolate_backward(g[0], wc, wp, dy, &mut dg[0], dwc, dwp);
}

/// `x = [s [K], wg [N]]` -> `ws [N]`.
fn shift_fwd(k: usize, x: &[f64]) -> Vec<f64> {
    let n = x.len() - k;
    let [s, wg] = parts(x, [k, n]);
    let mut ws = vec![0.0; n];
    shift(s, wg, &mut ws);
    ws
}

fn shift_bwd(k: usize, x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let n = x.len() - k;
    let [s, wg] = parts(x, [k, n]);
    let [ds, dwg] = parts_mut(gx, [k, n]);
    shift_backward(s, wg, dy, ds, dwg);
}

/// `x = [gamma, ws [N]]` -> `w [N]`.
fn sharpen_f(x: &[f64]) -> Vec<f64> {
    let n = x.len() - 1;
    let [gamma, ws] = parts(x, [1, n]);
    let mut w = vec![0.0; n];
    sharpen(gamma[0], ws, &mut w);
    w
}

fn sharpen_b(x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let n = x.len() - 1;
    let [gamma, ws] = parts(x, [1, n]);
    let w = sharpen_f(x);
    let [dgamma, dws] = parts_mut(gx, [1, n]);
    sharpen_backward(gamma[0], ws, &w, dy, &mut dgamma[0], dws);
}

fn sharpen_step<'a>() -> Step<'a> {
    Step {
        name: "sharpen",
        segs: Vec::new(),
        f: &sharpen_f,
        b: &sharpen_b,
    }
}

/// `x = [w [N], mem [N, M]]` -> `r [M]`.
fn read_fwd(m: usize, x: &[f64]) -> Vec<f64> {
    let n = x.len() / (m + 1);
    let [w, mem] = parts(x, [n, n * m]);
    let mut r = vec![0.0; m];
    read(w, mem, &mut r);
    r
}

fn read_bwd(m: usize, x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let n = x.len() / (m + 1);
    let [w, mem] = parts(x, [n, n * m]);
    let [dw, dmem] = parts_mut(gx, [n, n * m]);
    read_backward(w, mem, dy, dw, dmem);
}

/// `x = [w [W, N], erase [W, M], add [W, M], mem_prev [N, M]]` -> `mem [N, M]`.
fn write_lens(heads: usize, n: usize, m: usize) -> [usize; 4] {
    [heads * n, heads * m, heads * m, n * m]
}

fn write_fwd(heads: usize, n: usize, m: usize, x: &[f64]) -> Vec<f64> {
    let [w, e, a, mp] = parts(x, write_lens(heads, n, m));
    let mut mem = vec![0.0; n * m];
    write(m, w, e, a, mp, &mut mem);
    mem
}

fn write_bwd(heads: usize, n: usize, m: usize, x: &[f64], dy: &[f64], gx: &mut [f64]) {
    let [w, e, a, mp] = parts(x, write_lens(heads, n, m));
    let [dw, de, da, dmp] = parts_mut(gx, write_lens(heads, n, m));
    write_backward(m, w, e, a, mp, dy, dmp, dw, de, da);
}

/// Checks the content step at `[key, beta, mem]`.
fn check_content(x: &[f64], m: usize, o: &Fd, rng: &mut Rng, rep: &mut Report, ctx: &str) {
    let n = (x.len() - m - 1) / m;
    let f = |x: &[f64]| content_fwd(m, x).1;
    let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| content_bwd(m, x, dy, gx);
    let step = Step {
        name: "content",
        segs: vec![("key", m), ("beta", 1), ("mem", n * m)],
        f: &f,
        b: &b,
    };
    check(&step, x, o, rng, rep, ctx);
}

fn check_sharpen(x: &[f64], o: &Fd, rng: &mut Rng, rep: &mut Report, ctx: &str) {
    let step = Step {
        segs: vec![("gamma", 1), ("ws", x.len() - 1)],
        ..sharpen_step()
    };
    check(&step, x, o, rng, rep, ctx);
}

fn check_write(x: &[f64], heads: usize, n: usize, m: usize, rng: &mut Rng, rep: &mut Report) {
    let f = |x: &[f64]| write_fwd(heads, n, m, x);
    let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| write_bwd(heads, n, m, x, dy, gx);
    let [lw, le, la, lm] = write_lens(heads, n, m);
    let name = format!("write W={heads}");
    let step = Step {
        name: &name,
        segs: vec![("w", lw), ("erase", le), ("add", la), ("mem_prev", lm)],
        f: &f,
        b: &b,
    };
    check(&step, x, &Fd::default(), rng, rep, &format!("N={n} M={m}"));
}

/// `1 + softplus` of a random logit: a sharpening exponent `>= 1`.
fn random_gamma(rng: &mut Rng) -> f64 {
    1.0 + softplus(1.5 * rng.normal())
}

// ---------------------------------------------------------------------------
// Each step alone, random inputs.

#[test]
fn softplus_derivative_is_sigmoid() {
    let mut rep = Report::default();
    let mut xs: Vec<f64> = (0..=160).map(|i| -30.0 + 0.375 * i as f64).collect();
    xs.extend([0.0, 1e-3, -1e-3, 1e-7, -1e-7, 35.0, -35.0]);
    let mut rng = Rng::new(1);
    xs.extend((0..100).map(|_| 4.0 * rng.normal()));
    for &x in &xs {
        // The difference over the rounded points `x +- eps`.
        let (p, m) = (x + EPS, x - EPS);
        let fd = (softplus(p) - softplus(m)) / (p - m);
        let r = rel(fd, sigmoid(x), FLOOR);
        assert!(
            r <= TOL,
            "softplus'({x}) = {fd} but sigmoid = {}",
            sigmoid(x)
        );
        rep.value("softplus' vs sigmoid".into(), r);
        // sigmoid' = sigmoid (1 - sigmoid). Only for x <= 8: above, sigmoid
        // is within 3e-4 of 1, so the rounding of its values (1.1e-16) over
        // 2 eps is no longer below 1e-6 of the derivative e^-x.
        if x <= 8.0 {
            let s = sigmoid(x);
            let fd = (sigmoid(p) - sigmoid(m)) / (p - m);
            let r = rel(fd, s * (1.0 - s), FLOOR);
            assert!(
                r <= TOL,
                "sigmoid'({x}) = {fd} but s (1 - s) = {}",
                s * (1.0 - s)
            );
            rep.value("sigmoid' vs s(1-s)".into(), r);
        }
        // Against the naive forms where those are exact enough.
        if x.abs() <= 30.0 {
            let naive = x.exp().ln_1p();
            rep.value(
                "softplus vs ln(1+e^x)".into(),
                rel(softplus(x), naive, 1e-300),
            );
            assert!(rel(softplus(x), naive, 1e-300) <= 1e-14, "softplus({x})");
            let naive = 1.0 / (1.0 + (-x).exp());
            assert!(rel(sigmoid(x), naive, 1e-300) <= 1e-14, "sigmoid({x})");
        }
    }
    for x in [-1e4f64, -800.0, 800.0, 1e4] {
        assert!(softplus(x).is_finite() && sigmoid(x).is_finite(), "{x}");
    }
    assert_eq!(softplus(-800.0f64), 0.0);
    assert_eq!(softplus(800.0f64), 800.0);
    assert_eq!((sigmoid(-800.0f64), sigmoid(800.0f64)), (0.0, 1.0));
    rep.print("softplus_derivative_is_sigmoid");
}

#[test]
fn softmax_fd() {
    let mut rep = Report::default();
    for n in [1, 2, 3, 5, 8] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(100 + seed);
            let x = rng.normals(n, 2.0);
            let step = Step {
                segs: vec![("z", n)],
                ..softmax_step()
            };
            check(
                &step,
                &x,
                &Fd::default(),
                &mut rng,
                &mut rep,
                &format!("N={n}"),
            );
        }
    }
    rep.print("softmax_fd");
}

#[test]
fn content_fd() {
    let mut rep = Report::default();
    for (n, m) in [(1, 1), (3, 2), (5, 4), (8, 6)] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(200 + seed);
            let mut x = rng.normals(m, 1.0);
            // Key strengths from small to large (softplus of a logit, up to 20).
            x.push(if seed % 5 == 0 {
                rng.uniform(5.0, 20.0)
            } else {
                softplus(2.0 * rng.normal())
            });
            x.extend(rng.normals(n * m, 1.0));
            let ctx = format!("N={n} M={m} seed={seed}");
            check_content(&x, m, &Fd::default(), &mut rng, &mut rep, &ctx);
        }
    }
    rep.print("content_fd");
}

#[test]
fn interpolate_fd() {
    let mut rep = Report::default();
    for n in [1, 3, 5, 8] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(300 + seed);
            let mut x = vec![sigmoid(2.0 * rng.normal())];
            x.extend(rng.simplex(n));
            x.extend(rng.simplex(n));
            let step = Step {
                name: "interpolate",
                segs: vec![("g", 1), ("wc", n), ("w_prev", n)],
                f: &interpolate_f,
                b: &interpolate_b,
            };
            check(
                &step,
                &x,
                &Fd::default(),
                &mut rng,
                &mut rep,
                &format!("N={n}"),
            );
        }
    }
    rep.print("interpolate_fd");
}

#[test]
fn shift_fd() {
    let mut rep = Report::default();
    for s_range in [1usize, 2] {
        let k = 2 * s_range + 1;
        // N = 2 and 3 < K: shifts wrap around more than once.
        for n in [1, 2, 3, 5, 8] {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(400 + seed);
                let mut x = rng.simplex(k);
                x.extend(rng.simplex(n));
                let f = |x: &[f64]| shift_fwd(k, x);
                let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| shift_bwd(k, x, dy, gx);
                let name = format!("shift S={s_range}");
                let step = Step {
                    name: &name,
                    segs: vec![("s", k), ("wg", n)],
                    f: &f,
                    b: &b,
                };
                check(
                    &step,
                    &x,
                    &Fd::default(),
                    &mut rng,
                    &mut rep,
                    &format!("N={n}"),
                );
            }
        }
    }
    rep.print("shift_fd");
}

#[test]
fn sharpen_fd() {
    let mut rep = Report::default();
    for n in [1, 2, 3, 5, 8] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(500 + seed);
            let gamma = if seed % 5 == 0 {
                rng.uniform(5.0, 30.0)
            } else {
                random_gamma(&mut rng)
            };
            let mut x = vec![gamma];
            x.extend(rng.simplex(n));
            check_sharpen(&x, &Fd::default(), &mut rng, &mut rep, &format!("N={n}"));
            let w = sharpen_f(&x);
            assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12, "{w:?}");
        }
    }
    rep.print("sharpen_fd");
}

#[test]
fn read_fd() {
    let mut rep = Report::default();
    for (n, m) in [(1, 1), (3, 2), (5, 4), (8, 3)] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(600 + seed);
            let mut x = rng.simplex(n);
            x.extend(rng.normals(n * m, 1.0));
            let f = |x: &[f64]| read_fwd(m, x);
            let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| read_bwd(m, x, dy, gx);
            let step = Step {
                name: "read",
                segs: vec![("w", n), ("mem", n * m)],
                f: &f,
                b: &b,
            };
            check(
                &step,
                &x,
                &Fd::default(),
                &mut rng,
                &mut rep,
                &format!("N={n} M={m}"),
            );
        }
    }
    rep.print("read_fd");
}

#[test]
fn write_fd() {
    let mut rep = Report::default();
    for heads in [1, 2, 3] {
        for (n, m) in [(1, 1), (3, 2), (5, 4)] {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(700 + seed);
                let mut x = Vec::new();
                for _ in 0..heads {
                    x.extend(rng.simplex(n));
                }
                for _ in 0..heads * m {
                    x.push(sigmoid(2.0 * rng.normal()));
                }
                x.extend(rng.normals(heads * m, 1.0));
                x.extend(rng.normals(n * m, 1.0));
                check_write(&x, heads, n, m, &mut rng, &mut rep);
            }
        }
    }
    rep.print("write_fd");
}

/// The checker fails on a backward that is wrong by 1e-4 relative in one
/// component (the gamma of sharpen, one ws_i, the key of content, one write
/// weight), on every one of these problems.
#[test]
fn checker_rejects_a_wrong_gradient() {
    let wrong = 1.0 + 1e-4;
    let mut caught = 0;
    for seed in 0..5 {
        let mut rng = Rng::new(1800 + seed);
        let n = 5;
        let mut x = vec![random_gamma(&mut rng)];
        x.extend(rng.simplex(n));
        for at in [0, 3] {
            let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| {
                let mut g = vec![0.0; x.len()];
                sharpen_b(x, dy, &mut g);
                g[at] *= wrong;
                gx.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            };
            let step = Step {
                segs: vec![("gamma", 1), ("ws", n)],
                b: &b,
                ..sharpen_step()
            };
            let mut rep = Report::default();
            let r = try_check(&step, &x, &Fd::default(), &mut rng, &mut rep, "wrong");
            assert!(r.is_err(), "sharpen seed {seed}: a wrong d/dx_{at} passed");
            caught += 1;
        }

        let m = 4;
        let mut x = rng.normals(m, 1.0);
        x.push(softplus(rng.normal()));
        x.extend(rng.normals(n * m, 1.0));
        let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| {
            let mut g = vec![0.0; x.len()];
            content_bwd(m, x, dy, &mut g);
            g[1] *= wrong;
            gx.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        };
        let f = |x: &[f64]| content_fwd(m, x).1;
        let step = Step {
            name: "content",
            segs: vec![("key", m), ("beta", 1), ("mem", n * m)],
            f: &f,
            b: &b,
        };
        let mut rep = Report::default();
        let r = try_check(&step, &x, &Fd::default(), &mut rng, &mut rep, "wrong");
        assert!(r.is_err(), "content seed {seed}: a wrong d/dkey_1 passed");
        caught += 1;

        let (heads, m) = (2, 3);
        let mut x = Vec::new();
        for _ in 0..heads {
            x.extend(rng.simplex(n));
        }
        x.extend((0..heads * m).map(|_| sigmoid(rng.normal())));
        x.extend(rng.normals(heads * m + n * m, 1.0));
        let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| {
            let mut g = vec![0.0; x.len()];
            write_bwd(heads, n, m, x, dy, &mut g);
            g[n + 2] *= wrong;
            gx.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        };
        let f = |x: &[f64]| write_fwd(heads, n, m, x);
        let [lw, le, la, lm] = write_lens(heads, n, m);
        let step = Step {
            name: "write",
            segs: vec![("w", lw), ("erase", le), ("add", la), ("mem_prev", lm)],
            f: &f,
            b: &b,
        };
        let mut rep = Report::default();
        let r = try_check(&step, &x, &Fd::default(), &mut rng, &mut rep, "wrong");
        assert!(r.is_err(), "write seed {seed}: a wrong d/dw[1, 2] passed");
        caught += 1;
    }
    println!("[checker_rejects_a_wrong_gradient] all {caught} wrong gradients caught");
}

// ---------------------------------------------------------------------------
// Edge cases.

#[test]
fn content_zero_memory_rows() {
    // Rows that are exactly zero: `|M_i|_eps = sqrt(COSINE_EPS) = 1e-4`, so
    // sim_i = 0 with a derivative w.r.t. M_i of size 1e4, and the curvature
    // of sim along M_i lives on the scale 1e-4: the third-order term of the
    // central difference is, relative, about eps^2 |v_i|^2 / (2 COSINE_EPS),
    // 5e-5 |v_i|^2 at eps = 1e-6 (measured: up to 1.3e-5 relative along all
    // the inputs; and with a zero key too, along key, memory and beta
    // jointly, where the derivative is exactly 0, the difference is 1.7e-6
    // from a t^3 term beta' sim'' of size 1e8). So this test extrapolates
    // (Richardson) the central differences at eps and eps / 2, eps = 1e-6:
    // truncation O((eps^2 / COSINE_EPS)^2), 3e-9 relative, while the rounding
    // noise stays that of eps = 1e-6 (eps = 1e-8 would do too, but with a
    // noise floor 100 times higher).
    let o = Fd {
        richardson: true,
        ..Fd::default()
    };
    let mut rep = Report::default();
    for (n, m) in [(3, 2), (5, 4), (8, 6)] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(800 + seed);
            let mut x = rng.normals(m, 1.0);
            x.push(softplus(2.0 * rng.normal()) + 0.1);
            let mut mem = rng.normals(n * m, 1.0);
            // Row 0, and one or two random rows, exactly zero.
            let mut zero_rows = vec![0, rng.index(n)];
            if seed % 2 == 0 {
                zero_rows.push(rng.index(n));
            }
            for &i in &zero_rows {
                mem[i * m..(i + 1) * m].fill(0.0);
            }
            x.extend(&mem);
            let (sim, wc) = content_fwd(m, &x);
            for &i in &zero_rows {
                assert_eq!(sim[i], 0.0);
            }
            assert!(all_finite(&sim) && all_finite(&wc));
            assert!((wc.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
            let ctx = format!("N={n} M={m} seed={seed} zero rows {zero_rows:?}");
            check_content(&x, m, &o, &mut rng, &mut rep, &ctx);

            // All rows zero: every sim is 0, wc uniform.
            let mut xz = x.clone();
            xz[m + 1..].fill(0.0);
            let (sim, wc) = content_fwd(m, &xz);
            assert!(sim.iter().all(|&s| s == 0.0));
            assert!(wc.iter().all(|&w| (w - 1.0 / n as f64).abs() <= 1e-15));
            check_content(&xz, m, &o, &mut rng, &mut rep, &format!("{ctx} all zero"));

            // A zero key as well (same 1e-4 scale, on the key side).
            let mut xk = x.clone();
            xk[..m].fill(0.0);
            let (sim, _) = content_fwd(m, &xk);
            assert!(sim.iter().all(|&s| s == 0.0));
            check_content(&xk, m, &o, &mut rng, &mut rep, &format!("{ctx} zero key"));
        }
    }
    // The 1e-4 scale is COSINE_EPS's: a change there needs this test revisited.
    assert_eq!(COSINE_EPS, 1e-8);
    rep.print("content_zero_memory_rows");
}

#[test]
fn content_beta_near_zero() {
    let mut rep = Report::default();
    for (n, m) in [(3, 2), (5, 4), (8, 6)] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(900 + seed);
            for beta in [0.0, 1e-8] {
                let mut x = rng.normals(m, 1.0);
                x.push(beta);
                x.extend(rng.normals(n * m, 1.0));
                let (_, wc) = content_fwd(m, &x);
                let uniform = 1.0 / n as f64;
                // |wc_i - 1/N| <= beta |sim_i - mean| <= 2 beta.
                let tol = if beta == 0.0 { 1e-16 } else { 2.0 * beta };
                assert!(wc.iter().all(|&w| (w - uniform).abs() <= tol), "{wc:?}");
                // At beta = 0, `dL/dkey` and `dL/dmem` are exactly 0 and so
                // are the differences (wc does not depend on them at all).
                // At beta = 1e-8 they are of size 1e-8 or less, under the
                // rounding noise of the difference (~1e-9, see `difference`):
                // along the key or the memory alone the check is then
                // absolute (|fd - an| <= noise), so the analytic gradient is
                // also checked against its bound, of order beta.
                let ctx = format!("N={n} M={m} beta={beta:e}");
                check_content(&x, m, &Fd::default(), &mut rng, &mut rep, &ctx);
                let f = |x: &[f64]| content_fwd(m, x).1;
                let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| content_bwd(m, x, dy, gx);
                let step = Step {
                    name: "content",
                    segs: Vec::new(),
                    f: &f,
                    b: &b,
                };
                let dy = rng.normals(n, 1.0);
                let g = gradient(&step, &x, &dy, &mut rng, &ctx);
                // With ds_i = beta dz_i and |dz_i| <= 2 wc_i max|dy|:
                // |dkey_j| <= 2 sum_i |ds_i| / |key|_eps and
                // |dmem_ij| <= 2 |ds_i| / |M_i|_eps (0 at beta = 0).
                let dz_max = 2.0 * dy.iter().fold(0.0f64, |a, d| a.max(d.abs()));
                let kn = (dot(&x[..m], &x[..m]) + COSINE_EPS).sqrt();
                let bound = 1.001 * 2.0 * beta * dz_max / kn;
                for &v in &g[..m] {
                    assert!(v.abs() <= bound, "{ctx}: dkey {v} > {bound}");
                }
                for (i, row) in x[m + 1..].chunks(m).enumerate() {
                    let mn = (dot(row, row) + COSINE_EPS).sqrt();
                    let bound = 1.001 * 2.0 * beta * dz_max * wc[i] / mn;
                    for &v in &g[m + 1 + i * m..m + 1 + (i + 1) * m] {
                        assert!(v.abs() <= bound, "{ctx}: dmem {v} > {bound}");
                    }
                }
                rep.value(
                    format!("content |dkey|, |dmem| at beta={beta:e} (max abs)"),
                    g[..m]
                        .iter()
                        .chain(&g[m + 1..])
                        .fold(0.0, |a, v| a.max(v.abs())),
                );
            }
        }
    }
    rep.print("content_beta_near_zero");
}

/// A random positive weighting with the given entries set to exactly 0 and
/// the rest renormalised to sum 1.
fn simplex_with_zeros(rng: &mut Rng, n: usize, zeros: &[usize]) -> Vec<f64> {
    let mut ws = rng.simplex(n);
    for &i in zeros {
        ws[i] = 0.0;
    }
    let s: f64 = ws.iter().sum();
    ws.iter_mut().for_each(|v| *v /= s);
    ws
}

fn zero_sets(n: usize) -> Vec<Vec<usize>> {
    let mut sets = vec![vec![0], vec![n - 1], vec![1, n - 2], vec![0, 2, n - 1]];
    for z in &mut sets {
        z.dedup();
    }
    sets
}

#[test]
fn sharpen_zero_entries_gamma_above_one() {
    // Some ws_i == 0 exactly (the domain is ws >= 0) and gamma > 1: w_i == 0
    // exactly and dL/dws_i == 0 (one-sided). Checked by one-sided
    // differences that only move ws_i upwards.
    //
    // With ws_i = t: w_i = t^gamma / (G + t^gamma), G = sum_j ws_j^gamma, and
    // exactly L(t) - L(0) = t^gamma / (G + t^gamma) (dy_i - sum_j w_j dy_j),
    // so the one-sided difference along e_i tends to 0 as eps^(gamma - 1),
    // no faster. Random directions (all inputs, each alone) use the
    // second-order one-sided difference, tolerance 1e-6, for gamma >= 2:
    // that term is then O(eps^(gamma-1)) relative, 1e-9 at gamma = 2.5, and
    // cancels at gamma = 2 (the second-order formula is exact on t^2). Along
    // e_i alone, also for gammas in (1, 2), the first-order difference is
    // checked against the exact expression and its bound
    // eps^(gamma-1) |dy_i - w.dy| / G, with the analytic value exactly 0.
    let mut rep = Report::default();
    for n in [3, 5, 8] {
        for zeros in zero_sets(n) {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(1000 + seed);
                let gamma = [2.0, 2.5, 3.0, 4.5, 12.0][seed as usize % 5];
                let ws = simplex_with_zeros(&mut rng, n, &zeros);
                let mut x = vec![gamma];
                x.extend(&ws);
                let w = sharpen_f(&x);
                for &i in &zeros {
                    assert_eq!(w[i], 0.0, "w_{i} must be exactly 0");
                }
                assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
                let mut nonneg = vec![false; n + 1];
                for &i in &zeros {
                    nonneg[i + 1] = true;
                }
                let o = Fd {
                    one_sided: true,
                    nonneg,
                    ..Fd::default()
                };
                let ctx = format!("N={n} zeros {zeros:?} gamma={gamma}");
                check_sharpen(&x, &o, &mut rng, &mut rep, &ctx);

                // Along e_i, for gamma above and below 2.
                for gamma in [gamma, 1.25, 1.5, 1.75] {
                    x[0] = gamma;
                    let w = sharpen_f(&x);
                    let dy = rng.normals(n, 1.0);
                    let step = Step {
                        segs: Vec::new(),
                        ..sharpen_step()
                    };
                    let g = gradient(&step, &x, &dy, &mut rng, &ctx);
                    let big_g: f64 = ws.iter().map(|v| v.powf(gamma)).sum();
                    let wdy = dot(&w, &dy);
                    let loss = |p: &[f64]| dot(&sharpen_f(p), &dy);
                    for &i in &zeros {
                        assert_eq!(g[i + 1], 0.0, "{ctx}: dL/dws_{i} must be 0");
                        let mut p = x.clone();
                        p[i + 1] = EPS;
                        let fd = (loss(&p) - loss(&x)) / EPS;
                        // The rounding noise of L over eps.
                        let noise = 1e-15 * dy.iter().map(|v| v.abs()).sum::<f64>() / EPS;
                        let t = EPS.powf(gamma);
                        let exact = t / (big_g + t) * (dy[i] - wdy) / EPS;
                        let err = (fd - exact).abs();
                        assert!(
                            err <= 1e-6 * exact.abs() + noise,
                            "{ctx} gamma={gamma}: fd {fd:e} exact {exact:e}"
                        );
                        let bound = EPS.powf(gamma - 1.0) * (dy[i] - wdy).abs() / big_g;
                        assert!(fd.abs() <= bound + noise, "{ctx}: {fd:e} > {bound:e}");
                        rep.value(
                            "sharpen e_i: |fd - exact t^g/(G+t^g)/eps| (abs)".into(),
                            err,
                        );
                        rep.value(
                            format!("sharpen e_i: |fd| at eps=1e-6, gamma={gamma}"),
                            fd.abs(),
                        );
                    }
                }
            }
        }
    }
    rep.print("sharpen_zero_entries_gamma_above_one");
}

#[test]
fn sharpen_zero_entries_gamma_one() {
    // gamma == 1 exactly: w = ws / sum ws, and at ws_i = 0 the backward gives
    // the one-sided limit (dy_i - w.dy) / sum ws. Directions over ws (with
    // ws_i only moving up) use the one-sided difference. gamma is checked
    // alone by central differences (w_i stays 0 on both sides) but not
    // jointly with the zero ws_i: along ws_i = t, gamma = 1 + c t, the
    // function has a t^2 ln t term, which the one-sided difference only
    // resolves to O(eps) (about 1e-6 relative), not O(eps^2).
    let mut rep = Report::default();
    for n in [3, 5, 8] {
        for zeros in zero_sets(n) {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(1100 + seed);
                let mut ws = simplex_with_zeros(&mut rng, n, &zeros);
                // Not normalised: the limit is 1 / sum ws, not 1.
                let scale = rng.uniform(0.5, 2.0);
                ws.iter_mut().for_each(|v| *v *= scale);
                let mut x = vec![1.0];
                x.extend(&ws);
                let w = sharpen_f(&x);
                for &i in &zeros {
                    assert_eq!(w[i], 0.0);
                }
                assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
                let mut nonneg = vec![false; n + 1];
                for &i in &zeros {
                    nonneg[i + 1] = true;
                }
                let ctx = format!("N={n} zeros {zeros:?} gamma=1");
                let o = Fd {
                    one_sided: true,
                    nonneg,
                    only: vec!["ws"],
                    ..Fd::default()
                };
                check_sharpen(&x, &o, &mut rng, &mut rep, &ctx);
                let o = Fd {
                    only: vec!["gamma"],
                    ..Fd::default()
                };
                check_sharpen(&x, &o, &mut rng, &mut rep, &ctx);

                // Along e_i: the backward's value is the one-sided limit.
                let dy = rng.normals(n, 1.0);
                let step = Step {
                    segs: Vec::new(),
                    ..sharpen_step()
                };
                let g = gradient(&step, &x, &dy, &mut rng, &ctx);
                let total: f64 = ws.iter().sum();
                let wdy = dot(&w, &dy);
                for &i in &zeros {
                    let limit = (dy[i] - wdy) / total;
                    assert!(rel(g[i + 1], limit, FLOOR) <= 1e-14, "{ctx}: {}", g[i + 1]);
                    let mut v = vec![0.0; n + 1];
                    v[i + 1] = 1.0;
                    let o = Fd {
                        one_sided: true,
                        ..Fd::default()
                    };
                    let d = difference(&sharpen_f, &dy, &x, &v, &o);
                    let key = "sharpen gamma=1 d/dws_i at ws_i = 0, one-sided".into();
                    let r = compare(&d, &g, &o, &mut rep, key, &|| format!("{ctx}: e_{i}"));
                    r.unwrap_or_else(|e| panic!("{e}"));
                }
            }
        }
    }
    rep.print("sharpen_zero_entries_gamma_one");
}

#[test]
fn sharpen_gamma_one_is_normalisation() {
    let mut rep = Report::default();
    for n in [1, 2, 3, 5, 8] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(1200 + seed);
            let scale = rng.uniform(0.1, 3.0);
            let ws: Vec<f64> = rng.simplex(n).iter().map(|v| v * scale).collect();
            let mut x = vec![1.0];
            x.extend(&ws);
            let w = sharpen_f(&x);
            let total: f64 = ws.iter().sum();
            for (a, b) in w.iter().zip(&ws) {
                let e = (a - b / total).abs();
                assert!(e <= 1e-15, "w {a} vs ws / sum {}", b / total);
                rep.value("sharpen gamma=1: |w - ws/sum| (abs)".into(), e);
            }
            assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
            check_sharpen(
                &x,
                &Fd::default(),
                &mut rng,
                &mut rep,
                &format!("N={n} gamma=1"),
            );
        }
    }
    rep.print("sharpen_gamma_one_is_normalisation");
}

#[test]
fn interpolate_g_zero_and_one() {
    let mut rep = Report::default();
    for n in [1, 3, 5, 8] {
        for seed in 0..SEEDS {
            let mut rng = Rng::new(1300 + seed);
            let wc = rng.simplex(n);
            let wp = rng.simplex(n);
            for g in [0.0, 1.0] {
                let mut x = vec![g];
                x.extend(&wc);
                x.extend(&wp);
                let wg = interpolate_f(&x);
                assert_eq!(wg, if g == 0.0 { wp.clone() } else { wc.clone() }, "g={g}");
                let step = Step {
                    name: "interpolate",
                    segs: vec![("g", 1), ("wc", n), ("w_prev", n)],
                    f: &interpolate_f,
                    b: &interpolate_b,
                };
                // g at the ends of [0, 1]: the map is affine in g, so the
                // central difference across the end is still exact.
                let ctx = format!("N={n} g={g}");
                check(&step, &x, &Fd::default(), &mut rng, &mut rep, &ctx);
                // The input that does not contribute gets exactly 0.
                let dy = rng.normals(n, 1.0);
                let gr = gradient(&step, &x, &dy, &mut rng, &ctx);
                let dead = if g == 0.0 { &gr[1..=n] } else { &gr[n + 1..] };
                assert!(dead.iter().all(|&v| v == 0.0), "{ctx}: {gr:?}");
            }
        }
    }
    rep.print("interpolate_g_zero_and_one");
}

#[test]
fn shift_one_hot_is_rotation() {
    let mut rep = Report::default();
    for s_range in [1usize, 2] {
        let k = 2 * s_range + 1;
        for n in [1, 2, 3, 5, 8] {
            let mut rng = Rng::new(1400 + n as u64);
            let wg = rng.simplex(n);
            for j in 0..k {
                let by = j as isize - s_range as isize;
                let mut x = vec![0.0; k];
                x[j] = 1.0;
                x.extend(&wg);
                let ws = shift_fwd(k, &x);
                for (i, &v) in ws.iter().enumerate() {
                    let from = (i as isize - by).rem_euclid(n as isize) as usize;
                    assert_eq!(v, wg[from], "S={s_range} N={n} shift {by}: ws_{i}");
                }
                let f = |x: &[f64]| shift_fwd(k, x);
                let b = |x: &[f64], dy: &[f64], gx: &mut [f64]| shift_bwd(k, x, dy, gx);
                let name = format!("shift S={s_range} one-hot");
                let step = Step {
                    name: &name,
                    segs: vec![("s", k), ("wg", n)],
                    f: &f,
                    b: &b,
                };
                let ctx = format!("N={n} shift {by}");
                check(&step, &x, &Fd::default(), &mut rng, &mut rep, &ctx);
            }
            // The direction: shift +1 moves the weight of row i to row i + 1.
            if n >= 2 {
                for at in 0..n {
                    let mut x = vec![0.0; k];
                    x[s_range + 1] = 1.0;
                    let mut one = vec![0.0; n];
                    one[at] = 1.0;
                    x.extend(&one);
                    let ws = shift_fwd(k, &x);
                    let mut want = vec![0.0; n];
                    want[(at + 1) % n] = 1.0;
                    assert_eq!(ws, want, "shift +1 of a one-hot at {at}, N={n}");
                    // And -1 to row i - 1.
                    x[..k].fill(0.0);
                    x[s_range - 1] = 1.0;
                    let ws = shift_fwd(k, &x);
                    let mut want = vec![0.0; n];
                    want[(at + n - 1) % n] = 1.0;
                    assert_eq!(ws, want, "shift -1 of a one-hot at {at}, N={n}");
                }
            }
        }
    }
    rep.print("shift_one_hot_is_rotation");
}

#[test]
fn write_erase_one_one_hot_replaces_row() {
    let mut rep = Report::default();
    let (n, m) = (5, 4);
    for seed in 0..SEEDS {
        let mut rng = Rng::new(1500 + seed);
        let mem_prev = rng.normals(n * m, 1.0);
        let add = rng.normals(2 * m, 1.0);
        let (r0, r1) = (rng.index(n), rng.index(n));
        // W = 1: row r0 becomes add, the others are unchanged.
        let mut x = vec![0.0; n];
        x[r0] = 1.0;
        x.extend(vec![1.0; m]);
        x.extend(&add[..m]);
        x.extend(&mem_prev);
        let mem = write_fwd(1, n, m, &x);
        for i in 0..n {
            let want = if i == r0 {
                &add[..m]
            } else {
                &mem_prev[i * m..(i + 1) * m]
            };
            assert_eq!(&mem[i * m..(i + 1) * m], want, "W=1 row {i}");
        }
        check_write(&x, 1, n, m, &mut rng, &mut rep);

        // W = 2, full erase on rows r0 and r1 (maybe the same row): all the
        // erases apply before the adds, so a row hit by both heads is
        // add0 + add1, one hit by one head that head's add.
        let mut x = vec![0.0; 2 * n];
        x[r0] = 1.0;
        x[n + r1] = 1.0;
        x.extend(vec![1.0; 2 * m]);
        x.extend(&add);
        x.extend(&mem_prev);
        let mem = write_fwd(2, n, m, &x);
        for i in 0..n {
            let row = &mem[i * m..(i + 1) * m];
            for j in 0..m {
                let want = match (i == r0, i == r1) {
                    (true, true) => add[j] + add[m + j],
                    (true, false) => add[j],
                    (false, true) => add[m + j],
                    (false, false) => mem_prev[i * m + j],
                };
                assert_eq!(row[j], want, "W=2 rows {r0} {r1}: row {i} col {j}");
            }
        }
        // Keep factors exactly 0: the backward must not divide by them.
        check_write(&x, 2, n, m, &mut rng, &mut rep);
    }
    rep.print("write_erase_one_one_hot_replaces_row");
}

#[test]
fn sharpened_weightings_sum_to_one() {
    // The whole addressing of one head: content, interpolation, shift,
    // sharpening, on random inputs with sharp and flat key strengths, zero
    // entries in w_prev (and so possibly in ws), and gammas from 1 to 50.
    let mut worst: f64 = 0.0;
    let mut with_zeros = 0;
    for seed in 0..500u64 {
        let mut rng = Rng::new(1600 + seed);
        let n = 1 + rng.index(10);
        let m = 1 + rng.index(6);
        let s_range = 1 + rng.index(2);
        let key = rng.normals(m, 1.0);
        let beta = [0.0, 1e-8, 1.0, 30.0, 200.0][seed as usize % 5];
        let mem = rng.normals(n * m, 1.0);
        let (mut sim, mut wc) = (vec![0.0; n], vec![0.0; n]);
        content(&key, beta, &mem, &mut sim, &mut wc);
        let mut w_prev = rng.simplex(n);
        if seed % 3 == 0 {
            // One-hot: with g = 0 (or a saturated wc) wg and ws get exact
            // zeros.
            w_prev.fill(0.0);
            w_prev[rng.index(n)] = 1.0;
        }
        let g = [0.0, 1.0, 0.5, sigmoid(rng.normal())][seed as usize % 4];
        let mut wg = vec![0.0; n];
        interpolate(g, &wc, &w_prev, &mut wg);
        let mut s = vec![0.0; 2 * s_range + 1];
        if seed % 2 == 0 {
            s[rng.index(2 * s_range + 1)] = 1.0;
        } else {
            s = rng.simplex(2 * s_range + 1);
        }
        let mut ws = vec![0.0; n];
        shift(&s, &wg, &mut ws);
        let gamma = [1.0, 1.0 + 1e-12, 2.0, 7.5, 50.0, random_gamma(&mut rng)][seed as usize % 6];
        let mut w = vec![0.0; n];
        sharpen(gamma, &ws, &mut w);
        with_zeros += usize::from(w.contains(&0.0));
        for (name, v) in [("wc", &wc), ("wg", &wg), ("ws", &ws), ("w", &w)] {
            assert!(v.iter().all(|&a| a.is_finite() && a >= 0.0), "{name} {v:?}");
            let e = (v.iter().sum::<f64>() - 1.0).abs();
            assert!(e <= 1e-12, "seed {seed}: {name} sums to 1 + {e:e}: {v:?}");
            worst = worst.max(e);
        }
    }
    println!(
        "[sharpened_weightings_sum_to_one] worst |sum - 1| {worst:.2e} over 500 heads \
         ({with_zeros} with exact zeros in w)"
    );
}

// ---------------------------------------------------------------------------
// float32 against float64.

/// The inputs of every forward, in f64 (values exact in f32).
struct Inputs {
    m: usize,
    /// Logits (softplus, sigmoid, softmax).
    z: Vec<f64>,
    key: Vec<f64>,
    beta: f64,
    mem: Vec<f64>,
    g: f64,
    wc: Vec<f64>,
    w_prev: Vec<f64>,
    s: Vec<f64>,
    wg: Vec<f64>,
    gamma: f64,
    ws: Vec<f64>,
    /// Read weighting.
    w: Vec<f64>,
    /// Write weightings `[W, N]`, erase and add `[W, M]`.
    ww: Vec<f64>,
    erase: Vec<f64>,
    add: Vec<f64>,
}

/// Every forward, in `T`; the outputs in f64, named.
fn forwards<T: Real + Into<f64>>(i: &Inputs) -> Vec<(&'static str, Vec<f64>)> {
    let c = |v: &[f64]| -> Vec<T> { v.iter().map(|&a| T::of(a)).collect() };
    let back = |v: &[T]| -> Vec<f64> { v.iter().map(|&a| a.into()).collect() };
    let (n, m) = (i.wc.len(), i.m);
    let zero = || vec![T::of(0.0); n];
    let mut out = Vec::new();
    let sp: Vec<T> = i.z.iter().map(|&a| softplus(T::of(a))).collect();
    out.push(("softplus", back(&sp)));
    let sg: Vec<T> = i.z.iter().map(|&a| sigmoid(T::of(a))).collect();
    out.push(("sigmoid", back(&sg)));
    let mut p = c(&i.z);
    softmax_in_place(&mut p);
    out.push(("softmax", back(&p)));
    let (mut sim, mut wc) = (zero(), zero());
    content(&c(&i.key), T::of(i.beta), &c(&i.mem), &mut sim, &mut wc);
    out.push(("content sim", back(&sim)));
    out.push(("content wc", back(&wc)));
    let mut o = zero();
    interpolate(T::of(i.g), &c(&i.wc), &c(&i.w_prev), &mut o);
    out.push(("interpolate", back(&o)));
    shift(&c(&i.s), &c(&i.wg), &mut o);
    out.push(("shift", back(&o)));
    sharpen(T::of(i.gamma), &c(&i.ws), &mut o);
    out.push(("sharpen", back(&o)));
    let mut r = vec![T::of(0.0); m];
    read(&c(&i.w), &c(&i.mem), &mut r);
    out.push(("read", back(&r)));
    let mut new = vec![T::of(0.0); n * m];
    write(m, &c(&i.ww), &c(&i.erase), &c(&i.add), &c(&i.mem), &mut new);
    out.push(("write", back(&new)));
    out
}

#[test]
fn f32_matches_f64() {
    // Inputs exact in f32; each forward in both precisions; every output
    // element must agree to 1e-5 relative, |y32 - y64| / |y64|. The signed
    // outputs (sim, read, write) can be small by cancellation, and f32 is
    // then accurate to its epsilon, 6e-8, times the size of the terms, not
    // of the result: for them the denominator has the floor 1e-2 times that
    // size (1 for the cosine sim, max |M| for read, max(|M|, |add|) for
    // write), so below it the check is absolute, 1e-7 of the terms. The worst
    // plain relative error is printed for them too.
    let r32 = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|a| f64::from(a as f32)).collect() };
    let s32 = |a: f64| f64::from(a as f32);
    let mut rep = Report::default();
    for seed in 0..200u64 {
        let mut rng = Rng::new(1700 + seed);
        let n = 1 + rng.index(10);
        let m = 1 + rng.index(8);
        let heads = 1 + rng.index(2);
        let k = [3, 5][rng.index(2)];
        let mut ww = Vec::new();
        for _ in 0..heads {
            ww.extend(rng.simplex(n));
        }
        let mut mem = rng.normals(n * m, 1.0);
        let mut ws = rng.simplex(n);
        if seed % 3 == 0 {
            // A zero memory row and a zero entry of ws (exact in both).
            let i = rng.index(n);
            mem[i * m..(i + 1) * m].fill(0.0);
            if n > 1 {
                ws[rng.index(n)] = 0.0;
            }
        }
        let inp = Inputs {
            m,
            z: r32(rng.normals(n, 3.0)),
            key: r32(rng.normals(m, 1.0)),
            beta: s32(softplus(2.0 * rng.normal())),
            mem: r32(mem),
            g: s32(sigmoid(2.0 * rng.normal())),
            wc: r32(rng.simplex(n)),
            w_prev: r32(rng.simplex(n)),
            s: r32(rng.simplex(k)),
            wg: r32(rng.simplex(n)),
            gamma: s32(if seed % 4 == 0 {
                1.0
            } else {
                random_gamma(&mut rng)
            }),
            ws: r32(ws),
            w: r32(rng.simplex(n)),
            ww: r32(ww),
            erase: r32((0..heads * m)
                .map(|_| sigmoid(2.0 * rng.normal()))
                .collect()),
            add: r32(rng.normals(heads * m, 1.0)),
        };
        let a = forwards::<f32>(&inp);
        let b = forwards::<f64>(&inp);
        for ((name, y32), (_, y64)) in a.iter().zip(&b) {
            // The size of the terms of the signed outputs.
            let terms = match *name {
                "content sim" => Some(1.0),
                "read" => Some(amax(&inp.mem)),
                "write" => Some(amax(&inp.mem).max(amax(&inp.add))),
                _ => None,
            };
            let signed = terms.is_some();
            let floor = (1e-2 * terms.unwrap_or(0.0)).max(1e-300);
            for (x, y) in y32.iter().zip(y64) {
                let e = rel(*x, *y, floor);
                assert!(
                    e <= 1e-5,
                    "seed {seed} {name}: f32 {x} vs f64 {y} (rel {e:e})"
                );
                rep.value(format!("{name}: f32 vs f64 (checked)"), e);
                if signed {
                    rep.value(format!("{name}: plain rel (info)"), rel(*x, *y, 1e-300));
                }
            }
        }
    }
    rep.print("f32_matches_f64");
}
