#!/usr/bin/env python3
"""DML benchmark: this project side by side with deltalake (delta-rs) on the same data, in one run.

    python bench/dml_bench.py --work DIR [--rows 10000000]

Target: `rows` synth rows (../shared/bench/peers.py); each peer writes its own copy first (not
timed). Ops, each in a fresh process (peak RSS = that process's VmHWM, input read before timing):
  merge   1M source rows, half matching (every 20th target id, val changed), half new ids:
          WHEN MATCHED UPDATE SET * WHEN NOT MATCHED INSERT *; also ours with a 16 MiB source budget (spills)
  delete  1% of rows spread over every file (id % 100 = 0): ours with deletion vectors, ours
          copy-on-write, deltalake (copy-on-write; deltalake 1.6.6 writes no deletion vectors)
  optimize  1,000 small files (1M rows written here in 1,000 appends, copied for each peer):
          bin-packing compaction, then Z-order by (id, val) of the same 1,000-file table
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "bench"))
OURS = os.path.join(ROOT, "target", "release", "examples", "bench_dml")

PEER = r'''
import json, sys, time
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
op, table = sys.argv[1:3]
if op == "setup":
    write_deltalake(table, pq.read_table(sys.argv[3]), target_file_size=16 * 1024 * 1024)
    print(json.dumps({"seconds": 0, "peak_rss_mb": 0})); sys.exit(0)
dt = DeltaTable(table)
src = pq.read_table(sys.argv[3]) if op == "merge" else None
t0 = time.perf_counter()
if op == "merge":
    m = (dt.merge(source=src, predicate="t.id = s.id", source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())
elif op == "delete":
    m = dt.delete(sys.argv[3])
elif op == "optimize":
    m = dt.optimize.compact()
elif op == "zorder":
    m = dt.optimize.z_order(sys.argv[3].split(","))
secs = time.perf_counter() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": secs, "peak_rss_mb": round(hwm / 1024, 1), "metrics": m}))
'''


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--ops", default="merge,delete1pct,optimize,zorder", help="comma-separated subset to run")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "delta-cli", "--example", "bench_dml"], cwd=ROOT, check=True)
    import numpy as np
    import peers
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    os.makedirs(args.work, exist_ok=True)
    src = os.path.join(args.work, f"synth{args.rows}.parquet")
    if not os.path.exists(src):
        pq.write_table(peers.synth(args.rows), src)
    half = args.rows // 20
    merge_src = os.path.join(args.work, f"merge-source-{args.rows}.parquet")
    if not os.path.exists(merge_src):
        matching = peers.synth(args.rows).take(pa.array(np.arange(0, args.rows, 20)))
        matching = matching.set_column(2, "val", pc.add(matching["val"], 1.0))
        new = peers.synth(half, start=args.rows)
        pq.write_table(pa.concat_tables([matching, new]), merge_src)
    results = []

    def setup(peer, name, mode="cow"):
        dst = os.path.join(args.work, f"dml-{name}")
        shutil.rmtree(dst, ignore_errors=True)
        if peer == "ours":
            r = run([OURS, "setup", src, dst, mode])
        else:
            r = run([sys.executable, "-c", PEER, "setup", dst, src])
        assert "error" not in r, r
        return dst

    cases = [
        ("merge", "ours", "dv"), ("merge", "ours", "dv-spill"), ("merge", "ours", "cow"), ("merge", "deltalake", "cow"),
        ("delete1pct", "ours", "dv"), ("delete1pct", "ours", "cow"), ("delete1pct", "deltalake", "cow"),
    ]
    ops = set(args.ops.split(","))
    for op, peer, mode in [c for c in cases if c[0] in ops]:
        dst = setup(peer, f"{op}-{peer}-{mode}", "dv" if mode.startswith("dv") else mode)
        if op == "merge":
            # dv-spill: a 16 MiB source budget, so the 1M-row source spills (16 passes).
            spill = ["16777216"] if mode == "dv-spill" else []
            cmd = [OURS, "merge", dst, merge_src, *spill] if peer == "ours" else [sys.executable, "-c", PEER, "merge", dst, merge_src]
        else:
            cmd = [OURS, "delete", dst, "id % 100 = 0"] if peer == "ours" else [sys.executable, "-c", PEER, "delete", dst, "id % 100 = 0"]
        r = run(cmd)
        r.update({"op": op, "peer": f"{peer}-{mode}"})
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "metrics"}), flush=True)
    # OPTIMIZE: one 1,000-file table, copied for each run.
    small_src = os.path.join(args.work, "synth1000000.parquet")
    if not os.path.exists(small_src):
        pq.write_table(peers.synth(1_000_000), small_src)
    template = os.path.join(args.work, "small-files-template")
    if not os.path.exists(os.path.join(template, "_delta_log")):
        shutil.rmtree(template, ignore_errors=True)
        r = run([OURS, "setup-small", small_src, template, "1000"])
        assert "error" not in r, r
    for op, extra in [c for c in (("optimize", []), ("zorder", ["id,val"])) if c[0] in ops]:
        for peer in ("ours", "deltalake"):
            dst = os.path.join(args.work, f"opt-{op}-{peer}")
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(template, dst)
            cmd = [OURS, op, dst, *extra] if peer == "ours" else [sys.executable, "-c", PEER, op, dst, *extra]
            r = run(cmd)
            r.update({"op": op, "peer": peer})
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "metrics"}), flush=True)
    print("\n| op | peer | seconds | peak RSS MB |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['op']} | {r['peer']} | {r.get('seconds', float('nan')):.3f} | {r.get('peak_rss_mb', r.get('error'))} |")
    by = {}
    for r in results:
        by.setdefault(r["op"], {})[r["peer"]] = r
    print("\nratios vs deltalake (time: theirs/ours; memory: ours/theirs):")
    for op, rs in by.items():
        d = rs.get("deltalake-cow", rs.get("deltalake", {}))
        for mine in sorted(p for p in rs if p.startswith("ours")):
            o = rs.get(mine, {})
            if o.get("seconds") and d.get("seconds"):
                print(f"  {op} {mine}: {d['seconds'] / o['seconds']:.2f}x faster, memory {o['peak_rss_mb'] / d['peak_rss_mb']:.2f} of deltalake's")


if __name__ == "__main__":
    main()
