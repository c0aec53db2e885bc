//! `CONVERT TO DELTA` (a directory of parquet files becomes a Delta table in place, nothing
//! rewritten) and `GENERATE symlink_format_manifest` (manifest files for engines that read a
//! table through Hive-style symlink manifests).
//!
//! CONVERT lists every visible file under the root (names starting with `_` or `.` are hidden,
//! as for VACUUM), reads each parquet footer for its schema and row count, and commits version 0
//! with one `add` per file. Partition directories (`col=value`) must be declared with their types
//! (`PARTITIONED BY (col type, …)`), as delta-spark asks; a directory partitioned by an undeclared
//! column, a file outside the declared layout, or files whose schemas disagree are refused before
//! anything is written. Statistics are the row count of each footer (`numRecords`), so `count(*)`
//! is answered from the log; min/max come with the next rewrite of each file.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde_json::json;

use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::log::file_reader::StoreFileReader;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{Action, AddFile};
use crate::table::features::min_protocol;
use crate::table::schema::{StructField, StructType};
use crate::write::enforce::{merge_schemas, schema_from_arrow};
use crate::write::files::{encode_path, escape_partition_value};
use crate::write::txn::Transaction;

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl Table {
    /// `CONVERT TO DELTA parquet.`/dir` [PARTITIONED BY (…)]`: see the module docs. Returns
    /// version 0.
    pub async fn convert_to_delta(&self, partition_schema: Vec<StructField>) -> DeltaResult<i64> {
        self.ensure_no_table().await?;
        let location = self.location();
        let root = location.root().clone();
        let partition_names: Vec<String> = partition_schema.iter().map(|f| f.name.clone()).collect();
        let mut listing = location.store().list(Some(&root));
        let mut files = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            let Some(rel) = meta.location.as_ref().strip_prefix(root.as_ref()).map(|r| r.trim_start_matches('/').to_string()) else {
                continue;
            };
            let parts: Vec<&str> = rel.split('/').collect();
            let Some((file, dirs)) = parts.split_last() else { continue };
            if file.starts_with('_') || file.starts_with('.') || dirs.iter().any(|d| d.starts_with('_') || d.starts_with('.')) {
                continue;
            }
            files.push((meta, rel));
        }
        if files.is_empty() {
            return Err(DeltaError::WriteRefused { reason: format!("CONVERT TO DELTA: no parquet files under {}", location.root_url()) });
        }
        files.sort_by(|a, b| a.1.cmp(&b.1));
        let mut schema: Option<StructType> = None;
        let mut adds = Vec::with_capacity(files.len());
        let now = chrono::Utc::now().timestamp_millis();
        for (meta, rel) in files {
            let segments: Vec<&str> = rel.split('/').collect();
            let dirs = &segments[..segments.len() - 1];
            let mut values: HashMap<String, Option<String>> = HashMap::new();
            for d in dirs {
                let decoded = decode(d);
                let Some((k, v)) = decoded.split_once('=') else {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("CONVERT TO DELTA: `{rel}` is in directory `{decoded}`, which is not a partition directory (col=value)"),
                    });
                };
                let Some(name) = partition_names.iter().find(|p| p.eq_ignore_ascii_case(k)) else {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("CONVERT TO DELTA: `{rel}` is partitioned by `{k}`; declare it: PARTITIONED BY ({k} <type>)"),
                    });
                };
                values.insert(name.clone(), if v == "__HIVE_DEFAULT_PARTITION__" { None } else { Some(v.to_string()) });
            }
            if values.len() != partition_names.len() {
                return Err(DeltaError::WriteRefused {
                    reason: format!("CONVERT TO DELTA: `{rel}` is not under a directory for each of ({})", partition_names.join(", ")),
                });
            }
            let reader = StoreFileReader::new(location.store().clone(), meta.location.clone(), Some(meta.size));
            let builder = parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| DeltaError::parquet(&rel, e))?;
            let file_schema = schema_from_arrow(builder.schema())?;
            let rows = builder.metadata().file_metadata().num_rows();
            schema = Some(match schema {
                None => file_schema,
                Some(s) => merge_schemas(&s, &file_schema, false).map_err(|e| DeltaError::WriteRefused {
                    reason: format!("CONVERT TO DELTA: `{rel}` does not fit the other files' schema: {e}"),
                })?,
            });
            let mut add = AddFile::new(encode_path(&rel), values, meta.size as i64);
            add.modification_time = meta.last_modified.timestamp_millis().min(now);
            add.data_change = true;
            add.stats = Some(json!({ "numRecords": rows }).to_string());
            adds.push(add);
        }
        let mut schema = schema.unwrap_or_default();
        for p in &partition_schema {
            if schema.field(&p.name).is_some() {
                return Err(DeltaError::WriteRefused {
                    reason: format!("CONVERT TO DELTA: partition column `{}` is also a column of the files", p.name),
                });
            }
            schema.fields.push(p.clone());
        }
        let properties = HashMap::new();
        let protocol = min_protocol(&schema, &properties);
        let metadata = crate::write::writer::new_metadata(&schema, partition_names.clone(), &properties);
        let fresh = Snapshot::new_table(location.clone(), protocol.clone(), metadata.clone())?;
        let n = adds.len();
        let mut txn = Transaction::create(fresh).with_operation(
            "CONVERT",
            json!({ "numFiles": n, "partitionedBy": serde_json::to_string(&partition_names).unwrap_or_default(), "collectStats": false }),
        );
        txn.add_action(Action::Protocol(protocol));
        txn.add_action(Action::Metadata(metadata));
        txn.add_actions(adds.into_iter().map(Action::Add));
        self.commit_new_table(txn).await
    }

    /// `GENERATE symlink_format_manifest FOR TABLE t`: `_symlink_format_manifest/[partition
    /// dirs/]manifest`, each listing the absolute URLs of the live files of its partition; stale
    /// manifests of partitions that no longer have files are deleted. Refused on tables with
    /// deletion vectors or column mapping (a manifest reader would see deleted rows or physical
    /// names). Returns the number of manifests written.
    pub async fn generate_symlink_manifest(&self) -> DeltaResult<usize> {
        let snapshot = self.snapshot().await?;
        if snapshot.has_deletion_vectors() {
            return Err(DeltaError::WriteRefused {
                reason: "cannot generate symlink manifests for a table with deletion vectors (readers of manifests would see deleted rows); REORG TABLE … APPLY (PURGE) first".into(),
            });
        }
        if snapshot.column_mapping_mode() != crate::table::schema::ColumnMappingMode::None {
            return Err(DeltaError::WriteRefused { reason: "cannot generate symlink manifests for a table with column mapping".into() });
        }
        let location = self.location();
        let mut manifests: HashMap<String, Vec<String>> = HashMap::new();
        for add in snapshot.add_files()? {
            let mut dir = String::new();
            for p in snapshot.partition_columns() {
                let v = add.partition_values.get(p).cloned().flatten();
                let shown = v.as_deref().map(escape_partition_value).unwrap_or_else(|| "__HIVE_DEFAULT_PARTITION__".into());
                dir.push_str(&format!("{}={shown}/", escape_partition_value(p)));
            }
            let url = location.canonical_url(PathKind::Data, &add.path)?;
            manifests.entry(dir).or_default().push(url.to_string());
        }
        let base = Path::from(format!("{}/_symlink_format_manifest", location.root().as_ref().trim_end_matches('/')).trim_start_matches('/'));
        let mut written = HashSet::new();
        for (dir, mut urls) in manifests {
            urls.sort();
            let path = Path::from(format!("{}/{dir}manifest", base.as_ref()));
            location.store().put(&path, format!("{}\n", urls.join("\n")).into_bytes().into()).await?;
            written.insert(path.to_string());
        }
        let stale: Vec<Path> = location
            .store()
            .list(Some(&base))
            .try_filter_map(|m| {
                let keep = written.contains(m.location.as_ref());
                async move { Ok((!keep).then_some(m.location)) }
            })
            .try_collect()
            .await?;
        for p in stale {
            location.delete(&p).await?;
        }
        Ok(written.len())
    }
}
