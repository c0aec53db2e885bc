//! Tables written by this project read back identically by delta-rs (`deltalake`) and DuckDB's
//! delta extension; and a table written by `deltalake`, appended to here, read by `deltalake`.
//!
//! The Python side (`tests/interop/check_tables.py`) runs with `$DELTA_INTEROP_PYTHON`, or
//! `.ci-venv/bin/python` (which `.ci/run` creates with the pinned peers from PyPI). Without
//! one the test says so and passes, unless `CI=true`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{Expr, Table};

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DELTA_INTEROP_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci-venv/bin/python");
    venv.exists().then_some(venv)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/check_tables.py")
}

fn batch(fields: Vec<Field>, cols: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn ids_names(ids: &[i64], parts: &[&str]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("name-{i}")).collect();
    batch(
        vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true), Field::new("part", DataType::Utf8, true)],
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names)), Arc::new(StringArray::from(parts.to_vec()))],
    )
}

fn props(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn all_types(n: usize, offset: i64) -> RecordBatch {
    let r = |i: usize| offset + i as i64;
    batch(
        vec![
            Field::new("b", DataType::Int8, true),
            Field::new("s", DataType::Int16, true),
            Field::new("i", DataType::Int32, true),
            Field::new("l", DataType::Int64, true),
            Field::new("f", DataType::Float32, true),
            Field::new("d", DataType::Float64, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("dec", DataType::Decimal128(10, 2), true),
            Field::new("big", DataType::Decimal128(38, 18), true),
            Field::new("day", DataType::Date32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("str", DataType::Utf8, true),
            Field::new("bin", DataType::Binary, true),
        ],
        vec![
            Arc::new(Int8Array::from((0..n).map(|i| (r(i) % 100) as i8).collect::<Vec<_>>())),
            Arc::new(Int16Array::from((0..n).map(|i| (r(i) * 3) as i16).collect::<Vec<_>>())),
            Arc::new(Int32Array::from((0..n).map(|i| if i % 5 == 0 { None } else { Some(r(i) as i32 * 7) }).collect::<Vec<_>>())),
            Arc::new(Int64Array::from((0..n).map(|i| r(i) * 1_000_000_007).collect::<Vec<_>>())),
            Arc::new(Float32Array::from((0..n).map(|i| r(i) as f32 / 3.0).collect::<Vec<_>>())),
            Arc::new(Float64Array::from((0..n).map(|i| -(r(i) as f64) / 7.0).collect::<Vec<_>>())),
            Arc::new(BooleanArray::from((0..n).map(|i| i % 2 == 0).collect::<Vec<_>>())),
            Arc::new(
                Decimal128Array::from((0..n).map(|i| r(i) as i128 * 123 - 5000).collect::<Vec<_>>())
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(
                Decimal128Array::from((0..n).map(|i| (r(i) as i128) * 10i128.pow(18) + 1).collect::<Vec<_>>())
                    .with_precision_and_scale(38, 18)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from((0..n).map(|i| 19000 + r(i) as i32).collect::<Vec<_>>())),
            Arc::new(
                TimestampMicrosecondArray::from((0..n).map(|i| 1_700_000_000_000_000 + r(i) * 1_234_567).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from((0..n).map(|i| if i % 7 == 3 { None } else { Some(format!("s-{}-é", r(i))) }).collect::<Vec<_>>())),
            Arc::new(BinaryArray::from(
                (0..n).map(|i| vec![r(i) as u8, 0, 255]).collect::<Vec<_>>().iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
            )),
        ],
    )
}

fn nested(n: usize) -> RecordBatch {
    let inner = Fields::from(vec![Field::new("x", DataType::Int32, true), Field::new("y", DataType::Utf8, true)]);
    let structs = StructArray::try_new(
        inner.clone(),
        vec![
            Arc::new(Int32Array::from((0..n as i32).collect::<Vec<_>>())),
            Arc::new(StringArray::from((0..n).map(|i| format!("y{i}")).collect::<Vec<_>>())),
        ],
        None,
    )
    .unwrap();
    let mut lists = ListBuilder::new(Int64Builder::new());
    let mut maps = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    for i in 0..n {
        for j in 0..(i % 3) {
            lists.values().append_value((i * 10 + j) as i64);
        }
        lists.append(i % 4 != 3);
        for j in 0..(i % 2 + 1) {
            maps.keys().append_value(format!("k{j}"));
            maps.values().append_value((i + j) as i32);
        }
        maps.append(true).unwrap();
    }
    let lists = lists.finish();
    let maps = maps.finish();
    batch(
        vec![
            Field::new("id", DataType::Int64, true),
            Field::new("st", DataType::Struct(inner), true),
            Field::new("arr", lists.data_type().clone(), true),
            Field::new("m", maps.data_type().clone(), true),
        ],
        vec![Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())), Arc::new(structs), Arc::new(lists), Arc::new(maps)],
    )
}

/// Writes every table shape under `root/<name>/table` and its rows (read back by this project)
/// to `root/<name>/expected.parquet`.
async fn write_shapes(root: &Path) -> usize {
    type Shape = Box<dyn Fn(Table) -> futures::future::BoxFuture<'static, ()>>;
    let mut shapes: Vec<(&str, Shape)> = Vec::new();
    use futures::FutureExt;
    shapes.push((
        "simple",
        Box::new(|t| {
            async move {
                t.write(vec![ids_names(&[1, 2, 3], &["a", "b", "c"])], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "partitioned_string",
        Box::new(|t| {
            async move {
                t.write(
                    vec![ids_names(&[1, 2, 3, 4], &["a", "b", "a", "c"])],
                    WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() },
                )
                .await
                .unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "partition_special_chars",
        Box::new(|t| {
            async move {
                let parts = ["a b", "c:d", "e/f", "g%h", "i=j", "k#l", "ü ñ"];
                let ids: Vec<i64> = (0..parts.len() as i64).collect();
                t.write(vec![ids_names(&ids, &parts)], WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() })
                    .await
                    .unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "partitioned_binary",
        Box::new(|t| {
            async move {
                let keys: Vec<Option<&[u8]>> = vec![Some(b"ab"), Some("\u{fc} x".as_bytes()), None, Some(b"ab")];
                let b = batch(
                    vec![Field::new("id", DataType::Int64, true), Field::new("key", DataType::Binary, true)],
                    vec![Arc::new(Int64Array::from(vec![1, 2, 3, 4])), Arc::new(BinaryArray::from(keys))],
                );
                t.write(vec![b], WriteOptions { partition_by: Some(vec!["key".into()]), ..Default::default() }).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "partition_nulls",
        Box::new(|t| {
            async move {
                let b = batch(
                    vec![Field::new("id", DataType::Int64, true), Field::new("part", DataType::Utf8, true)],
                    vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(StringArray::from(vec![Some("x"), None, Some("")]))],
                );
                t.write(vec![b], WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() }).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "partitioned_int_and_date",
        Box::new(|t| {
            async move {
                let b = batch(
                    vec![
                        Field::new("id", DataType::Int64, true),
                        Field::new("year", DataType::Int32, true),
                        Field::new("day", DataType::Date32, true),
                    ],
                    vec![
                        Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                        Arc::new(Int32Array::from(vec![2023, 2024, 2024, 2023])),
                        Arc::new(Date32Array::from(vec![19000, 19001, 19001, 19500])),
                    ],
                );
                t.write(vec![b], WriteOptions { partition_by: Some(vec!["year".into(), "day".into()]), ..Default::default() })
                    .await
                    .unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "all_types",
        Box::new(|t| {
            async move {
                t.write(vec![all_types(50, 0)], WriteOptions::default()).await.unwrap();
                t.write(vec![all_types(20, 100)], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "timestamp_ntz",
        Box::new(|t| {
            async move {
                let b = batch(
                    vec![
                        Field::new("id", DataType::Int64, true),
                        Field::new("local", DataType::Timestamp(TimeUnit::Microsecond, None), true),
                    ],
                    vec![
                        Arc::new(Int64Array::from(vec![1, 2])),
                        Arc::new(TimestampMicrosecondArray::from(vec![Some(1_600_000_000_123_456), None])),
                    ],
                );
                t.write(vec![b], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "nested",
        Box::new(|t| {
            async move {
                t.write(vec![nested(30)], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "column_mapping",
        Box::new(|t| {
            async move {
                let opts = WriteOptions { properties: props(&[("delta.columnMapping.mode", "name")]), ..Default::default() };
                t.write(vec![nested(12)], opts).await.unwrap();
                t.write(vec![nested(5)], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "column_mapping_partitioned",
        Box::new(|t| {
            async move {
                let opts = WriteOptions {
                    partition_by: Some(vec!["part".into()]),
                    properties: props(&[("delta.columnMapping.mode", "name")]),
                    ..Default::default()
                };
                t.write(vec![ids_names(&[1, 2, 3], &["a", "b", "a"])], opts).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "check_constraint",
        Box::new(|t| {
            async move {
                let opts = WriteOptions { properties: props(&[("delta.constraints.positive_id", "id > 0")]), ..Default::default() };
                t.write(vec![ids_names(&[1, 2], &["a", "b"])], opts).await.unwrap();
                assert!(t.write(vec![ids_names(&[-1], &["a"])], WriteOptions::default()).await.is_err());
            }
            .boxed()
        }),
    ));
    shapes.push((
        "many_commits_with_checkpoints",
        Box::new(|t| {
            async move {
                for i in 0..25 {
                    t.write(vec![ids_names(&[i], &["p"])], WriteOptions::default()).await.unwrap();
                }
            }
            .boxed()
        }),
    ));
    shapes.push((
        "checkpoint_struct_stats",
        Box::new(|t| {
            async move {
                let opts = WriteOptions {
                    properties: props(&[
                        ("delta.checkpoint.writeStatsAsStruct", "true"),
                        ("delta.checkpoint.writeStatsAsJson", "false"),
                        ("delta.checkpointInterval", "3"),
                    ]),
                    ..Default::default()
                };
                t.write(vec![all_types(10, 0)], opts).await.unwrap();
                for i in 1..5 {
                    t.write(vec![all_types(5, i * 10)], WriteOptions::default()).await.unwrap();
                }
            }
            .boxed()
        }),
    ));
    shapes.push((
        "generated_columns",
        Box::new(|t| {
            async move {
                let schema = delta_core::schema::StructType::parse(
                    r#"{"type":"struct","fields":[
                        {"name":"id","type":"long","nullable":true,"metadata":{}},
                        {"name":"day","type":"date","nullable":true,"metadata":{}},
                        {"name":"month","type":"integer","nullable":true,"metadata":{"delta.generationExpression":"month(day)"}}]}"#,
                )
                .unwrap();
                t.create(schema, &["month".to_string()], HashMap::new()).await.unwrap();
                let b = batch(
                    vec![Field::new("id", DataType::Int64, true), Field::new("day", DataType::Date32, true)],
                    vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(Date32Array::from(vec![Some(19000), Some(19050), None]))],
                );
                t.write(vec![b], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "v2_checkpoint",
        Box::new(|t| {
            async move {
                let opts = WriteOptions {
                    properties: props(&[("delta.checkpointPolicy", "v2"), ("delta.checkpointInterval", "2")]),
                    ..Default::default()
                };
                t.write(vec![ids_names(&[1, 2], &["a", "b"])], opts).await.unwrap();
                for i in 3..7 {
                    t.write(vec![ids_names(&[i], &["c"])], WriteOptions::default()).await.unwrap();
                }
            }
            .boxed()
        }),
    ));
    shapes.push((
        "identity_column",
        Box::new(|t| {
            async move {
                let schema = delta_core::schema::StructType::parse(
                    r#"{"type":"struct","fields":[
                        {"name":"id","type":"long","nullable":false,"metadata":{"delta.identity.start":1,"delta.identity.step":1,"delta.identity.allowExplicitInsert":false}},
                        {"name":"name","type":"string","nullable":true,"metadata":{}}]}"#,
                )
                .unwrap();
                t.create(schema, &[], HashMap::new()).await.unwrap();
                for names in [vec!["a", "b"], vec!["c"]] {
                    let b = batch(vec![Field::new("name", DataType::Utf8, true)], vec![Arc::new(StringArray::from(names))]);
                    t.write(vec![b], WriteOptions::default()).await.unwrap();
                }
            }
            .boxed()
        }),
    ));
    shapes.push((
        "column_defaults",
        Box::new(|t| {
            async move {
                let schema = delta_core::schema::StructType::parse(
                    r#"{"type":"struct","fields":[
                        {"name":"id","type":"long","nullable":true,"metadata":{}},
                        {"name":"status","type":"string","nullable":true,"metadata":{"CURRENT_DEFAULT":"'new'"}}]}"#,
                )
                .unwrap();
                t.create(schema, &[], HashMap::new()).await.unwrap();
                let b = batch(vec![Field::new("id", DataType::Int64, true)], vec![Arc::new(Int64Array::from(vec![1, 2]))]);
                t.write(vec![b], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "row_tracking",
        Box::new(|t| {
            async move {
                let opts = WriteOptions {
                    properties: props(&[("delta.enableRowTracking", "true"), ("delta.checkpointInterval", "2")]),
                    ..Default::default()
                };
                t.write(vec![ids_names(&[1, 2], &["a", "b"])], opts).await.unwrap();
                for i in 3..6 {
                    t.write(vec![ids_names(&[i], &["c"])], WriteOptions::default()).await.unwrap();
                }
                // Rewrites materialise row ids in hidden columns other readers must ignore.
                t.update(Some("id = 2"), &[("name", "'renamed'")]).await.unwrap();
                t.delete(Some("id = 4")).await.unwrap();
                t.merge(vec![ids_names(&[3, 9], &["x", "y"])], "t.id = s.id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                    .await
                    .unwrap();
                // replaceWhere on a data column copies the rows it keeps with their row ids.
                let opts =
                    WriteOptions { mode: SaveMode::Overwrite, replace_where: Some(Expr::parse("id >= 5").unwrap()), ..Default::default() };
                t.write(vec![ids_names(&[7], &["z"])], opts).await.unwrap();
                t.optimize().execute().await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "overwritten",
        Box::new(|t| {
            async move {
                t.write(vec![ids_names(&[1, 2], &["a", "b"])], WriteOptions::default()).await.unwrap();
                t.write(vec![ids_names(&[3], &["c"])], WriteOptions { mode: SaveMode::Overwrite, ..Default::default() }).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "replace_where",
        Box::new(|t| {
            async move {
                t.write(
                    vec![ids_names(&[1, 2, 3], &["a", "b", "a"])],
                    WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() },
                )
                .await
                .unwrap();
                let opts = WriteOptions {
                    mode: SaveMode::Overwrite,
                    replace_where: Some(Expr::parse("part = 'a'").unwrap()),
                    ..Default::default()
                };
                t.write(vec![ids_names(&[10], &["a"])], opts).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "schema_evolution",
        Box::new(|t| {
            async move {
                t.write(vec![ids_names(&[1], &["a"])], WriteOptions::default()).await.unwrap();
                let b = batch(
                    vec![Field::new("id", DataType::Int64, true), Field::new("score", DataType::Float64, true)],
                    vec![Arc::new(Int64Array::from(vec![2])), Arc::new(Float64Array::from(vec![0.5]))],
                );
                t.write(vec![b], WriteOptions { merge_schema: true, ..Default::default() }).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "empty",
        Box::new(|t| {
            async move {
                let schema = delta_core::write::schema_from_arrow(&ids_names(&[], &[]).schema()).unwrap();
                t.create(schema, &[], HashMap::new()).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "append_only_with_ict",
        Box::new(|t| {
            async move {
                let opts = WriteOptions {
                    properties: props(&[("delta.appendOnly", "true"), ("delta.enableInCommitTimestamps", "true")]),
                    ..Default::default()
                };
                t.write(vec![ids_names(&[1], &["a"])], opts).await.unwrap();
                t.write(vec![ids_names(&[2], &["b"])], WriteOptions::default()).await.unwrap();
            }
            .boxed()
        }),
    ));
    // Row-level changes: deletion vectors (merge-on-read) and copy-on-write, with and without CDF.
    for (name, dv, cdf) in [("dml_deletion_vectors", true, false), ("dml_copy_on_write", false, false), ("dml_dv_cdf", true, true)] {
        shapes.push((
            name,
            Box::new(move |t| {
                async move {
                    let opts = WriteOptions {
                        partition_by: Some(vec!["part".into()]),
                        properties: props(&[
                            ("delta.enableDeletionVectors", if dv { "true" } else { "false" }),
                            ("delta.enableChangeDataFeed", if cdf { "true" } else { "false" }),
                        ]),
                        ..Default::default()
                    };
                    let ids: Vec<i64> = (0..60).collect();
                    let parts: Vec<&str> = ids.iter().map(|i| ["a", "b", "c"][(*i % 3) as usize]).collect();
                    t.write(vec![ids_names(&ids[..30], &parts[..30])], opts.clone()).await.unwrap();
                    t.write(vec![ids_names(&ids[30..], &parts[30..])], opts).await.unwrap();
                    t.delete(Some("id % 4 = 1")).await.unwrap();
                    t.update(Some("id > 40"), &[("name", "upper(name)")]).await.unwrap();
                    t.merge(vec![ids_names(&[2, 3, 100], &["a", "z", "b"])], "t.id = s.id")
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .execute()
                        .await
                        .unwrap();
                    t.delete(Some("part = 'c'")).await.unwrap();
                }
                .boxed()
            }),
        ));
    }
    shapes.push((
        "optimized_zordered_vacuumed",
        Box::new(|t| {
            async move {
                let opts = WriteOptions {
                    partition_by: Some(vec!["part".into()]),
                    properties: props(&[("delta.enableDeletionVectors", "true")]),
                    ..Default::default()
                };
                for chunk in 0..5i64 {
                    let ids: Vec<i64> = (chunk * 20..chunk * 20 + 20).collect();
                    let parts: Vec<&str> = ids.iter().map(|i| ["a", "b"][(*i % 2) as usize]).collect();
                    t.write(vec![ids_names(&ids, &parts)], opts.clone()).await.unwrap();
                }
                t.delete(Some("id % 7 = 0")).await.unwrap();
                t.optimize().execute().await.unwrap();
                let columns = vec!["id".to_string(), "name".to_string()];
                t.optimize().z_order(&columns).execute().await.unwrap();
                t.vacuum().retain_hours(0.0).enforce_retention(false).execute().await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "altered_column_mapping",
        Box::new(|t| {
            async move {
                use delta_core::schema::{DataType as D, PrimitiveType as P};
                t.write(
                    vec![ids_names(&[1, 2, 3], &["a", "b", "a"])],
                    WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() },
                )
                .await
                .unwrap();
                t.set_properties(props(&[("delta.columnMapping.mode", "name")])).await.unwrap();
                t.add_columns(&[("score", D::Primitive(P::Double))]).await.unwrap();
                t.rename_column("name", "label").await.unwrap();
                t.rename_column("part", "bucket").await.unwrap();
                let b = batch(
                    vec![
                        Field::new("id", DataType::Int64, true),
                        Field::new("label", DataType::Utf8, true),
                        Field::new("bucket", DataType::Utf8, true),
                        Field::new("score", DataType::Float64, true),
                    ],
                    vec![
                        Arc::new(Int64Array::from(vec![4, 5])),
                        Arc::new(StringArray::from(vec!["x", "y"])),
                        Arc::new(StringArray::from(vec!["b", "c"])),
                        Arc::new(arrow::array::Float64Array::from(vec![0.5, 1.5])),
                    ],
                );
                t.write(vec![b], WriteOptions::default()).await.unwrap();
                t.drop_columns(&["score"]).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "clustered",
        Box::new(|t| {
            async move {
                // Liquid clustering: the domain, then OPTIMIZE clusters the unclustered files.
                let opts = WriteOptions { cluster_by: Some(vec!["id".into()]), ..Default::default() };
                for c in 0..3i64 {
                    let ids: Vec<i64> = (0..20).map(|i| (i * 7 + c * 3) % 60).collect();
                    let parts: Vec<&str> = ids.iter().map(|i| ["a", "b"][(*i % 2) as usize]).collect();
                    t.write(vec![ids_names(&ids, &parts)], opts.clone()).await.unwrap();
                }
                t.optimize().execute().await.unwrap();
                t.write(vec![ids_names(&[100, 101], &["a", "b"])], WriteOptions::default()).await.unwrap();
                t.cluster_by(&["id", "name"]).await.unwrap();
            }
            .boxed()
        }),
    ));
    shapes.push((
        "iceberg_compat_v2",
        Box::new(|t| {
            async move {
                // Column mapping turned on by the feature, partition values inside the files,
                // ids for array elements and map keys/values, structs inside arrays mapped.
                let make = |ids: Vec<i64>| crate::features::nested_rows(&ids);
                let opts = WriteOptions {
                    partition_by: Some(vec!["part".into()]),
                    properties: props(&[("delta.enableIcebergCompatV2", "true")]),
                    ..Default::default()
                };
                t.write(vec![make((0..12).collect())], opts).await.unwrap();
                t.write(vec![make((12..20).collect())], WriteOptions::default()).await.unwrap();
                t.delete(Some("id % 5 = 0")).await.unwrap();
            }
            .boxed()
        }),
    ));
    // Tables created and changed only through SQL text (delta_core::sql, no engine).
    for (name, script) in [
        (
            "sql_identity_generated_constraints",
            vec![
                "CREATE TABLE {t} (id BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 10), name STRING NOT NULL COMMENT 'who', \
                 amount DECIMAL(10,2) DEFAULT 0.5, day DATE, month INT GENERATED ALWAYS AS (month(day)), CONSTRAINT pos CHECK (amount > 0)) \
                 USING delta COMMENT 'made in SQL'",
                "INSERT INTO {t} (name, day) VALUES ('a', '2024-03-05'), ('b', '2024-11-30')",
                "INSERT INTO {t} (name, amount, day) VALUES ('c', 7.25, '2024-12-31')",
            ],
        ),
        (
            "sql_renamed_under_column_mapping",
            vec![
                "CREATE TABLE {t} (id BIGINT, name STRING, score INT) USING delta TBLPROPERTIES ('delta.columnMapping.mode' = 'name')",
                "INSERT INTO {t} VALUES (1, 'a', 10), (2, 'b', NULL)",
                "ALTER TABLE {t} RENAME COLUMN name TO full_name",
                "ALTER TABLE {t} ADD COLUMNS (tag STRING)",
                "ALTER TABLE {t} DROP COLUMN score",
                "INSERT INTO {t} VALUES (3, 'c', 'new')",
            ],
        ),
        (
            "sql_clustered_optimized",
            vec![
                "CREATE TABLE {t} (id BIGINT, grp STRING) USING delta CLUSTER BY (grp)",
                "INSERT INTO {t} VALUES (1, 'x'), (2, 'y')",
                "INSERT INTO {t} VALUES (3, 'x')",
                "OPTIMIZE {t}",
                "ALTER TABLE {t} SET TBLPROPERTIES ('owner' = 'sql')",
            ],
        ),
    ] {
        shapes.push((
            name,
            Box::new(move |t: Table| {
                let script = script.clone();
                async move {
                    let path = t.location().root_url().to_file_path().unwrap();
                    let target = format!("delta.`{}`", path.display());
                    for stmt in script {
                        let text = stmt.replace("{t}", &target);
                        delta_core::sql::execute(&text, &Default::default(), None).await.unwrap_or_else(|e| panic!("{text}: {e}"));
                    }
                }
                .boxed()
            }),
        ));
    }
    let count = shapes.len();
    for (name, make) in shapes {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let table = Table::open(dir.join("table").to_str().unwrap()).unwrap();
        make(table.clone()).await;
        let scan = table.snapshot().await.unwrap().scan().build().unwrap();
        let schema = scan.schema();
        let batches = scan.collect().await.unwrap();
        let file = std::fs::File::create(dir.join("expected.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
    }
    count
}

#[tokio::test]
async fn tables_written_here_read_identically_in_deltalake_and_duckdb() {
    let Some(py) = python() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no interop Python (set DELTA_INTEROP_PYTHON or run .ci/run)");
        }
        eprintln!("interop: no Python with deltalake/duckdb (.ci/run installs one); skipping");
        return;
    };
    let root = std::env::temp_dir().join(format!("delta-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let shapes = write_shapes(&root).await;
    assert!(shapes >= 15, "at least 15 table shapes");
    let out = Command::new(&py).arg(script()).arg("verify").arg(&root).output().expect("run python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "interop verification failed:\n{text}");

    // A table written by deltalake, appended to here, read by deltalake.
    let dl = root.join("from_deltalake");
    let st = Command::new(&py).arg(script()).arg("make-deltalake").arg(&dl).status().expect("python");
    assert!(st.success());
    let table = Table::open(dl.to_str().unwrap()).unwrap();
    table.write(vec![ids_names(&[10, 20], &["x", "z"])], WriteOptions::default()).await.unwrap();
    let out = Command::new(&py).arg(script()).arg("read-deltalake").arg(&dl).output().expect("python");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["rows"], 5);
    assert_eq!(v["sum_id"], 36);
    let _ = std::fs::remove_dir_all(&root);
}

/// The same DELETE, UPDATE and MERGE run here and by `deltalake` on the same input give the same
/// rows; and `deltalake` reads this project's change data feed identically.
#[tokio::test]
async fn dml_matches_deltalake_on_shared_inputs() {
    let Some(py) = python() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no interop Python (set DELTA_INTEROP_PYTHON or run .ci/run)");
        }
        eprintln!("interop: no Python with deltalake (.ci/run installs one); skipping");
        return;
    };
    let root = std::env::temp_dir().join(format!("delta-interop-dml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // deltalake's run.
    let theirs = Command::new(&py).arg(script()).arg("dml-deltalake").arg(root.join("theirs")).output().expect("python");
    let their_rows: serde_json::Value = serde_json::from_slice(&theirs.stdout).unwrap_or_else(|_| {
        panic!("deltalake DML failed: {}{}", String::from_utf8_lossy(&theirs.stdout), String::from_utf8_lossy(&theirs.stderr))
    });
    // Ours, with deletion vectors and CDF.
    let t = Table::open(root.join("ours").to_str().unwrap()).unwrap();
    let ids: Vec<i64> = (0..40).collect();
    let parts: Vec<&str> = ids.iter().map(|i| ["a", "b", "c"][(*i % 3) as usize]).collect();
    let v: Vec<Option<i64>> = ids.iter().map(|i| if i % 7 == 0 { None } else { Some(i * 10) }).collect();
    let rows = |ids: &[i64], parts: Vec<Option<&str>>, v: &[Option<i64>]| {
        batch(
            vec![Field::new("id", DataType::Int64, true), Field::new("part", DataType::Utf8, true), Field::new("v", DataType::Int64, true)],
            vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(parts)), Arc::new(Int64Array::from(v.to_vec()))],
        )
    };
    let opts = WriteOptions {
        partition_by: Some(vec!["part".into()]),
        properties: props(&[("delta.enableDeletionVectors", "true"), ("delta.enableChangeDataFeed", "true")]),
        ..Default::default()
    };
    t.write(vec![rows(&ids, parts.iter().map(|p| Some(*p)).collect(), &v)], opts).await.unwrap();
    t.delete(Some("v > 300")).await.unwrap();
    t.update(Some("id % 5 = 0"), &[("v", "v + 1")]).await.unwrap();
    let src_ids: Vec<i64> = (0..5).chain(100..103).collect();
    let src_parts: Vec<Option<&str>> = src_ids.iter().map(|i| if *i < 100 { Some("a") } else { None }).collect();
    let src_v: Vec<Option<i64>> = src_ids.iter().map(|i| Some(if *i < 100 { -i } else { *i })).collect();
    t.merge(vec![rows(&src_ids, src_parts, &src_v)], "t.id = s.id")
        .when_matched_update(&[("v", "s.v")])
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete_if("t.v > 250")
        .execute()
        .await
        .unwrap();
    let batches = t.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap();
    let mut ours: Vec<serde_json::Value> = Vec::new();
    for b in &batches {
        let id = b.column_by_name("id").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        let part = b.column_by_name("part").unwrap().as_string::<i32>();
        let v = b.column_by_name("v").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            ours.push(serde_json::json!([id.value(i), part.is_valid(i).then(|| part.value(i)), v.is_valid(i).then(|| v.value(i))]));
        }
    }
    ours.sort_by_key(|r| r.to_string());
    let mut theirs_sorted: Vec<serde_json::Value> = their_rows["rows"].as_array().unwrap().clone();
    theirs_sorted.sort_by_key(|r| r.to_string());
    assert_eq!(ours, theirs_sorted, "rows after DELETE, UPDATE, MERGE: ours vs deltalake");
    // deltalake reads our change data feed (versions 2..=4: DML with cdc files) as we do.
    let ours_feed = t.table_changes(2, None, None).await.unwrap().collect().await.unwrap();
    let mut ours_changes: Vec<String> = Vec::new();
    for b in &ours_feed {
        let id = b.column_by_name("id").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        let ty = b.column_by_name("_change_type").unwrap().as_string::<i32>();
        let cv = b.column_by_name("_commit_version").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            ours_changes.push(format!("{}:{}:{}", cv.value(i), id.value(i), ty.value(i)));
        }
    }
    ours_changes.sort();
    let out = Command::new(&py).arg(script()).arg("cdf-deltalake").arg(root.join("ours")).arg("2").output().expect("python");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("deltalake CDF failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    let mut theirs_changes: Vec<String> = v["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    theirs_changes.sort();
    assert_eq!(ours_changes, theirs_changes, "change data feed: ours vs deltalake's load_cdf");
    assert!(ours_changes.len() > 10);
    let _ = std::fs::remove_dir_all(&root);
}
