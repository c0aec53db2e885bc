//! L-BFGS and OWL-QN with Breeze's stopping rule, as MLlib runs them.
//!
//! * Direction: the two-loop recursion over the last `m` (s, y) pairs (MLlib uses m = 10).
//! * OWL-QN (Andrew & Gao) when any coordinate has an L1 weight: the pseudo-gradient replaces
//!   the gradient, the direction is kept in the orthant of the pseudo-gradient's descent, and
//!   every trial point is projected back onto the orthant of the current point.
//! * Step: a strong-Wolfe line search (c1 = 1e-4, c2 = 0.9, at most 10 expansions and 10
//!   zooms) for L-BFGS, backtracking on the projected arc for OWL-QN; the first iteration
//!   starts at 1/‖d‖ as Breeze does. A failed search resets the history once, then stops.
//! * Stop (Breeze's `defaultConvergenceCheck`, fvalMemory 20): `maxIter` iterations; or the
//!   objective (with its L1 part) moved at most `tol·|f₀|` over the last 20 values — the
//!   history starts with +∞, so this cannot fire before 20 iterations; or
//!   ‖∇f‖₂ ≤ max(tol·|f|, 1e-8).

/// A smooth objective: writes the gradient at `x` into `grad` and returns the value.
pub trait Objective {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

impl<F: FnMut(&[f64], &mut [f64]) -> f64> Objective for F {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self(x, grad)
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convergence {
    MaxIterations,
    FunctionValues,
    Gradient,
    SearchFailed,
}

/// The minimiser and how it got there.
#[derive(Debug, Clone)]
pub struct Solution {
    pub x: Vec<f64>,
    /// Objective value (with the L1 part) per iteration, the start first.
    pub history: Vec<f64>,
    pub iterations: usize,
    pub reason: Convergence,
}

/// The settings of one run.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    pub max_iter: usize,
    pub tol: f64,
    pub m: usize,
    /// L1 weight per coordinate (empty: none, plain L-BFGS).
    pub l1: Vec<f64>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

impl Lbfgs {
    pub fn new(max_iter: usize, tol: f64) -> Self {
        Lbfgs { max_iter, tol, m: 10, l1: Vec::new() }
    }

    pub fn with_l1(mut self, l1: Vec<f64>) -> Self {
        self.l1 = l1;
        self
    }

    fn owlqn(&self) -> bool {
        self.l1.iter().any(|w| *w != 0.0)
    }

    fn l1_value(&self, x: &[f64]) -> f64 {
        self.l1.iter().zip(x).map(|(w, v)| w * v.abs()).sum()
    }

    /// The pseudo-gradient of f + Σ l1ᵢ|xᵢ| (the gradient itself without L1).
    fn pseudo_gradient(&self, x: &[f64], g: &[f64]) -> Vec<f64> {
        if !self.owlqn() {
            return g.to_vec();
        }
        x.iter()
            .zip(g)
            .zip(&self.l1)
            .map(|((xi, gi), w)| {
                if *w == 0.0 {
                    *gi
                } else if *xi > 0.0 {
                    gi + w
                } else if *xi < 0.0 {
                    gi - w
                } else if gi + w < 0.0 {
                    gi + w
                } else if gi - w > 0.0 {
                    gi - w
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Minimises `f` (plus the L1 part) from `x0`.
    pub fn minimize(&self, f: &mut dyn Objective, x0: Vec<f64>) -> Solution {
        let n = x0.len();
        let mut x = x0;
        let mut g = vec![0.0; n];
        let mut fx = f.eval(&x, &mut g);
        let mut adj = fx + self.l1_value(&x);
        let initial = adj;
        let mut history = vec![adj];
        let mut fvals: Vec<f64> = vec![f64::INFINITY];
        let mut s_hist: Vec<Vec<f64>> = Vec::new();
        let mut y_hist: Vec<Vec<f64>> = Vec::new();
        let mut iter = 0usize;
        let mut failed_once = false;
        loop {
            let pg = self.pseudo_gradient(&x, &g);
            // Breeze checks the state it has just reached, in this order.
            if iter >= self.max_iter {
                return Solution { x, history, iterations: iter, reason: Convergence::MaxIterations };
            }
            if fvals.len() >= 2 {
                let max = fvals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if (adj - max).abs() <= self.tol * initial.abs() {
                    return Solution { x, history, iterations: iter, reason: Convergence::FunctionValues };
                }
            }
            if norm(&pg) <= (self.tol * adj.abs()).max(1e-8) {
                return Solution { x, history, iterations: iter, reason: Convergence::Gradient };
            }
            // Direction: −H·pg by the two-loop recursion.
            let mut d: Vec<f64> = pg.iter().map(|v| -v).collect();
            let k = s_hist.len();
            let mut alpha = vec![0.0; k];
            for i in (0..k).rev() {
                let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
                alpha[i] = rho * dot(&s_hist[i], &d);
                for (dj, yj) in d.iter_mut().zip(&y_hist[i]) {
                    *dj -= alpha[i] * yj;
                }
            }
            if k > 0 {
                let gamma = dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1]);
                for dj in d.iter_mut() {
                    *dj *= gamma;
                }
            }
            for i in 0..k {
                let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
                let beta = rho * dot(&y_hist[i], &d);
                for (dj, sj) in d.iter_mut().zip(&s_hist[i]) {
                    *dj += (alpha[i] - beta) * sj;
                }
            }
            if self.owlqn() {
                // Keep only coordinates that descend along the pseudo-gradient.
                for (dj, pj) in d.iter_mut().zip(&pg) {
                    if *dj * pj >= 0.0 {
                        *dj = 0.0;
                    }
                }
            }
            if dot(&d, &pg) >= 0.0 || d.iter().any(|v| !v.is_finite()) {
                s_hist.clear();
                y_hist.clear();
                d = pg.iter().map(|v| -v).collect();
            }
            let init_step = if iter == 0 { 1.0 / norm(&d).max(f64::MIN_POSITIVE) } else { 1.0 };
            let step = if self.owlqn() { self.backtrack(f, &x, fx, adj, &pg, &d, init_step) } else { strong_wolfe(f, &x, fx, &g, &d, init_step) };
            let Some((x_new, f_new, g_new)) = step else {
                if failed_once || s_hist.is_empty() {
                    return Solution { x, history, iterations: iter, reason: Convergence::SearchFailed };
                }
                failed_once = true;
                s_hist.clear();
                y_hist.clear();
                continue;
            };
            failed_once = false;
            let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
            let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
            if dot(&s, &y) > 1e-10 * dot(&y, &y).max(f64::MIN_POSITIVE) {
                s_hist.push(s);
                y_hist.push(y);
                if s_hist.len() > self.m {
                    s_hist.remove(0);
                    y_hist.remove(0);
                }
            }
            x = x_new;
            fx = f_new;
            g = g_new;
            adj = fx + self.l1_value(&x);
            history.push(adj);
            fvals.push(adj);
            if fvals.len() > 20 {
                fvals.remove(0);
            }
            iter += 1;
        }
    }

    /// OWL-QN's step: halve until the projected point decreases the objective enough.
    #[allow(clippy::too_many_arguments)]
    fn backtrack(&self, f: &mut dyn Objective, x: &[f64], _fx: f64, adj: f64, pg: &[f64], d: &[f64], init: f64) -> Option<(Vec<f64>, f64, Vec<f64>)> {
        // The orthant: the sign of x, or of the descent direction where x is 0.
        let orthant: Vec<f64> = x.iter().zip(pg).map(|(xi, pi)| if *xi != 0.0 { xi.signum() } else { -pi.signum() }).collect();
        let mut step = init;
        let mut g = vec![0.0; x.len()];
        for _ in 0..60 {
            let xn: Vec<f64> = x
                .iter()
                .zip(d)
                .zip(&orthant)
                .zip(&self.l1)
                .map(|(((xi, di), o), w)| {
                    let v = xi + step * di;
                    if *w != 0.0 && v * o <= 0.0 {
                        0.0
                    } else {
                        v
                    }
                })
                .collect();
            let fnew = f.eval(&xn, &mut g);
            let adj_new = fnew + self.l1_value(&xn);
            let decrease: f64 = pg.iter().zip(xn.iter().zip(x)).map(|(p, (a, b))| p * (a - b)).sum();
            if adj_new.is_finite() && adj_new <= adj + 1e-4 * decrease {
                return Some((xn, fnew, g));
            }
            step *= 0.5;
        }
        None
    }
}

/// A line search for the strong Wolfe conditions (Nocedal & Wright, algorithms 3.5 and 3.6,
/// cubic interpolation in the zoom).
fn strong_wolfe(f: &mut dyn Objective, x: &[f64], f0: f64, g0: &[f64], d: &[f64], init: f64) -> Option<(Vec<f64>, f64, Vec<f64>)> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let dphi0 = dot(g0, d);
    if dphi0 >= 0.0 {
        return None;
    }
    let mut eval = |a: f64| {
        let xa: Vec<f64> = x.iter().zip(d).map(|(xi, di)| xi + a * di).collect();
        let mut g = vec![0.0; x.len()];
        let fa = f.eval(&xa, &mut g);
        let dphi = dot(&g, d);
        (fa, dphi, xa, g)
    };
    let (mut a_prev, mut f_prev, mut d_prev) = (0.0, f0, dphi0);
    let mut a = init;
    for i in 0..10 {
        let (fa, da, xa, ga) = eval(a);
        if !fa.is_finite() {
            // Overshot into overflow: come back towards the start.
            a = 0.5 * (a_prev + a);
            continue;
        }
        if fa > f0 + C1 * a * dphi0 || (i > 0 && fa >= f_prev) {
            return zoom(&mut eval, f0, dphi0, (a_prev, f_prev, d_prev), (a, fa, da));
        }
        if da.abs() <= -C2 * dphi0 {
            return Some((xa, fa, ga));
        }
        if da >= 0.0 {
            return zoom(&mut eval, f0, dphi0, (a, fa, da), (a_prev, f_prev, d_prev));
        }
        a_prev = a;
        f_prev = fa;
        d_prev = da;
        a *= 1.5;
    }
    None
}

type Eval<'a> = dyn FnMut(f64) -> (f64, f64, Vec<f64>, Vec<f64>) + 'a;

fn zoom(eval: &mut Eval<'_>, f0: f64, dphi0: f64, mut lo: (f64, f64, f64), mut hi: (f64, f64, f64)) -> Option<(Vec<f64>, f64, Vec<f64>)> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let mut best: Option<(Vec<f64>, f64, Vec<f64>)> = None;
    for _ in 0..10 {
        let a = interpolate(lo, hi);
        let (fa, da, xa, ga) = eval(a);
        if fa > f0 + C1 * a * dphi0 || fa >= lo.1 {
            hi = (a, fa, da);
        } else {
            if da.abs() <= -C2 * dphi0 {
                return Some((xa, fa, ga));
            }
            if da * (hi.0 - lo.0) >= 0.0 {
                hi = lo;
            }
            lo = (a, fa, da);
            best = Some((xa, fa, ga));
        }
        if (hi.0 - lo.0).abs() < 1e-16 * lo.0.abs().max(1e-16) {
            break;
        }
    }
    // Sufficient decrease without the curvature condition still makes progress.
    best.filter(|b| b.1 < f0)
}

/// The minimiser of the cubic through two points with their slopes, kept inside the bracket
/// (bisection when the cubic has no usable minimum).
fn interpolate(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    let (x0, f0, d0) = a;
    let (x1, f1, d1) = b;
    let (lo, hi) = if x0 < x1 { (x0, x1) } else { (x1, x0) };
    let d1_ = d0 + d1 - 3.0 * (f0 - f1) / (x0 - x1);
    let disc = d1_ * d1_ - d0 * d1;
    let mid = 0.5 * (x0 + x1);
    if disc < 0.0 || !disc.is_finite() {
        return mid;
    }
    let d2 = (x1 - x0).signum() * disc.sqrt();
    let t = x1 - (x1 - x0) * (d1 + d2 - d1_) / (d1 - d0 + 2.0 * d2);
    let margin = 0.1 * (hi - lo);
    if !t.is_finite() || t < lo + margin || t > hi - margin {
        mid
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rosenbrock_and_lasso() {
        let mut f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let s = Lbfgs::new(1000, 1e-12).minimize(&mut f, vec![-1.2, 1.0]);
        assert!((s.x[0] - 1.0).abs() < 1e-5 && (s.x[1] - 1.0).abs() < 1e-5, "{s:?}");
        // min ½(x−3)² + ½(y+0.5)² + |x| + |y|: x = 2, y = 0.
        let mut q = |x: &[f64], g: &mut [f64]| {
            g[0] = x[0] - 3.0;
            g[1] = x[1] + 0.5;
            0.5 * (x[0] - 3.0).powi(2) + 0.5 * (x[1] + 0.5).powi(2)
        };
        let s = Lbfgs::new(100, 1e-12).with_l1(vec![1.0, 1.0]).minimize(&mut q, vec![0.0, 0.0]);
        assert!((s.x[0] - 2.0).abs() < 1e-6 && s.x[1] == 0.0, "{s:?}");
    }
}
