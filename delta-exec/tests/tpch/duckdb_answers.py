"""DuckDB's answers to the TPC-H queries on Delta tables this project wrote.

    python duckdb_answers.py TABLES_DIR QUERIES_SQL

Each table under TABLES_DIR is read with DuckDB's delta extension (loaded from its PyPI wheel,
offline) as a view of its name; every `-- qN` query of QUERIES_SQL runs unchanged. Prints one JSON
object: {"q1": [[value, ...], ...], ...}, values as text (numbers by repr, dates ISO), NULL as null.
"""
import json
import os
import re
import sys

import duckdb
import duckdb_extension_delta


def queries(path):
    text = open(path).read()
    parts = re.split(r"^-- (q\d+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


def cell(v):
    if v is None:
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def main():
    tables, sql = sys.argv[1], sys.argv[2]
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    con.execute(f"LOAD '{ext}'")
    for name in sorted(os.listdir(tables)):
        if os.path.isdir(os.path.join(tables, name, "_delta_log")):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM delta_scan('{os.path.join(tables, name)}')")
    out = {}
    for q, text in queries(sql).items():
        out[q] = [[cell(v) for v in row] for row in con.execute(text).fetchall()]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
