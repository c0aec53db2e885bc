//! The `delta` binary as a whole process on real files: queries through `delta sql`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pipeline;

use std::path::PathBuf;
use std::process::Command;

fn delta(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_delta")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("delta-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn sql_queries_by_path_by_name_and_by_folder() {
    let root = dir("sql");
    let table = root.join("events");
    let t = table.to_str().unwrap();
    let csv = root.join("events.csv");
    std::fs::write(&csv, "id,grp\n1,a\n2,b\n3,a\n").unwrap();
    // A write to a new path creates the table in one commit.
    let (ok, out, err) = delta(&["write", t, csv.to_str().unwrap(), "--partition-by", "grp"]);
    assert!(ok, "{err}");
    assert!(out.contains("version 0"), "{out}");

    let q = format!("SELECT grp, count(*) AS n, sum(id) AS s FROM delta.`{t}` GROUP BY grp ORDER BY grp");
    let (ok, out, err) = delta(&["sql", &q, "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "grp,n,s\na,2,4\nb,1,2\n");

    let (ok, out, err) = delta(&["sql", "SELECT id FROM e WHERE id > 1 ORDER BY id", "--table", &format!("e={t}"), "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "id\n2\n3\n");

    let (ok, out, err) = delta(&["sql", "SELECT count(*) AS n FROM events", "--tables", root.to_str().unwrap(), "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "n\n3\n");

    let (ok, out, err) = delta(&["sql", "EXPLAIN ANALYZE SELECT * FROM events WHERE grp = 'a'", "--tables", root.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("files_total=2") && out.contains("files_scanned=1"), "{out}");

    // Without --format, --output's extension names the format.
    for (file, check) in [("out.parquet", "PAR1"), ("out.csv", "grp,n\n"), ("out.json", "{\"grp\":")] {
        let out_path = root.join(file);
        let (ok, _, err) = delta(&["sql", "SELECT grp, count(*) AS n FROM events GROUP BY grp", "--tables", root.to_str().unwrap(), "--output", out_path.to_str().unwrap()]);
        assert!(ok, "{file}: {err}");
        let bytes = std::fs::read(&out_path).unwrap();
        assert!(bytes.starts_with(check.as_bytes()), "{file}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(80)]));
        if file.ends_with(".parquet") {
            assert!(bytes.ends_with(b"PAR1"), "{file}: not a whole parquet file");
        }
    }

    // Errors are one line, exit code 1, and name what is wrong.
    let (ok, _, err) = delta(&["sql", &format!("SELECT * FROM delta.`{t}-missing`")]);
    assert!(!ok && err.contains("not a Delta table"), "{err}");
    let (ok, _, err) = delta(&["sql", "SELECT * FROM e", "--table", "e"]);
    assert!(!ok && err.contains("NAME=PATH"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Statements that write, through the whole process: CTAS (version 0 holds the data), INSERT
/// by name, time travel, MERGE from a subquery, and a memory limit.
#[test]
fn sql_statements_that_write() {
    let root = dir("sqlwrite");
    let t = root.join("totals");
    let t = t.to_str().unwrap();
    let ctas = format!("CREATE TABLE delta.`{t}` PARTITIONED BY (grp) AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a')) AS v(id, grp)");
    let (ok, out, err) = delta(&["sql", &ctas]);
    assert!(ok, "{err}");
    assert!(out.contains("committed version 0") && out.contains("numOutputRows: 3"), "{out}");
    let table = format!("t={t}");
    let (ok, out, err) = delta(&["sql", "INSERT INTO t VALUES (4, 'b')", "--table", &table]);
    assert!(ok && out.contains("committed version 1"), "{out}{err}");
    let merge = format!(
        "MERGE INTO delta.`{t}` AS t USING (SELECT id, 'c' AS grp FROM delta.`{t}` VERSION AS OF 0 WHERE id = 1) AS s ON t.id = s.id \
         WHEN MATCHED THEN DELETE"
    );
    let (ok, out, err) = delta(&["sql", &merge]);
    assert!(ok && out.contains("numTargetRowsDeleted: 1"), "{out}{err}");
    let (ok, out, err) = delta(&[
        "sql",
        "SELECT (SELECT count(*) FROM t) AS now, (SELECT count(*) FROM t VERSION AS OF 1) AS before",
        "--table",
        &table,
        "--format",
        "csv",
        "--memory-limit",
        "64MiB",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "now,before\n3,4\n");
    let (ok, _, err) = delta(&["sql", "SELECT 1", "--memory-limit", "lots"]);
    assert!(!ok && err.contains("not a size"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}


#[test]
fn ml_fit_evaluate_transform() {
    let root = dir("ml");
    let table = root.join("t");
    let t = table.to_str().unwrap();
    // y = 3x + 1 exactly, category irrelevant; two versions.
    let mut csv = String::from("x,cat,y\n");
    for i in 0..200 {
        csv.push_str(&format!("{},{},{}\n", i as f64 / 10.0, if i % 3 == 0 { "a" } else { "b" }, 3.0 * i as f64 / 10.0 + 1.0));
    }
    let file = root.join("rows.csv");
    std::fs::write(&file, &csv).unwrap();
    assert!(delta(&["write", t, file.to_str().unwrap()]).0);
    assert!(delta(&["write", t, file.to_str().unwrap()]).0);
    let spec = root.join("spec.json");
    std::fs::write(
        &spec,
        r#"{"stages": [{"stage": "StringIndexer", "inputCol": "cat", "outputCol": "c"},
                       {"stage": "OneHotEncoder", "inputCol": "c", "outputCol": "cv"},
                       {"stage": "VectorAssembler", "inputCols": ["x", "cv"], "outputCol": "features"},
                       {"stage": "LinearRegression", "labelCol": "y"}]}"#,
    )
    .unwrap();
    let model = root.join("model");
    let (ok, out, err) = delta(&["ml", "fit", t, "--pipeline", spec.to_str().unwrap(), "--version", "0", "--where", "x < 15", "--model", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["rows"], 150);
    assert_eq!(line["table_version"], 0);
    assert_eq!(line["metric"], "rmse");
    assert!(line["value"].as_f64().unwrap() < 1e-9, "{line}");
    let (ok, out, err) = delta(&["ml", "evaluate", model.to_str().unwrap(), t, "--where", "x >= 15", "--metric", "r2"]);
    assert!(ok, "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["rows"], 100); // both versions' rows with x >= 15
    assert!((line["value"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{line}");
    let scored = root.join("scored.parquet");
    let (ok, out, err) = delta(&["ml", "transform", model.to_str().unwrap(), t, "--output", scored.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("\"rows\":400"), "{out}");
    assert!(std::fs::metadata(&scored).unwrap().len() > 0);
    // A bad spec fails with a one-line error naming the param, and writes no model.
    std::fs::write(&spec, r#"{"stages": [{"stage": "LinearRegression", "regParm": 1}]}"#).unwrap();
    let (ok, _, err) = delta(&["ml", "fit", t, "--pipeline", spec.to_str().unwrap(), "--model", root.join("m2").to_str().unwrap()]);
    assert!(!ok && err.contains("regParm"), "{err}");
    assert!(!root.join("m2").exists());
    // A tuned tree model: the line carries the search; the model directory its record.
    std::fs::write(
        &spec,
        r#"{"stages": [{"stage": "VectorAssembler", "inputCols": ["x"], "outputCol": "features"},
                       {"stage": "DecisionTreeRegressor", "labelCol": "y"}],
            "tuning": {"stage": "TrainValidationSplit", "grid": {"maxDepth": [1, 6]},
                       "evaluator": {"stage": "RegressionEvaluator", "labelCol": "y"}}}"#,
    )
    .unwrap();
    let tuned = root.join("tuned");
    let (ok, out, err) = delta(&["ml", "fit", t, "--pipeline", spec.to_str().unwrap(), "--model", tuned.to_str().unwrap()]);
    assert!(ok, "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["tuning"]["bestParams"]["maxDepth"], 6, "{line}");
    assert_eq!(line["metric"], "rmse");
    assert!(tuned.join("tuning.json").exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// DDL, utility statements and inspection through `delta sql` and `delta create`, as a whole
/// process: identity columns declared on the command line, ALTER, DESCRIBE HISTORY as CSV (its
/// map columns as text), `table_changes(…)`, and one-line errors that change nothing.
#[test]
fn sql_ddl_describe_and_change_feed() {
    let root = dir("sqlddl");
    let table = root.join("people");
    let t = table.to_str().unwrap();
    let (ok, out, err) = delta(&[
        "create",
        t,
        "--schema",
        "id BIGINT GENERATED ALWAYS AS IDENTITY, name STRING NOT NULL COMMENT 'who', CONSTRAINT named CHECK (name <> '')",
        "--property",
        "delta.enableChangeDataFeed=true",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("version 0"), "{out}");
    let (ok, _, err) = delta(&["sql", &format!("INSERT INTO delta.`{t}` (name) VALUES ('ann'), ('bo')")]);
    assert!(ok, "{err}");
    let (ok, _, err) = delta(&["sql", &format!("ALTER TABLE delta.`{t}` ADD COLUMNS (score DOUBLE COMMENT 'points')")]);
    assert!(ok, "{err}");
    let (ok, out, err) = delta(&["sql", &format!("SELECT id, name, score FROM delta.`{t}` ORDER BY id"), "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "id,name,score\n1,ann,\n2,bo,\n");

    let (ok, out, err) = delta(&["sql", &format!("DESCRIBE HISTORY delta.`{t}`"), "--format", "csv"]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("version,timestamp,userId,userName,operation,operationParameters,"), "{out}");
    let ops: Vec<&str> = out.lines().skip(1).map(|l| l.split(',').nth(4).unwrap_or("")).collect();
    assert_eq!(ops, ["ADD COLUMNS", "WRITE", "CREATE TABLE"], "{out}");

    let (ok, out, err) = delta(&[
        "sql",
        &format!("SELECT name, _change_type, _commit_version FROM table_changes('{t}', 1) ORDER BY name"),
        "--format",
        "csv",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "name,_change_type,_commit_version\nann,insert,1\nbo,insert,1\n");

    let (ok, out, err) = delta(&["sql", &format!("SHOW TBLPROPERTIES delta.`{t}` ('delta.enableChangeDataFeed')"), "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "key,value\ndelta.enableChangeDataFeed,true\n");

    // Errors: one line, exit 1, nothing committed.
    for (stmt, want) in [
        (format!("ALTER TABLE delta.`{t}` DROP COLUMN name"), "column mapping"),
        (format!("INSERT INTO delta.`{t}` (name) VALUES ('')"), "named"),
        (format!("ALTER TABLE delta.`{t}` ALTER COLUMN nope COMMENT 'x'"), "nope"),
    ] {
        let (ok, _, err) = delta(&["sql", &stmt]);
        assert!(!ok && err.contains(want) && err.trim().lines().count() == 1, "{stmt}: {err}");
    }
    let (ok, out, _) = delta(&["sql", &format!("DESCRIBE HISTORY delta.`{t}` LIMIT 1"), "--format", "json"]);
    assert!(ok && out.contains("\"version\":2"), "{out}");
    let _ = std::fs::remove_dir_all(&root);
}

/// The whole process on the object-store servers `.ci/run` starts (SeaweedFS for S3, Azurite for
/// Azure Blob): a table written, queried, updated and listed by URL, configured once by
/// `--storage-option` and once by the standard environment variables alone; a bad option is a
/// one-line error that shows no secret. Skipped without the servers, unless `CI=true`.
#[test]
fn tables_on_s3_and_azure_by_url() {
    let run = format!("cli-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis());
    // (name, table URL, options: given as flags, then as environment variables)
    type Options = Vec<(String, String)>;
    let mut stores: Vec<(&str, String, Options)> = Vec::new();
    if let (Ok(endpoint), Ok(bucket)) = (std::env::var("DELTA_TEST_S3_ENDPOINT"), std::env::var("DELTA_TEST_S3_BUCKET")) {
        let options = vec![
            ("AWS_ENDPOINT_URL".to_string(), endpoint),
            ("AWS_ACCESS_KEY_ID".to_string(), std::env::var("DELTA_TEST_S3_ACCESS_KEY_ID").unwrap_or_default()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), std::env::var("DELTA_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_default()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
            ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ];
        stores.push(("s3", format!("s3://{bucket}/{run}"), options));
    }
    if let (Ok(_), Ok(container)) = (std::env::var("AZURITE_BLOB_STORAGE_URL"), std::env::var("DELTA_TEST_AZURE_CONTAINER")) {
        stores.push(("azure", format!("az://{container}/{run}"), vec![("AZURE_STORAGE_USE_EMULATOR".to_string(), "true".to_string())]));
    }
    if stores.len() < 2 {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true but the object-store servers are not running (.ci/stores.sh)");
        eprintln!("cli stores: SeaweedFS/Azurite not running (.ci/stores.sh start); skipping the missing ones");
    }
    let root = dir("stores");
    let csv = root.join("rows.csv");
    std::fs::write(&csv, "id,grp\n1,a\n2,b\n3,a\n").unwrap();
    for (name, base, options) in &stores {
        let flags: Vec<String> = options.iter().flat_map(|(k, v)| ["--storage-option".to_string(), format!("{k}={v}")]).collect();
        let with = |args: &[&str]| {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(flags.iter().map(String::as_str));
            delta(&all)
        };
        let t = format!("{base}/events");
        let (ok, out, err) = with(&["write", &t, csv.to_str().unwrap(), "--partition-by", "grp"]);
        assert!(ok && out.contains("version 0"), "{name}: {out}{err}");
        let (ok, _, err) = with(&["sql", &format!("UPDATE delta.`{t}` SET id = id * 10 WHERE grp = 'a'")]);
        assert!(ok, "{name}: {err}");
        let (ok, out, err) = with(&["sql", &format!("SELECT grp, sum(id) AS s FROM delta.`{t}` GROUP BY grp ORDER BY grp"), "--format", "csv"]);
        assert!(ok, "{name}: {err}");
        assert_eq!(out, "grp,s\na,40\nb,2\n", "{name}");
        let (ok, out, err) = with(&["history", &t]);
        assert!(ok && out.contains("UPDATE") && out.contains("WRITE"), "{name}: {out}{err}");

        // The same table with the configuration in the environment only.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_delta"));
        cmd.args(["sql", &format!("SELECT count(*) AS n FROM delta.`{t}` VERSION AS OF 0"), "--format", "csv"]);
        for (k, v) in options {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n3\n", "{name}");

        // An unknown option: one line naming it; the secret given beside it is not shown.
        let (ok, _, err) = with(&["files", &t, "--storage-option", "NO_SUCH_OPTION=1"]);
        assert!(!ok && err.contains("NO_SUCH_OPTION") && err.trim().lines().count() == 1, "{name}: {err}");
        for (k, v) in options {
            if k.contains("SECRET") {
                assert!(!err.contains(v.as_str()), "{name}: the secret is in `{err}`");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// `delta write` streams its input into the table (decoding while the encoders write): a large
/// append gives the rows, the per-file statistics and the commit that the in-memory API write of
/// the same batches gives. An input that fails half-way commits nothing and says why.
#[test]
fn large_append_streams_the_same_table() {
    use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    let root = dir("append");
    let input = root.join("input.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("x", DataType::Float64, true),
    ]));
    let n = 600_000i64;
    {
        let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(70_000)).build();
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&input).unwrap(), schema.clone(), Some(props)).unwrap();
        for start in (0..n).step_by(50_000) {
            let ids: Vec<i64> = (start..start + 50_000).collect();
            let s: StringArray = ids.iter().map(|i| (i % 7 != 0).then(|| format!("v{}", (i * 7919) % 10_007))).collect();
            let x: Float64Array = ids.iter().map(|i| (i % 5 != 0).then_some(*i as f64 / 3.0)).collect();
            let b = arrow::array::RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(s), Arc::new(x)])
                .unwrap();
            w.write(&b).unwrap();
        }
        w.close().unwrap();
    }
    let by_cli = root.join("cli");
    let (ok, out, err) = delta(&["write", by_cli.to_str().unwrap(), input.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("version 0: {n} rows")), "{out}");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let by_api = root.join("api");
    let batches: Vec<_> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&input).unwrap())
        .unwrap()
        .with_batch_size(64 * 1024)
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let api = delta_core::Table::open(by_api.to_str().unwrap()).unwrap();
    rt.block_on(api.write(batches, Default::default())).unwrap();

    let describe = |path: &std::path::Path| {
        rt.block_on(async {
            let table = delta_core::Table::open(path.to_str().unwrap()).unwrap();
            let snapshot = table.snapshot().await.unwrap();
            // Per-file statistics, in a stable order (by the smallest id).
            let mut stats: Vec<serde_json::Value> = snapshot.files().map(|f| serde_json::from_str(f.stats().unwrap()).unwrap()).collect();
            stats.sort_by_key(|s| s["minValues"]["id"].as_i64());
            let mut ids: Vec<i64> = Vec::new();
            let mut strings = 0usize;
            let mut stream = snapshot.scan().build().unwrap().execute();
            while let Some(b) = futures::StreamExt::next(&mut stream).await {
                let b = b.unwrap();
                ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
                strings += b.column(1).len() - b.column(1).null_count();
            }
            ids.sort_unstable();
            let info = table.history(None).await.unwrap().remove(0).commit_info;
            (stats, ids, strings, info["operation"].clone(), info["operationParameters"].clone(), info["operationMetrics"].clone())
        })
    };
    let (cli_stats, cli_ids, cli_strings, cli_op, cli_params, cli_metrics) = describe(&by_cli);
    let (api_stats, api_ids, api_strings, api_op, api_params, api_metrics) = describe(&by_api);
    assert!(cli_stats.len() > 1, "expected the rows spread over the encoders: {}", cli_stats.len());
    assert_eq!(cli_stats, api_stats);
    assert_eq!(cli_ids, (0..n).collect::<Vec<_>>());
    assert_eq!(cli_ids, api_ids);
    assert_eq!(cli_strings, api_strings);
    assert_eq!((cli_op, cli_params), (api_op, api_params));
    let metric = |m: &serde_json::Value, k: &str| m[k].clone();
    for k in ["numFiles", "numOutputRows"] {
        assert_eq!(metric(&cli_metrics, k), metric(&api_metrics, k), "{k}: {cli_metrics} vs {api_metrics}");
    }

    // A CSV whose 150,000th row does not parse: the first batches were already encoding when
    // the bad one is read, and still nothing is committed.
    let csv = root.join("bad.csv");
    let mut text = String::from("id,s,x\n");
    for i in 0..200_000i64 {
        if i == 150_000 {
            text.push_str("oops,a,1.0\n");
        } else {
            text.push_str(&format!("{i},v{i},{}.5\n", i % 100));
        }
    }
    std::fs::write(&csv, text).unwrap();
    let (ok, _, err) = delta(&["write", by_cli.to_str().unwrap(), csv.to_str().unwrap()]);
    assert!(!ok, "a bad input was accepted");
    assert!(err.contains("bad.csv") && err.contains("oops"), "{err}");
    let version = rt.block_on(async { delta_core::Table::open(by_cli.to_str().unwrap()).unwrap().snapshot().await.unwrap().version() });
    assert_eq!(version, 0);
    let _ = std::fs::remove_dir_all(&root);
}

/// A Python with `deltalake` (`DELTA_INTEROP_PYTHON`, or the `.ci-venv` that `.ci/run` makes).
fn interop_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DELTA_INTEROP_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci-venv/bin/python");
    venv.exists().then_some(venv)
}

/// TPC-H at SF 0.01 as Delta tables under `root` (lineitem and orders in three commits each, so
/// scans spread over tasks, and with rows deleted by deletion vectors).
fn tpch_tables(root: &std::path::Path) {
    use arrow::array::RecordBatch;
    use delta_core::write::WriteOptions;
    use tpchgen::generators::{
        CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator, RegionGenerator,
        SupplierGenerator,
    };
    use tpchgen_arrow::{CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow, SupplierArrow};
    const SF: f64 = 0.01;
    type Batches = Vec<RecordBatch>;
    let collect = |it: &mut dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>| it.collect::<Result<Batches, _>>().unwrap();
    let three = |f: &dyn Fn(i32) -> Batches| (1..=3).map(f).collect::<Vec<_>>();
    let tables: Vec<(&str, Vec<Batches>)> = vec![
        ("region", vec![collect(&mut RegionArrow::new(RegionGenerator::new(SF, 1, 1)))]),
        ("nation", vec![collect(&mut NationArrow::new(NationGenerator::new(SF, 1, 1)))]),
        ("supplier", vec![collect(&mut SupplierArrow::new(SupplierGenerator::new(SF, 1, 1)))]),
        ("customer", vec![collect(&mut CustomerArrow::new(CustomerGenerator::new(SF, 1, 1)))]),
        ("part", vec![collect(&mut PartArrow::new(PartGenerator::new(SF, 1, 1)))]),
        ("partsupp", vec![collect(&mut PartSuppArrow::new(PartSuppGenerator::new(SF, 1, 1)))]),
        ("orders", three(&|p| collect(&mut OrderArrow::new(OrderGenerator::new(SF, p, 3))))),
        ("lineitem", three(&|p| collect(&mut LineItemArrow::new(LineItemGenerator::new(SF, p, 3))))),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (name, commits) in tables {
            let table = delta_core::Table::open(root.join(name).to_str().unwrap()).unwrap();
            for batches in commits {
                let options = WriteOptions { properties: [("delta.enableDeletionVectors".to_string(), "true".to_string())].into(), ..Default::default() };
                table.write(batches, options).await.unwrap();
            }
        }
        for (name, predicate) in [("lineitem", "l_orderkey % 13 = 0"), ("orders", "o_orderkey % 17 = 0")] {
            let table = delta_core::Table::open(root.join(name).to_str().unwrap()).unwrap();
            table.delete(Some(predicate)).await.unwrap();
        }
    });
}

/// The `-- qN` queries of delta-exec's TPC-H test, in order.
fn tpch_queries() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in include_str!("../../delta-exec/tests/tpch/queries.sql").lines() {
        if let Some(name) = line.strip_prefix("-- q") {
            out.push((format!("q{}", name.trim()), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.into_iter().map(|(n, b)| (n, b.trim().trim_end_matches(';').to_string())).collect()
}

/// `delta sql --format json` rows as values; equal when the same but for floating-point noise
/// in the last digits (sums added in another order on the cluster).
fn json_rows(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w))),
        _ => a == b,
    }
}

/// A `delta` process killed (and reaped) when dropped; its stdout is drained on a thread.
struct Server {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// Starts `delta args…` and waits (up to 60 s) for its first line on stdout.
    fn start(args: &[&str]) -> (Server, String) {
        Server::start_with(args, &[])
    }

    /// [`Server::start`] with extra environment variables.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_delta"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Server { child, lines };
        let first = server.lines.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| {
            let status = server.child.try_wait();
            panic!("`delta {}` printed nothing within 60 s (exit: {status:?})", args.join(" "))
        });
        (server, first)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scheduler and two executors as separate processes on 127.0.0.1 (free ports): `delta sql
/// --cluster` answers as a local `delta sql` on a table with deletion vectors, including a join
/// and a CTAS (one commit, version 0); with the scheduler gone, the client fails with an error
/// in bounded time instead of hanging.
#[test]
fn a_cluster_of_processes_answers_as_local() {
    let root = dir("cluster");
    let t = root.join("events");
    let t = t.to_str().unwrap();
    let csv = root.join("events.csv");
    let mut text = String::from("id,grp,amount\n");
    for i in 0..3000 {
        text.push_str(&format!("{i},g{},{}\n", i % 7, i * 3));
    }
    std::fs::write(&csv, text).unwrap();
    let (ok, _, err) = delta(&["create", t, "--schema", "id long, grp string, amount long", "--property", "delta.enableDeletionVectors=true"]);
    assert!(ok, "{err}");
    for _ in 0..3 {
        let (ok, _, err) = delta(&["write", t, csv.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = delta(&["sql", &format!("DELETE FROM delta.`{t}` WHERE id % 5 = 0")]);
    assert!(ok && out.contains("numDeletionVectorsAdded"), "{out}{err}");

    let tables = root.to_str().unwrap();
    // Pushed tasks here (the mutual-TLS test runs pulled ones).
    let args = ["cluster", "scheduler", "--bind", "127.0.0.1:0", "--executor-timeout-secs", "10", "--flight-sql", "--flight-sql-user", "tester", "--tables", tables, "--push"];
    let (scheduler, line) = Server::start_with(&args, &[("DELTA_FLIGHT_SQL_PASSWORD", "s3cret")]);
    let addr = line.strip_prefix("scheduler listening on ").unwrap_or_else(|| panic!("scheduler said: {line}"));
    let addr = addr.strip_suffix(" (Flight SQL on the same port)").unwrap_or_else(|| panic!("scheduler said: {line}")).to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let work = [root.join("w1"), root.join("w2")];
    let mut executors = Vec::new();
    for w in &work {
        // Not created here: the executor makes its work directory.
        let args = ["cluster", "executor", "--scheduler", &addr, "--slots", "2", "--heartbeat-secs", "1", "--work-dir", w.to_str().unwrap(), "--push", "--grpc-bind", "127.0.0.1:0"];
        let (e, line) = Server::start(&args);
        assert!(line.starts_with("executor on 127.0.0.1:"), "{line}");
        executors.push(e);
    }
    let (ok, out, err) = delta(&["cluster", "status", "--scheduler", &addr, "--wait-for", "2", "--timeout-secs", "60"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "ready: 2 executors registered");

    let url = format!("df://{addr}");
    let queries = [
        format!("SELECT grp, count(*) AS n, sum(amount) AS s FROM delta.`{t}` GROUP BY grp ORDER BY grp"),
        format!("SELECT count(*) AS n FROM delta.`{t}`"),
        format!("SELECT a.grp, count(*) AS n FROM delta.`{t}` a JOIN delta.`{t}` b ON a.id = b.id + 1 WHERE a.amount > 100 GROUP BY a.grp ORDER BY a.grp"),
        format!("SELECT id, amount FROM delta.`{t}` WHERE id BETWEEN 10 AND 20 ORDER BY id, amount"),
        // Unaliased: the output's column names are the local ones.
        format!("SELECT max(amount), min(id) FROM delta.`{t}` WHERE grp = 'g3'"),
    ];
    for q in &queries {
        let (ok, local, err) = delta(&["sql", q, "--format", "csv"]);
        assert!(ok, "{err}");
        let (ok, remote, err) = delta(&["sql", q, "--format", "csv", "--cluster", &url]);
        assert!(ok, "on the cluster: {q}: {err}");
        assert_eq!(remote, local, "{q}");
    }
    // Deleted rows stay deleted on the executors.
    let (_, out, _) = delta(&["sql", &format!("SELECT count(*) AS n FROM delta.`{t}` WHERE id % 5 = 0"), "--format", "csv", "--cluster", &url]);
    assert_eq!(out, "n\n0\n");

    // Arrow Flight SQL on the scheduler's port, through ADBC: tables by folder name (--tables)
    // and by path, the same answers; wrong credentials are refused.
    match interop_python() {
        Some(py) => {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/flight_sql_query.py");
            let uri = format!("grpc://{addr}");
            let flight = |user: &str, password: &str, sql: &str| {
                let out = Command::new(&py).arg(&script).args([&uri, user, password, sql]).output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                serde_json::from_str::<serde_json::Value>(text.trim())
                    .unwrap_or_else(|_| panic!("flight_sql_query.py printed {text:?}; stderr: {}", String::from_utf8_lossy(&out.stderr)))
            };
            let got = flight("tester", "s3cret", "SELECT grp, count(*) AS n, sum(amount) AS s FROM events GROUP BY grp");
            let want: Vec<serde_json::Value> = (0..7)
                .map(|g| {
                    let ids: Vec<i64> = (0..3000).filter(|i| i % 7 == g && i % 5 != 0).collect();
                    serde_json::json!([format!("g{g}"), ids.len() * 3, ids.iter().map(|i| i * 3).sum::<i64>() * 3])
                })
                .collect();
            assert_eq!(got["rows"], serde_json::Value::Array(want), "{got}");
            let got = flight("tester", "s3cret", &format!("SELECT count(*) AS n FROM delta.`{t}` WHERE id < 100"));
            assert_eq!(got["rows"], serde_json::json!([[(0..100).filter(|i| i % 5 != 0).count() * 3]]), "{got}");
            let refused = flight("tester", "wrong", "SELECT count(*) FROM events");
            let message = refused["error"].as_str().unwrap_or_else(|| panic!("a wrong password was not refused: {refused}"));
            assert!(message.to_ascii_lowercase().contains("unauthenticated"), "{message}");
            let anonymous = flight("", "", "SELECT count(*) FROM events");
            assert!(anonymous["error"].is_string(), "a client without credentials was answered: {anonymous}");
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but no Python with adbc-driver-flightsql (DELTA_INTEROP_PYTHON)"),
        None => eprintln!("no Python with adbc-driver-flightsql (.ci/run installs one): Flight SQL was not queried"),
    }

    // All 22 TPC-H queries, local and on the cluster, on tables with deletion vectors.
    let tpch = root.join("tpch");
    tpch_tables(&tpch);
    let tpch = tpch.to_str().unwrap();
    let mut wrong = Vec::new();
    for (name, q) in tpch_queries() {
        let (ok, local, err) = delta(&["sql", &q, "--tables", tpch, "--format", "json"]);
        assert!(ok, "{name} locally: {err}");
        let (ok, remote, err) = delta(&["sql", &q, "--tables", tpch, "--format", "json", "--cluster", &url]);
        assert!(ok, "{name} on the cluster: {err}");
        let (mut a, mut b) = (json_rows(&local), json_rows(&remote));
        if !q.to_ascii_lowercase().contains("order by") {
            a.sort_by_key(|v| v.to_string());
            b.sort_by_key(|v| v.to_string());
        }
        if a.len() != b.len() || !a.iter().zip(&b).all(|(x, y)| same_value(x, y)) {
            wrong.push(format!("{name}: local {} rows, cluster {} rows; first {:?} / {:?}", a.len(), b.len(), a.first(), b.first()));
        }
    }
    assert!(wrong.is_empty(), "TPC-H answers differ on the cluster:\n{}", wrong.join("\n"));

    // A CTAS on the cluster: the executors write the files, the client commits version 0.
    let target = root.join("summary");
    let target = target.to_str().unwrap();
    let ctas = format!("CREATE TABLE delta.`{target}` AS SELECT grp, count(*) AS n, sum(id) AS id FROM delta.`{t}` GROUP BY grp");
    let (ok, out, err) = delta(&["sql", &ctas, "--cluster", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("committed version 0"), "{out}");
    let kept: Vec<usize> = (0..3000).filter(|i| i % 5 != 0).collect();
    let (_, out, _) = delta(&["sql", &format!("SELECT sum(n) AS n FROM delta.`{target}`"), "--format", "csv"]);
    assert_eq!(out, format!("n\n{}\n", kept.len() * 3));
    let log: Vec<String> = std::fs::read_dir(root.join("summary/_delta_log")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(log.iter().filter(|f| f.ends_with(".json")).count(), 1, "one commit: {log:?}");
    // delta-rs (`deltalake`) reads it the same.
    match interop_python() {
        Some(py) => {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/check_tables.py");
            let out = Command::new(py).arg(script).args(["read-deltalake", target]).output().unwrap();
            // What it printed is checked, not how it exited: once in .ci/run (not by hand) the
            // interpreter aborted after printing ("terminate called without an active
            // exception", a C++ runtime's thread torn down at exit), as the other interop tests
            // allow for.
            let want = format!("{{\"rows\": 7, \"sum_id\": {}}}", kept.iter().sum::<usize>() * 3);
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "deltalake: {}", String::from_utf8_lossy(&out.stderr));
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but no Python with deltalake (DELTA_INTEROP_PYTHON)"),
        None => eprintln!("no Python with deltalake (.ci/run installs one): the cluster's CTAS was not read back by delta-rs"),
    }

    drop(executors);
    drop(scheduler);
    let started = std::time::Instant::now();
    let (ok, _, err) = delta(&["sql", &queries[0], "--cluster", &url]);
    assert!(!ok, "a query with the scheduler gone succeeded");
    assert!(!err.trim().is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the client took {:?} to give up", started.elapsed());
    let _ = std::fs::remove_dir_all(&root);
}

/// An executor killed while a query runs on it: the scheduler notices the missed heartbeats, runs
/// its tasks (and any stage whose shuffle output it held) again on the other executor, and the
/// query still gives the local answer.
///
/// Ignored: Ballista 55.0 does not pass it. With its adaptive planner (our default) the job
/// never ends after the loss; with the static planner it ends with the rows of re-run
/// partitions twice. Run it with `--ignored` to see.
#[test]
#[ignore = "Ballista 55.0 hangs (adaptive planner) or duplicates re-run partitions (static planner) after losing an executor mid-query"]
fn a_query_survives_a_killed_executor() {
    let root = dir("cluster-kill");
    let t = root.join("events");
    let t = t.to_str().unwrap();
    let csv = root.join("events.csv");
    let mut text = String::from("id,grp,amount\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},g{},{}\n", i % 7, i * 3));
    }
    std::fs::write(&csv, text).unwrap();
    for _ in 0..4 {
        let (ok, _, err) = delta(&["write", t, csv.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    // Long enough on debug builds to be running when an executor dies.
    let q = format!(
        "SELECT a.grp, count(*) AS n, sum(b.amount) AS s FROM delta.`{t}` a JOIN delta.`{t}` b ON a.grp = b.grp AND a.id < b.id + 3 GROUP BY a.grp ORDER BY a.grp"
    );
    let (ok, local, err) = delta(&["sql", &q, "--format", "csv"]);
    assert!(ok, "{err}");

    let (_scheduler, line) = Server::start(&["cluster", "scheduler", "--bind", "127.0.0.1:0", "--executor-timeout-secs", "8", "--min-executors", "2"]);
    let addr = line.strip_prefix("scheduler listening on ").unwrap_or_else(|| panic!("scheduler said: {line}")).to_string();
    let mut executors = Vec::new();
    for w in ["w1", "w2"] {
        let w = root.join(w);
        std::fs::create_dir_all(&w).unwrap();
        let args = ["cluster", "executor", "--scheduler", &addr, "--slots", "2", "--heartbeat-secs", "1", "--work-dir", w.to_str().unwrap()];
        executors.push(Server::start(&args).0);
    }
    let (ok, _, err) = delta(&["cluster", "status", "--scheduler", &addr, "--wait-for", "2", "--timeout-secs", "60"]);
    assert!(ok, "{err}");

    let started = std::time::Instant::now();
    let mut client = Command::new(env!("CARGO_BIN_EXE_delta"))
        .args(["sql", &q, "--format", "csv", "--cluster", &format!("df://{addr}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(client.try_wait().unwrap().is_none(), "the query finished before an executor could be killed; make it longer");
    drop(executors.remove(0));
    // Bounded: a job that never ends is a failure, not a hang of the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while client.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = client.kill();
            panic!("the query did not end within 180 s of an executor being killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = client.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the query failed after an executor was killed ({:?}): {stderr}", started.elapsed());
    assert_eq!(stdout, local);
    eprintln!("query with a killed executor took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&root);
}

/// The scheduler killed while a query runs: the client fails with an error naming the cluster
/// within a bounded time instead of waiting for a job no one will finish.
#[test]
fn a_dead_scheduler_fails_the_client_in_bounded_time() {
    let root = dir("cluster-dead-scheduler");
    let t = root.join("events");
    let t = t.to_str().unwrap();
    let csv = root.join("events.csv");
    let mut text = String::from("id,grp,amount\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},g{},{}\n", i % 7, i * 3));
    }
    std::fs::write(&csv, text).unwrap();
    for _ in 0..2 {
        let (ok, _, err) = delta(&["write", t, csv.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let q = format!("SELECT a.grp, count(*) AS n FROM delta.`{t}` a JOIN delta.`{t}` b ON a.grp = b.grp AND a.id < b.id + 3 GROUP BY a.grp ORDER BY a.grp");
    let (scheduler, line) = Server::start(&["cluster", "scheduler", "--bind", "127.0.0.1:0"]);
    let addr = line.strip_prefix("scheduler listening on ").unwrap_or_else(|| panic!("scheduler said: {line}")).to_string();
    let w = root.join("w1");
    std::fs::create_dir_all(&w).unwrap();
    let _executor = Server::start(&["cluster", "executor", "--scheduler", &addr, "--slots", "2", "--work-dir", w.to_str().unwrap()]).0;
    let (ok, _, err) = delta(&["cluster", "status", "--scheduler", &addr, "--wait-for", "1", "--timeout-secs", "60"]);
    assert!(ok, "{err}");
    let url = format!("df://{addr}");
    let mut client = Command::new(env!("CARGO_BIN_EXE_delta"))
        .args(["sql", &q, "--format", "csv", "--cluster", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(client.try_wait().unwrap().is_none(), "the query finished before the scheduler could be killed; make it longer");
    drop(scheduler);
    let killed = std::time::Instant::now();
    while client.try_wait().unwrap().is_none() {
        if killed.elapsed() > std::time::Duration::from_secs(60) {
            let _ = client.kill();
            panic!("the client still waits 60 s after the scheduler died");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the query succeeded without a scheduler");
    assert!(stderr.contains(&url), "the error does not name the cluster: {stderr}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A cluster process refuses to open itself to strangers: beyond loopback without `--insecure`,
/// Flight SQL without credentials, a Flight SQL user without a password. Nothing starts.
#[test]
fn cluster_processes_refuse_open_access() {
    let (ok, _, err) = delta(&["cluster", "scheduler", "--bind", "0.0.0.0:0"]);
    assert!(!ok && err.contains("--insecure"), "{err}");
    let (ok, _, err) = delta(&["cluster", "executor", "--scheduler", "127.0.0.1:1", "--bind", "0.0.0.0:0"]);
    assert!(!ok && err.contains("--insecure"), "{err}");
    let (ok, _, err) = delta(&["cluster", "scheduler", "--bind", "127.0.0.1:0", "--flight-sql"]);
    assert!(!ok && err.contains("--flight-sql-user"), "{err}");
    let certs = dir("refuse-open-certs");
    if let Some([cert, key, ca, _, _]) = test_certificates(&certs) {
        let (ok, _, err) = delta(&["cluster", "scheduler", "--bind", "127.0.0.1:0", "--push", "--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca]);
        assert!(!ok && err.contains("not under TLS"), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_delta"))
        .args(["cluster", "scheduler", "--bind", "127.0.0.1:0", "--flight-sql", "--flight-sql-user", "u"])
        .env_remove("DELTA_FLIGHT_SQL_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("DELTA_FLIGHT_SQL_PASSWORD"), "{err}");
    let (ok, _, err) = delta(&["cluster", "executor", "--scheduler", "127.0.0.1:1", "--bind", "127.0.0.1:0", "--grpc-bind", "127.0.0.2:0"]);
    assert!(!ok && err.contains("--grpc-bind"), "{err}");
    let missing = dir("no-tables-here").join("absent");
    let (ok, _, err) = delta(&["cluster", "scheduler", "--bind", "127.0.0.1:0", "--tables", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("not a folder"), "{err}");
}

/// Certificates for a test cluster, made with the `openssl` command: a CA and a certificate it
/// signed for 127.0.0.1 (server and client use), and a stranger's CA and certificate.
fn test_certificates(dir: &std::path::Path) -> Option<[String; 5]> {
    let openssl = |args: &[&str]| Command::new("openssl").args(args).current_dir(dir).output().map(|o| o.status.success()).unwrap_or(false);
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n").unwrap();
    for who in ["cluster", "stranger"] {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ok = openssl(&[&["req", "-x509"], &ec[..], &["-keyout", &format!("{who}-ca.key"), "-out", &format!("{who}-ca.pem"), "-days", "2", "-subj", &format!("/CN={who} CA")]].concat())
            && openssl(&[&["req"], &ec[..], &["-keyout", &format!("{who}.key"), "-out", &format!("{who}.csr"), "-subj", &format!("/CN={who} node")]].concat())
            && openssl(&[
                "x509", "-req", "-in", &format!("{who}.csr"), "-CA", &format!("{who}-ca.pem"), "-CAkey", &format!("{who}-ca.key"), "-CAcreateserial",
                "-out", &format!("{who}.pem"), "-days", "2", "-extfile", "ext.cnf",
            ]);
        if !ok {
            return None;
        }
    }
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    Some([p("cluster.pem"), p("cluster.key"), p("cluster-ca.pem"), p("stranger.pem"), p("stranger.key")])
}

/// A cluster under mutual TLS: with the cluster's certificates a query answers as local (a
/// shuffle between two executors over TLS too) and status and Flight SQL work; a client without
/// certificates or with a stranger's is refused and sees no rows; an executor with a stranger's
/// certificate never joins; a Flight SQL client with the right certificate but a wrong password
/// is refused.
#[test]
fn a_cluster_under_mutual_tls_refuses_strangers() {
    let root = dir("cluster-tls");
    let Some([cert, key, ca, stranger, stranger_key]) = test_certificates(&root) else {
        assert!(std::env::var("CI").map(|v| v != "true").unwrap_or(true), "CI=true but the openssl command cannot make certificates");
        eprintln!("no openssl command: the mutual TLS test did not run");
        return;
    };
    let t = root.join("events");
    let t = t.to_str().unwrap();
    let csv = root.join("events.csv");
    let mut text = String::from("id,grp,amount\n");
    for i in 0..2000 {
        text.push_str(&format!("{i},g{},{}\n", i % 7, i * 3));
    }
    std::fs::write(&csv, text).unwrap();
    for _ in 0..2 {
        let (ok, _, err) = delta(&["write", t, csv.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str(), "--tls-ca", ca.as_str()];
    let strangers = ["--tls-cert", stranger.as_str(), "--tls-key", stranger_key.as_str(), "--tls-ca", ca.as_str()];
    let tables = root.to_str().unwrap();
    let args = [&["cluster", "scheduler", "--bind", "127.0.0.1:0", "--executor-timeout-secs", "10", "--flight-sql", "--flight-sql-user", "tester", "--tables", tables][..], &tls[..]].concat();
    let (_scheduler, line) = Server::start_with(&args, &[("DELTA_FLIGHT_SQL_PASSWORD", "s3cret")]);
    let addr = line.strip_prefix("scheduler listening on ").and_then(|a| a.strip_suffix(" (Flight SQL on the same port)")).unwrap_or_else(|| panic!("{line}")).to_string();
    let mut executors = Vec::new();
    for w in ["w1", "w2"] {
        let w = root.join(w);
        let args = [&["cluster", "executor", "--scheduler", &addr, "--slots", "1", "--heartbeat-secs", "1", "--work-dir", w.to_str().unwrap()][..], &tls[..]].concat();
        executors.push(Server::start(&args).0);
    }
    let (ok, out, err) = delta(&[&["cluster", "status", "--scheduler", &addr, "--wait-for", "2", "--timeout-secs", "60"][..], &tls[..]].concat());
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "ready: 2 executors registered");
    // A stranger's executor never joins.
    let w3 = root.join("w3");
    let rogue = [&["cluster", "executor", "--scheduler", &addr, "--slots", "1", "--heartbeat-secs", "1", "--work-dir", w3.to_str().unwrap()][..], &strangers[..]].concat();
    // Its log (a refused handshake per poll) is kept quiet.
    let _rogue = Server::start_with(&rogue, &[("RUST_LOG", "off")]).0;
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, out, err) = delta(&[&["cluster", "status", "--scheduler", &addr][..], &tls[..]].concat());
    assert!(ok && out.trim() == "ready: 2 executors registered", "{out}{err}");
    // Status without TLS learns nothing.
    let (ok, out, _) = delta(&["cluster", "status", "--scheduler", &addr, "--timeout-secs", "3"]);
    assert!(!ok && !out.contains("executors"), "{out}");

    let url = format!("df://{addr}");
    let q = format!("SELECT a.grp, count(*) AS n, sum(b.amount) AS s FROM delta.`{t}` a JOIN delta.`{t}` b ON a.id = b.id GROUP BY a.grp ORDER BY a.grp");
    let (ok, local, err) = delta(&["sql", &q, "--format", "csv"]);
    assert!(ok, "{err}");
    let (ok, remote, err) = delta(&[&["sql", &q, "--format", "csv", "--cluster", &url][..], &tls[..]].concat());
    assert!(ok, "with the cluster's certificate: {err}");
    assert_eq!(remote, local);
    for (who, extra) in [("no certificate", &[][..]), ("a stranger's certificate", &strangers[..])] {
        let started = std::time::Instant::now();
        let (ok, out, err) = delta(&[&["sql", &q, "--format", "csv", "--cluster", &url][..], extra].concat());
        assert!(!ok, "a client with {who} was answered: {out}");
        assert!(!out.contains("g1") && !err.contains("g1,"), "a client with {who} saw rows: {out}{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "a client with {who} waited {:?}", started.elapsed());
    }
    // Flight SQL over mutual TLS (ADBC): the right certificate and password answer; a wrong
    // password is refused.
    match interop_python() {
        Some(py) => {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/flight_sql_query.py");
            let uri = format!("grpc+tls://{addr}");
            let flight = |password: &str| {
                let out = Command::new(&py)
                    .arg(&script)
                    .args([&uri, "tester", password, "SELECT count(*) AS n FROM events"])
                    .env("FLIGHT_SQL_CA", &ca)
                    .env("FLIGHT_SQL_CERT", &cert)
                    .env("FLIGHT_SQL_KEY", &key)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                serde_json::from_str::<serde_json::Value>(text.trim()).unwrap_or_else(|_| panic!("{text:?}: {}", String::from_utf8_lossy(&out.stderr)))
            };
            let got = flight("s3cret");
            assert_eq!(got["rows"], serde_json::json!([[4000]]), "{got}");
            let refused = flight("wrong");
            assert!(refused["error"].as_str().is_some_and(|e| e.to_ascii_lowercase().contains("unauthenticated")), "{refused}");
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but no Python with adbc-driver-flightsql (DELTA_INTEROP_PYTHON)"),
        None => eprintln!("no Python with adbc-driver-flightsql: Flight SQL over TLS was not queried"),
    }
    drop(executors);
    let _ = std::fs::remove_dir_all(&root);
}
