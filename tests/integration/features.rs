//! Table features that shape the whole table: clustered tables (liquid clustering) and
//! IcebergCompatV1/V2, on local disk.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Fields, Schema};
use delta_core::write::WriteOptions;
use delta_core::{DeltaError, Table};
use serde_json::Value;

use crate::dml::{batch, table_rows, tmp, Row};

fn props(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The actions of commit `version` as JSON objects.
fn commit_actions(table: &Table, version: i64) -> Vec<Value> {
    let root = table.location().root_url().to_file_path().unwrap();
    let text = std::fs::read_to_string(root.join(format!("_delta_log/{version:020}.json"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn is_feature_error(e: &DeltaError, feature: &str) -> bool {
    matches!(e, DeltaError::FeatureRequirement { feature: f, .. } if f == feature)
}

/// Rows whose ids are scattered over every commit, so that no file is clustered by id.
fn scattered(commit: i64) -> Vec<Row> {
    (0..50).map(|i| ((i * 37 + commit * 11) % 400, Some(["a", "b", "c"][(i % 3) as usize].to_string()), Some(i))).collect()
}

#[tokio::test]
async fn clustered_tables_record_their_columns_and_optimize_clusters_them() {
    let table = Table::open(&tmp("clustered")).unwrap();
    let opts = WriteOptions { cluster_by: Some(vec!["id".into()]), ..Default::default() };
    for c in 0..4 {
        table.write(vec![batch(&scattered(c))], opts.clone()).await.unwrap();
    }
    let s = table.snapshot().await.unwrap();
    let writer_features = s.protocol().writer_features.clone().unwrap_or_default();
    assert!(
        writer_features.iter().any(|f| f == "clustering") && writer_features.iter().any(|f| f == "domainMetadata"),
        "{writer_features:?}"
    );
    let domain = s.domain_metadata().find(|d| d.domain == "delta.clustering").unwrap();
    assert_eq!(serde_json::from_str::<Value>(&domain.configuration).unwrap(), serde_json::json!({"clusteringColumns": [["id"]]}));
    assert_eq!(s.clustering_columns().unwrap(), vec![vec!["id".to_string()]]);
    let mut expected = table_rows(&table).await;
    expected.sort();

    // OPTIMIZE clusters every unclustered file: sorted along id, into small files here.
    let r = table.optimize().target_size(2_000).execute().await.unwrap();
    let v = r.version.expect("unclustered files to cluster");
    assert_eq!(r.metric("numRemovedFiles"), 4);
    let mut got = table_rows(&table).await;
    got.sort();
    assert_eq!(got, expected);
    let commit = commit_actions(&table, v);
    let ci = commit.iter().find_map(|a| a.get("commitInfo")).unwrap();
    assert_eq!(ci["operation"], "OPTIMIZE");
    assert_eq!(ci["operationParameters"]["clusterBy"], "[\"id\"]");
    let adds: Vec<&Value> = commit.iter().filter_map(|a| a.get("add")).collect();
    assert!(adds.len() > 1, "several clustered files");
    assert!(adds.iter().all(|a| a["clusteringProvider"] == "liquid" && a["dataChange"] == false), "{adds:?}");
    // The snapshot reads the provider back, and the files cover disjoint id ranges.
    let files = table.snapshot().await.unwrap().add_files().unwrap();
    assert!(files.iter().all(|f| f.clustering_provider.as_deref() == Some("liquid")));
    let mut ranges: Vec<(i64, i64)> = files
        .iter()
        .map(|f| {
            let st: Value = serde_json::from_str(f.stats.as_deref().unwrap()).unwrap();
            (st["minValues"]["id"].as_i64().unwrap(), st["maxValues"]["id"].as_i64().unwrap())
        })
        .collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "clustered files overlap: {ranges:?}");
    let scan = table.snapshot().await.unwrap().scan().with_filter("id = 123").unwrap().build().unwrap();
    assert!(scan.files().len() <= 2 && scan.total_files() > 2, "{} of {} files", scan.files().len(), scan.total_files());

    // Idempotent; new appends are unclustered until the next OPTIMIZE, which reclusters them with
    // the clustered files below the minimum size (all of them here), but not the large ones.
    assert_eq!(table.optimize().execute().await.unwrap().version, None);
    table.write(vec![batch(&scattered(9))], WriteOptions::default()).await.unwrap();
    let clustered = table.snapshot().await.unwrap().num_files() as u64 - 1;
    let r = table.optimize().execute().await.unwrap();
    assert_eq!(r.metric("numRemovedFiles"), clustered + 1, "the new file and the small clustered ones");
    table.write(vec![batch(&scattered(10))], WriteOptions::default()).await.unwrap();
    let r = table.optimize().min_file_size(1).execute().await.unwrap();
    assert_eq!(r.metric("numRemovedFiles"), 1, "no clustered file is below a 1-byte minimum");

    // Writing with other clustering columns is refused; the same ones are fine.
    let other = WriteOptions { cluster_by: Some(vec!["v".into()]), ..Default::default() };
    assert!(matches!(table.write(vec![batch(&scattered(12))], other).await, Err(DeltaError::WriteRefused { .. })));
    table.write(vec![batch(&scattered(11))], opts.clone()).await.unwrap();

    // ZORDER BY is not for clustered tables.
    let e = table.optimize().z_order(&["v"]).execute().await.unwrap_err();
    assert!(is_feature_error(&e, "clustering"), "{e}");

    // CLUSTER BY (v), then CLUSTER BY NONE.
    let v = table.cluster_by(&["v", "part"]).await.unwrap();
    let ci = commit_actions(&table, v).into_iter().find_map(|a| a.get("commitInfo").cloned()).unwrap();
    assert_eq!(ci["operation"], "CLUSTER BY");
    assert_eq!(ci["operationParameters"]["oldClusteringColumns"], "id");
    assert_eq!(ci["operationParameters"]["newClusteringColumns"], "v,part");
    let s = table.snapshot().await.unwrap();
    assert_eq!(s.clustering_columns().unwrap(), vec![vec!["v".to_string()], vec!["part".to_string()]]);
    table.cluster_by::<&str>(&[]).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.clustering_columns().unwrap().is_empty());
    let d = s.domain_metadata().find(|d| d.domain == "delta.clustering").unwrap();
    assert_eq!(serde_json::from_str::<Value>(&d.configuration).unwrap(), serde_json::json!({"clusteringColumns": []}));

    // Refusals, each with a typed error and nothing committed.
    let before = table.snapshot().await.unwrap().version();
    assert!(matches!(table.cluster_by(&["nope"]).await.unwrap_err(), DeltaError::ColumnNotFound { .. }));
    assert!(is_feature_error(&table.cluster_by(&["id", "v", "part", "id"]).await.unwrap_err(), "clustering"));
    assert_eq!(table.snapshot().await.unwrap().version(), before);
    // Dropping a clustering column would leave the domain naming nothing.
    table.cluster_by(&["v"]).await.unwrap();
    table.set_properties(props(&[("delta.columnMapping.mode", "name")])).await.unwrap();
    let before = table.snapshot().await.unwrap().version();
    assert!(is_feature_error(&table.drop_columns(&["v"]).await.unwrap_err(), "clustering"));
    assert_eq!(table.snapshot().await.unwrap().version(), before);
    // Statistics must cover the clustering columns.
    let e = table.set_properties(props(&[("delta.dataSkippingNumIndexedCols", "1")])).await.unwrap_err();
    assert!(is_feature_error(&e, "clustering"), "{e}");
}

#[tokio::test]
async fn clustering_is_refused_with_partitioning_and_without_statistics() {
    let table = Table::open(&tmp("clustered-refused")).unwrap();
    let opts = WriteOptions { cluster_by: Some(vec!["id".into()]), partition_by: Some(vec!["part".into()]), ..Default::default() };
    let e = table.write(vec![batch(&scattered(0))], opts).await.unwrap_err();
    assert!(is_feature_error(&e, "clustering"), "{e}");
    assert!(table.snapshot().await.is_err(), "nothing was created");
    // A partitioned table cannot become clustered.
    let opts = WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() };
    table.write(vec![batch(&scattered(0))], opts).await.unwrap();
    assert!(is_feature_error(&table.cluster_by(&["id"]).await.unwrap_err(), "clustering"));

    // An unclustered table becomes clustered; files without statistics for the column refuse.
    let t2 = Table::open(&tmp("clustered-later")).unwrap();
    let opts = WriteOptions { properties: props(&[("delta.dataSkippingNumIndexedCols", "1")]), ..Default::default() };
    t2.write(vec![batch(&scattered(0))], opts).await.unwrap();
    let e = t2.cluster_by(&["v"]).await.unwrap_err();
    assert!(is_feature_error(&e, "clustering"), "{e}");
    let v = t2.cluster_by(&["id"]).await.unwrap();
    let protocol = commit_actions(&t2, v).into_iter().find_map(|a| a.get("protocol").cloned()).unwrap();
    assert!(protocol["writerFeatures"].as_array().unwrap().iter().any(|f| f == "clustering"), "{protocol}");
    assert_eq!(t2.optimize().execute().await.unwrap().metric("numRemovedFiles"), 1);
}

/// Rows with an array of structs (every fifth one NULL) and a map of arrays, and a `part` column
/// (`x` or `y`).
pub(crate) fn nested_rows(ids: &[i64]) -> RecordBatch {
    let item = Fields::from(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Utf8, true)]);
    let mut items = ListBuilder::new(StructBuilder::from_fields(item, 0));
    let mut maps = MapBuilder::new(None, StringBuilder::new(), ListBuilder::new(Int64Builder::new()));
    for (k, id) in ids.iter().enumerate() {
        for j in 0..(k % 3) {
            let s = items.values();
            s.field_builder::<Int64Builder>(0).unwrap().append_value(id * 10 + j as i64);
            s.field_builder::<StringBuilder>(1).unwrap().append_value(format!("b{j}"));
            s.append(true);
        }
        items.append(k % 5 != 4);
        maps.keys().append_value(format!("k{id}"));
        maps.values().values().append_value(*id);
        maps.values().append(true);
        maps.append(true).unwrap();
    }
    let (items, maps) = (items.finish(), maps.finish());
    let parts: Vec<&str> = ids.iter().map(|i| ["x", "y"][(*i % 2) as usize]).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("items", items.data_type().clone(), true),
            Field::new("tags", maps.data_type().clone(), true),
            Field::new("part", DataType::Utf8, true),
        ])),
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(items), Arc::new(maps), Arc::new(StringArray::from(parts))],
    )
    .unwrap()
}

#[tokio::test]
async fn iceberg_compat_v2_tables_follow_the_writer_requirements() {
    let table = Table::open(&tmp("iceberg-v2")).unwrap();
    let opts = WriteOptions {
        partition_by: Some(vec!["part".into()]),
        properties: props(&[("delta.enableIcebergCompatV2", "true")]),
        ..Default::default()
    };
    let written = nested_rows(&(0..10).collect::<Vec<_>>());
    table.write(vec![written.clone()], opts).await.unwrap();
    let s = table.snapshot().await.unwrap();
    // Column mapping came on with the feature; the protocol lists both.
    assert_eq!(s.metadata().property("delta.columnMapping.mode"), Some("name"));
    let wf = s.protocol().writer_features.clone().unwrap_or_default();
    assert!(wf.iter().any(|f| f == "icebergCompatV2") && wf.iter().any(|f| f == "columnMapping"), "{wf:?}");
    // Ids: every field (structs inside arrays too) and every array element / map key / value,
    // all distinct, none above maxColumnId.
    let schema: Value = serde_json::from_str(&s.metadata().schema_string).unwrap();
    let mut ids = Vec::new();
    fn collect(v: &Value, ids: &mut Vec<i64>) {
        match v {
            Value::Object(m) => {
                if let Some(id) = m.get("delta.columnMapping.id").and_then(Value::as_i64) {
                    ids.push(id);
                }
                if let Some(Value::Object(n)) = m.get("delta.columnMapping.nested.ids") {
                    ids.extend(n.values().filter_map(Value::as_i64));
                }
                m.values().for_each(|x| collect(x, ids));
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, ids)),
            _ => {}
        }
    }
    collect(&schema, &mut ids);
    // id, items, items.element.a, items.element.b, tags, part + items.element, tags.key,
    // tags.value, tags.value.element.
    assert_eq!(ids.len(), 10, "{schema}");
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    let max: i64 = s.metadata().property("delta.columnMapping.maxColumnId").unwrap().parse().unwrap();
    assert_eq!(max, *distinct.last().unwrap());
    let items = &schema["fields"][1];
    let nested = items["metadata"]["delta.columnMapping.nested.ids"].as_object().unwrap();
    let physical = items["metadata"]["delta.columnMapping.physicalName"].as_str().unwrap();
    assert!(nested.contains_key(&format!("{physical}.element")), "{nested:?}");
    let inner = &items["type"]["elementType"]["fields"][0]["metadata"];
    assert!(inner["delta.columnMapping.physicalName"].as_str().unwrap().starts_with("col-"), "struct in array mapped: {inner}");

    // Every data file holds the partition column last (physical name) and the element ids.
    let root = table.location().root_url().to_file_path().unwrap();
    let part_physical = schema["fields"][3]["metadata"]["delta.columnMapping.physicalName"].as_str().unwrap().to_string();
    let element_id = nested[&format!("{physical}.element")].as_i64().unwrap();
    for f in s.add_files().unwrap() {
        assert!(f.num_records().is_some());
        let path = root.join(&f.path);
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let file_schema = parquet::file::reader::FileReader::metadata(&reader).file_metadata().schema_descr_ptr();
        let top = file_schema.root_schema().get_fields();
        assert_eq!(top.last().unwrap().name(), part_physical, "partition column materialised last");
        let list = top.iter().find(|t| t.name() == physical).unwrap();
        let element = &list.get_fields()[0].get_fields()[0];
        assert_eq!(element.get_basic_info().id(), element_id as i32, "element field id");
        let pv = f.partition_values.values().next().cloned().flatten().unwrap();
        let rows = parquet::file::reader::FileReader::get_row_iter(&reader, None).unwrap();
        for row in rows {
            let row = row.unwrap();
            let (_, value) = row.get_column_iter().last().unwrap();
            assert_eq!(value.to_string().trim_matches('"'), pv, "materialised value equals the log's");
        }
    }
    // Reads back as written (partition values from the log, not duplicated).
    let back = s.scan().build().unwrap().collect().await.unwrap();
    let back = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
    assert_eq!(back.num_rows(), 10);
    assert_eq!(back.num_columns(), 4);

    // DML stays copy-on-write (no deletion vectors) and keeps the rules.
    table.delete(Some("id = 3")).await.unwrap();
    assert!(table.snapshot().await.unwrap().add_files().unwrap().iter().all(|f| f.deletion_vector.is_none()));
    // mergeSchema of a new array column gives it ids too.
    let extra = {
        let mut l = ListBuilder::new(Int64Builder::new());
        l.values().append_value(1);
        l.append(true);
        let l = l.finish();
        let b = nested_rows(&[50]);
        let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("more", l.data_type().clone(), true));
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(l));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    };
    table.write(vec![extra], WriteOptions { merge_schema: true, ..Default::default() }).await.unwrap();
    let s = table.snapshot().await.unwrap();
    let schema: Value = serde_json::from_str(&s.metadata().schema_string).unwrap();
    let more = schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == "more").unwrap();
    assert!(more["metadata"]["delta.columnMapping.nested.ids"].as_object().is_some_and(|m| m.len() == 1), "{more}");
    assert_eq!(table_count(&table).await, 10);

    // Refusals: deletion vectors, V1 beside V2, a void column; nothing committed.
    let before = s.version();
    for bad in [("delta.enableDeletionVectors", "true"), ("delta.enableIcebergCompatV1", "true")] {
        let e = table.set_properties(props(&[bad])).await.unwrap_err();
        assert!(is_feature_error(&e, "icebergCompatV2"), "{bad:?}: {e}");
    }
    // UniForm would need Iceberg metadata after every commit: refused, not left stale.
    let e = table.set_properties(props(&[("delta.universalFormat.enabledFormats", "iceberg")])).await.unwrap_err();
    assert!(is_feature_error(&e, "universalFormat"), "{e}");
    assert_eq!(table.snapshot().await.unwrap().version(), before);
}

async fn table_count(table: &Table) -> usize {
    table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap().iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn iceberg_compat_v1_refuses_arrays_and_deletion_vectors() {
    let table = Table::open(&tmp("iceberg-v1")).unwrap();
    let opts = WriteOptions { properties: props(&[("delta.enableIcebergCompatV1", "true")]), ..Default::default() };
    let e = table.write(vec![nested_rows(&[1, 2])], opts.clone()).await.unwrap_err();
    assert!(is_feature_error(&e, "icebergCompatV1"), "{e}");
    assert!(table.snapshot().await.is_err(), "nothing was created");
    let opts_dv = WriteOptions {
        properties: props(&[("delta.enableIcebergCompatV1", "true"), ("delta.enableDeletionVectors", "true")]),
        ..Default::default()
    };
    let e = table.write(vec![batch(&scattered(0))], opts_dv).await.unwrap_err();
    assert!(is_feature_error(&e, "icebergCompatV1"), "{e}");
    table.write(vec![batch(&scattered(0))], opts).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.protocol().writer_features.clone().unwrap_or_default().iter().any(|f| f == "icebergCompatV1"));
    // UPDATE rewrites (no deletion vectors) and the rows read back.
    table.update(Some("id < 100"), &[("v", "v + 1")]).await.unwrap();
    assert_eq!(table_count(&table).await, 50);

    // Enabling IcebergCompatV2 later on an unpartitioned table with column mapping works; the
    // partitioned table's old files lack their partition values, so there it is refused.
    let t2 = Table::open(&tmp("iceberg-later")).unwrap();
    t2.write(vec![batch(&scattered(1))], WriteOptions { properties: props(&[("delta.columnMapping.mode", "name")]), ..Default::default() })
        .await
        .unwrap();
    t2.set_properties(props(&[("delta.enableIcebergCompatV2", "true")])).await.unwrap();
    t2.write(vec![batch(&scattered(2))], WriteOptions::default()).await.unwrap();
    assert_eq!(table_count(&t2).await, 100);
    let t3 = Table::open(&tmp("iceberg-later-partitioned")).unwrap();
    let opts = WriteOptions {
        partition_by: Some(vec!["part".into()]),
        properties: props(&[("delta.columnMapping.mode", "name")]),
        ..Default::default()
    };
    t3.write(vec![batch(&scattered(1))], opts).await.unwrap();
    let e = t3.set_properties(props(&[("delta.enableIcebergCompatV2", "true")])).await.unwrap_err();
    assert!(is_feature_error(&e, "icebergCompatV2"), "{e}");
}

#[tokio::test]
async fn applications_keep_their_own_domain_metadata() {
    let table = Table::open(&tmp("domains")).unwrap();
    table.write(vec![batch(&scattered(0))], WriteOptions::default()).await.unwrap();
    let v = table.set_domain_metadata("myApp.checkpoint", r#"{"offset":42}"#).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.protocol().writer_features.clone().unwrap_or_default().iter().any(|f| f == "domainMetadata"));
    assert_eq!(s.domain_metadata().find(|d| d.domain == "myApp.checkpoint").unwrap().configuration, r#"{"offset":42}"#);
    table.set_domain_metadata("myApp.checkpoint", r#"{"offset":43}"#).await.unwrap();
    table.checkpoint().await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert_eq!(s.domain_metadata().find(|d| d.domain == "myApp.checkpoint").unwrap().configuration, r#"{"offset":43}"#);
    // Time travel sees the old value; removal leaves a tombstone and the domain is gone.
    let old = table.snapshot_at(v).await.unwrap();
    assert_eq!(old.domain_metadata().find(|d| d.domain == "myApp.checkpoint").unwrap().configuration, r#"{"offset":42}"#);
    let r = table.remove_domain_metadata("myApp.checkpoint").await.unwrap();
    let tomb = commit_actions(&table, r).into_iter().find_map(|a| a.get("domainMetadata").cloned()).unwrap();
    assert_eq!(tomb["removed"], true);
    assert!(table.snapshot().await.unwrap().domain_metadata().all(|d| d.domain != "myApp.checkpoint" || d.removed));
    assert_eq!(table.remove_domain_metadata("myApp.checkpoint").await.unwrap(), r, "nothing left to remove");
    // The protocol's own domains are not for applications.
    for bad in ["delta.clustering", "delta.rowTracking", ""] {
        assert!(matches!(table.set_domain_metadata(bad, "{}").await, Err(DeltaError::WriteRefused { .. })), "{bad}");
    }
}

#[tokio::test]
async fn nested_clustering_columns_order_the_clustered_files() {
    let table = Table::open(&tmp("clustered-nested")).unwrap();
    let inner = Fields::from(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Utf8, true)]);
    let rows = |c: i64| {
        let a: Vec<i64> = (0..60).map(|i| (i * 53 + c * 17) % 500).collect();
        let s = StructArray::try_new(
            inner.clone(),
            vec![Arc::new(Int64Array::from(a.clone())), Arc::new(StringArray::from(a.iter().map(|v| format!("b{v}")).collect::<Vec<_>>()))],
            None,
        )
        .unwrap();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("s", DataType::Struct(inner.clone()), true)])),
            vec![Arc::new(Int64Array::from((0..60).map(|i| c * 100 + i).collect::<Vec<_>>())), Arc::new(s)],
        )
        .unwrap()
    };
    let opts = WriteOptions { cluster_by: Some(vec!["s.a".into()]), ..Default::default() };
    for c in 0..4 {
        table.write(vec![rows(c)], opts.clone()).await.unwrap();
    }
    let s = table.snapshot().await.unwrap();
    assert_eq!(s.clustering_columns().unwrap(), vec![vec!["s".to_string(), "a".to_string()]]);
    table.optimize().target_size(3_000).execute().await.unwrap();
    let files = table.snapshot().await.unwrap().add_files().unwrap();
    assert!(files.len() > 1);
    let mut ranges: Vec<(i64, i64)> = files
        .iter()
        .map(|f| {
            let st: Value = serde_json::from_str(f.stats.as_deref().unwrap()).unwrap();
            (st["minValues"]["s"]["a"].as_i64().unwrap(), st["maxValues"]["s"]["a"].as_i64().unwrap())
        })
        .collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "files overlap on s.a: {ranges:?}");
    assert_eq!(table_count(&table).await, 240);
}
