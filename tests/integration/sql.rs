//! Delta's SQL surface through `delta_core::sql::execute` alone (no query engine): one script per
//! statement family, each checked by reading the table back (rows, schema and its metadata,
//! properties, protocol, history with delta-spark's operation names); and bad statements, each a
//! one-line error that leaves the table as it was.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use delta_core::sql::{execute, SqlOutput};
use delta_core::{DeltaError, Table, TableOptions};

use crate::dml::tmp;

async fn run(text: &str) -> SqlOutput {
    match execute(text, &TableOptions::default(), None).await {
        Ok(o) => o,
        Err(e) => panic!("{text}\n  failed: {e}"),
    }
}

async fn version_of(text: &str) -> Option<i64> {
    match run(text).await {
        SqlOutput::Committed(r) => r.version,
        SqlOutput::Rows { .. } => panic!("{text} returned rows"),
    }
}

async fn fails(text: &str) -> DeltaError {
    match execute(text, &TableOptions::default(), None).await {
        Ok(o) => panic!("{text}\n  should have failed, gave {o:?}"),
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.contains('\n'), "one-line error, got: {shown}");
            e
        }
    }
}

/// Rows as `a|b|c` strings, sorted.
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    out.sort();
    out
}

async fn result_rows(text: &str) -> (Vec<String>, Vec<String>) {
    match run(text).await {
        SqlOutput::Rows { schema, batches } => (schema.fields().iter().map(|f| f.name().clone()).collect(), lines(&batches)),
        SqlOutput::Committed(_) => panic!("{text} returned no rows"),
    }
}

async fn rows(path: &str) -> Vec<String> {
    let s = Table::open(path).unwrap().snapshot().await.unwrap();
    lines(&s.scan().build().unwrap().collect().await.unwrap())
}

async fn operations(path: &str) -> Vec<String> {
    let mut h = Table::open(path).unwrap().history(None).await.unwrap();
    h.sort_by_key(|c| c.version);
    h.iter().map(|c| c.commit_info.get("operation").and_then(|o| o.as_str()).unwrap_or("").to_string()).collect()
}

async fn latest(path: &str) -> i64 {
    Table::open(path).unwrap().snapshot().await.unwrap().version()
}

#[tokio::test]
async fn create_table_declares_identity_generated_defaults_constraints_and_comments() {
    let p = tmp("sql-create");
    let v = version_of(&format!(
        "CREATE TABLE delta.`{p}` (
            id BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5),
            name STRING NOT NULL COMMENT 'who',
            amount DECIMAL(10,2) DEFAULT 1.50,
            day DATE,
            month INT GENERATED ALWAYS AS (month(day)),
            CONSTRAINT positive CHECK (amount > 0)
        ) USING delta PARTITIONED BY (month) COMMENT 'sales' TBLPROPERTIES ('delta.appendOnly' = 'false', 'owner' = 'ml')"
    ))
    .await;
    assert_eq!(v, Some(0));
    let s = Table::open(&p).unwrap().snapshot().await.unwrap();
    let schema = s.schema();
    let id = schema.field("id").unwrap();
    assert_eq!(id.metadata["delta.identity.start"], 10);
    assert_eq!(id.metadata["delta.identity.step"], 5);
    assert_eq!(id.metadata["delta.identity.allowExplicitInsert"], false);
    assert!(!schema.field("name").unwrap().nullable);
    assert_eq!(schema.field("name").unwrap().metadata["comment"], "who");
    assert_eq!(schema.field("amount").unwrap().metadata["CURRENT_DEFAULT"], "1.50");
    assert_eq!(schema.field("month").unwrap().metadata["delta.generationExpression"], "month(day)");
    assert_eq!(s.partition_columns(), ["month".to_string()]);
    assert_eq!(s.metadata().description.as_deref(), Some("sales"));
    assert_eq!(s.metadata().property("delta.constraints.positive"), Some("amount > 0"));
    assert_eq!(s.metadata().property("owner"), Some("ml"));
    let writer = s.protocol().effective_writer_features();
    for f in ["identityColumns", "generatedColumns", "checkConstraints", "allowColumnDefaults"] {
        assert!(writer.iter().any(|w| w == f), "{f} in {writer:?}");
    }

    // INSERT … VALUES with no engine: identity, generated and default columns are filled in.
    version_of(&format!("INSERT INTO delta.`{p}` (name, day) VALUES ('a', DATE '2024-03-05'), ('b', '2024-07-01')")).await;
    version_of(&format!("INSERT INTO delta.`{p}` (name, amount, day) VALUES ('c', 2.25, '2024-07-09')")).await;
    assert_eq!(
        rows(&p).await,
        ["10|a|1.50|2024-03-05|3", "15|b|1.50|2024-07-01|7", "20|c|2.25|2024-07-09|7"],
        "identity values from 10 by 5, the default, the generated month"
    );
    // The constraint holds; an explicit identity value is refused; both leave the table alone.
    let before = latest(&p).await;
    fails(&format!("INSERT INTO delta.`{p}` (name, amount, day) VALUES ('d', -1, '2024-01-01')")).await;
    fails(&format!("INSERT INTO delta.`{p}` (id, name, day) VALUES (1, 'd', '2024-01-01')")).await;
    fails(&format!("INSERT INTO delta.`{p}` (name, day) VALUES (NULL, '2024-01-01')")).await;
    assert_eq!(latest(&p).await, before);

    // CREATE on an existing table fails; IF NOT EXISTS leaves it; CREATE OR REPLACE replaces it
    // in one commit that keeps the table id and removes every file.
    fails(&format!("CREATE TABLE delta.`{p}` (x INT) USING delta")).await;
    assert_eq!(version_of(&format!("CREATE TABLE IF NOT EXISTS delta.`{p}` (x INT)")).await, None);
    let id_before = s.metadata().id.clone();
    version_of(&format!("CREATE OR REPLACE TABLE delta.`{p}` (x INT, y STRING) USING delta CLUSTER BY (x)")).await;
    let s = Table::open(&p).unwrap().snapshot().await.unwrap();
    assert_eq!(s.metadata().id, id_before);
    assert_eq!(s.num_files(), 0);
    assert_eq!(s.schema().fields.len(), 2);
    assert_eq!(s.clustering_columns().unwrap(), vec![vec!["x".to_string()]]);
    // The protocol is never downgraded by a replace.
    assert!(s.protocol().effective_writer_features().iter().any(|w| w == "identityColumns"));
    version_of(&format!("REPLACE TABLE delta.`{p}` (x BIGINT) USING delta")).await;
    assert_eq!(
        operations(&p).await,
        ["CREATE TABLE", "WRITE", "WRITE", "CREATE OR REPLACE TABLE", "REPLACE TABLE"],
        "delta-spark's operation names"
    );
    let created = Table::open(&p).unwrap().history(None).await.unwrap().into_iter().find(|c| c.version == 0).unwrap();
    let params = &created.commit_info["operationParameters"];
    assert_eq!((params["isManaged"].as_str(), params["description"].as_str()), (Some("false"), Some("sales")), "{params}");
    assert_eq!(params["partitionBy"], "[\"month\"]");
    let missing = tmp("sql-replace-missing");
    let e = fails(&format!("REPLACE TABLE delta.`{missing}` (x INT)")).await;
    assert!(e.to_string().contains("CREATE OR REPLACE"), "{e}");
}

#[tokio::test]
async fn create_table_column_syntax_errors_point_at_the_text() {
    let p = tmp("sql-create-bad");
    let cases = [
        ("(id INT GENERATED ALWAYS AS IDENTITY)", "must be BIGINT"),
        ("(id BIGINT GENERATED ALWAYS AS IDENTITY (INCREMENT BY 0))", "cannot be 0"),
        ("(id BIGINT, name TEXTY)", "unknown type `TEXTY`"),
        ("(id BIGINT, id INT)", "declared twice"),
        ("(id BIGINT DEFAULT id + 1)", "constant"),
        ("(id BIGINT) USING parquet", "Delta tables only"),
        ("(id BIGINT) PARTITIONED BY (nope)", "not a column"),
        ("(id BIGINT", "expected `)`"),
    ];
    for (cols, want) in cases {
        let e = fails(&format!("CREATE TABLE delta.`{p}` {cols}")).await;
        assert!(matches!(e, DeltaError::Sql { .. }), "{cols}: {e:?}");
        assert!(e.to_string().contains(want), "{cols}: {e}");
    }
    // Positions are the offending token's.
    match fails(&format!("CREATE TABLE delta.`{p}` (a INT,\n  b WHATEVER)")).await {
        DeltaError::Sql { line, column, .. } => assert_eq!((line, column), (2, 5)),
        other => panic!("{other:?}"),
    }
    assert!(Table::open(&p).unwrap().snapshot().await.is_err(), "nothing was created");
    // The same column syntax is what `delta create --schema` takes.
    let parsed = delta_core::sql::parse_table_elements("id BIGINT GENERATED BY DEFAULT AS IDENTITY, CONSTRAINT c CHECK (id > 0)").unwrap();
    assert_eq!(parsed.schema.fields[0].metadata["delta.identity.allowExplicitInsert"], true);
    assert_eq!(parsed.constraints, [("c".to_string(), "id > 0".to_string())]);
}

#[tokio::test]
async fn alter_table_changes_columns_properties_constraints_clustering_and_features() {
    let p = tmp("sql-alter");
    let t = format!("delta.`{p}`");
    version_of(&format!(
        "CREATE TABLE {t} (id BIGINT, name STRING, score INT, part STRING) USING delta PARTITIONED BY (part)
         TBLPROPERTIES (delta.columnMapping.mode = 'name', delta.enableTypeWidening = true)"
    ))
    .await;
    version_of(&format!("INSERT INTO {t} VALUES (1, 'a', 10, 'x'), (2, NULL, 20, 'y')")).await;

    version_of(&format!("ALTER TABLE {t} ADD COLUMNS (tag STRING COMMENT 'label', extra DOUBLE)")).await;
    version_of(&format!("ALTER TABLE {t} RENAME COLUMN name TO full_name")).await;
    version_of(&format!("ALTER TABLE {t} DROP COLUMN extra")).await;
    version_of(&format!("ALTER TABLE {t} ALTER COLUMN score TYPE BIGINT")).await;
    version_of(&format!("ALTER TABLE {t} ALTER COLUMN id SET NOT NULL")).await;
    version_of(&format!("ALTER TABLE {t} ALTER COLUMN id COMMENT 'key'")).await;
    version_of(&format!("ALTER TABLE {t} ALTER COLUMN tag SET DEFAULT 'none'")).await;
    version_of(&format!("ALTER TABLE {t} SET TBLPROPERTIES ('team' = 'ml', 'delta.logRetentionDuration' = 'interval 60 days')")).await;
    version_of(&format!("ALTER TABLE {t} UNSET TBLPROPERTIES ('team')")).await;
    version_of(&format!("ALTER TABLE {t} ADD CONSTRAINT score_ok CHECK (score >= 0)")).await;
    version_of(&format!("INSERT INTO {t} (id, full_name, score, part) VALUES (3, 'c', 30, 'x')")).await;

    let s = Table::open(&p).unwrap().snapshot().await.unwrap();
    let names: Vec<&str> = s.schema().fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["id", "full_name", "score", "part", "tag"]);
    assert!(!s.schema().field("id").unwrap().nullable);
    assert_eq!(s.schema().field("id").unwrap().metadata["comment"], "key");
    assert_eq!(s.schema().field("tag").unwrap().metadata["comment"], "label");
    assert_eq!(s.schema().field("score").unwrap().data_type.to_string(), "long");
    assert_eq!(s.metadata().property("team"), None);
    assert_eq!(s.metadata().property("delta.logRetentionDuration"), Some("interval 60 days"));
    assert_eq!(rows(&p).await, ["1|a|10|x|NULL", "2|NULL|20|y|NULL", "3|c|30|x|none"], "renamed, widened, defaulted");

    // Bad changes: one line each, nothing committed.
    let before = latest(&p).await;
    let bad = [
        (format!("ALTER TABLE {t} ALTER COLUMN full_name SET NOT NULL"), "hold NULL"),
        (format!("ALTER TABLE {t} ADD CONSTRAINT big CHECK (score > 15)"), "violate"),
        (format!("ALTER TABLE {t} DROP COLUMN part"), "partition column"),
        (format!("ALTER TABLE {t} RENAME COLUMN nope TO x"), "nope"),
        (format!("ALTER TABLE {t} ALTER COLUMN score TYPE INT"), "widening"),
        (format!("ALTER TABLE {t} ALTER COLUMN score TYPE WIDGET"), "unknown type"),
        (format!("ALTER TABLE {t} ADD COLUMNS (full_name STRING)"), "already exists"),
        (format!("ALTER TABLE {t} ADD COLUMNS (n INT NOT NULL)"), "NOT NULL"),
        (format!("ALTER TABLE {t} UNSET TBLPROPERTIES ('team')"), "no property"),
        (format!("ALTER TABLE {t} DROP FEATURE checkConstraints"), "CHECK constraints"),
        (format!("ALTER TABLE {t} DROP FEATURE columnMapping"), "reader-writer"),
        (format!("ALTER TABLE {t} SPIN AROUND"), "expected ADD"),
    ];
    for (stmt, want) in &bad {
        let e = fails(stmt).await;
        assert!(e.to_string().contains(want), "{stmt}: {e}");
    }
    assert_eq!(latest(&p).await, before, "failed statements commit nothing");

    // Constraint and feature removal; IF EXISTS forms are no-ops when nothing is there.
    version_of(&format!("ALTER TABLE {t} DROP CONSTRAINT score_ok")).await;
    assert_eq!(version_of(&format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS score_ok")).await, None);
    assert_eq!(version_of(&format!("ALTER TABLE {t} UNSET TBLPROPERTIES IF EXISTS ('team')")).await, None);
    assert_eq!(version_of(&format!("ALTER TABLE {t} DROP COLUMNS IF EXISTS (nope)")).await, None);
    version_of(&format!("ALTER TABLE {t} DROP FEATURE checkConstraints")).await;
    let s = Table::open(&p).unwrap().snapshot().await.unwrap();
    assert!(!s.protocol().effective_writer_features().iter().any(|f| f == "checkConstraints"));
    version_of(&format!("ALTER TABLE {t} ALTER COLUMN tag DROP DEFAULT")).await;
    version_of(&format!("ALTER TABLE {t} ALTER COLUMN id DROP NOT NULL")).await;
    version_of(&format!("ALTER TABLE {t} DROP FEATURE allowColumnDefaults")).await;

    let ops = operations(&p).await;
    assert_eq!(
        ops,
        [
            "CREATE TABLE",
            "WRITE",
            "ADD COLUMNS",
            "RENAME COLUMN",
            "DROP COLUMNS",
            "CHANGE COLUMN",
            "CHANGE COLUMN",
            "CHANGE COLUMN",
            "CHANGE COLUMN",
            "SET TBLPROPERTIES",
            "UNSET TBLPROPERTIES",
            "ADD CONSTRAINT",
            "WRITE",
            "DROP CONSTRAINT",
            "DROP FEATURE",
            "CHANGE COLUMN",
            "CHANGE COLUMN",
            "DROP FEATURE",
        ]
    );

    // CLUSTER BY on an unpartitioned table, then NONE.
    let c = tmp("sql-alter-cluster");
    version_of(&format!("CREATE TABLE delta.`{c}` (a INT, b STRING) USING delta")).await;
    version_of(&format!("ALTER TABLE delta.`{c}` CLUSTER BY (a, b)")).await;
    let s = Table::open(&c).unwrap().snapshot().await.unwrap();
    assert_eq!(s.clustering_columns().unwrap(), vec![vec!["a".to_string()], vec!["b".to_string()]]);
    version_of(&format!("ALTER TABLE delta.`{c}` CLUSTER BY NONE")).await;
    assert!(Table::open(&c).unwrap().snapshot().await.unwrap().clustering_columns().unwrap().is_empty());
}

#[tokio::test]
async fn utility_commands_optimize_reorg_vacuum_restore_clone_convert() {
    let p = tmp("sql-util");
    let t = format!("delta.`{p}`");
    version_of(&format!("CREATE TABLE {t} (id BIGINT, v STRING) USING delta TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")).await;
    for i in 0..4 {
        version_of(&format!("INSERT INTO {t} VALUES ({i}, 'v{i}'), ({}, 'w{i}')", i + 10)).await;
    }
    let all = rows(&p).await;
    assert_eq!(all.len(), 8);
    match run(&format!("OPTIMIZE {t} ZORDER BY (id, v)")).await {
        SqlOutput::Committed(r) => {
            assert!(r.version.is_some());
            assert_eq!(r.metric("numRemovedFiles"), 4);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(Table::open(&p).unwrap().snapshot().await.unwrap().num_files(), 1);
    assert_eq!(rows(&p).await, all);

    delta_core::sql::execute_sql(&format!("DELETE FROM {t} WHERE id >= 10"), &TableOptions::default()).await.unwrap();
    assert!(Table::open(&p).unwrap().snapshot().await.unwrap().has_deletion_vectors());
    version_of(&format!("REORG TABLE {t} APPLY (PURGE)")).await;
    assert!(!Table::open(&p).unwrap().snapshot().await.unwrap().has_deletion_vectors());
    assert_eq!(rows(&p).await.len(), 4);

    let (cols, dry) = result_rows(&format!("VACUUM {t} RETAIN 168 HOURS DRY RUN")).await;
    assert_eq!(cols, ["path"]);
    assert!(dry.is_empty(), "nothing is old enough: {dry:?}");
    let e = fails(&format!("VACUUM {t} RETAIN 0 HOURS")).await;
    assert!(matches!(e, DeltaError::RetentionTooShort { .. }), "{e:?}");

    version_of(&format!("RESTORE TABLE {t} TO VERSION AS OF 2")).await;
    assert_eq!(rows(&p).await, ["0|v0", "10|w0", "11|w1", "1|v1"]);

    let clone = tmp("sql-util-clone");
    version_of(&format!("CREATE TABLE delta.`{clone}` SHALLOW CLONE {t} VERSION AS OF 1")).await;
    let opts = TableOptions { allowed_external_prefixes: vec![delta_core::storage::location_url(&p).unwrap()], ..Default::default() };
    let cs = Table::open_with(&clone, opts).unwrap().snapshot().await.unwrap();
    assert_eq!(lines(&cs.scan().build().unwrap().collect().await.unwrap()), ["0|v0", "10|w0"]);

    let ops = operations(&p).await;
    assert_eq!(&ops[5..], ["OPTIMIZE", "DELETE", "REORG", "RESTORE"], "{ops:?}");

    // CONVERT TO DELTA: a Hive-partitioned parquet directory becomes a table in place.
    let dir = tmp("sql-convert");
    for (part, ids) in [("2024-01-01", vec![1i64, 2]), ("2024-01-02", vec![3])] {
        let d = std::path::Path::new(&dir).join(format!("day={part}"));
        std::fs::create_dir_all(&d).unwrap();
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(arrow::array::Int64Array::from(ids))]).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(d.join("part-0.parquet")).unwrap(), schema, None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    std::fs::write(std::path::Path::new(&dir).join("_SUCCESS"), b"").unwrap();
    let e = fails(&format!("CONVERT TO DELTA parquet.`{dir}`")).await;
    assert!(e.to_string().contains("PARTITIONED BY (day"), "{e}");
    assert_eq!(version_of(&format!("CONVERT TO DELTA parquet.`{dir}` PARTITIONED BY (day DATE)")).await, Some(0));
    assert_eq!(rows(&dir).await, ["1|2024-01-01", "2|2024-01-01", "3|2024-01-02"]);
    let s = Table::open(&dir).unwrap().snapshot().await.unwrap();
    assert_eq!(s.add_files().unwrap().iter().filter_map(|a| a.num_records()).sum::<u64>(), 3);
    assert_eq!(operations(&dir).await, ["CONVERT"]);
    let (_, manifest) = result_rows(&format!("GENERATE symlink_format_manifest FOR TABLE delta.`{dir}`")).await;
    assert!(manifest[0].ends_with("|2"), "two partitions, two manifests: {manifest:?}");
    let m = std::fs::read_to_string(std::path::Path::new(&dir).join("_symlink_format_manifest/day=2024-01-01/manifest")).unwrap();
    assert!(m.trim().ends_with("day=2024-01-01/part-0.parquet"), "{m}");
}

#[tokio::test]
async fn describe_and_show_use_sparks_result_sets() {
    let p = tmp("sql-describe");
    let t = format!("delta.`{p}`");
    version_of(&format!(
        "CREATE TABLE {t} (id BIGINT COMMENT 'key', tags ARRAY<STRING>, d DATE) USING delta PARTITIONED BY (d) COMMENT 'about'
         TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')"
    ))
    .await;
    version_of(&format!("INSERT INTO {t} (id, d) VALUES (1, '2024-01-01')")).await;
    version_of(&format!("DELETE FROM {t} WHERE id = 1")).await;

    let (cols, h) = result_rows(&format!("DESCRIBE HISTORY {t}")).await;
    assert_eq!(
        cols,
        [
            "version",
            "timestamp",
            "userId",
            "userName",
            "operation",
            "operationParameters",
            "clusterId",
            "readVersion",
            "isolationLevel",
            "isBlindAppend",
            "operationMetrics",
            "userMetadata",
            "engineInfo"
        ]
    );
    assert_eq!(h.len(), 3);
    assert!(h.iter().any(|r| r.starts_with("2|") && r.contains("|DELETE|{predicate: ")), "{h:?}");
    let (_, limited) = result_rows(&format!("DESCRIBE HISTORY {t} LIMIT 1")).await;
    assert_eq!(limited.len(), 1);
    assert!(limited[0].starts_with("2|"));

    let (cols, d) = result_rows(&format!("DESCRIBE DETAIL {t}")).await;
    assert_eq!(cols[..6], ["format", "id", "name", "description", "location", "createdAt"]);
    assert!(cols.contains(&"numFiles".to_string()) && cols.contains(&"tableFeatures".to_string()));
    assert!(d[0].starts_with("delta|") && d[0].contains("|about|") && d[0].contains("[d]"), "{d:?}");

    let (cols, desc) = result_rows(&format!("DESCRIBE TABLE {t}")).await;
    assert_eq!(cols, ["col_name", "data_type", "comment"]);
    assert!(desc.contains(&"id|bigint|key".to_string()), "{desc:?}");
    assert!(desc.contains(&"tags|array<string>|NULL".to_string()), "{desc:?}");
    assert!(desc.contains(&"# Partition Information||".to_string()), "{desc:?}");

    let (cols, props) = result_rows(&format!("SHOW TBLPROPERTIES {t}")).await;
    assert_eq!(cols, ["key", "value"]);
    assert!(props.contains(&"delta.enableChangeDataFeed|true".to_string()), "{props:?}");
    assert!(props.iter().any(|p| p.starts_with("delta.minWriterVersion|")), "{props:?}");
    let (_, one) = result_rows(&format!("SHOW TBLPROPERTIES {t} ('delta.enableChangeDataFeed')")).await;
    assert_eq!(one, ["delta.enableChangeDataFeed|true"]);
    let (cols, names) = result_rows(&format!("SHOW COLUMNS IN {t}")).await;
    assert_eq!(cols, ["col_name"]);
    assert_eq!(names, ["d", "id", "tags"]);

    let e = fails("DESCRIBE HISTORY events").await;
    assert!(e.to_string().contains("unknown table `events`"), "{e}");
    let e = fails(&format!("OPTIMIZE {t} ZORDER (id)")).await;
    assert!(matches!(e, DeltaError::Sql { .. }), "{e:?}");
}

/// An ingestion service spawns statements on a multi-threaded runtime: the future must be Send.
#[test]
fn execute_can_be_spawned() {
    fn send<T: Send>(_: &T) {}
    let options = TableOptions::default();
    let future = execute("DESCRIBE HISTORY delta.`/nowhere`", &options, None);
    send(&future);
}
