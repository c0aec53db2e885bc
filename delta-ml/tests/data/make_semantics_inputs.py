#!/usr/bin/env python3
"""Inputs of two rows of ../shared/bench/ml/results/semantics-2026-11-25.json that come from
numpy's generator (bench/ml/semantics_probe.py draws them in this order from default_rng(0)):
  auc_200k.parquet      score, label   (BinaryClassificationEvaluator AUC row)
  silhouette_3000.csv   x0,x1,x2,label (ClusteringEvaluator silhouette row)
Run with the bench venv: $HOME/.cache/delta-bench/mlvenv/bin/python make_semantics_inputs.py
"""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
n = 200_000
lab = (rng.random(n) < 0.3).astype(float)
score = rng.normal(lab * 0.8, 1.0)
pq.write_table(pa.table({"score": score, "label": lab}), os.path.join(HERE, "auc_200k.parquet"), compression="zstd")
X = rng.normal(size=(3000, 3)) + np.repeat(np.eye(3) * 4, 1000, axis=0)
lab_c = np.repeat([0, 1, 2], 1000)
lab_c[::97] = (lab_c[::97] + 1) % 3
with open(os.path.join(HERE, "silhouette_3000.csv"), "w") as f:
    f.write("x0,x1,x2,label\n")
    for row, l in zip(X, lab_c):
        f.write(",".join(repr(float(v)) for v in row) + f",{float(l)!r}\n")
