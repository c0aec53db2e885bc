#!/usr/bin/env python3
"""Query benchmark: this project's `delta sql` side by side with DuckDB (delta extension),
DataFusion (Python, over deltalake's table provider), deltalake's QueryBuilder and Polars, on the
same TPC-H Delta tables, in one run on one machine.

    bash ../shared/bench/gen_tpch.sh 1 DIR              # SF1 tables under DIR/delta
    cargo build --release -p delta-cli
    python bench/query_bench.py --data DIR [--runs 3] [--ops tpch.q1,window.lag] [--out FILE]

Ops: `scan.count`, the one-month filter on `lineitem_sorted` (63 files sorted by l_shipdate),
`window.lag` (lag over orders per customer), and the 22 TPC-H queries of
delta-exec/tests/tpch/queries.sql (the same text every peer runs).

Timing: every peer runs in its own process over all ops; each op gets one untimed warm-up and
--runs timed runs, median reported (warm: tables open, page cache warm). Ours is the `delta`
binary: `delta sql --repeat` runs the statement in one process and prints each run's time
(`--timing`), so its warm time is measured exactly as the peers' is; `process` is the wall time
of one fresh `delta sql` process (start, open the tables' logs, plan, run, print), which is
where a CLI user meets it. Row counts of every peer are compared with ours.
"""
import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DELTA = os.path.join(ROOT, "target", "release", "delta")
QUERIES = os.path.join(ROOT, "delta-exec", "tests", "tpch", "queries.sql")
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem", "lineitem_sorted"]
PEERS = ["duckdb", "datafusion", "deltalake", "polars"]


def ops():
    out = {
        "scan.count": "SELECT count(*) AS n FROM lineitem",
        "filter.month.sorted": "SELECT count(*) AS n, sum(l_extendedprice) AS s FROM lineitem_sorted "
        "WHERE l_shipdate >= DATE '1995-01-01' AND l_shipdate < DATE '1995-02-01'",
        "window.lag": "SELECT count(prev) AS n, sum(o_totalprice - prev) AS s FROM (SELECT o_totalprice, "
        "lag(o_totalprice) OVER (PARTITION BY o_custkey ORDER BY o_orderdate, o_orderkey) AS prev FROM orders) w",
    }
    text = open(QUERIES).read()
    parts = re.split(r"^-- (q\d+)\s*$", text, flags=re.M)
    for i in range(1, len(parts), 2):
        out["tpch." + parts[i]] = parts[i + 1].strip().rstrip(";")
    return out


PEER_CODE = r'''
import json, os, resource, statistics, sys, time
peer, data, runs, ops = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
tables = [t for t in os.listdir(data) if os.path.isdir(os.path.join(data, t, "_delta_log"))]
if peer == "duckdb":
    import duckdb, duckdb_extension_delta
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    con.execute(f"LOAD '{ext}'")
    for t in tables:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM delta_scan('{os.path.join(data, t)}')")
    run = lambda sql: len(con.execute(sql).fetch_arrow_table())
elif peer == "datafusion":
    from datafusion import SessionContext
    from deltalake import DeltaTable
    ctx = SessionContext()
    for t in tables:
        ctx.register_table(t, DeltaTable(os.path.join(data, t)))
    run = lambda sql: sum(b.num_rows for b in ctx.sql(sql).collect())
elif peer == "deltalake":
    from deltalake import DeltaTable, QueryBuilder
    qb = QueryBuilder()
    for t in tables:
        qb = qb.register(t, DeltaTable(os.path.join(data, t)))
    run = lambda sql: qb.execute(sql).read_all().num_rows
elif peer == "polars":
    import polars as pl
    ctx = pl.SQLContext({t: pl.scan_delta(os.path.join(data, t)) for t in tables})
    run = lambda sql: ctx.execute(sql).collect().height
out = {}
for op, sql in ops.items():
    try:
        t0 = time.perf_counter(); rows = run(sql); first = time.perf_counter() - t0
        n = 1 if first > 60 else runs
        ts = []
        for _ in range(n):
            t0 = time.perf_counter(); rows = run(sql); ts.append(time.perf_counter() - t0)
        out[op] = {"ms": statistics.median(ts) * 1e3, "rows": rows}
    except Exception as e:
        out[op] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
out["_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
'''


def run_ours(data, op_sqls, runs):
    out = {}
    for op, sql in op_sqls.items():
        args = [DELTA, "sql", sql, "--tables", data, "--format", "csv", "--output", os.devnull, "--timing", "--repeat", str(runs + 1)]
        p = subprocess.run(args, capture_output=True, text=True)
        if p.returncode != 0:
            out[op] = {"error": p.stderr.strip().splitlines()[-1][:200] if p.stderr.strip() else "failed"}
            continue
        times = [float(m) for m in re.findall(r"run \d+: ([\d.]+) ms", p.stderr)]
        # One fresh process, one run: what a user of the CLI waits for (and its peak RSS).
        t0 = time.perf_counter()
        q = subprocess.Popen([DELTA, "sql", sql, "--tables", data, "--format", "csv"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stdout = q.stdout.read()
        _, _, usage = os.wait4(q.pid, 0)
        process = (time.perf_counter() - t0) * 1e3
        rows = max(len(stdout.strip().splitlines()) - 1, 0)
        out[op] = {"ms": statistics.median(times[1:]) if len(times) > 1 else times[0], "process_ms": process, "rows": rows,
                   "maxrss_mb": usage.ru_maxrss / 1024}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the directory gen_tpch.sh wrote (with delta/)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ops", default="")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--python", default=os.path.expanduser("~/.cache/delta-bench/venv/bin/python"))
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    data = os.path.join(args.data, "delta")
    op_sqls = ops()
    if args.ops:
        op_sqls = {k: v for k, v in op_sqls.items() if k in args.ops.split(",")}
    results = {"ours": run_ours(data, op_sqls, args.runs)}
    for peer in [p for p in args.peers.split(",") if p]:
        p = subprocess.run([args.python, "-c", PEER_CODE, peer, data, str(args.runs), json.dumps(op_sqls)], capture_output=True, text=True)
        try:
            results[peer] = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            results[peer] = {"_error": p.stderr[-400:]}
    sf = open(os.path.join(args.data, "SF")).read().strip() if os.path.exists(os.path.join(args.data, "SF")) else "?"
    peers = [p for p in results if p != "ours"]
    header = ["op", "ours ms", "ours process ms"] + [f"{p} ms" for p in peers] + ["ours/duckdb", "ours/datafusion", "ours/deltalake"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    fmt = lambda r: f"{r['ms']:.1f}" if "ms" in r else "err"
    ratio = lambda a, b: f"{a['ms'] / b['ms']:.2f}" if "ms" in a and "ms" in b and b["ms"] > 0 else "–"
    disagree = []
    for op in op_sqls:
        ours = results["ours"].get(op, {})
        row = [op, fmt(ours), f"{ours['process_ms']:.0f}" if "process_ms" in ours else "err"]
        for p in peers:
            r = results[p].get(op, {})
            row.append(fmt(r))
            if "rows" in r and "rows" in ours and r["rows"] != ours["rows"]:
                disagree.append(f"{op}: ours {ours['rows']} rows, {p} {r['rows']}")
        row += [ratio(ours, results.get(p, {}).get(op, {})) for p in ["duckdb", "datafusion", "deltalake"]]
        lines.append("| " + " | ".join(row) + " |")
    report = "\n".join(lines)
    print(f"TPC-H SF{sf}, {args.runs} runs, median of warm runs\n")
    print(report)
    for p in peers:
        errs = {k: v["error"] for k, v in results[p].items() if isinstance(v, dict) and "error" in v}
        if errs:
            print(f"\n{p} errors: " + "; ".join(f"{k}: {v}" for k, v in errs.items()))
        if "_maxrss_mb" in results[p]:
            print(f"{p} peak RSS {results[p]['_maxrss_mb']:.0f} MB")
    rss = [v["maxrss_mb"] for v in results["ours"].values() if "maxrss_mb" in v]
    if rss:
        print(f"ours peak RSS (largest fresh process over the ops) {max(rss):.0f} MB")
    errs = {k: v["error"] for k, v in results["ours"].items() if "error" in v}
    if errs:
        print("\nours errors: " + "; ".join(f"{k}: {v}" for k, v in errs.items()))
    if disagree:
        print("\nrow counts differ: " + "; ".join(disagree))
    out = args.out or os.path.join(HERE, "results", f"query-{dt.date.today()}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    json.dump({"sf": sf, "runs": args.runs, "results": results, "table": report}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
