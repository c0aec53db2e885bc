#!/usr/bin/env python3
"""Interoperability checks, driven by the Rust `interop` test.

    check_tables.py verify DIR        for every DIR/<name>/table (a Delta table written by this
                                      project) compare, as multisets of normalised rows:
                                      DIR/<name>/expected.parquet (the rows, as this project reads
                                      them), deltalake's read, and DuckDB's delta_scan.
    check_tables.py make-deltalake DIR   write a table with deltalake (for this project to append to)
    check_tables.py read-deltalake DIR   print deltalake's row count and sum(id) of a table
    (DIR may be an s3:// or az:// URL, with deltalake's storage options as JSON in
    DELTA_INTEROP_STORAGE_OPTIONS)

Peers with a documented bug on a shape are skipped for it, with the reason printed
(see ../shared/conformance/README.md, "Reader bugs found while cross-checking").
"""
import datetime as dt
import decimal
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

SKIP = {
    # DuckDB delta 1.5.5: under column mapping, partition columns that are not first come back NULL.
    ("duckdb", "column_mapping_partitioned"): "duckdb delta 1.5.5 returns NULL partition columns under column mapping",
    ("duckdb", "altered_column_mapping"): "duckdb delta 1.5.5 returns NULL partition columns under column mapping (same bug)",
    ("duckdb", "iceberg_compat_v2"): "duckdb delta 1.5.5 returns NULL partition columns under column mapping (same bug; IcebergCompat turns column mapping on)",
    # DuckDB cannot return VARIANT or void columns.
}


def norm(v):
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return ("ts", (v - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1))
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    if isinstance(v, decimal.Decimal):
        return ("dec", str(v.normalize()) if v == v else "NaN")
    if isinstance(v, float):
        return ("f", "NaN" if v != v else repr(v))
    if isinstance(v, bytes):
        return ("b", v.hex())
    if isinstance(v, dict):
        return ("struct", tuple(sorted((k, norm(x)) for k, x in v.items())))
    if isinstance(v, list):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            return ("map", tuple(sorted((norm(k), norm(x)) for k, x in v)))
        return ("list", tuple(norm(x) for x in v))
    if isinstance(v, tuple):
        return tuple(norm(x) for x in v)
    return v


def rows(table: pa.Table):
    cols = sorted(table.column_names)
    t = table.select(cols)
    out = [tuple(norm(r[c]) for c in cols) for r in t.to_pylist()]
    return cols, sorted(out, key=repr)


def duckdb_read(path):
    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    con.execute(f"LOAD '{ext}'")
    return con.execute(f"SELECT * FROM delta_scan('{path}')").to_arrow_table()


def storage_options():
    """Object-store options for tables on S3/Azure (`DELTA_INTEROP_STORAGE_OPTIONS`, JSON)."""
    text = os.environ.get("DELTA_INTEROP_STORAGE_OPTIONS")
    return json.loads(text) if text else None


def deltalake_read(path):
    # delta-rs's DataFusion path (QueryBuilder): its pyarrow-dataset path returns all-NULL
    # columns on column-mapping tables (a known delta-rs 1.6.6 bug).
    from deltalake import DeltaTable, QueryBuilder
    dtab = DeltaTable(path, storage_options=storage_options())
    reader = QueryBuilder().register("t", dtab).execute("SELECT * FROM t")
    return pa.RecordBatchReader.from_stream(reader).read_all()


def verify(root):
    failures = 0
    checked = 0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isdir(os.path.join(d, "table")):
            continue
        expected_cols, expected = rows(pq.read_table(os.path.join(d, "expected.parquet")))
        for peer, reader in (("deltalake", deltalake_read), ("duckdb", duckdb_read)):
            if (peer, name) in SKIP:
                print(f"SKIP {name} {peer}: {SKIP[(peer, name)]}")
                continue
            try:
                cols, got = rows(reader(os.path.join(d, "table")))
            except Exception as e:  # noqa: BLE001
                print(f"FAIL {name} {peer}: read error: {type(e).__name__}: {e}")
                failures += 1
                continue
            if cols != expected_cols or got != expected:
                missing = [r for r in expected if r not in got][:2]
                extra = [r for r in got if r not in expected][:2]
                print(f"FAIL {name} {peer}: columns {cols} vs {expected_cols}; {len(got)} rows vs {len(expected)}; missing {missing}; unexpected {extra}")
                failures += 1
            else:
                checked += 1
                print(f"ok   {name} {peer}: {len(got)} rows")
    print(f"interop: {checked} table reads identical, {failures} failures")
    return 1 if failures else 0


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "verify":
        sys.exit(verify(path))
    if cmd == "make-deltalake":
        from deltalake import write_deltalake
        t = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": pa.array(["a", "b", "c"]), "part": pa.array(["x", "y", "x"])})
        write_deltalake(path, t, partition_by=["part"], storage_options=storage_options())
        return
    if cmd == "dml-deltalake":
        # The same input and operations as the Rust test `dml_matches_deltalake_on_shared_inputs`.
        from deltalake import DeltaTable, write_deltalake
        ids = list(range(40))
        t = pa.table({
            "id": pa.array(ids, pa.int64()),
            "part": pa.array([["a", "b", "c"][i % 3] for i in ids]),
            "v": pa.array([None if i % 7 == 0 else i * 10 for i in ids], pa.int64()),
        })
        write_deltalake(path, t, partition_by=["part"])
        dtab = DeltaTable(path)
        dtab.delete("v > 300")
        dtab.update(predicate="id % 5 = 0", updates={"v": "v + 1"})
        src_ids = list(range(5)) + list(range(100, 103))
        src = pa.table({
            "id": pa.array(src_ids, pa.int64()),
            "part": pa.array(["a" if i < 100 else None for i in src_ids]),
            "v": pa.array([-i if i < 100 else i for i in src_ids], pa.int64()),
        })
        (dtab.merge(source=src, predicate="t.id = s.id", source_alias="s", target_alias="t")
            .when_matched_update(updates={"v": "s.v"})
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(predicate="t.v > 250")
            .execute())
        out = deltalake_read(path)
        print(json.dumps({"rows": [[r["id"], r["part"], r["v"]] for r in out.to_pylist()]}))
        return
    if cmd == "cdf-deltalake":
        from deltalake import DeltaTable
        reader = DeltaTable(path).load_cdf(starting_version=int(sys.argv[3]))
        t = pa.RecordBatchReader.from_stream(reader).read_all() if not isinstance(reader, pa.Table) else reader
        print(json.dumps({"changes": [f"{r['_commit_version']}:{r['id']}:{r['_change_type']}" for r in t.to_pylist()]}))
        return
    if cmd == "read-deltalake":
        t = deltalake_read(path)
        print(json.dumps({"rows": t.num_rows, "sum_id": sum(t.column("id").to_pylist())}))
        return
    sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
