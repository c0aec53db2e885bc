#!/usr/bin/env python3
"""Ingestion and snapshot benchmark (issue 17), the way users run them: the `delta` CLI as a
whole process on real files, side by side with delta-rs (`deltalake`) timed in-process on the
same files, same machine, one run.

    python bench/ingest_bench.py --work DIR [--runs 5] [--out bench/results/ingest-YYYY-MM-DD.json]

Needs: cargo build --release -p delta-cli --bin delta; a Python with deltalake, pyarrow and
numpy (.ci-venv has the first two; `pip install numpy`).

Cases (inputs built under DIR when missing, with ../shared/bench/peers.py):
  append        10M synthetic rows (peers.synth: id, grp, val, day, tag; 135 MB parquet) appended
                as one commit to a new table. Ours: `delta write TABLE input.parquet`. deltalake:
                pq.read_table + write_deltalake, both timed (both read the file).
  list.10k_ckpt 10,000 commits, checkpoint every 10: `delta files TABLE` vs DeltaTable(p).file_uris().
  list.10k      10,000 commits, no checkpoint.
  list.300k     ../shared/conformance delta-kernel-rs/300k-add-files-100-col-partitioned.
Every (case, peer) runs --runs times, interleaved with the other peer; the median is reported
with the peak RSS of that peer's process (VmHWM for the in-process peer, ru_maxrss for ours).
Ratios are deltalake's time / ours (> 1: ours is faster) and deltalake's memory / ours.
"""
import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "bench"))
DELTA = os.path.join(ROOT, "target", "release", "delta")

PEER = r'''
import json, shutil, sys, time
op, path, src = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if op == "append":
    import pyarrow.parquet as pq
    from deltalake import write_deltalake
    write_deltalake(path, pq.read_table(src))
    n = None
else:
    from deltalake import DeltaTable
    n = len(DeltaTable(path).file_uris())
secs = time.perf_counter() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": secs, "peak_rss_mb": round(hwm / 1024, 1), "files": n}))
'''


def ours_last_line(args):
    """The CLI's last output line (to check it lists what the peer lists)."""
    p = subprocess.run([DELTA] + args, capture_output=True, text=True)
    if p.returncode != 0:
        return p.stderr.strip()
    return p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""


# Ours runs under a small Python that forks and execs it: a process spawned straight from this
# (large) one would report this one's peak RSS as its own (the old image's high-water mark
# carries over exec).
SPAWN = r'''
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open("/dev/null", os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - t0, "status": status, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}))
'''


def ours_measured(args):
    """Runs the CLI as a whole process: wall time from fork to exit, its own peak RSS."""
    p = subprocess.run([sys.executable, "-c", SPAWN, DELTA] + args, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1:]}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["status"] != 0:
        return {"error": f"exit status {r['status']}"}
    return r


def peer(op, path, src):
    p = subprocess.run([sys.executable, "-c", PEER, op, path, src], capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    if not os.path.exists(DELTA):
        sys.exit(f"{DELTA} missing: cargo build --release -p delta-cli --bin delta")
    import peers
    import pyarrow.parquet as pq

    os.makedirs(args.work, exist_ok=True)
    src = os.path.join(args.work, "input10M.parquet")
    if not os.path.exists(src):
        pq.write_table(peers.synth(10_000_000), src)
    t10k, _ = peers.build_commits_direct(args.work, 10_000, 10)
    t10k_plain, _ = peers.build_commits_direct(args.work, 10_000, None)
    t300k = os.path.join(SHARED, "conformance", "tables", "delta-kernel-rs", "300k-add-files-100-col-partitioned")
    # Ours must list what deltalake lists.
    for t in (t10k, t10k_plain, t300k):
        last = ours_last_line(["files", t])
        d = peer("list", t, "-")
        if last != f"{d['files']} of {d['files']} files":
            sys.exit(f"{t}: ours says {last!r}, deltalake lists {d['files']} files")

    cases = [("append", None), ("list.10k_ckpt", t10k), ("list.10k", t10k_plain), ("list.300k", t300k)]
    results = []
    for name, table in cases:
        runs = {"ours": [], "deltalake": []}
        for _ in range(args.runs):
            for who in ("ours", "deltalake"):
                if name == "append":
                    dst = os.path.join(args.work, f"append_{who}")
                    shutil.rmtree(dst, ignore_errors=True)
                    r = ours_measured(["write", dst, src]) if who == "ours" else peer("append", dst, src)
                    shutil.rmtree(dst, ignore_errors=True)
                else:
                    r = ours_measured(["files", table]) if who == "ours" else peer("list", table, "-")
                if "error" in r:
                    sys.exit(f"{name} {who}: {r['error']}")
                runs[who].append(r)
        row = {"case": name}
        for who, rs in runs.items():
            secs = sorted(r["seconds"] for r in rs)
            row[who] = {"median_s": round(statistics.median(secs), 4), "runs_s": [round(s, 4) for s in secs],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
        row["speed_ratio"] = round(row["deltalake"]["median_s"] / row["ours"]["median_s"], 2)
        row["memory_ratio"] = round(row["deltalake"]["peak_rss_mb"] / row["ours"]["peak_rss_mb"], 2)
        results.append(row)
        print(json.dumps(row), flush=True)
    print("\n| case | deltalake s | ours s | speed (deltalake/ours) | deltalake MB | ours MB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['deltalake']['median_s']} | {r['ours']['median_s']} | {r['speed_ratio']}x | "
              f"{r['deltalake']['peak_rss_mb']} | {r['ours']['peak_rss_mb']} | {r['memory_ratio']}x |")
    if args.out:
        import deltalake
        with open(args.out, "w") as f:
            json.dump({"date": dt.date.today().isoformat(), "machine": peers.machine(),
                       "deltalake": deltalake.__version__, "runs": args.runs, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
