//! OPTIMIZE (compaction, Z-order), deletion-vector purge, VACUUM, shallow CLONE and ALTER on
//! local disk.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::write::WriteOptions;
use delta_core::{DeltaError, Expr, Table};

use crate::dml::{batch, make, sample, table_rows, tmp, Row};

/// The actions of commit `version` as JSON objects.
fn commit_actions(table: &Table, version: i64) -> Vec<serde_json::Value> {
    let root = table.location().root_url().to_file_path().unwrap();
    let text = std::fs::read_to_string(root.join(format!("_delta_log/{version:020}.json"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn appends(name: &str, commits: usize, partitioned: bool, dv: bool) -> Table {
    let rows = sample();
    let table = make(name, &rows[..2], partitioned, dv, false).await;
    for c in 0..commits {
        let chunk: Vec<Row> = rows.iter().skip(2).enumerate().filter(|(i, _)| i % commits == c).map(|(_, r)| r.clone()).collect();
        let opts = WriteOptions::default();
        table.write(vec![batch(&chunk)], opts).await.unwrap();
    }
    table
}

#[tokio::test]
async fn optimize_compacts_small_files_once_and_changes_no_data() {
    for partitioned in [false, true] {
        let table = appends(&format!("opt-{partitioned}"), 6, partitioned, false).await;
        let before = table_rows(&table).await;
        let files_before = table.snapshot().await.unwrap().num_files();
        let r = table.optimize().execute().await.unwrap();
        let v = r.version.expect("something to compact");
        let s = table.snapshot().await.unwrap();
        let expected_files = if partitioned { 3 } else { 1 };
        assert_eq!(s.num_files(), expected_files, "partitioned={partitioned}");
        assert_eq!(r.metric("numRemovedFiles") as usize, files_before);
        assert_eq!(r.metric("numAddedFiles") as usize, expected_files);
        assert_eq!(table_rows(&table).await, before);
        // Every file action says no data changed; the commit is delta-spark's OPTIMIZE.
        for a in commit_actions(&table, v) {
            if let Some(f) = a.get("add").or_else(|| a.get("remove")) {
                assert_eq!(f["dataChange"], false, "{a}");
            }
            if let Some(ci) = a.get("commitInfo") {
                assert_eq!(ci["operation"], "OPTIMIZE");
                assert_eq!(ci["isolationLevel"], "SnapshotIsolation");
            }
        }
        // Idempotent: a second run finds nothing to do.
        let again = table.optimize().execute().await.unwrap();
        assert_eq!(again.version, None, "partitioned={partitioned}: {:?}", again.metrics);
        // The change feed has nothing to say about it (dataChange=false): history still reads.
        assert_eq!(table.history(None).await.unwrap()[0].commit_info.get("operation").and_then(|o| o.as_str()), Some("OPTIMIZE"));
    }
}

#[tokio::test]
async fn optimize_with_a_partition_filter_touches_only_that_partition() {
    let table = appends("opt-filter", 4, true, false).await;
    let count = |s: &delta_core::Snapshot, p: &str| {
        s.add_files().unwrap().iter().filter(|a| a.partition_values.get("part") == Some(&Some(p.to_string()))).count()
    };
    let s0 = table.snapshot().await.unwrap();
    let (a0, b0) = (count(&s0, "a"), count(&s0, "b"));
    assert!(a0 > 1 && b0 > 1);
    let r = table.optimize().with_filter("part = 'a'").unwrap().execute().await.unwrap();
    assert!(r.version.is_some());
    let s1 = table.snapshot().await.unwrap();
    assert_eq!((count(&s1, "a"), count(&s1, "b")), (1, b0));
    // Filters on data columns are refused with a typed error, before anything is written.
    let err = table.optimize().with_filter("v > 3").unwrap().execute().await.unwrap_err();
    assert!(matches!(err, DeltaError::InvalidExpression { .. }), "{err}");
    // Files at least the minimum size are left alone.
    let t2 = appends("opt-min", 4, false, false).await;
    let r = t2.optimize().min_file_size(1).execute().await.unwrap();
    assert_eq!(r.version, None);
}

/// `(x, y)` on a 100×100 grid in a scrambled order, written as `files` files.
async fn grid(name: &str, files: usize) -> Table {
    let table = Table::open(&tmp(name)).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true), Field::new("y", DataType::Int64, true)]));
    let mut cells: Vec<(i64, i64)> = (0..100).flat_map(|x| (0..100).map(move |y| (x, y))).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..cells.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        cells.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for chunk in cells.chunks(cells.len() / files) {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(chunk.iter().map(|c| c.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(chunk.iter().map(|c| c.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        table.write(vec![b], WriteOptions::default()).await.unwrap();
    }
    table
}

async fn files_for(table: &Table, predicate: &str) -> usize {
    table.snapshot().await.unwrap().scan().with_predicate(Expr::parse(predicate).unwrap()).build().unwrap().files().len()
}

#[tokio::test]
async fn z_order_clusters_rows_so_point_lookups_skip_files() {
    let table = grid("zorder", 16).await;
    let q = "x = 17 AND y = 83";
    assert_eq!(files_for(&table, q).await, 16, "scrambled data: every file's range covers everything");
    let size = table.snapshot().await.unwrap().total_size_bytes() as u64;
    let r = table.optimize().z_order(&["x", "y"]).target_size(size / 16).execute().await.unwrap();
    assert!(r.version.is_some());
    let s = table.snapshot().await.unwrap();
    assert!(s.num_files() >= 8, "{} files", s.num_files());
    let hit = files_for(&table, q).await;
    assert!(hit <= 3, "after Z-order a point lookup reads {hit} of {} files", s.num_files());
    // A range on either column alone also skips.
    assert!(files_for(&table, "x < 10").await < s.num_files());
    assert!(files_for(&table, "y < 10").await < s.num_files());
    let rows = s.scan().build().unwrap().count().await.unwrap();
    assert_eq!(rows, 10_000);
    // Errors: unknown column, partition column.
    assert!(matches!(table.optimize().z_order(&["nope"]).execute().await, Err(DeltaError::ColumnNotFound { .. })));
    let parted = make("zorder-part", &sample(), true, false, false).await;
    assert!(matches!(parted.optimize().z_order(&["part"]).execute().await, Err(DeltaError::InvalidExpression { .. })));
    assert!(parted.optimize().z_order(&["v", "id"]).execute().await.unwrap().version.is_some());
    assert_eq!(table_rows(&parted).await, {
        let mut s = sample();
        s.sort();
        s
    });
}

#[tokio::test]
async fn purge_rewrites_files_with_deletion_vectors() {
    let table = make("purge", &sample(), true, true, true).await;
    table.delete(Some("v > 200")).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.has_deletion_vectors());
    let before = table_rows(&table).await;
    let r = table.purge_deletion_vectors(None).await.unwrap();
    let v = r.version.unwrap();
    // No data changed: the change feed has nothing for the purge.
    let changes = table.table_changes(v, Some(v), None).await.unwrap().collect().await.unwrap();
    assert_eq!(changes.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert!(r.metric("numDeletionVectorsRemoved") > 0);
    let s = table.snapshot().await.unwrap();
    assert!(s.add_files().unwrap().iter().all(|a| a.deletion_vector.is_none()));
    assert_eq!(table_rows(&table).await, before);
    assert_eq!(table.purge_deletion_vectors(None).await.unwrap().version, None);
    // Compaction also picks up files with many deleted rows, even a single one.
    let t2 = make("purge-compact", &sample(), false, true, false).await;
    t2.optimize().execute().await.unwrap();
    assert_eq!(t2.snapshot().await.unwrap().num_files(), 1);
    t2.delete(Some("id < 10")).await.unwrap();
    assert!(t2.snapshot().await.unwrap().has_deletion_vectors());
    let r = t2.optimize().execute().await.unwrap();
    assert!(r.version.is_some(), "{:?}", r.metrics);
    assert!(!t2.snapshot().await.unwrap().has_deletion_vectors());
    assert_eq!(table_rows(&t2).await.len(), 30);
}

fn props(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn files_under(root: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn vacuum_deletes_only_files_no_retained_version_references() {
    let table = make("vacuum", &sample(), true, true, true).await;
    let root = table.location().root_url().to_file_path().unwrap();
    table.delete(Some("v > 300")).await.unwrap(); // deletion vectors + change data
    table
        .write(vec![batch(&sample()[..5])], WriteOptions { mode: delta_core::write::SaveMode::Overwrite, ..Default::default() })
        .await
        .unwrap();
    let live_rows = table_rows(&table).await;
    let v_before_vacuum = table.snapshot().await.unwrap().version();
    // Stray files: an old untracked data file (deleted), a hidden file and a file in a hidden
    // directory (left alone), a log file (never touched).
    std::fs::write(root.join("part=a/stray.parquet"), b"junk").unwrap();
    std::fs::create_dir_all(root.join("_tmp")).unwrap();
    std::fs::write(root.join("_tmp/x.parquet"), b"junk").unwrap();
    std::fs::write(root.join(".hidden"), b"junk").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // Default retention (7 days): everything is too recent to go.
    assert!(table.vacuum().execute().await.unwrap().files.is_empty());
    // A retention below the table's is refused unless the check is off.
    let err = table.vacuum().retain_hours(0.0).execute().await.unwrap_err();
    assert!(matches!(err, DeltaError::RetentionTooShort { .. }), "{err}");

    // Dry run: lists, deletes nothing, commits nothing.
    let before = files_under(&root);
    let v = table.snapshot().await.unwrap().version();
    let dry = table.vacuum().retain_hours(0.0).enforce_retention(false).dry_run(true).execute().await.unwrap();
    assert_eq!(files_under(&root), before);
    assert_eq!(table.snapshot().await.unwrap().version(), v);
    assert!(dry.files.contains(&"part=a/stray.parquet".to_string()), "{:?}", dry.files);
    assert!(dry.files.iter().any(|f| f.starts_with("_change_data/")), "{:?}", dry.files);
    assert!(dry.files.iter().any(|f| f.starts_with("deletion_vector_")), "{:?}", dry.files);
    assert!(dry.files.iter().all(|f| !f.starts_with("_delta_log") && !f.starts_with("_tmp") && !f.starts_with('.')));
    let live: Vec<String> = table.snapshot().await.unwrap().add_files().unwrap().iter().map(|a| a.path.clone()).collect();
    assert!(live.iter().all(|l| !dry.files.contains(l)), "never a live file");

    let done = table.vacuum().retain_hours(0.0).enforce_retention(false).execute().await.unwrap();
    assert_eq!(done.files, dry.files);
    let after = files_under(&root);
    assert!(dry.files.iter().all(|f| !after.contains(f)));
    assert!(after.contains(&"_tmp/x.parquet".to_string()) && after.contains(&".hidden".to_string()));
    // The latest version reads the same; the log says VACUUM START / END.
    assert_eq!(table_rows(&table).await, live_rows);
    let history = table.history(Some(2)).await.unwrap();
    let ops: Vec<&str> = history.iter().map(|h| h.commit_info.get("operation").and_then(|o| o.as_str()).unwrap()).collect();
    assert_eq!(ops, vec!["VACUUM END", "VACUUM START"]);
    assert_eq!(history[1].version, v_before_vacuum + 1);
    // The overwritten version is gone for good: reading it fails with a typed error, not wrong rows.
    let old = table.snapshot_at(1).await.unwrap().scan().build().unwrap().collect().await;
    assert!(matches!(old, Err(DeltaError::DataFileNotFound { .. }) | Err(DeltaError::ObjectStore { .. })), "{old:?}");
    // Nothing left to do.
    assert!(table.vacuum().retain_hours(0.0).enforce_retention(false).dry_run(true).execute().await.unwrap().files.is_empty());
}

fn age(path: &std::path::Path, hours: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

#[tokio::test]
async fn vacuum_keeps_what_versions_inside_the_retention_need() {
    let table = make("vacuum-keep", &sample(), false, false, false).await;
    let root = table.location().root_url().to_file_path().unwrap();
    let removed_in = table.delete(Some("id < 5")).await.unwrap().version.unwrap(); // copy-on-write
                                                                                   // Every file and every commit but the last is three hours old; so is a stray file.
    std::fs::write(root.join("stray.parquet"), b"junk").unwrap();
    for f in files_under(&root) {
        if f != format!("_delta_log/{removed_in:020}.json") {
            age(&root.join(f), 3);
        }
    }
    let old_files: Vec<String> =
        table.snapshot_at(removed_in - 1).await.unwrap().add_files().unwrap().iter().map(|a| a.path.clone()).collect();
    // Retain one hour: the version before the delete is the newest at or before the cutoff, so a
    // reader may still time-travel to it; its files stay although they are old and not live.
    let r = table.vacuum().retain_hours(1.0).enforce_retention(false).dry_run(true).execute().await.unwrap();
    assert_eq!(r.files, vec!["stray.parquet".to_string()]);
    table.vacuum().retain_hours(1.0).enforce_retention(false).execute().await.unwrap();
    for v in 0..=removed_in {
        table.snapshot_at(v).await.unwrap().scan().build().unwrap().collect().await.unwrap();
    }
    // Retain nothing: the files only the older versions need go as well.
    let r = table.vacuum().retain_hours(0.0).enforce_retention(false).dry_run(true).execute().await.unwrap();
    let live: Vec<String> = table.snapshot().await.unwrap().add_files().unwrap().iter().map(|a| a.path.clone()).collect();
    let mut expected: Vec<String> = old_files.into_iter().filter(|f| !live.contains(f)).collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(r.files, expected);
}

#[tokio::test]
async fn shallow_clone_references_the_source_files_at_a_version() {
    let source = make("clone-src", &sample(), true, true, false).await;
    let with_dvs = source.delete(Some("v > 300")).await.unwrap().version.unwrap();
    let at_2 = table_rows(&source).await;
    source.delete(Some("id < 10")).await.unwrap(); // version 3
    let target_path = tmp("clone-dst");
    let src_url = source.location().root_url().clone();
    let opts = delta_core::TableOptions { allowed_external_prefixes: vec![src_url.clone()], ..Default::default() };
    let target = Table::open_with(&target_path, opts.clone()).unwrap();
    assert_eq!(source.shallow_clone(&target, Some(with_dvs)).await.unwrap(), 0);
    assert_eq!(table_rows(&target).await, at_2);
    // No data was copied: the clone's directory holds only its log.
    let dst_root = target.location().root_url().to_file_path().unwrap();
    assert!(files_under(&dst_root).iter().all(|f| f.starts_with("_delta_log/")));
    // Without allowing the source's location, the clone's files are refused, not read.
    let closed = Table::open(&target_path).unwrap();
    let err = closed.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap_err();
    assert!(matches!(err, DeltaError::PathOutsideTable { .. }), "{err}");
    // The clone evolves on its own; the source is untouched.
    let src_rows = table_rows(&source).await;
    target.delete(Some("part = 'a'")).await.unwrap();
    target.write(vec![batch(&[(1000, Some("z".into()), Some(1))])], WriteOptions::default()).await.unwrap();
    assert_eq!(table_rows(&source).await, src_rows);
    assert!(table_rows(&target).await.iter().any(|r| r.0 == 1000));
    // Cloning onto an existing table is refused.
    assert!(matches!(source.shallow_clone(&target, None).await, Err(DeltaError::WriteRefused { .. })));
    let history = target.history(None).await.unwrap();
    assert_eq!(history.last().unwrap().commit_info.get("operation").and_then(|o| o.as_str()), Some("CLONE"));
}

#[tokio::test]
async fn alter_adds_renames_drops_and_widens_columns() {
    use delta_core::schema::{DataType as D, PrimitiveType as P, StructField, StructType};
    let table = make("alter", &sample(), true, false, false).await;
    // Renames and drops need column mapping; the error says how to get it.
    let err = table.rename_column("v", "value").await.unwrap_err();
    assert!(err.to_string().contains("delta.columnMapping.mode"), "{err}");
    table.set_properties(props(&[("delta.columnMapping.mode", "name")])).await.unwrap();
    assert_eq!(table_rows(&table).await.len(), 40, "existing files read through the new mapping");

    // ADD COLUMNS, top level and nested.
    let nested = D::Struct(StructType { fields: vec![StructField::new("x", D::Primitive(P::Long), true)] });
    table.add_columns(&[("note", D::Primitive(P::String)), ("meta", nested)]).await.unwrap();
    table.add_columns(&[("meta.y", D::Primitive(P::String))]).await.unwrap();
    assert!(matches!(table.add_columns(&[("note", D::Primitive(P::Long))]).await, Err(DeltaError::WriteRefused { .. })));
    assert!(matches!(table.add_columns(&[("nope.y", D::Primitive(P::Long))]).await, Err(DeltaError::ColumnNotFound { .. })));
    let s = table.snapshot().await.unwrap();
    let meta = s.schema().field("meta").unwrap();
    let D::Struct(inner) = &meta.data_type else { panic!("{meta:?}") };
    assert_eq!(inner.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["x", "y"]);
    let b = s.scan().build().unwrap().collect().await.unwrap();
    assert!(b.iter().all(|b| b.column_by_name("note").unwrap().null_count() == b.num_rows()));

    // RENAME: a data column and the partition column; rows are the same under the new names.
    table.rename_column("v", "value").await.unwrap();
    table.rename_column("part", "category").await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert_eq!(s.partition_columns(), &["category".to_string()]);
    let rows = s.scan().with_predicate(Expr::parse("category = 'a' AND value >= 300").unwrap()).build().unwrap().count().await.unwrap();
    let expected = sample().iter().filter(|r| r.1.as_deref() == Some("a") && r.2.is_some_and(|v| v >= 300)).count() as u64;
    assert_eq!(rows, expected);
    // New writes use the new names.
    let new_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("value", DataType::Int64, true),
    ]));
    let b = RecordBatch::try_new(
        new_schema,
        vec![
            Arc::new(Int64Array::from(vec![100])),
            Arc::new(arrow::array::StringArray::from(vec!["a"])),
            Arc::new(Int64Array::from(vec![7])),
        ],
    )
    .unwrap();
    table.write(vec![b], WriteOptions::default()).await.unwrap();
    assert_eq!(table.snapshot().await.unwrap().scan().with_filter("value = 7").unwrap().build().unwrap().count().await.unwrap(), 1);

    // Columns a constraint uses cannot be renamed or dropped; partition columns cannot be dropped.
    table.add_constraint("positive_id", "id >= 0").await.unwrap();
    assert!(table.rename_column("id", "key").await.unwrap_err().to_string().contains("positive_id"));
    assert!(table.drop_columns(&["id"]).await.is_err());
    assert!(table.drop_columns(&["category"]).await.is_err());
    // DROP: gone from the schema and from reads; the name can be reused without seeing old data.
    table.drop_columns(&["value", "meta.x"]).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.schema().field("value").is_none());
    table.add_columns(&[("value", D::Primitive(P::Long))]).await.unwrap();
    let b = table.snapshot().await.unwrap().scan().with_columns(&["value"]).build().unwrap().collect().await.unwrap();
    assert!(b.iter().all(|b| b.column(0).null_count() == b.num_rows()), "a re-added column does not resurrect dropped data");

    // Type widening: refused until enabled; then int → long, recorded in the field's metadata.
    let t2 = Table::open(&tmp("alter-widen")).unwrap();
    let int_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
    let b = RecordBatch::try_new(int_schema, vec![Arc::new(arrow::array::Int32Array::from(vec![1, 2, 3]))]).unwrap();
    t2.write(vec![b], WriteOptions::default()).await.unwrap();
    assert!(t2.change_column_type("n", D::Primitive(P::Long)).await.unwrap_err().to_string().contains("delta.enableTypeWidening"));
    t2.set_properties(props(&[("delta.enableTypeWidening", "true")])).await.unwrap();
    assert!(t2.snapshot().await.unwrap().protocol().has_feature(&delta_core::protocol::TableFeature::TypeWidening));
    assert!(t2.change_column_type("n", D::Primitive(P::Short)).await.is_err(), "narrowing is refused");
    t2.change_column_type("n", D::Primitive(P::Long)).await.unwrap();
    let s = t2.snapshot().await.unwrap();
    assert_eq!(s.schema().field("n").unwrap().data_type, D::Primitive(P::Long));
    assert!(s.schema().field("n").unwrap().metadata.contains_key("delta.typeChanges"));
    let b = s.scan().build().unwrap().collect().await.unwrap();
    assert_eq!(b[0].column(0).data_type(), &DataType::Int64);
    let big = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![1i64 << 40]))],
    )
    .unwrap();
    t2.write(vec![big], WriteOptions::default()).await.unwrap();
    assert_eq!(t2.snapshot().await.unwrap().scan().with_filter("n > 1000000000000").unwrap().build().unwrap().count().await.unwrap(), 1);
}

#[tokio::test]
async fn features_are_enabled_by_name_and_unknown_ones_refused() {
    let table = make("features", &sample(), false, false, false).await;
    let v = table.enable_features(&["deletionVectors"]).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert_eq!(s.version(), v);
    let p = s.protocol();
    assert_eq!((p.min_reader_version, p.min_writer_version), (3, 7));
    assert!(p.reader_features.as_ref().unwrap().contains(&"deletionVectors".to_string()));
    // Enabling it again changes nothing.
    assert_eq!(table.enable_features(&["deletionVectors"]).await.unwrap(), v);
    // The SQL property spelling works too and is not stored as a property.
    table.set_properties(props(&[("delta.feature.changeDataFeed", "supported"), ("delta.enableChangeDataFeed", "true")])).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.protocol().writer_features.as_ref().unwrap().contains(&"changeDataFeed".to_string()));
    assert!(!s.metadata().configuration.contains_key("delta.feature.changeDataFeed"));
    assert!(matches!(table.enable_features(&["noSuchFeature"]).await, Err(DeltaError::UnsupportedWriterFeature { .. })));
    // A feature this engine cannot write is refused before it is committed.
    assert!(matches!(table.enable_features(&["geospatial"]).await, Err(DeltaError::UnsupportedWriterFeature { .. })));
    assert_eq!(table.snapshot().await.unwrap().version(), s.version());
    // Data still reads and DML now writes deletion vectors once enabled by property.
    table.set_properties(props(&[("delta.enableDeletionVectors", "true")])).await.unwrap();
    table.delete(Some("id = 3")).await.unwrap();
    assert!(table.snapshot().await.unwrap().has_deletion_vectors());
}

/// Services spawn these on a multi-threaded runtime: every maintenance future must be `Send`.
#[test]
fn maintenance_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let t = Table::open(&tmp("send")).unwrap();
    let other = Table::open(&tmp("send-other")).unwrap();
    send(&t.optimize().execute());
    send(&t.purge_deletion_vectors(None));
    send(&t.vacuum().execute());
    send(&t.shallow_clone(&other, None));
    send(&t.restore(0));
    send(&t.add_columns(&[]));
    send(&t.rename_column("a", "b"));
    send(&t.drop_columns(&["a"]));
    send(&t.change_column_type("a", delta_core::schema::DataType::Primitive(delta_core::schema::PrimitiveType::Long)));
    send(&t.enable_features(&["x"]));
    send(&t.delete(None));
    send(&t.update(None, &[]));
    send(&t.merge(Vec::new(), "t.id = s.id").when_matched_delete().with_memory_budget(0).execute());
}
