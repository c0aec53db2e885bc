#!/usr/bin/env python3
"""TPC-H on a Ballista cluster of `delta` processes versus local `delta sql` versus PySpark (local
mode), on the same data, in one run on one machine.

    bash ../shared/bench/gen_tpch.sh 1 DIR            # DIR/parquet (tpchgen) and DIR/delta
    cargo build --release -p delta-cli
    python bench/cluster_bench.py --data DIR [--runs 3] [--spark-python PY] [--out FILE]

The cluster is a scheduler and two executors (`delta cluster …`, release build) on 127.0.0.1 with
free ports, each executor with one task slot (two cores in all, as local runs two partitions and
Spark runs `local[2]`); the script starts and always stops them. Every query of
delta-exec/tests/tpch/queries.sql runs in one `delta sql --repeat` process per system (local, and
`--cluster df://…`): one untimed warm-up, then --runs timed runs, median reported (tables open,
page cache warm). PySpark 4 reads the same rows as plain parquet (tpchgen's files: delta-spark's
jars come from Maven, which this machine cannot reach) in one warm session, timed the same way,
`collect()`ing every result. Row counts of all three are compared.
"""
import argparse
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DELTA = os.path.join(ROOT, "target", "release", "delta")
QUERIES = os.path.join(ROOT, "delta-exec", "tests", "tpch", "queries.sql")
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]


def queries():
    text = open(QUERIES).read()
    parts = re.split(r"^-- (q\d+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


def ours(data, sqls, runs, cluster=None, conf=()):
    out = {}
    for name, sql in sqls.items():
        args = [DELTA, "sql", sql, "--tables", data, "--format", "csv", "--timing", "--repeat", str(runs + 1)]
        if cluster:
            args += ["--cluster", cluster]
            for c in conf:
                args += ["--conf", c]
        p = subprocess.run(args, capture_output=True, text=True)
        if p.returncode != 0:
            out[name] = {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:300]}
            continue
        times = [float(m) for m in re.findall(r"run \d+: ([\d.]+) ms", p.stderr)]
        rows = max(len(p.stdout.strip().splitlines()) - 1, 0)
        out[name] = {"ms": statistics.median(times[1:]) if len(times) > 1 else times[0], "rows": rows}
        print(f"  {'cluster' if cluster else 'local'} {name}: {out[name]['ms']:.0f} ms, {rows} rows", file=sys.stderr)
    return out


SPARK_CODE = r'''
import json, os, statistics, sys, time
from pyspark.sql import SparkSession
parquet, runs, sqls = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
spark = (SparkSession.builder.master("local[2]").appName("tpch")
         .config("spark.driver.memory", "8g").config("spark.sql.shuffle.partitions", "2")
         .config("spark.ui.enabled", "false").config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.driver.host", "127.0.0.1").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
for t in os.listdir(parquet):
    name = t.split(".")[0]
    spark.read.parquet(os.path.join(parquet, t)).createOrReplaceTempView(name)
out = {}
for name, sql in sqls.items():
    try:
        rows = len(spark.sql(sql).collect())
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter(); rows = len(spark.sql(sql).collect()); ts.append(time.perf_counter() - t0)
        out[name] = {"ms": statistics.median(ts) * 1e3, "rows": rows}
    except Exception as e:
        out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    print(f"  spark {name}: {out[name]}", file=sys.stderr, flush=True)
print(json.dumps(out))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and two executors, stopped on exit."""

    def __init__(self, work, push=False):
        self.procs = []
        port = free_port()
        self.addr = f"127.0.0.1:{port}"
        extra = ["--push"] if push else []
        self.start([DELTA, "cluster", "scheduler", "--bind", self.addr] + extra)
        for i in range(2):
            wd = os.path.join(work, f"executor{i}")
            self.start([DELTA, "cluster", "executor", "--scheduler", self.addr, "--slots", "1", "--work-dir", wd] + extra)
        subprocess.run([DELTA, "cluster", "status", "--scheduler", self.addr, "--wait-for", "2", "--timeout-secs", "60"], check=True)

    def start(self, args):
        self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the directory gen_tpch.sh wrote (parquet/ and delta/)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queries", default="", help="comma-separated, e.g. q1,q3 (default all 22)")
    ap.add_argument("--spark-python", default="", help="a Python with pyspark 4 (skipped when empty)")
    ap.add_argument("--conf", action="append", default=[], help="KEY=VALUE for the cluster runs (e.g. ballista.planner.adaptive.enabled=false)")
    ap.add_argument("--push", action="store_true", help="the scheduler pushes tasks (executors serve gRPC) instead of executors polling")
    ap.add_argument("--skip-local", action="store_true", help="cluster (and Spark) only")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    data = os.path.join(args.data, "delta")
    sqls = queries()
    if args.queries:
        sqls = {k: v for k, v in sqls.items() if k in args.queries.split(",")}
    results = {"local": {} if args.skip_local else ours(data, sqls, args.runs)}
    work = os.path.join(args.data, "cluster-work")
    with Cluster(work, push=args.push) as c:
        results["cluster"] = ours(data, sqls, args.runs, cluster=f"df://{c.addr}", conf=args.conf)
    if args.spark_python:
        # Spark stays on loopback (it would otherwise bind the host's first interface).
        env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
        p = subprocess.run([args.spark_python, "-c", SPARK_CODE, os.path.join(args.data, "parquet"), str(args.runs), json.dumps(sqls)],
                           capture_output=True, text=True, env=env)
        try:
            results["spark"] = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            results["spark"] = {"_error": p.stderr[-600:]}
    sf = open(os.path.join(args.data, "SF")).read().strip() if os.path.exists(os.path.join(args.data, "SF")) else "?"
    report = {"date": dt.date.today().isoformat(), "sf": sf, "runs": args.runs, "conf": args.conf, "push": args.push, "results": results}
    lines = [f"TPC-H SF{sf}, warm median of {args.runs} (ms); overhead = cluster / local; vs Spark = Spark / cluster", "",
             "| query | local | cluster | Spark local[2] | overhead | vs Spark | rows agree |", "|---|---|---|---|---|---|---|"]
    for q in sqls:
        a, b, s = results["local"].get(q, {}), results["cluster"].get(q, {}), results.get("spark", {}).get(q, {})
        fmt = lambda r: f"{r['ms']:.0f}" if "ms" in r else r.get("error", "-")[:40]
        over = f"{b['ms'] / a['ms']:.2f}×" if "ms" in a and "ms" in b else "-"
        vs = f"{s['ms'] / b['ms']:.2f}×" if "ms" in s and "ms" in b else "-"
        rows = {r.get("rows") for r in (a, b, s) if "rows" in r}
        lines.append(f"| {q} | {fmt(a)} | {fmt(b)} | {fmt(s) if s else '-'} | {over} | {vs} | {'yes' if len(rows) == 1 else rows} |")
    report["table"] = "\n".join(lines)
    print(report["table"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
