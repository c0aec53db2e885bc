#!/usr/bin/env python3
"""The feature step of the ML pipeline, side by side: `delta sql` (whole process, and warm runs in
one process) against DuckDB, Polars and pandas (in-process), on make_data.py's `events` (2M rows,
100k users), then the whole `delta pipeline` at the same size.

    ML_DATA_DIR=DIR python ../shared/bench/ml/make_data.py --only events      # DIR/events.parquet
    cargo build --release -p delta-cli
    python bench/feature_bench.py --events DIR/events.parquet [--runs 3] [--out FILE]

The feature step is `../shared/bench/ml`'s (mllib.py / sklearn_ref.py `events_features`): the
previous amount and the gap to the previous event per user (a lag over user_id ordered by
event_timestamp, event_id), per-user count / avg / stddev / distinct categories joined back, and
the derived columns (is_first, log_gap, amount_z, log_amount, hour, dow). Every engine computes
every column and reduces them to sums (so no engine can skip one); the sums are compared.
Peers are timed from reading the parquet file to the sums, in-process after their imports; ours
as the wall time of a `delta sql` process (start-up included), and as the median of warm runs in
one process (`--repeat`). The same rows are also read as a Delta table (`delta write`).
"""
import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DELTA = os.path.join(ROOT, "target", "release", "delta")
COLS = ["is_first", "log_gap", "prev_amount", "user_n", "user_avg_amount", "user_std_amount",
        "user_n_categories", "amount_z", "log_amount", "hour", "dow"]


def sql(src, micros):
    """The feature step as SQL; `micros(x)` is the engine's timestamp → integer microseconds."""
    sums = ", ".join(f"sum({c}) AS {c}" for c in COLS)
    return f"""
WITH ev AS (
  SELECT user_id, event_id, category, amount, event_timestamp,
         lag(amount) OVER (PARTITION BY user_id ORDER BY event_timestamp, event_id) AS prev_amount_raw,
         lag(event_timestamp) OVER (PARTITION BY user_id ORDER BY event_timestamp, event_id) AS prev_ts
  FROM {src}
), agg AS (
  SELECT user_id, CAST(count(*) AS DOUBLE) AS user_n, avg(amount) AS user_avg_amount,
         COALESCE(stddev_samp(amount), 0.0) AS user_std_amount,
         CAST(count(DISTINCT category) AS DOUBLE) AS user_n_categories
  FROM {src} GROUP BY user_id
), f AS (
  SELECT CASE WHEN prev_ts IS NULL THEN 1.0 ELSE 0.0 END AS is_first,
         CASE WHEN prev_ts IS NULL THEN 0.0 ELSE ln(1.0 + CAST({micros('event_timestamp')} - {micros('prev_ts')} AS DOUBLE) / 1e6) END AS log_gap,
         COALESCE(prev_amount_raw, 0.0) AS prev_amount,
         user_n, user_avg_amount, user_std_amount, user_n_categories,
         CASE WHEN user_std_amount > 0 THEN (amount - user_avg_amount) / user_std_amount ELSE 0.0 END AS amount_z,
         ln(1.0 + amount) AS log_amount,
         CAST(date_part('hour', event_timestamp) AS DOUBLE) AS hour,
         CAST(date_part('dow', event_timestamp) + 1 AS DOUBLE) AS dow
  FROM ev JOIN agg ON ev.user_id = agg.user_id
)
SELECT count(*) AS n, {sums} FROM f"""


def ours(source, runs, label):
    query = sql(source, lambda c: f"CAST({c} AS BIGINT)")
    walls = []
    out = None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run([DELTA, "sql", query, "--format", "csv"], capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise SystemExit(f"delta sql failed: {p.stderr}")
        out = p.stdout
    p = subprocess.run([DELTA, "sql", query, "--format", "csv", "--timing", "--repeat", str(runs + 1)], capture_output=True, text=True)
    warm = [float(m) / 1000 for m in re.findall(r"run \d+: ([\d.]+) ms", p.stderr)][1:]
    header, values = out.strip().splitlines()[:2]
    sums = dict(zip(header.split(","), (float(v) for v in values.split(","))))
    r = {"process_s": statistics.median(walls), "warm_s": statistics.median(warm) if warm else None, "sums": sums}
    print(f"  delta sql ({label}): process {r['process_s']:.2f} s, warm {r['warm_s']:.2f} s", file=sys.stderr)
    return r


def duckdb_run(path, runs):
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    query = sql(f"read_parquet('{path}')", lambda c: f"epoch_us({c})")
    times, row = [], None
    for _ in range(runs):
        t = time.perf_counter()
        cur = con.execute(query)
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
        times.append(time.perf_counter() - t)
    r = {"s": statistics.median(times), "sums": dict(zip(names, (float(v) for v in row)))}
    print(f"  duckdb {duckdb.__version__}: {r['s']:.2f} s", file=sys.stderr)
    return r


def polars_run(path, runs):
    import polars as pl
    times, res = [], None
    for _ in range(runs):
        t = time.perf_counter()
        ev = pl.scan_parquet(path)
        agg = ev.group_by("user_id").agg(
            pl.len().cast(pl.Float64).alias("user_n"), pl.col("amount").mean().alias("user_avg_amount"),
            pl.col("amount").std().fill_null(0.0).alias("user_std_amount"),
            pl.col("category").n_unique().cast(pl.Float64).alias("user_n_categories"))
        f = (ev.sort(["user_id", "event_timestamp", "event_id"])
             .with_columns(pl.col("amount").shift(1).over("user_id").alias("prev_amount_raw"),
                           pl.col("event_timestamp").shift(1).over("user_id").alias("prev_ts"))
             .join(agg, on="user_id")
             .with_columns(
                 pl.col("prev_ts").is_null().cast(pl.Float64).alias("is_first"),
                 pl.when(pl.col("prev_ts").is_null()).then(0.0).otherwise(
                     (1.0 + (pl.col("event_timestamp") - pl.col("prev_ts")).dt.total_microseconds() / 1e6).log()).alias("log_gap"),
                 pl.col("prev_amount_raw").fill_null(0.0).alias("prev_amount"),
                 pl.when(pl.col("user_std_amount") > 0).then((pl.col("amount") - pl.col("user_avg_amount")) / pl.col("user_std_amount")).otherwise(0.0).alias("amount_z"),
                 (1.0 + pl.col("amount")).log().alias("log_amount"),
                 pl.col("event_timestamp").dt.hour().cast(pl.Float64).alias("hour"),
                 (pl.col("event_timestamp").dt.weekday() % 7 + 1).cast(pl.Float64).alias("dow")))
        res = f.select([pl.len().alias("n")] + [pl.col(c).sum() for c in COLS]).collect()
        times.append(time.perf_counter() - t)
    r = {"s": statistics.median(times), "sums": {k: float(v[0]) for k, v in res.to_dict(as_series=False).items()}}
    print(f"  polars {pl.__version__}: {r['s']:.2f} s", file=sys.stderr)
    return r


def pandas_run(path, runs):
    import pandas as pd
    sys.path.insert(0, os.path.join(ROOT, "..", "shared", "bench", "ml"))
    from sklearn_ref import events_features  # the shared bench's own pandas twin
    times, res = [], None
    for _ in range(runs):
        t = time.perf_counter()
        df = events_features(pd.read_parquet(path))
        res = {"n": float(len(df)), **{c: float(df[c].sum()) for c in COLS}}
        times.append(time.perf_counter() - t)
    r = {"s": statistics.median(times), "sums": res}
    print(f"  pandas {pd.__version__}: {r['s']:.2f} s", file=sys.stderr)
    return r


def close(a, b):
    return all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k]), abs(b[k])) for k in ["n"] + COLS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", f"features-{dt.date.today()}.json"))
    ap.add_argument("--pipeline-scale", type=float, default=1.0)
    a = ap.parse_args()
    path = os.path.abspath(a.events)
    res = {"date": str(dt.date.today()), "events": path, "runs": a.runs, "machine": f"{os.cpu_count()} cores"}
    res["delta_parquet"] = ours(f"parquet.`{path}`", a.runs, "parquet file")
    with tempfile.TemporaryDirectory() as tmp:
        table = os.path.join(tmp, "events")
        subprocess.run([DELTA, "write", table, path], check=True, capture_output=True)
        res["delta_table"] = ours(f"delta.`{table}`", a.runs, "Delta table")
    res["duckdb"] = duckdb_run(path, a.runs)
    res["polars"] = polars_run(path, a.runs)
    res["pandas"] = pandas_run(path, a.runs)
    base = res["delta_parquet"]["sums"]
    res["same_sums"] = {k: close(base, res[k]["sums"]) for k in ["delta_table", "duckdb", "polars", "pandas"]}
    ours_s = res["delta_parquet"]["process_s"]
    res["ratios_vs_delta_process"] = {k: round(res[k]["s"] / ours_s, 2) for k in ["duckdb", "polars", "pandas"]}
    print(f"  same sums: {res['same_sums']}; peer time / delta process time: {res['ratios_vs_delta_process']}", file=sys.stderr)

    # The whole pipeline at the same size, as a process.
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        p = subprocess.run([DELTA, "pipeline", "--scale", str(a.pipeline_scale), "--out", tmp], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"delta pipeline failed: {p.stderr}")
        steps = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^   (\S.*?)\s+([\d.]+) s$", p.stdout, re.M)}
        auc = re.search(r"AUC GBT ([\d.]+), LR ([\d.]+)", p.stdout)
        res["pipeline"] = {"scale": a.pipeline_scale, "wall_s": round(wall, 2), "steps_s": steps,
                           "auc_gbt": float(auc.group(1)) if auc else None, "auc_lr": float(auc.group(2)) if auc else None}
        print(f"  delta pipeline --scale {a.pipeline_scale}: {wall:.1f} s; {steps}", file=sys.stderr)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(a.out)


if __name__ == "__main__":
    main()
