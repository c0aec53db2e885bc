#!/usr/bin/env python3
"""One query through Arrow Flight SQL with the ADBC driver (`adbc-driver-flightsql`), driven by
the Rust test `a_cluster_of_processes_answers_as_local` (delta-cli).

    flight_sql_query.py URI USER PASSWORD SQL
    (FLIGHT_SQL_CA, FLIGHT_SQL_CERT, FLIGHT_SQL_KEY: PEM files for a grpc+tls:// URI with mutual TLS)

Prints {"columns": [...], "rows": [[...], ...]} with the rows sorted, or, when the server
refuses or fails, {"error": "..."} and exits 3.
"""
import json
import os
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def main():
    uri, user, password, sql = sys.argv[1:5]
    try:
        db = {DatabaseOptions.TIMEOUT_QUERY.value: "120"}
        if user:
            db.update({"username": user, "password": password})
        # Mutual TLS (grpc+tls:// URIs): PEM files named by the environment.
        for option, env in [(DatabaseOptions.TLS_ROOT_CERTS, "FLIGHT_SQL_CA"), (DatabaseOptions.MTLS_CERT_CHAIN, "FLIGHT_SQL_CERT"),
                            (DatabaseOptions.MTLS_PRIVATE_KEY, "FLIGHT_SQL_KEY")]:
            if os.environ.get(env):
                db[option.value] = open(os.environ[env]).read()
        with flight_sql.connect(uri, db_kwargs=db) as conn:
            with conn.cursor() as cur:
                cur.execute(sql)
                table = cur.fetch_arrow_table()
    except Exception as e:  # the driver's errors: refused credentials, failed queries
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.stdout.flush()
        os._exit(3)
    rows = sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))
    print(json.dumps({"columns": table.column_names, "rows": [[r[c] for c in table.column_names] for r in rows]}, default=str))
    sys.stdout.flush()
    # Skips interpreter teardown, where the driver's threads can abort the process.
    os._exit(0)


if __name__ == "__main__":
    main()
