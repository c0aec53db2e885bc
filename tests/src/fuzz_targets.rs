//! One function per fuzz target. Each accepts arbitrary bytes, must never panic, and checks an
//! oracle beyond "no panic" where one exists. `fuzz/fuzz_targets/*.rs` call these; the stable
//! `fuzz_replay` test runs them over the seed corpora.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::Utc;
use delta_core::dv::{parse_bitmap_array, serialize_bitmap_array, z85_decode, z85_encode};
use delta_core::error::PathKind;
use delta_core::expr::{evaluate_predicate, CmpOp, Expr, Scalar};
use delta_core::log::{LogFileKind, LogListing};
use delta_core::protocol::DeletionVectorDescriptor;
use delta_core::replay::decode_commit_json;
use delta_core::scan::parse_partition_value;
use delta_core::schema::StructType;
use delta_core::skipping::{can_match, FileStats};
use delta_core::{TableLocation, TableOptions};
use object_store::path::Path;
use object_store::ObjectMeta;

/// A fuzz target: arbitrary bytes in, panics only on a broken oracle.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("commit_json", commit_json),
    ("schema_json", schema_json),
    ("checkpoint_parquet", checkpoint_parquet),
    ("dv_descriptor", dv_descriptor),
    ("dv_bitmap", dv_bitmap),
    ("stats_json", stats_json),
    ("partition_values", partition_values),
    ("path_resolution", path_resolution),
    ("log_segment", log_segment),
    ("predicate_text", predicate_text),
    ("skipping_oracle", skipping_oracle),
];

/// Commit JSON: decode, then replay the actions; typed errors only.
pub fn commit_json(data: &[u8]) {
    let Ok(batches) = decode_commit_json("fuzz", data, 100_000) else { return };
    let location = TableLocation::open("file:///fuzz/table", TableOptions::default()).unwrap();
    let mut state = delta_core::replay::ReplayState::default();
    for b in &batches {
        let _ = state.apply(&location, b, false);
    }
}

/// Schema JSON: a parsed schema serialises and re-parses to itself, and maps to Arrow.
pub fn schema_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(schema) = StructType::parse(text) else { return };
    let again = StructType::parse(&schema.to_json().to_string()).expect("a parsed schema must re-parse");
    assert_eq!(schema, again, "schema JSON round trip");
    let _ = schema.to_arrow();
}

/// Checkpoint parquet: arbitrary bytes as a checkpoint file are read or refused with an error.
pub fn checkpoint_parquet(data: &[u8]) {
    let store = Arc::new(object_store::memory::InMemory::new());
    let path = Path::from("t/_delta_log/00000000000000000001.checkpoint.parquet");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        use object_store::ObjectStoreExt;
        store.put(&path, bytes::Bytes::copy_from_slice(data).into()).await.unwrap();
        let location = TableLocation::with_store(store, url::Url::parse("memory:///t/").unwrap(), Path::from("t"), TableOptions::default());
        let _ = delta_core::replay::read_checkpoint_parquet(&location, &path, Some(data.len() as u64)).await;
    });
}

/// Deletion vector descriptors: validation and location never panic; inline DVs decode or fail.
pub fn dv_descriptor(data: &[u8]) {
    let Ok(desc) = serde_json::from_slice::<DeletionVectorDescriptor>(data) else { return };
    let location = TableLocation::open("file:///fuzz/table", TableOptions::default()).unwrap();
    let _ = desc.validate(Some(1000));
    if let Ok(delta_core::dv::DvLocation::File { path, .. }) = desc.location(&location) {
        assert!(path.store_path.as_ref().starts_with("fuzz/table/"), "DV path escaped the table: {}", path.url);
    }
}

/// DV bitmaps: a parsed bitmap re-serialises to something that parses to the same set; Z85
/// round-trips arbitrary bytes.
pub fn dv_bitmap(data: &[u8]) {
    if let Ok(map) = parse_bitmap_array(data) {
        let bytes = serialize_bitmap_array(&map).unwrap();
        assert_eq!(parse_bitmap_array(&bytes).unwrap(), map, "bitmap round trip");
    }
    let padded_len = data.len() / 4 * 4;
    assert_eq!(z85_decode(&z85_encode(&data[..padded_len])).unwrap(), &data[..padded_len], "Z85 round trip");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = z85_decode(text);
    }
}

fn schema_for_stats() -> Schema {
    Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("d", DataType::Date32, true),
        Field::new("x", DataType::Decimal128(10, 2), true),
    ])
}

/// Stats JSON: arbitrary statistics with a set of predicates never panic.
pub fn stats_json(data: &[u8]) {
    let Ok(stats) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let partitions = HashMap::new();
    let identity = |c: &[String]| Some(c.to_vec());
    let fs = FileStats { stats: Some(stats), partition_values: &partitions, physical: &identity, string_prefix_length: 32 };
    let schema = schema_for_stats();
    for p in ["a = 1", "a > 5 OR s < 'm'", "NOT (t >= '2024-01-01')", "d IS NULL", "x IN (1.5, 2)", "s IS NOT NULL AND a <= -3"] {
        let _ = can_match(&Expr::parse(p).unwrap(), &fs, &schema);
    }
}

/// Partition values: every type parses a value or refuses it with a typed error; integers that
/// parse print back the same number.
pub fn partition_values(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let types = [
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Boolean,
        DataType::Utf8,
        DataType::Binary,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Decimal128(38, 10),
        DataType::Decimal128(5, 2),
    ];
    for t in &types {
        if let Ok(array) = parse_partition_value("p", Some(text), t) {
            assert_eq!(array.len(), 1);
            if t == &DataType::Int64 {
                if let Ok(v) = text.trim().parse::<i64>() {
                    let got = array.as_any().downcast_ref::<Int64Array>().unwrap().value(0);
                    assert_eq!(got, v);
                }
            }
        }
    }
}

/// Path resolution: whatever the input, a resolved path stays inside the table root.
pub fn path_resolution(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let location = TableLocation::open("file:///fuzz/table", TableOptions::default()).unwrap();
    for kind in [PathKind::Data, PathKind::DeletionVector] {
        if let Ok(r) = location.resolve(kind, text) {
            assert!(r.store_path.as_ref().starts_with("fuzz/table/"), "{text:?} resolved outside the root: {}", r.store_path);
            assert!(!r.store_path.parts().any(|p| p.as_ref() == ".."), "{text:?} kept a `..` segment");
        }
    }
}

/// Log listing → segment: whatever names are listed, a built segment is contiguous from its
/// checkpoint to its end version, and its checkpoint is complete.
pub fn log_segment(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let objects: Vec<ObjectMeta> = text
        .lines()
        .take(2000)
        .filter(|l| !l.is_empty())
        .filter_map(|l| Path::parse(format!("t/_delta_log/{l}")).ok())
        .map(|location| ObjectMeta { location, last_modified: Utc::now(), size: 1, e_tag: None, version: None })
        .collect();
    let listing = LogListing::from_objects(objects);
    let latest = listing.latest_version();
    for target in [None, Some(0), Some(3), latest.map(|v| v - 1)] {
        let Ok(segment) = listing.segment("t", target) else { continue };
        let start = segment.checkpoint.as_ref().map(|c| c.version + 1).unwrap_or(0);
        if let Some(cp) = &segment.checkpoint {
            assert!(cp.version <= segment.end_version);
            if let Some(LogFileKind::MultiPartCheckpoint { parts, .. }) = cp.parts.first().map(|p| p.name.kind.clone()) {
                assert_eq!(cp.parts.len(), parts as usize, "incomplete multi-part checkpoint chosen");
            }
        }
        let versions: Vec<i64> = segment.commits.iter().map(|c| c.name.version).collect();
        let expected: Vec<i64> = (start..=segment.end_version).collect();
        assert_eq!(versions, expected, "segment commits must be contiguous");
    }
}

fn sample_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("s", DataType::Utf8, true)]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![Some(1), None, Some(-7), Some(i64::MAX)])),
        Arc::new(StringArray::from(vec![Some("x"), Some(""), None, Some("ü")])),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

/// Predicate text: a parsed predicate prints to text that parses back to the same expression, and
/// evaluates (or fails with a typed error) on a batch.
pub fn predicate_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() > 4096 {
        return;
    }
    let Ok(expr) = Expr::parse(text) else { return };
    let printed = expr.to_string();
    let again = Expr::parse(&printed).unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not re-parse: {e}"));
    assert_eq!(expr, again, "predicate round trip via {printed:?}");
    let _ = evaluate_predicate(&expr, &sample_batch());
}

/// Data skipping never drops a matching file: rows from the input, exact stats computed from
/// them, a predicate from the input; if any row matches, `can_match` must say so.
pub fn skipping_oracle(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (head, rest) = data.split_at(3);
    let values: Vec<Option<i64>> =
        rest.chunks(2).take(64).map(|c| if c[0] % 5 == 0 { None } else { Some(i64::from(*c.last().unwrap_or(&0) as i8)) }).collect();
    if values.is_empty() {
        return;
    }
    let strings: Vec<Option<String>> = values.iter().map(|v| v.map(|x| format!("k{:03}", x.rem_euclid(50)))).collect();
    let non_null: Vec<i64> = values.iter().flatten().copied().collect();
    let min_s = strings.iter().flatten().min().cloned();
    let max_s = strings.iter().flatten().max().cloned();
    let stats = serde_json::json!({
        "numRecords": values.len(),
        "minValues": {"a": non_null.iter().min(), "s": min_s},
        "maxValues": {"a": non_null.iter().max(), "s": max_s},
        "nullCount": {"a": values.len() - non_null.len(), "s": values.len() - non_null.len()},
    });
    let ops = [CmpOp::Eq, CmpOp::NotEq, CmpOp::Lt, CmpOp::LtEq, CmpOp::Gt, CmpOp::GtEq];
    let op = ops[head[0] as usize % ops.len()];
    let lit = i64::from(head[1] as i8);
    let on_string = head[2] % 3 == 0;
    let pred = if on_string {
        Expr::Cmp(op, Box::new(Expr::col("s")), Box::new(Expr::Literal(Scalar::String(format!("k{:03}", lit.rem_euclid(50))))))
    } else if head[2] % 3 == 1 {
        Expr::Not(Box::new(Expr::Cmp(op, Box::new(Expr::col("a")), Box::new(Expr::Literal(Scalar::Integer(lit))))))
    } else {
        Expr::Cmp(op, Box::new(Expr::col("a")), Box::new(Expr::Literal(Scalar::Integer(lit))))
    };
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("s", DataType::Utf8, true)])),
        vec![Arc::new(Int64Array::from(values.clone())), Arc::new(StringArray::from(strings.clone()))],
    )
    .unwrap();
    let matches = evaluate_predicate(&pred, &batch).unwrap().true_count() > 0;
    let partitions = HashMap::new();
    let identity = |c: &[String]| Some(c.to_vec());
    let fs = FileStats { stats: Some(stats), partition_values: &partitions, physical: &identity, string_prefix_length: 32 };
    let schema = batch.schema();
    if matches {
        assert!(can_match(&pred, &fs, schema.as_ref()), "skipping dropped a matching file: {pred} over {values:?}");
    }
}
