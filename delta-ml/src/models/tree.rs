//! The decision-tree learner under `DecisionTree*`, `RandomForest*` and `GBT*`: MLlib's splits
//! and split rule, on a histogram learner.
//!
//! **MLlib's semantics.**
//! * Thresholds come from MLlib's `findSplits`: rows are sampled with probability
//!   `max(maxBins², 10000) / n` when that is below 1 (our sampler is seeded from `seed` and the
//!   row chunk; MLlib's draws differ, so on large inputs the thresholds are equally good, not
//!   identical). Per feature, the weighted counts of the distinct non-zero values, plus zero with
//!   the expected weight not yet seen (MLlib's sparse-aware rule, including its tolerance), give
//!   at most `maxBins − 1` thresholds: every midpoint between neighbours when there are few
//!   values, else the midpoints closest to equal-weight strides. On inputs of up to 10000 rows
//!   the thresholds equal MLlib's exactly.
//! * A row goes left when `value ≤ threshold` (NaN goes right). The gain is
//!   `impurity(parent) − wₗ/w·impurity(left) − wᵣ/w·impurity(right)` over weighted counts
//!   (gini, entropy, or variance); a split whose side has fewer raw rows than
//!   `minInstancesPerNode` or less weight than `minWeightFractionPerNode·Σw`, or whose gain is
//!   below `minInfoGain`, is invalid. The best split is the first maximum over features in
//!   index order and thresholds in increasing order (Scala's `maxBy`). A node becomes a leaf
//!   at `maxDepth`, when no split has positive gain, or when its impurity is below machine
//!   epsilon. Pruning (classifiers, and every tree but GBT's) merges two leaf children that
//!   predict the same value.
//! * Node ids follow MLlib (root 1, children `2i`, `2i + 1`); the features a node may split on
//!   (`featureSubsetStrategy`) are drawn from `seed`, the tree index and the node id, so a
//!   forest is the same on any number of threads.
//!
//! **Speed** (LightGBM's design): values are binned once into a row-major `u8` matrix; a
//! node's histogram sums per-bin statistics of its rows, row-wise (a row's statistics are read
//! once for all its features); of two children only the smaller is built, the other is the
//! parent minus it; rows of a node are a contiguous, sorted slice of one index array,
//! partitioned stably in place. Histograms are built over fixed row blocks in parallel, or
//! whole trees in parallel for forests.

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{invalid, Result};
use crate::par::{map_chunks, map_items, CHUNK};
use crate::stage::Matrix;

/// Nodes of at least this many rows are cut into [`NODE_PARTS`] parts for their histogram and
/// partition; the cut is fixed (not the thread count), so results do not depend on threads.
const SMALL_NODE: usize = 1 << 15;
const NODE_PARTS: usize = 8;

/// How a node's labels are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impurity {
    Gini,
    Entropy,
    Variance,
}

impl Impurity {
    pub fn parse(s: &str) -> Result<Impurity> {
        match s.to_ascii_lowercase().as_str() {
            "gini" => Ok(Impurity::Gini),
            "entropy" => Ok(Impurity::Entropy),
            "variance" => Ok(Impurity::Variance),
            other => Err(invalid(format!("impurity `{other}` (gini, entropy, variance)"))),
        }
    }

    /// The impurity of statistics: class weights (classification) or `[w, Σwy, Σwy²]`.
    pub fn of(self, s: &[f64]) -> f64 {
        match self {
            Impurity::Variance => {
                if s[0] == 0.0 {
                    return 0.0;
                }
                let mean = s[1] / s[0];
                s[2] / s[0] - mean * mean
            }
            Impurity::Gini | Impurity::Entropy => {
                let total: f64 = s.iter().sum();
                if total == 0.0 {
                    return 0.0;
                }
                let mut acc = if self == Impurity::Gini { 1.0 } else { 0.0 };
                for c in s {
                    let p = c / total;
                    if self == Impurity::Gini {
                        acc -= p * p;
                    } else if p > 0.0 {
                        acc -= p * p.log2();
                    }
                }
                acc
            }
        }
    }
}

/// Split thresholds and the binned, feature-major matrix.
#[derive(Debug)]
pub struct Binned {
    pub n: usize,
    pub d: usize,
    pub thresholds: Vec<Vec<f64>>,
    /// `bins[i * d + f]`: the bin of row `i` in feature `f` (the number of thresholds below it);
    /// row-major for histograms (a row's bins are one cache line).
    pub bins: Vec<u8>,
    /// The same bins feature-major, `columns[f * n + i]`: partitions and binned predictions read
    /// one feature of many rows.
    pub columns: Vec<u8>,
    /// Offset of each feature's bins in a histogram; `offsets[d]` is the total.
    pub offsets: Vec<usize>,
}

pub(crate) fn rng(seed: i64, stream: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64((seed as u64) ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub(crate) fn uniform(r: &mut Xoshiro256PlusPlus) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// MLlib's thresholds for one feature from the weights of its distinct non-zero sampled
/// values, `count` sampled non-zero rows and the expected sampled weight.
pub fn thresholds_from_counts(mut values: Vec<(f64, f64)>, count: usize, expected_weight: f64, num_splits: usize) -> Vec<f64> {
    if values.is_empty() {
        return Vec::new();
    }
    let seen: f64 = values.iter().map(|v| v.1).sum();
    let tolerance = f64::EPSILON * count as f64 * 100.0;
    if expected_weight - seen > tolerance {
        values.push((0.0, expected_weight - seen));
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let possible = values.len() - 1;
    if possible == 0 {
        return Vec::new();
    }
    if possible <= num_splits {
        return (1..values.len()).map(|i| (values[i - 1].0 + values[i].0) / 2.0).collect();
    }
    let stride = expected_weight / (num_splits + 1) as f64;
    let mut out = Vec::with_capacity(num_splits);
    let mut current = values[0].1;
    let mut target = stride;
    for i in 1..values.len() {
        let previous = current;
        current += values[i].1;
        if (previous - target).abs() < (current - target).abs() {
            out.push((values[i - 1].0 + values[i].0) / 2.0);
            target += stride;
        }
    }
    out
}

/// Distinct values with summed weights (sorted), skipping zeros.
fn value_weights(mut vw: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    vw.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (v, w) in vw {
        match out.last_mut() {
            Some(last) if last.0 == v => last.1 += w,
            _ => out.push((v, w)),
        }
    }
    out
}

impl Binned {
    /// Finds MLlib's thresholds on a sample and bins every row. `max_bins` is already capped
    /// at the number of rows.
    pub fn new(x: &Matrix, w: &[f64], max_bins: usize, seed: i64) -> Result<Binned> {
        let (n, d) = (x.rows, x.cols);
        if max_bins > 256 {
            return Err(invalid(format!("maxBins = {max_bins}: at most 256 bins per feature are supported")));
        }
        if let Some(bad) = x.data.iter().find(|v| v.is_infinite()) {
            return Err(invalid(format!("a feature value is {bad}; tree models need finite features")));
        }
        let required = (max_bins * max_bins).max(10_000);
        let fraction = if required < n { required as f64 / n as f64 } else { 1.0 };
        // The sample: every row when small, else a Bernoulli draw per row (seeded per chunk).
        let sample: Vec<u32> = if fraction >= 1.0 {
            (0..n as u32).collect()
        } else {
            map_chunks(n, |rows| {
                let mut r = rng(seed, 0x5A3F_0000_0000 + (rows.start / CHUNK) as u64);
                rows.filter(|_| uniform(&mut r) < fraction).map(|i| i as u32).collect::<Vec<u32>>()
            })
            .concat()
        };
        let total_weight: f64 = w.iter().sum();
        let expected = fraction * total_weight;
        let num_splits = max_bins.saturating_sub(1);
        let thresholds: Vec<Vec<f64>> = map_items(d, crate::par::threads(), |f| {
            let vw: Vec<(f64, f64)> = sample.iter().map(|&i| (x.data[i as usize * d + f], w[i as usize])).filter(|(v, _)| *v != 0.0 && !v.is_nan()).collect();
            let count = vw.len();
            thresholds_from_counts(value_weights(vw), count, expected, num_splits)
        });
        let mut offsets = Vec::with_capacity(d + 1);
        let mut at = 0;
        for t in &thresholds {
            offsets.push(at);
            at += t.len() + 1;
        }
        offsets.push(at);
        // Each chunk of rows is binned once into both layouts (row-major, and one piece per
        // feature), then the pieces are joined in chunk order.
        let chunks: Vec<(Vec<u8>, Vec<Vec<u8>>)> = map_chunks(n, |rows| {
            let mut out = Vec::with_capacity(rows.len() * d);
            let mut cols: Vec<Vec<u8>> = (0..d).map(|_| Vec::with_capacity(rows.len())).collect();
            for i in rows {
                for (f, t) in thresholds.iter().enumerate() {
                    let v = x.data[i * d + f];
                    let bin = if v.is_nan() { t.len() as u8 } else { t.partition_point(|th| *th < v) as u8 };
                    out.push(bin);
                    cols[f].push(bin);
                }
            }
            (out, cols)
        });
        let mut bins = Vec::with_capacity(n * d);
        let mut columns = vec![Vec::with_capacity(n); d];
        for (rows, cols) in chunks {
            bins.extend_from_slice(&rows);
            for (c, piece) in columns.iter_mut().zip(cols) {
                c.extend_from_slice(&piece);
            }
        }
        Ok(Binned { n, d, thresholds, bins, columns: columns.concat(), offsets })
    }

    pub fn num_bins(&self, f: usize) -> usize {
        self.offsets[f + 1] - self.offsets[f]
    }
}

/// What the rows are fitted to: a class index (classification) or a value, the weight
/// (instance weight × bag count) and the bag count of every row.
pub struct Targets<'a> {
    pub label: &'a [f64],
    pub weight: &'a [f64],
    pub count: &'a [f64],
}

/// The growth settings of one tree.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    pub max_depth: usize,
    pub min_instances: f64,
    pub min_weight: f64,
    pub min_info_gain: f64,
    pub impurity: Impurity,
    /// Classes (classification) or 0 (regression).
    pub num_classes: usize,
    pub features_per_node: usize,
    pub prune: bool,
    pub seed: i64,
    pub tree_index: u64,
    /// Threads for one tree's histograms.
    pub threads: usize,
}

impl TreeConfig {
    /// Statistics per bin: class weights or `[w, Σwy, Σwy²]`, then the raw count.
    fn width(&self) -> usize {
        if self.num_classes > 0 {
            self.num_classes + 1
        } else {
            4
        }
    }
}

/// A node of a fitted tree (`feature < 0` for a leaf).
#[derive(Debug, Clone)]
pub struct TreeNode {
    pub feature: i32,
    pub threshold: f64,
    /// The split as a bin (training only: `bin ≤ split_bin` goes left).
    pub split_bin: u16,
    pub left: u32,
    pub right: u32,
    pub prediction: f64,
    pub impurity: f64,
    pub gain: f64,
    pub raw_count: f64,
    /// Class weights (classification) or `[w, Σwy, Σwy²]`.
    pub stats: Vec<f64>,
}

impl TreeNode {
    pub fn is_leaf(&self) -> bool {
        self.feature < 0
    }

    /// The node's total weight.
    pub fn weight(&self, classification: bool) -> f64 {
        if classification {
            self.stats.iter().sum()
        } else {
            self.stats.first().copied().unwrap_or(0.0)
        }
    }
}

/// A fitted tree; `nodes[0]` is the root, in pre-order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    /// The leaf a row of raw features falls in.
    pub fn leaf(&self, x: &[f64]) -> &TreeNode {
        let mut i = 0;
        loop {
            let node = &self.nodes[i];
            if node.is_leaf() {
                return node;
            }
            i = if x[node.feature as usize] <= node.threshold { node.left as usize } else { node.right as usize };
        }
    }

    /// The leaf index of row `i` of a binned matrix.
    pub fn leaf_binned(&self, b: &Binned, row: usize) -> usize {
        let mut i = 0;
        loop {
            let node = &self.nodes[i];
            if node.is_leaf() {
                return i;
            }
            let bin = b.columns[node.feature as usize * b.n + row] as u16;
            i = if bin <= node.split_bin { node.left as usize } else { node.right as usize };
        }
    }

    pub fn depth(&self) -> usize {
        fn go(t: &Tree, i: usize) -> usize {
            let n = &t.nodes[i];
            if n.is_leaf() {
                0
            } else {
                1 + go(t, n.left as usize).max(go(t, n.right as usize))
            }
        }
        if self.nodes.is_empty() {
            0
        } else {
            go(self, 0)
        }
    }
}

/// The prediction of statistics: the first class of largest weight, or the mean.
fn predict(stats: &[f64], classification: bool) -> f64 {
    if classification {
        let mut best = 0;
        for (c, v) in stats.iter().enumerate() {
            if *v > stats[best] {
                best = c;
            }
        }
        best as f64
    } else if stats[0] == 0.0 {
        0.0
    } else {
        stats[1] / stats[0]
    }
}

struct Grower<'a> {
    b: &'a Binned,
    t: &'a Targets<'a>,
    cfg: &'a TreeConfig,
    width: usize,
    nodes: Vec<TreeNode>,
    /// Leaf of every in-bag row (training rows' node index in `nodes`).
    leaf_of: &'a mut [u32],
    scratch: Vec<u32>,
}

struct Best {
    feature: usize,
    bin: usize,
    gain: f64,
    left: Vec<f64>,
    right: Vec<f64>,
}

/// Grows one tree on the rows in `rows` (the in-bag rows, sorted), writing each row's leaf
/// into `leaf_of`; `scratch` is reused between trees.
pub fn grow(b: &Binned, t: &Targets, rows: &mut [u32], cfg: &TreeConfig, leaf_of: &mut [u32], scratch: &mut Vec<u32>) -> Tree {
    let width = cfg.width();
    let mut g = Grower { b, t, cfg, width, nodes: Vec::new(), leaf_of, scratch: std::mem::take(scratch) };
    let mut totals = vec![0.0; width];
    for &r in rows.iter() {
        g.add_row(&mut totals, r as usize);
    }
    let subset = cfg.features_per_node < b.d;
    let hist = if subset || cfg.max_depth == 0 { None } else { Some(g.histogram(rows, None)) };
    g.node(1, 0, rows, totals, hist);
    *scratch = g.scratch;
    Tree { nodes: g.nodes }
}

impl Grower<'_> {
    fn add_row(&self, acc: &mut [f64], r: usize) {
        let (w, c) = (self.t.weight[r], self.t.count[r]);
        if self.cfg.num_classes > 0 {
            acc[self.t.label[r] as usize] += w;
        } else {
            let y = self.t.label[r];
            acc[0] += w;
            acc[1] += w * y;
            acc[2] += w * y * y;
        }
        acc[self.width - 1] += c;
    }

    /// The features node `id` may split on.
    fn features(&self, id: u64) -> Vec<usize> {
        let d = self.b.d;
        let k = self.cfg.features_per_node.min(d);
        if k >= d {
            return (0..d).collect();
        }
        let mut r = rng(self.cfg.seed, (self.cfg.tree_index << 40) ^ id ^ 0xFEA7_0000_0000_0000);
        let mut all: Vec<usize> = (0..d).collect();
        for i in 0..k {
            let j = i + (r.next_u64() % (d - i) as u64) as usize;
            all.swap(i, j);
        }
        let mut out = all[..k].to_vec();
        out.sort_unstable();
        out
    }

    /// The histogram of `rows` over `features` (all when `None`): `width` values per bin.
    ///
    /// Row-wise: each row's statistics are read once and added to the cell of each of its
    /// features (the row's bins are contiguous). Large nodes are cut into a fixed number of
    /// parts, each summed alone (in parallel), and the parts' histograms are added in order,
    /// so the result does not depend on the number of threads.
    fn histogram(&self, rows: &[u32], features: Option<&[usize]>) -> Vec<f64> {
        let (b, width, t) = (self.b, self.width, self.t);
        let size = b.offsets[b.d] * width;
        let all: Vec<usize>;
        let features = match features {
            Some(f) => f,
            None => {
                all = (0..b.d).collect();
                &all
            }
        };
        let offs: Vec<usize> = features.iter().map(|f| b.offsets[*f] * width).collect();
        let k = self.cfg.num_classes;
        let d = b.d;
        let parts = if rows.len() < SMALL_NODE { 1 } else { NODE_PARTS };
        let per = rows.len().div_ceil(parts);
        let block = |part: usize| -> Vec<f64> {
            let mut h = vec![0.0; size];
            for &r in &rows[(part * per).min(rows.len())..((part + 1) * per).min(rows.len())] {
                let r = r as usize;
                let row = &b.bins[r * d..(r + 1) * d];
                let (w, y, c) = (t.weight[r], t.label[r], t.count[r]);
                if k > 0 {
                    let class = y as usize;
                    for (f, off) in features.iter().zip(&offs) {
                        let cell = off + row[*f] as usize * width;
                        h[cell + class] += w;
                        h[cell + k] += c;
                    }
                } else {
                    let s = [w, w * y, w * y * y, c];
                    let (cells, _) = h.as_chunks_mut::<4>();
                    for (f, off) in features.iter().zip(&offs) {
                        let cell = &mut cells[off / 4 + row[*f] as usize];
                        cell[0] += s[0];
                        cell[1] += s[1];
                        cell[2] += s[2];
                        cell[3] += s[3];
                    }
                }
            }
            h
        };
        if parts == 1 {
            return block(0);
        }
        let mut parts = map_items(parts, self.cfg.threads, block).into_iter();
        let mut hist = parts.next().unwrap_or_else(|| vec![0.0; size]);
        for p in parts {
            for (a, v) in hist.iter_mut().zip(&p) {
                *a += v;
            }
        }
        hist
    }

    fn best_split(&self, hist: &[f64], totals: &[f64], features: &[usize]) -> Option<Best> {
        let (width, cfg) = (self.width, self.cfg);
        let nstat = width - 1;
        let parent_impurity = cfg.impurity.of(&totals[..nstat]);
        let weight_of = |s: &[f64]| if cfg.num_classes > 0 { s[..nstat].iter().sum::<f64>() } else { s[0] };
        let mut best: Option<(usize, usize, f64)> = None;
        let mut best_gain = f64::MIN;
        let mut left = vec![0.0; width];
        let mut right = vec![0.0; width];
        for &f in features {
            let nb = self.b.num_bins(f);
            let base = self.b.offsets[f] * width;
            left.iter_mut().for_each(|v| *v = 0.0);
            for s in 0..nb.saturating_sub(1) {
                let cell = &hist[base + s * width..base + (s + 1) * width];
                for (l, c) in left.iter_mut().zip(cell) {
                    *l += c;
                }
                for ((r, t), l) in right.iter_mut().zip(totals).zip(&left) {
                    *r = t - l;
                }
                let (wl, wr) = (weight_of(&left), weight_of(&right));
                let gain = if left[nstat] < cfg.min_instances || right[nstat] < cfg.min_instances || wl < cfg.min_weight || wr < cfg.min_weight {
                    f64::MIN
                } else {
                    let total = wl + wr;
                    let g = parent_impurity - wl / total * cfg.impurity.of(&left[..nstat]) - wr / total * cfg.impurity.of(&right[..nstat]);
                    if g < cfg.min_info_gain {
                        f64::MIN
                    } else {
                        g
                    }
                };
                if best.is_none() || gain > best_gain {
                    best = Some((f, s, gain));
                    best_gain = gain;
                }
            }
        }
        let (feature, bin, gain) = best?;
        let base = self.b.offsets[feature] * width;
        let mut l = vec![0.0; width];
        for s in 0..=bin {
            for (a, c) in l.iter_mut().zip(&hist[base + s * width..base + (s + 1) * width]) {
                *a += c;
            }
        }
        let r: Vec<f64> = totals.iter().zip(&l).map(|(t, a)| t - a).collect();
        Some(Best { feature, bin, gain, left: l, right: r })
    }

    fn leaf(&mut self, rows: &[u32], totals: &[f64], impurity: f64) -> u32 {
        let nstat = self.width - 1;
        let idx = self.nodes.len() as u32;
        self.nodes.push(TreeNode {
            feature: -1,
            threshold: 0.0,
            split_bin: 0,
            left: 0,
            right: 0,
            prediction: predict(&totals[..nstat], self.cfg.num_classes > 0),
            impurity,
            gain: 0.0,
            raw_count: totals[nstat],
            stats: totals[..nstat].to_vec(),
        });
        for &r in rows {
            self.leaf_of[r as usize] = idx;
        }
        idx
    }

    /// Grows node `id` at `depth` over `rows`; `hist` is its histogram when already known.
    fn node(&mut self, id: u64, depth: usize, rows: &mut [u32], totals: Vec<f64>, hist: Option<Vec<f64>>) -> u32 {
        let nstat = self.width - 1;
        let impurity = self.cfg.impurity.of(&totals[..nstat]);
        if depth >= self.cfg.max_depth || impurity.abs() < f64::EPSILON || rows.is_empty() {
            return self.leaf(rows, &totals, impurity);
        }
        let features = self.features(id);
        let hist = match hist {
            Some(h) => h,
            None => self.histogram(rows, if features.len() < self.b.d { Some(&features) } else { None }),
        };
        let Some(best) = self.best_split(&hist, &totals, &features) else {
            return self.leaf(rows, &totals, impurity);
        };
        if best.gain <= 0.0 {
            return self.leaf(rows, &totals, impurity);
        }
        // Stable partition: bin ≤ split goes left.
        let col = &self.b.columns[best.feature * self.b.n..(best.feature + 1) * self.b.n];
        let goes_left = |r: u32| col[r as usize] as usize <= best.bin;
        let mut nl = 0;
        if rows.len() < SMALL_NODE || self.cfg.threads <= 1 {
            self.scratch.clear();
            for i in 0..rows.len() {
                let r = rows[i];
                if goes_left(r) {
                    rows[nl] = r;
                    nl += 1;
                } else {
                    self.scratch.push(r);
                }
            }
            rows[nl..].copy_from_slice(&self.scratch);
        } else {
            // Large nodes: the parts split alone (in parallel), then are laid out in order.
            let per = rows.len().div_ceil(NODE_PARTS);
            let rows_ref = &*rows;
            let pieces = map_items(NODE_PARTS, self.cfg.threads, |p| {
                let part = &rows_ref[(p * per).min(rows_ref.len())..((p + 1) * per).min(rows_ref.len())];
                let (mut l, mut r) = (Vec::with_capacity(part.len()), Vec::with_capacity(part.len() / 2));
                for &x in part {
                    if goes_left(x) {
                        l.push(x);
                    } else {
                        r.push(x);
                    }
                }
                (l, r)
            });
            for (l, _) in &pieces {
                rows[nl..nl + l.len()].copy_from_slice(l);
                nl += l.len();
            }
            let mut at = nl;
            for (_, r) in &pieces {
                rows[at..at + r.len()].copy_from_slice(r);
                at += r.len();
            }
        }
        let idx = self.nodes.len();
        self.nodes.push(TreeNode {
            feature: best.feature as i32,
            threshold: self.b.thresholds[best.feature][best.bin],
            split_bin: best.bin as u16,
            left: 0,
            right: 0,
            prediction: predict(&totals[..nstat], self.cfg.num_classes > 0),
            impurity,
            gain: best.gain,
            raw_count: totals[nstat],
            stats: totals[..nstat].to_vec(),
        });
        let (lrows, rrows) = rows.split_at_mut(nl);
        // Children that will split get histograms: the smaller built, the larger by subtraction
        // (only when every feature is a candidate; with feature subsets each node builds its own).
        let child_splits = |s: &[f64]| depth + 1 < self.cfg.max_depth && self.cfg.impurity.of(&s[..nstat]).abs() >= f64::EPSILON;
        let (ls, rs) = (child_splits(&best.left), child_splits(&best.right));
        let (mut lh, mut rh) = (None, None);
        if ls && rs && features.len() == self.b.d {
            let left_small = lrows.len() <= rrows.len();
            let small = if left_small { self.histogram(lrows, None) } else { self.histogram(rrows, None) };
            let mut large = hist;
            for (a, s) in large.iter_mut().zip(&small) {
                *a -= s;
            }
            if left_small {
                (lh, rh) = (Some(small), Some(large));
            } else {
                (lh, rh) = (Some(large), Some(small));
            }
        } else {
            drop(hist);
        }
        let left = self.node(2 * id, depth + 1, lrows, best.left, lh);
        let right = self.node(2 * id + 1, depth + 1, rrows, best.right, rh);
        let (l, r) = (&self.nodes[left as usize], &self.nodes[right as usize]);
        if self.cfg.prune && l.is_leaf() && r.is_leaf() && l.prediction == r.prediction {
            // Two leaves predicting the same: the parent becomes a leaf (MLlib's pruning).
            self.nodes.truncate(idx);
            return self.leaf(rows, &totals, impurity);
        }
        let node = &mut self.nodes[idx];
        node.left = left;
        node.right = right;
        idx as u32
    }
}

/// Feature importances of trees (MLlib's): each split adds `gain × node weight` to its
/// feature; per tree normalised to sum 1 when `per_tree`, summed, normalised.
pub fn feature_importances(trees: &[Tree], d: usize, classification: bool, per_tree: bool) -> Vec<f64> {
    let mut total = vec![0.0; d];
    for t in trees {
        let mut imp = vec![0.0; d];
        for n in &t.nodes {
            if !n.is_leaf() {
                imp[n.feature as usize] += n.gain * n.weight(classification);
            }
        }
        let s: f64 = imp.iter().sum();
        if per_tree && s > 0.0 {
            imp.iter_mut().for_each(|v| *v /= s);
        }
        for (a, b) in total.iter_mut().zip(&imp) {
            *a += b;
        }
    }
    let s: f64 = total.iter().sum();
    if s > 0.0 {
        total.iter_mut().for_each(|v| *v /= s);
    }
    total
}

/// Grows many independent trees, one per thread at a time (forests): `make(i)` gives tree
/// `i`'s targets and rows.
pub fn grow_forest(count: usize, threads: usize, f: impl Fn(usize) -> Tree + Sync) -> Vec<Tree> {
    map_items(count, threads, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_midpoints_when_few_values() {
        let t = thresholds_from_counts(vec![(1.0, 1.0), (2.0, 2.0), (4.0, 1.0)], 4, 4.0, 31);
        assert_eq!(t, vec![1.5, 3.0]);
    }

    #[test]
    fn missing_weight_is_zero() {
        // Two non-zero values of weight 1 out of 4: zero carries weight 2.
        let t = thresholds_from_counts(vec![(1.0, 1.0), (-1.0, 1.0)], 2, 4.0, 31);
        assert_eq!(t, vec![-0.5, 0.5]);
    }

    #[test]
    fn strides_pick_equal_weight_cuts() {
        let values: Vec<(f64, f64)> = (1..=100).map(|v| (v as f64, 1.0)).collect();
        let t = thresholds_from_counts(values, 100, 100.0, 3);
        assert_eq!(t, vec![25.5, 50.5, 75.5]);
    }
}
