//! Row-parallel reductions that give the same bits on any number of threads: rows are cut
//! into fixed chunks, each chunk is reduced alone, and the chunk results are combined in
//! chunk order on the calling thread.

use std::ops::Range;

/// Rows per chunk: small enough to balance two cores, large enough to amortise the merge.
pub const CHUNK: usize = 8192;

thread_local! {
    static THREADS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with reductions on this thread using `n` threads (tests of determinism; a job
/// that wants fewer cores).
pub fn with_threads<T>(n: usize, f: impl FnOnce() -> T) -> T {
    let before = THREADS.with(|t| t.replace(Some(n.max(1))));
    let out = f();
    THREADS.with(|t| t.set(before));
    out
}

/// Threads to use: [`with_threads`], else `DELTA_ML_THREADS`, else the machine's cores.
pub fn threads() -> usize {
    if let Some(n) = THREADS.with(|t| t.get()) {
        return n;
    }
    std::env::var("DELTA_ML_THREADS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// `f` over every chunk of `0..n`, results in chunk order.
pub fn map_chunks<T: Send>(n: usize, f: impl Fn(Range<usize>) -> T + Sync) -> Vec<T> {
    let chunks: Vec<Range<usize>> = (0..n.div_ceil(CHUNK)).map(|c| c * CHUNK..((c + 1) * CHUNK).min(n)).collect();
    let t = threads().min(chunks.len()).max(1);
    if t == 1 {
        return chunks.into_iter().map(f).collect();
    }
    let per = chunks.len().div_ceil(t);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks.chunks(per).map(|group| s.spawn(move || group.iter().cloned().map(f).collect::<Vec<T>>())).collect();
        let mut out = Vec::with_capacity(chunks.len());
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// Sums per-chunk vectors (value first) in chunk order.
pub fn sum_chunks(n: usize, dim: usize, f: impl Fn(Range<usize>, &mut [f64]) -> f64 + Sync) -> (f64, Vec<f64>) {
    let parts = map_chunks(n, |r| {
        let mut g = vec![0.0; dim];
        let v = f(r, &mut g);
        (v, g)
    });
    let mut total = 0.0;
    let mut grad = vec![0.0; dim];
    for (v, g) in parts {
        total += v;
        for (a, b) in grad.iter_mut().zip(&g) {
            *a += b;
        }
    }
    (total, grad)
}

/// A chunk of rows and its slices of two per-row arrays.
type Piece<'a, A, B> = (Range<usize>, &'a mut [A], &'a mut [B]);

/// Runs `f(rows, chunk_of_a, chunk_of_b)` over fixed chunks of `0..n` with the matching
/// mutable chunks of two per-row arrays (`a` has `wa` values per row, `b` has `wb`), results
/// in chunk order.
pub fn map_chunks_mut<A: Send, B: Send, T: Send>(n: usize, a: &mut [A], wa: usize, b: &mut [B], wb: usize, f: impl Fn(Range<usize>, &mut [A], &mut [B]) -> T + Sync) -> Vec<T> {
    let mut work: Vec<Piece<'_, A, B>> = Vec::new();
    let (mut ra, mut rb) = (a, b);
    for c in 0..n.div_ceil(CHUNK) {
        let rows = c * CHUNK..((c + 1) * CHUNK).min(n);
        let (ha, ta) = std::mem::take(&mut ra).split_at_mut(rows.len() * wa);
        let (hb, tb) = std::mem::take(&mut rb).split_at_mut(rows.len() * wb);
        work.push((rows, ha, hb));
        ra = ta;
        rb = tb;
    }
    let t = threads().min(work.len()).max(1);
    if t == 1 {
        return work.into_iter().map(|(r, a, b)| f(r, a, b)).collect();
    }
    let per = work.len().div_ceil(t);
    let f = &f;
    let mut groups: Vec<Vec<Piece<'_, A, B>>> = Vec::new();
    let mut it = work.into_iter().peekable();
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per).collect());
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = groups.into_iter().map(|g| s.spawn(move || g.into_iter().map(|(r, a, b)| f(r, a, b)).collect::<Vec<T>>())).collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// `f(i)` for every `i` in `0..count`, spread over the threads in contiguous runs, results in
/// index order (trees of a forest, features of a histogram).
pub fn map_items<T: Send>(count: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let t = threads.min(count).max(1);
    if t == 1 {
        return (0..count).map(f).collect();
    }
    let per = count.div_ceil(t);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..t).map(|g| s.spawn(move || (g * per..((g + 1) * per).min(count)).map(f).collect::<Vec<T>>())).collect();
        let mut out = Vec::with_capacity(count);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}
