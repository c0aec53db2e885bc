//! Builds real Delta tables on local disk for tests: parquet files written with arrow's writer and
//! commit files written line by line, so tests can create log shapes no writer would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

/// A table directory under construction.
pub struct TestTable {
    pub root: PathBuf,
}

impl TestTable {
    /// Creates `root/_delta_log`.
    pub fn create(root: &Path) -> Self {
        std::fs::create_dir_all(root.join("_delta_log")).unwrap();
        TestTable { root: root.to_path_buf() }
    }

    pub fn uri(&self) -> String {
        self.root.to_str().unwrap().to_string()
    }

    /// Writes commit `version` with the given actions (one JSON object per line).
    pub fn commit(&self, version: i64, actions: &[Value]) -> PathBuf {
        let path = self.root.join("_delta_log").join(format!("{version:020}.json"));
        let body: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        std::fs::write(&path, body.join("\n") + "\n").unwrap();
        path
    }

    /// Sets a commit file's modification time (ms since the epoch).
    pub fn set_commit_time(&self, version: i64, ms: i64) {
        let path = self.root.join("_delta_log").join(format!("{version:020}.json"));
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)).unwrap();
    }

    /// Writes a parquet file at `rel` (created directories included) and returns its size.
    pub fn write_parquet(&self, rel: &str, batch: &RecordBatch) -> i64 {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let file = std::fs::File::create(&path).unwrap();
        let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(1024)).build();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        std::fs::metadata(&path).unwrap().len() as i64
    }
}

/// `protocol` action.
pub fn protocol(reader: i32, writer: i32, reader_features: Option<&[&str]>) -> Value {
    let mut p = json!({"minReaderVersion": reader, "minWriterVersion": writer});
    if let Some(f) = reader_features {
        p["readerFeatures"] = json!(f);
        p["writerFeatures"] = json!(f);
    }
    json!({ "protocol": p })
}

/// `metaData` action for columns `id: long, name: string` (+ `part: string` partition column
/// when `partitioned`), with `configuration`.
pub fn metadata(partitioned: bool, configuration: Value) -> Value {
    let mut fields = vec![
        json!({"name": "id", "type": "long", "nullable": true, "metadata": {}}),
        json!({"name": "name", "type": "string", "nullable": true, "metadata": {}}),
    ];
    if partitioned {
        fields.push(json!({"name": "part", "type": "string", "nullable": true, "metadata": {}}));
    }
    let schema = json!({"type": "struct", "fields": fields});
    json!({"metaData": {
        "id": "test-table", "format": {"provider": "parquet", "options": {}},
        "schemaString": schema.to_string(),
        "partitionColumns": if partitioned { json!(["part"]) } else { json!([]) },
        "configuration": configuration, "createdTime": 0
    }})
}

/// A batch of `id` = `ids`, `name` = "n<id>".
pub fn id_batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]));
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names))]).unwrap()
}

/// `add` action with exact stats for an id batch.
pub fn add(path: &str, size: i64, ids: &[i64], partition: Option<&str>) -> Value {
    let stats = json!({
        "numRecords": ids.len(),
        "minValues": {"id": ids.iter().min(), "name": ids.iter().map(|i| format!("n{i}")).min()},
        "maxValues": {"id": ids.iter().max(), "name": ids.iter().map(|i| format!("n{i}")).max()},
        "nullCount": {"id": 0, "name": 0}
    });
    let pv = match partition {
        Some(p) => json!({"part": p}),
        None => json!({}),
    };
    json!({"add": {"path": path, "partitionValues": pv, "size": size, "modificationTime": 0, "dataChange": true, "stats": stats.to_string()}})
}

/// `remove` action.
pub fn remove(path: &str) -> Value {
    json!({"remove": {"path": path, "deletionTimestamp": 0, "dataChange": true}})
}

/// `commitInfo` action.
pub fn commit_info(extra: Value) -> Value {
    let mut info = json!({"timestamp": 0, "operation": "WRITE", "operationParameters": {"mode": "Append"}});
    if let (Some(o), Some(e)) = (info.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    json!({ "commitInfo": info })
}
