#!/usr/bin/env python3
"""Inputs and Polars' answers for delta-exec's join_asof test (tests/main.rs, `join_asof_answers_as_polars`).

Regenerate (Polars 2.1.0, pyarrow): python make_expected.py   (writes next to this file)

left(id, g, t, ts), right(rid, g, t, ts, v): random integer times in 0..600 with ties, groups 0..3,
the same times also as timestamps (seconds). Polars wants both sides sorted by `on`; the rows
are written in that order and the Rust side reads them in any order. For each strategy
(backward, forward, nearest) with and without a tolerance, with and without `by`, the expected
file holds (id, rid) of Polars' answer: rid is null where nothing matched.
"""
import os
import numpy as np
import polars as pl

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261204)
nl, nr = 400, 300
left = pl.DataFrame({
    "id": np.arange(nl, dtype=np.int64),
    "g": rng.integers(0, 4, nl).astype(np.int64),
    "t": rng.integers(0, 600, nl).astype(np.int64),
})
right = pl.DataFrame({
    "rid": np.arange(1000, 1000 + nr, dtype=np.int64),
    "g": rng.integers(0, 4, nr).astype(np.int64),
    "t": rng.integers(0, 600, nr).astype(np.int64),
})
# Ties among right rows at one (g, t) are resolved by row order: keep the file in that order.
left = left.sort("t", maintain_order=True).with_columns((pl.col("t") * 1_000_000).cast(pl.Datetime("us")).alias("ts"))
right = right.sort("t", maintain_order=True).with_columns((pl.col("t") * 1_000_000).cast(pl.Datetime("us")).alias("ts"))
left.write_parquet(os.path.join(here, "left.parquet"))
right.write_parquet(os.path.join(here, "right.parquet"))
for strategy in ["backward", "forward", "nearest"]:
    for tol in [None, 3]:
        for by in [None, "g"]:
            kw = {"on": "t", "strategy": strategy}
            if tol is not None:
                kw["tolerance"] = tol
            if by is not None:
                kw["by"] = by
            r = right if by else right.drop("g")
            out = left.join_asof(r, **kw).select(["id", "rid"]).sort("id")
            name = f"expected_{strategy}_{'tol' if tol else 'notol'}_{'by' if by else 'noby'}.parquet"
            out.write_parquet(os.path.join(here, name))
            print(name, out["rid"].null_count(), "unmatched of", len(out))
