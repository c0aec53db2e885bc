//! delta-ml's integration tests (one binary): MLlib's semantics, answers against MLlib's,
//! pipelines over real Delta tables, persistence and lineage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod models;
mod pipeline;
mod semantics;
mod trees;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use delta_ml::stage::Frame;
use delta_ml::vector::dense_array;

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!("delta-ml-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn join(&self, s: &str) -> String {
        self.0.join(s).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A frame of one dense vector column `features` and a `label` column.
pub fn vector_frame(rows: &[Vec<f64>], labels: &[f64]) -> Frame {
    let d = rows.first().map_or(0, Vec::len);
    let schema = Arc::new(Schema::new(vec![Field::new("label", DataType::Float64, false), delta_ml::vector::dense_field("features", d)]));
    let values: Vec<f64> = rows.iter().flatten().copied().collect();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(labels.to_vec())) as ArrayRef, dense_array(d, values, None).unwrap()]).unwrap();
    Frame::new(schema, vec![batch])
}

/// A frame of one nullable string column.
pub fn string_frame(name: &str, values: &[Option<&str>]) -> Frame {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values.to_vec())) as ArrayRef]).unwrap();
    Frame::new(schema, vec![batch])
}

/// Reads a checked-in CSV of numbers (header `x0,…,label`): rows of features and the labels.
pub fn read_csv(name: &str) -> (Vec<Vec<f64>>, Vec<f64>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|s| s.parse().unwrap()).collect();
        labels.push(v[v.len() - 1]);
        rows.push(v[..v.len() - 1].to_vec());
    }
    (rows, labels)
}

/// MLlib's answers (`tests/data/mllib_refs.json`, made by `make_mllib_refs.py`).
pub fn mllib_refs() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/mllib_refs.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// `../shared` beside the repository, when present (CI has it; a newcomer's clone may not).
pub fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    if p.exists() {
        Some(p)
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("../shared is missing but CI=true: the semantics tests need ../shared/bench/ml");
    } else {
        eprintln!("skipping: ../shared is not beside this checkout");
        None
    }
}
