#!/usr/bin/env python3
"""Write benchmark: this project side by side with deltalake's write_deltalake and pyarrow's
parquet writer, on the same Arrow data (../shared/bench/peers.py `synth` rows), in one run.

    python bench/write_bench.py --work DIR [--rows 10000000] [--repeat 3]

Ops: one commit of all rows; 100 commits of rows/100; checkpoint of (a copy of) the 300k-file
table's log. Each run is a fresh process (peak RSS from its own VmHWM); the input parquet is read
before timing. pyarrow writes one plain parquet file (no Delta log): the floor for encoding.
Every (op, peer) runs --repeat times, interleaved with the other peers, and reports its median
run (single runs on this 2-core machine vary by ±15 %).
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
OURS = os.path.join(ROOT, "target", "release", "examples", "bench_write")

PEER = r'''
import json, sys, time, shutil, os
import pyarrow.parquet as pq
op, src, dst, peer = sys.argv[1:5]
t = pq.read_table(src) if src != "-" else None
t0 = time.perf_counter()
if peer == "deltalake":
    from deltalake import write_deltalake, DeltaTable
    if op == "one":
        write_deltalake(dst, t)
    elif op == "many":
        n = 100; per = (t.num_rows + n - 1) // n
        for i in range(n):
            write_deltalake(dst, t.slice(i * per, per), mode="append")
    elif op == "checkpoint":
        DeltaTable(dst).create_checkpoint()
elif peer == "pyarrow":
    os.makedirs(dst, exist_ok=True)
    pq.write_table(t, os.path.join(dst, "data.parquet"), compression="zstd", compression_level=1)
secs = time.perf_counter() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": secs, "peak_rss_mb": round(hwm / 1024, 1)}))
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
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "delta-cli", "--example", "bench_write"], cwd=ROOT, check=True)
    import peers
    import pyarrow.parquet as pq
    os.makedirs(args.work, exist_ok=True)
    src = os.path.join(args.work, f"synth{args.rows}.parquet")
    if not os.path.exists(src):
        pq.write_table(peers.synth(args.rows), src)
    results = []
    for op in ["one", "many"]:
        runs = {}
        for _ in range(args.repeat):
            for peer in ["ours", "deltalake", "pyarrow"]:
                if peer == "pyarrow" and op == "many":
                    continue
                dst = os.path.join(args.work, f"w-{op}-{peer}")
                shutil.rmtree(dst, ignore_errors=True)
                if peer == "ours":
                    r = run([OURS, op, src, dst] + (["100"] if op == "many" else []))
                else:
                    r = run([sys.executable, "-c", PEER, op, src, dst, peer])
                r.update({"op": op, "peer": peer})
                runs.setdefault(peer, []).append(r)
                print(json.dumps(r), flush=True)
        for peer, rs in runs.items():
            ok = sorted((r for r in rs if "seconds" in r), key=lambda r: r["seconds"])
            results.append(ok[len(ok) // 2] if ok else rs[0])
    log300k = os.path.join(SHARED, "conformance", "tables", "delta-kernel-rs", "300k-add-files-100-col-partitioned")
    for peer in ["ours", "deltalake"]:
        dst = os.path.join(args.work, f"ckpt300k-{peer}")
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(log300k, dst)
        os.chmod(os.path.join(dst, "_delta_log"), 0o755)
        if peer == "ours":
            r = run([OURS, "checkpoint", dst])
        else:
            r = run([sys.executable, "-c", PEER, "checkpoint", "-", dst, peer])
        r.update({"op": "checkpoint.300k", "peer": peer})
        results.append(r)
        print(json.dumps(r), flush=True)
    print("\n| op | peer | seconds | peak RSS MB |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['op']} | {r['peer']} | {r.get('seconds', float('nan')):.3f} | {r.get('peak_rss_mb', r.get('error'))} |")
    by = {}
    for r in results:
        by.setdefault(r["op"], {})[r["peer"]] = r
    print("\nratios (peer seconds / our seconds):")
    for op, rs in by.items():
        o = rs.get("ours", {}).get("seconds")
        for peer in ("deltalake", "pyarrow"):
            p = rs.get(peer, {}).get("seconds")
            if o and p:
                print(f"  {op}: {peer} {p / o:.2f}x")


if __name__ == "__main__":
    main()
