#!/usr/bin/env python3
"""Read benchmark: this project side by side with delta-rs (`deltalake`) and DuckDB's delta
extension, in one run on one machine. Each (peer, op) runs in its own process so its peak RSS
(ru_maxrss via wait4) is its own; every op has one warm-up and RUNS timed runs, median reported.

    python bench/read_bench.py --work DIR [--runs 3] [--out bench/results/read-YYYY-MM-DD.json]

Tables (built under DIR when missing, with ../shared/bench helpers):
  300k    ../shared/conformance delta-kernel-rs/300k-add-files-100-col-partitioned (log only)
  10k     10,000 commits, checkpoint every 10 (peers.build_commits_direct)
  lineitem, lineitem_sorted  TPC-H SF1 from ../shared/bench/gen_tpch.sh (DIR/tpch/delta)
Ops: snapshot load (300k, 10k), full-scan count and sum(l_quantity) on lineitem, and the month
filter on lineitem_sorted (63 files sorted by l_shipdate) with files read.
"""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "bench"))

OURS = os.path.join(ROOT, "target", "release", "examples", "bench_read")
MONTH = ("l_shipdate >= '1995-03-01' AND l_shipdate < '1995-04-01'",
         "l_shipdate >= DATE '1995-03-01' AND l_shipdate < DATE '1995-04-01'")

PEER_CODE = r'''
import json, sys, time, statistics
op, path, runs, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
peer = sys.argv[5]
def timed(fn):
    out = fn(); ts = []
    for _ in range(runs):
        t0 = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t0)
    return out, ts
if peer == "deltalake":
    from deltalake import DeltaTable
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    if op == "snapshot":
        fn = lambda: len(DeltaTable(path).file_uris())
    elif op == "count":
        fn = lambda: DeltaTable(path).to_pyarrow_dataset().count_rows()
    elif op == "sum":
        fn = lambda: pc.sum(DeltaTable(path).to_pyarrow_table(columns=[arg])[arg]).as_py()
    elif op == "filter":
        from datafusion import SessionContext
        def fn():
            ctx = SessionContext(); ctx.register_table("t", DeltaTable(path))
            return ctx.sql(f"SELECT count(*) FROM t WHERE {arg}").to_pylist()[0]
else:
    import duckdb, duckdb_extension_delta, os
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    con.execute(f"LOAD '{ext}'")
    if op == "snapshot":
        fn = lambda: con.execute(f"SELECT count(*) FROM delta_scan('{path}') WHERE false").fetchall()
    elif op == "count":
        fn = lambda: con.execute(f"SELECT count(*) FROM delta_scan('{path}')").fetchall()
    elif op == "sum":
        fn = lambda: con.execute(f"SELECT sum({arg}) FROM delta_scan('{path}')").fetchall()
    elif op == "filter":
        fn = lambda: con.execute(f"SELECT count(*) FROM delta_scan('{path}') WHERE {arg}").fetchall()
out, ts = timed(fn)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"median_s": statistics.median(ts), "runs_s": ts, "result": str(out), "peak_rss_mb": round(hwm / 1024, 1)}))
'''


def run_measured(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    out, err = p.stdout.read(), p.stderr.read()
    if status != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {status}"}
    # Peak RSS comes from the child itself (VmHWM): ru_maxrss would include the parent's memory
    # inherited across fork+exec.
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "delta-cli", "--example", "bench_read"], cwd=ROOT, check=True)
    import peers
    os.makedirs(args.work, exist_ok=True)
    t300k = os.path.join(SHARED, "conformance", "tables", "delta-kernel-rs", "300k-add-files-100-col-partitioned")
    t10k, _ = peers.build_commits_direct(args.work, 10_000, 10)
    tpch = os.path.join(args.work, "tpch", "delta")
    cases = [
        ("snapshot.300k", "snapshot", t300k, ""),
        ("snapshot.10k_commits_ckpt10", "snapshot", t10k, ""),
        ("scan.count", "count", os.path.join(tpch, "lineitem"), "l_orderkey"),
        ("scan.sum", "sum", os.path.join(tpch, "lineitem"), "l_quantity"),
        ("filter.month.sorted", "filter", os.path.join(tpch, "lineitem_sorted"), None),
        ("filter.month", "filter", os.path.join(tpch, "lineitem"), None),
    ]
    results = []
    for name, op, path, arg in cases:
        if not os.path.exists(path):
            print(f"skip {name}: {path} missing (run ../shared/bench/gen_tpch.sh 1 {args.work}/tpch)")
            continue
        for peer in ["ours", "deltalake", "duckdb"]:
            a = arg if arg is not None else (MONTH[0] if peer != "duckdb" else MONTH[1])
            if peer == "ours" and arg is None:
                a = "l_shipdate|" + a
            if peer == "ours":
                cmd = [OURS, op, path, str(args.runs), a]
            else:
                cmd = [sys.executable, "-c", PEER_CODE, op, path, str(args.runs), a, peer]
            r = run_measured(cmd)
            r.update({"case": name, "peer": peer})
            results.append(r)
            print(json.dumps(r), flush=True)
    print("\n| case | peer | median s | peak RSS MB | note |\n|---|---|---|---|---|")
    by_case = {}
    for r in results:
        by_case.setdefault(r["case"], {})[r["peer"]] = r
        note = r.get("error", "")
        if r["peer"] == "ours" and r.get("files_total"):
            note = f"files read {r['files_read']} of {r['files_total']}; rows {r['rows']}"
        print(f"| {r['case']} | {r['peer']} | {r.get('median_s', float('nan')):.4f} | {r.get('peak_rss_mb', '-')} | {note} |")
    print("\nratios (peer time / our time; peer RSS / our RSS):")
    for case, rs in by_case.items():
        ours = rs.get("ours", {})
        for peer in ("deltalake", "duckdb"):
            p = rs.get(peer, {})
            if "median_s" in ours and "median_s" in p:
                print(f"  {case}: {peer} {p['median_s'] / ours['median_s']:.2f}x time, "
                      f"{p['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x memory")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"date": dt.date.today().isoformat(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
