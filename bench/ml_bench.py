#!/usr/bin/env python3
"""delta-ml beside the ML anchors (../shared/bench/ml): the `delta` CLI as a whole process.

For each dataset × model, the training rows are a Delta table (made once from the anchor
Parquet file with `delta sql CREATE TABLE … AS SELECT`), the pipeline is the anchors' own
(StringIndexer(keep) → OneHotEncoder → VectorAssembler → StandardScaler → model; no scaler for
KMeans), fitted by `delta ml fit --where "split = 'train'"` and scored by `delta ml evaluate
--where "split = 'test'"`. Fit time is the CLI's `fit_seconds` (reading the Delta table
included; the peers' fit starts from cached rows), peak RSS is the whole process's.

Writes rows in the anchors' format to bench/results/ml-<date>.json and prints each beside
scikit-learn's and MLlib's (from ../shared/bench/ml/results/anchors-*.json), with the ratio
ours/sklearn of fit time.

Usage: python3 bench/ml_bench.py [--only churn,blobs] [--delta target/release/delta]
Needs the anchor data: bash ../shared/bench/ml/setup.sh; $MLVENV/bin/python ../shared/bench/ml/make_data.py
"""
import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared", "bench", "ml")
DATA = os.environ.get("ML_DATA_DIR", os.path.expanduser("~/.cache/delta-bench/mldata"))
TABLES = os.environ.get("ML_DELTA_DIR", os.path.expanduser("~/.cache/delta-bench/mldelta"))

# (dataset, model): the anchors' hyper-parameters (common.PARAMS) as delta-ml stage params.
CASES = [
    ("churn", "lr"), ("churn", "lr_enet"), ("churn", "rf"), ("churn", "gbt"), ("churn", "cv_lr"), ("churn", "tvs_lr"),
    ("diamonds", "linreg"), ("flights", "lr"), ("flights", "rf"), ("flights", "gbt"),
    ("synth_clf", "lr"), ("synth_clf", "rf"), ("synth_clf", "gbt"), ("events", "lr"), ("events", "rf"), ("events", "gbt"),
    ("synth_reg", "linreg"), ("blobs", "kmeans"),
]
MODELS = {
    "lr": {"stage": "LogisticRegression", "regParam": 0.01, "elasticNetParam": 0.0, "maxIter": 100, "tol": 1e-6},
    "lr_enet": {"stage": "LogisticRegression", "regParam": 0.01, "elasticNetParam": 0.5, "maxIter": 100, "tol": 1e-6},
    "linreg": {"stage": "LinearRegression", "regParam": 0.0, "elasticNetParam": 0.0, "solver": "auto"},
    "rf": {"stage": "RandomForestClassifier", "numTrees": 50, "maxDepth": 8, "maxBins": 32, "featureSubsetStrategy": "auto", "subsamplingRate": 1.0, "impurity": "gini", "seed": 42},
    "gbt": {"stage": "GBTClassifier", "maxIter": 50, "maxDepth": 5, "stepSize": 0.1, "maxBins": 32, "lossType": "logistic", "subsamplingRate": 1.0, "seed": 42},
    "kmeans": {"stage": "KMeans", "k": 8, "maxIter": 20, "tol": 1e-4, "initMode": "k-means||", "initSteps": 2, "seed": 42},
}
# The anchors' events features (mllib.events_features / sklearn_ref.events_features: lag over
# each user's events, per-user aggregates joined back), as one `delta sql` statement; made once
# into the events Delta table (not part of the timed fit, as for the peers).
EVENTS_FEATURES = """
WITH raw AS (SELECT * FROM parquet.`{src}`),
ev AS (SELECT *, lag(amount) OVER (PARTITION BY user_id ORDER BY event_timestamp, event_id) AS prev_amount_raw,
                 lag(event_timestamp) OVER (PARTITION BY user_id ORDER BY event_timestamp, event_id) AS prev_ts FROM raw),
agg AS (SELECT user_id, CAST(count(1) AS DOUBLE) AS user_n, avg(amount) AS user_avg_amount,
               coalesce(stddev_samp(amount), 0.0) AS user_std_amount, CAST(count(DISTINCT category) AS DOUBLE) AS user_n_categories
        FROM raw GROUP BY user_id)
SELECT ev.event_id, ev.user_id, ev.category, ev.amount, ev.event_timestamp, ev.label, ev.split, ev.fold,
       ln(1.0 + ev.amount) AS log_amount,
       CAST(date_part('hour', ev.event_timestamp) AS DOUBLE) AS hour,
       CAST(date_part('dow', ev.event_timestamp) + 1 AS DOUBLE) AS dow,
       coalesce(ev.prev_amount_raw, 0.0) AS prev_amount,
       CASE WHEN ev.prev_ts IS NULL THEN 0.0
            ELSE ln(1.0 + CAST(CAST(ev.event_timestamp AS BIGINT) - CAST(ev.prev_ts AS BIGINT) AS DOUBLE) / 1e6) END AS log_gap,
       CASE WHEN ev.prev_ts IS NULL THEN 1.0 ELSE 0.0 END AS is_first,
       agg.user_n, agg.user_avg_amount, agg.user_std_amount, agg.user_n_categories,
       CASE WHEN agg.user_std_amount > 0 THEN (ev.amount - agg.user_avg_amount) / agg.user_std_amount ELSE 0.0 END AS amount_z
FROM ev JOIN agg ON ev.user_id = agg.user_id
"""
METRIC = {"binary": ("areaUnderROC", "auc"), "multiclass": ("accuracy", "accuracy"), "regression": ("rmse", "rmse"), "clustering": ("silhouette", "silhouette")}


def run(cmd):
    """Runs a process; returns (stdout, wall seconds, peak RSS MiB of that process)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()}")
        return out.read(), wall, ru.ru_maxrss / 1024


def spec_for(meta, model):
    stages = []
    label = meta["label"]
    if meta.get("label_is_string"):
        stages.append({"stage": "StringIndexer", "inputCol": label, "outputCol": label + "_idx"})
        label = label + "_idx"
    inputs = []
    if meta["cat"]:
        idx = [c + "_idx" for c in meta["cat"]]
        ohe = [c + "_ohe" for c in meta["cat"]]
        stages.append({"stage": "StringIndexer", "inputCols": meta["cat"], "outputCols": idx, "handleInvalid": "keep"})
        stages.append({"stage": "OneHotEncoder", "inputCols": idx, "outputCols": ohe})
        inputs += ohe
    inputs += meta["num"]
    if model == "kmeans":
        stages.append({"stage": "VectorAssembler", "inputCols": inputs, "outputCol": "features"})
    else:
        stages.append({"stage": "VectorAssembler", "inputCols": inputs, "outputCol": "raw_features"})
        stages.append({"stage": "StandardScaler", "inputCol": "raw_features", "outputCol": "features"})
    est = dict(MODELS["lr" if model in ("cv_lr", "tvs_lr") else model])
    if model != "kmeans":
        est["labelCol"] = label
    stages.append(est)
    spec = {"stages": stages}
    # The anchors' grids: regParam × elasticNetParam, scored by AUC (CrossValidator on the
    # data's `fold` column, as MLlib's anchor does).
    grid = {"regParam": [0.001, 0.01, 0.1], "elasticNetParam": [0.0, 0.5]}
    evaluator = {"stage": "BinaryClassificationEvaluator", "labelCol": label}
    if model == "cv_lr":
        spec["tuning"] = {"stage": "CrossValidator", "numFolds": 3, "foldCol": "fold", "seed": 42, "grid": grid, "evaluator": evaluator}
    elif model == "tvs_lr":
        spec["tuning"] = {"stage": "TrainValidationSplit", "trainRatio": 0.75, "seed": 42, "grid": grid, "evaluator": evaluator}
    return spec, label


def anchors():
    files = sorted(glob.glob(os.path.join(SHARED, "results", "anchors-*.json")))
    if not files:
        return {}
    d = json.load(open(files[-1]))
    out = {}
    for peer in d["peers"].values():
        for r in peer["results"]:
            out.setdefault((r["dataset"], r["model"]), []).append(r)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    ap.add_argument("--models", help="comma-separated models (lr, rf, gbt, cv_lr, …)")
    ap.add_argument("--repeat", type=int, default=1, help="fits per case; the fastest is kept (this machine is shared and noisy)")
    ap.add_argument("--delta", default=os.path.join(ROOT, "target", "release", "delta"))
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(DATA, "manifest.json")))["datasets"]
    os.makedirs(TABLES, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    models = set(args.models.split(",")) if args.models else None
    peers = anchors()
    rows = []
    for ds, model in CASES:
        if (only and ds not in only) or (models and model not in models):
            continue
        meta = manifest[ds]
        table = os.path.join(TABLES, ds)
        if not os.path.isdir(os.path.join(table, "_delta_log")):
            src = os.path.join(DATA, meta["file"])
            select = EVENTS_FEATURES.format(src=src) if meta.get("feature_engineering") == "events" else f"SELECT * FROM parquet.`{src}`"
            run([args.delta, "sql", f"CREATE TABLE delta.`{table}` AS {select}"])
        spec, label = spec_for(meta, model)
        with tempfile.TemporaryDirectory() as tmp:
            spec_path = os.path.join(tmp, "spec.json")
            json.dump(spec, open(spec_path, "w"))
            fits = []
            for attempt in range(max(1, args.repeat)):
                model_dir = os.path.join(tmp, f"model{attempt}")
                out, wall, peak = run([args.delta, "ml", "fit", table, "--pipeline", spec_path, "--where", "split = 'train'", "--model", model_dir])
                fits.append((json.loads(out.strip().splitlines()[-1]), wall, peak, model_dir))
            fit, wall, peak, model_dir = min(fits, key=lambda f: f[0]["fit_seconds"])
            metric, key = METRIC[meta["task"]]
            t = time.perf_counter()
            ev, _, _ = run([args.delta, "ml", "evaluate", model_dir, table, "--where", "split = 'test'", "--metric", metric, "--label", label])
            predict_s = time.perf_counter() - t
            value = json.loads(ev.strip().splitlines()[-1])["value"]
        row = {
            "peer": "delta-ml", "dataset": ds, "model": model, "impl": f"delta ml ({spec['stages'][-1]['stage']}{' + ' + spec['tuning']['stage'] if 'tuning' in spec else ''})",
            "n_train": fit.get("rows"), "fit_s": round(fit["fit_seconds"], 3), "process_wall_s": round(wall, 3),
            "fit_s_all": [round(f[0]["fit_seconds"], 3) for f in fits],
            "predict_s": round(predict_s, 3), "metrics": {key: value},
            "peak_rss_mb": round(peak, 1),
        }
        rows.append(row)
        # The peer each model is held to: LightGBM for GBT, scikit-learn otherwise.
        sk = [r for r in peers.get((ds, model), []) if r["impl"].startswith("lightgbm" if model == "gbt" else "sklearn")]
        sp = [r for r in peers.get((ds, model), []) if r["impl"].startswith("spark")]
        line = f"{ds:10s} {model:8s} ours fit {row['fit_s']:8.3f}s {key} {value:.4f} rss {peak:7.0f} MiB"
        if sk:
            line += f" | {sk[0]['peer']} {sk[0]['fit_s']:7.3f}s {sk[0]['metrics'].get(key, float('nan')):.4f} rss {sk[0].get('peak_rss_mb') or 0:6.0f} ratio {row['fit_s'] / sk[0]['fit_s']:.2f}"
        if sp:
            line += f" | MLlib {sp[0]['fit_s']:7.3f}s {sp[0]['metrics'].get(key, float('nan')):.4f}"
        print(line, flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"ml-{datetime.date.today().isoformat()}.json")
    # Rows of other cases already measured today stay; this run's cases replace theirs.
    done = {(r["dataset"], r["model"]) for r in rows}
    old = json.load(open(path)) if os.path.exists(path) else []
    rows = [r for r in old if (r["dataset"], r["model"]) not in done] + rows
    json.dump(rows, open(path, "w"), indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
