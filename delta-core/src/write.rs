//! Writes: data files with statistics, then one commit.
//!
//! ```text
//!  RecordBatch stream ─► enforce schema (cast safe widenings, fill missing nullable columns,
//!        │               mergeSchema / overwriteSchema) ─► NOT NULL, invariants, CHECK constraints
//!        ▼
//!  split by partition values ─► parquet files at a target size (physical names and field ids under
//!        │                      column mapping) ─► add actions with numRecords/min/max/nullCount
//!        ▼
//!  Transaction: adds (+ removes for overwrite / dynamic partition overwrite; replaceWhere
//!               deletes as DELETE does: deletion vectors or copied rows keeping their row ids,
//!               change data on CDF tables; + metaData when the schema changes, + txn for
//!               idempotent writes) ─► commit
//!        ▼
//!  post-commit: checkpoint every `delta.checkpointInterval` commits, `.crc` file
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, StructArray, UInt32Array};
use arrow::compute::{cast, concat, sort_to_indices, take, SortOptions};
use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, SchemaRef, TimeUnit};
use futures::{Stream, StreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{json, Value};

use crate::actions::{Action, AddFile};
use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::expr::{evaluate_predicate, Expr};
use crate::protocol::{AppTransaction, Format, Metadata, Protocol, TableFeature};
use crate::scan::FilePruner;
use crate::schema::{ColumnMappingMode, DataType, PrimitiveType, StructField, StructType, FIELD_ID_KEY, PARQUET_FIELD_ID_KEY};
use crate::snapshot::{Snapshot, Table};
use crate::storage::TableLocation;
use crate::txn::{CommitOutcome, IsolationLevel, Transaction};

/// How a write treats existing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveMode {
    #[default]
    Append,
    Overwrite,
    /// Fail if the table exists.
    ErrorIfExists,
    /// Do nothing if the table exists.
    Ignore,
}

/// Options of [`Table::write`].
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub mode: SaveMode,
    /// Overwrite only rows matching this predicate; every written row must match it.
    pub replace_where: Option<Expr>,
    /// Overwrite only the partitions present in the written data.
    pub dynamic_partition_overwrite: bool,
    /// Partition columns when the write creates the table (must match an existing table's).
    pub partition_by: Option<Vec<String>>,
    /// Add new columns (nested too) found in the data; widen types where typeWidening is on.
    pub merge_schema: bool,
    /// Replace the schema (and partitioning) on overwrite.
    pub overwrite_schema: bool,
    /// Table properties when the write creates the table.
    pub properties: HashMap<String, String>,
    /// Clustering columns (`CLUSTER BY`, liquid clustering) when the write creates the table;
    /// dotted paths for nested fields. An existing table is reclustered with
    /// [`Table::cluster_by`].
    pub cluster_by: Option<Vec<String>>,
    /// Target size of data files in bytes (default `delta.targetFileSize` or 128 MiB).
    pub target_file_size: Option<u64>,
    /// Idempotent write: application id and version. A version not above the table's last
    /// recorded one for the application is skipped.
    pub app_transaction: Option<(String, i64)>,
    pub isolation: Option<IsolationLevel>,
    /// Extra `commitInfo` entries (e.g. `userMetadata`), as Spark's `userMetadata` option.
    pub commit_info: serde_json::Map<String, Value>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// The committed version; `None` when nothing was committed (Ignore mode on an existing
    /// table, or an idempotent write already applied).
    pub version: Option<i64>,
    pub files_added: usize,
    pub files_removed: usize,
    pub rows_written: u64,
    /// A failure after the commit (checksum or checkpoint writing). The commit stands; the next
    /// commit or an explicit checkpoint repairs what is missing.
    pub post_commit_error: Option<String>,
}

/// Writer features this implementation honours when writing.
pub(crate) fn ensure_writable(protocol: &Protocol) -> DeltaResult<()> {
    if protocol.min_writer_version > 7 || protocol.min_writer_version < 1 {
        return Err(DeltaError::UnsupportedWriterVersion { version: protocol.min_writer_version });
    }
    let supported = |f: &TableFeature| {
        matches!(
            f,
            TableFeature::AppendOnly
                | TableFeature::Invariants
                | TableFeature::CheckConstraints
                | TableFeature::ChangeDataFeed
                | TableFeature::ColumnMapping
                | TableFeature::DeletionVectors
                | TableFeature::TimestampNtz
                | TableFeature::DomainMetadata
                | TableFeature::V2Checkpoint
                | TableFeature::InCommitTimestamp
                | TableFeature::TypeWidening
                | TableFeature::TypeWideningPreview
                | TableFeature::VacuumProtocolCheck
                | TableFeature::CheckpointProtection
                | TableFeature::VariantType
                | TableFeature::VariantTypePreview
                | TableFeature::GeneratedColumns
                | TableFeature::IdentityColumns
                | TableFeature::AllowColumnDefaults
                | TableFeature::RowTracking
                // Their table-wide rules are checked at every commit (`features::validate`).
                | TableFeature::Clustering
                | TableFeature::IcebergCompatV1
                | TableFeature::IcebergCompatV2
                // Variants are always written unshredded, which shredding tables allow.
                | TableFeature::VariantShredding
                | TableFeature::VariantShreddingPreview
        )
    };
    for f in protocol.writer_feature_set() {
        if !supported(&f) {
            return Err(DeltaError::UnsupportedWriterFeature { feature: f.name().to_string() });
        }
    }
    // Legacy writer versions imply features: 4 = generated columns + CDF, 6 = identity columns.
    Ok(())
}

/// The smallest protocol for a new table with this schema and these properties, as delta-spark
/// chooses: legacy versions where they suffice, table features (3, 7) otherwise.
pub fn min_protocol(schema: &StructType, properties: &HashMap<String, String>) -> Protocol {
    let prop = |k: &str| properties.get(k).map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(false);
    let mut reader_features: Vec<&str> = Vec::new();
    let mut writer_features: Vec<&str> = Vec::new();
    let has_ntz = crate::schema::leaf_columns(schema).iter().any(|(_, f)| f.data_type == DataType::Primitive(PrimitiveType::TimestampNtz));
    let has_variant = crate::schema::leaf_columns(schema).iter().any(|(_, f)| f.data_type == DataType::Variant);
    if has_ntz {
        reader_features.push("timestampNtz");
        writer_features.push("timestampNtz");
    }
    if has_variant {
        reader_features.push("variantType");
        writer_features.push("variantType");
    }
    if prop("delta.enableDeletionVectors") {
        reader_features.push("deletionVectors");
        writer_features.push("deletionVectors");
    }
    if prop("delta.enableTypeWidening") {
        reader_features.push("typeWidening");
        writer_features.push("typeWidening");
    }
    if prop("delta.enableInCommitTimestamps") {
        writer_features.push("inCommitTimestamp");
    }
    // Both need column mapping, which `features::prepare_properties` turns on for new tables.
    if prop("delta.enableIcebergCompatV1") {
        writer_features.push("icebergCompatV1");
    }
    if prop("delta.enableIcebergCompatV2") {
        writer_features.push("icebergCompatV2");
    }
    if prop("delta.enableRowTracking") {
        writer_features.push("domainMetadata");
        writer_features.push("rowTracking");
    }
    if properties.get("delta.checkpointPolicy").is_some_and(|p| p.eq_ignore_ascii_case("v2")) {
        reader_features.push("v2Checkpoint");
        writer_features.push("v2Checkpoint");
    }
    let column_mapping = properties.get("delta.columnMapping.mode").is_some_and(|m| m != "none");
    let generated = schema.fields.iter().any(|f| f.metadata.contains_key("delta.generationExpression"));
    let identity = schema.fields.iter().any(|f| f.metadata.contains_key("delta.identity.start"));
    let defaults = schema.fields.iter().any(|f| f.metadata.contains_key("CURRENT_DEFAULT"));
    if defaults {
        // Only expressible with table features.
        writer_features.push("allowColumnDefaults");
    }
    let constraints = properties.keys().any(|k| k.starts_with("delta.constraints."));
    let cdf = prop("delta.enableChangeDataFeed");
    let append_only = prop("delta.appendOnly");
    if reader_features.is_empty() && writer_features.is_empty() {
        // Legacy protocol versions.
        let writer = if identity {
            6
        } else if column_mapping {
            5
        } else if cdf || generated {
            4
        } else if constraints {
            3
        } else {
            2
        };
        return Protocol {
            min_reader_version: if column_mapping { 2 } else { 1 },
            min_writer_version: writer,
            reader_features: None,
            writer_features: None,
        };
    }
    if column_mapping {
        reader_features.push("columnMapping");
        writer_features.push("columnMapping");
    }
    // Features implied by legacy writer versions, spelled out under table features.
    writer_features.push("appendOnly");
    writer_features.push("invariants");
    if constraints {
        writer_features.push("checkConstraints");
    }
    if cdf {
        writer_features.push("changeDataFeed");
    }
    if generated {
        writer_features.push("generatedColumns");
    }
    if identity {
        writer_features.push("identityColumns");
    }
    let _ = append_only;
    let reader_version = if reader_features.is_empty() { 1 } else { 3 };
    Protocol {
        min_reader_version: reader_version,
        min_writer_version: 7,
        reader_features: (reader_version == 3).then(|| reader_features.iter().map(|s| s.to_string()).collect()),
        writer_features: Some(writer_features.iter().map(|s| s.to_string()).collect()),
    }
}

/// A Delta schema from an Arrow schema (nullable as the Arrow fields say).
pub fn schema_from_arrow(schema: &Schema) -> DeltaResult<StructType> {
    fn field(f: &Field) -> DeltaResult<StructField> {
        Ok(StructField {
            name: f.name().clone(),
            data_type: data_type(f.data_type())?,
            nullable: f.is_nullable(),
            metadata: Default::default(),
        })
    }
    fn data_type(t: &ArrowType) -> DeltaResult<DataType> {
        use PrimitiveType as P;
        Ok(match t {
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::Primitive(P::String),
            ArrowType::Int64 => DataType::Primitive(P::Long),
            ArrowType::Int32 => DataType::Primitive(P::Integer),
            ArrowType::Int16 => DataType::Primitive(P::Short),
            ArrowType::Int8 => DataType::Primitive(P::Byte),
            ArrowType::Float32 => DataType::Primitive(P::Float),
            ArrowType::Float64 => DataType::Primitive(P::Double),
            ArrowType::Boolean => DataType::Primitive(P::Boolean),
            ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => DataType::Primitive(P::Binary),
            ArrowType::Date32 | ArrowType::Date64 => DataType::Primitive(P::Date),
            ArrowType::Timestamp(_, Some(_)) => DataType::Primitive(P::Timestamp),
            ArrowType::Timestamp(_, None) => DataType::Primitive(P::TimestampNtz),
            ArrowType::Decimal128(p, s) if *p <= 38 && *s >= 0 => DataType::Primitive(P::Decimal(*p, *s)),
            ArrowType::Null => DataType::Void,
            ArrowType::Struct(fields) => {
                DataType::Struct(StructType { fields: fields.iter().map(|f| field(f)).collect::<DeltaResult<_>>()? })
            }
            ArrowType::List(e) | ArrowType::LargeList(e) => DataType::Array(Box::new(data_type(e.data_type())?), e.is_nullable()),
            ArrowType::Map(entries, _) => {
                let ArrowType::Struct(kv) = entries.data_type() else {
                    return Err(DeltaError::UnsupportedType { data_type: t.to_string() });
                };
                if kv.len() != 2 {
                    return Err(DeltaError::UnsupportedType { data_type: t.to_string() });
                }
                DataType::Map(Box::new(data_type(kv[0].data_type())?), Box::new(data_type(kv[1].data_type())?), kv[1].is_nullable())
            }
            other => return Err(DeltaError::UnsupportedType { data_type: other.to_string() }),
        })
    }
    Ok(StructType { fields: schema.fields().iter().map(|f| field(f)).collect::<DeltaResult<_>>()? })
}

/// Whether `from` can be written into a column of `to` without loss (Spark's store assignment).
fn safe_cast(from: &ArrowType, to: &ArrowType) -> bool {
    use ArrowType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (Int8, Int16 | Int32 | Int64) | (Int16, Int32 | Int64) | (Int32, Int64) => true,
        (Int8 | Int16 | Int32, Float64) | (Float32, Float64) => true,
        (Utf8View | LargeUtf8, Utf8) | (BinaryView | LargeBinary, Binary) => true,
        (Date64, Date32) => true,
        (Timestamp(_, a), Timestamp(TimeUnit::Microsecond, b)) => a.is_some() == b.is_some(),
        (Decimal128(p1, s1), Decimal128(p2, s2)) => s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16),
        (Null, _) => true,
        (Struct(_), Struct(_)) | (List(_), List(_)) | (LargeList(_), List(_)) | (Map(_, _), Map(_, _)) => true,
        _ => false,
    }
}

/// Generated columns (`delta.generationExpression`): computed where the data lacks them, checked
/// (`column <=> expression` on every row) where it has them.
/// Columns whose values an expression supplies: generated columns (always; given values are
/// checked) and columns with a default (`CURRENT_DEFAULT`, allowColumnDefaults; only when missing).
fn generated_columns(schema: &StructType) -> DeltaResult<Vec<(usize, Expr, bool)>> {
    let mut out = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        if let Some(text) = f.metadata.get("delta.generationExpression").and_then(Value::as_str) {
            out.push((i, Expr::parse(text)?, true));
        } else if let Some(text) = f.metadata.get("CURRENT_DEFAULT").and_then(Value::as_str) {
            out.push((i, Expr::parse(text)?, false));
        }
    }
    Ok(out)
}

pub(crate) fn fill_generated_columns(batch: (RecordBatch, Vec<bool>), schema: &StructType) -> DeltaResult<RecordBatch> {
    let (batch, provided) = batch;
    let generated = generated_columns(schema)?;
    if generated.is_empty() {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    for (i, expr, always) in &generated {
        let f = &schema.fields[*i];
        if provided[*i] && !*always {
            continue;
        }
        let t = batch.schema().field(*i).data_type().clone();
        let computed = crate::expr::evaluate(expr, &batch)?;
        let computed = arrow::compute::cast_with_options(&computed, &t, &arrow::compute::CastOptions { safe: true, ..Default::default() })?;
        if provided[*i] {
            let given = batch.column(*i);
            let same = arrow::compute::kernels::cmp::not_distinct(given, &computed)?;
            let bad = same.len() - same.true_count();
            if bad > 0 {
                return Err(DeltaError::WriteRefused {
                    reason: format!("{bad} row(s) of generated column `{}` differ from its expression `{expr}`", f.name),
                });
            }
        } else {
            if !f.nullable && computed.null_count() > 0 {
                return Err(DeltaError::WriteRefused {
                    reason: format!("NOT NULL constraint violated: column `{}` computes NULL from `{expr}`", f.name),
                });
            }
            columns[*i] = computed;
        }
    }
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// An identity column (`delta.identity.*`): values `start, start+step, …` above the high-water mark.
pub(crate) struct Identity {
    pub(crate) index: usize,
    name: String,
    step: i64,
    next: i64,
    allow_explicit: bool,
    /// The last value this write assigned.
    pub(crate) assigned: Option<i64>,
}

pub(crate) fn identity_columns(schema: &StructType) -> DeltaResult<Vec<Identity>> {
    let mut out = Vec::new();
    for (index, f) in schema.fields.iter().enumerate() {
        let Some(start) = f.metadata.get("delta.identity.start").and_then(Value::as_i64) else { continue };
        let step = f.metadata.get("delta.identity.step").and_then(Value::as_i64).unwrap_or(1);
        if step == 0 {
            return Err(DeltaError::schema(format!("identity column `{}` has step 0", f.name)));
        }
        let next = match f.metadata.get("delta.identity.highWaterMark").and_then(Value::as_i64) {
            Some(hwm) => hwm
                .checked_add(step)
                .ok_or_else(|| DeltaError::WriteRefused { reason: format!("identity column `{}` overflowed", f.name) })?,
            None => start,
        };
        let allow_explicit = f.metadata.get("delta.identity.allowExplicitInsert").and_then(Value::as_bool).unwrap_or(false);
        out.push(Identity { index, name: f.name.clone(), step, next, allow_explicit, assigned: None });
    }
    Ok(out)
}

/// Assigns identity values where the data lacks the column; refuses explicit values unless the
/// column allows them.
pub(crate) fn fill_identity_columns(batch: RecordBatch, provided: &[bool], identities: &mut [Identity]) -> DeltaResult<RecordBatch> {
    if identities.is_empty() {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    let n = batch.num_rows() as i64;
    for id in identities.iter_mut() {
        if provided[id.index] {
            if !id.allow_explicit {
                return Err(DeltaError::WriteRefused {
                    reason: format!("identity column `{}` is GENERATED ALWAYS: values cannot be given", id.name),
                });
            }
            continue;
        }
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(id.next);
            id.assigned = Some(id.next);
            id.next = id
                .next
                .checked_add(id.step)
                .ok_or_else(|| DeltaError::WriteRefused { reason: format!("identity column `{}` overflowed", id.name) })?;
        }
        let t = batch.schema().field(id.index).data_type().clone();
        columns[id.index] = arrow::compute::cast(&(Arc::new(arrow::array::Int64Array::from(values)) as ArrayRef), &t)?;
    }
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Conforms a batch to the table's logical Arrow schema: columns by name (case-insensitive), safe
/// casts, missing nullable columns as nulls; errors name the column and both types. Generated
/// columns missing from the data come back as nulls with `false` in the returned "provided" flags.
pub(crate) fn conform_without_generated(
    batch: &RecordBatch,
    target: &SchemaRef,
    schema: &StructType,
) -> DeltaResult<(RecordBatch, Vec<bool>)> {
    let input = batch.schema();
    for f in input.fields() {
        if schema.field(f.name()).is_none() {
            return Err(DeltaError::WriteRefused {
                reason: format!("column `{}` ({}) is not in the table schema; use mergeSchema to add it", f.name(), f.data_type()),
            });
        }
    }
    let mut columns = Vec::with_capacity(target.fields().len());
    let mut provided = Vec::with_capacity(target.fields().len());
    for (tf, sf) in target.fields().iter().zip(&schema.fields) {
        // Generated and identity columns missing from the data are filled in afterwards.
        let generated = sf.metadata.contains_key("delta.generationExpression")
            || sf.metadata.contains_key("delta.identity.start")
            || sf.metadata.contains_key("CURRENT_DEFAULT");
        let idx = input.index_of(tf.name()).ok().or_else(|| input.fields().iter().position(|f| f.name().eq_ignore_ascii_case(tf.name())));
        let col = match idx {
            Some(i) => {
                let c = batch.column(i);
                if !safe_cast(c.data_type(), tf.data_type()) {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("column `{}` has type {} in the data but {} in the table", tf.name(), c.data_type(), sf.data_type),
                    });
                }
                if c.data_type() == tf.data_type() {
                    c.clone()
                } else {
                    crate::replay::conform(c, tf.data_type())?
                }
            }
            None => {
                if !sf.nullable && !generated {
                    return Err(DeltaError::WriteRefused { reason: format!("column `{}` is NOT NULL but missing from the data", sf.name) });
                }
                new_null_array(tf.data_type(), batch.num_rows())
            }
        };
        provided.push(idx.is_some());
        if !sf.nullable && col.null_count() > 0 && !(generated && idx.is_none()) {
            return Err(DeltaError::WriteRefused {
                reason: format!("NOT NULL constraint violated: column `{}` has {} null values", sf.name, col.null_count()),
            });
        }
        columns.push(col);
    }
    let out = RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?;
    Ok((out, provided))
}

/// Merges the data's schema into the table's: new columns (nested too) are appended as nullable.
/// Type changes are refused unless `widen` (typeWidening) allows them.
pub fn merge_schemas(table: &StructType, data: &StructType, widen: bool) -> DeltaResult<StructType> {
    let mut out = table.clone();
    for df in &data.fields {
        match out.fields.iter_mut().find(|f| f.name.eq_ignore_ascii_case(&df.name)) {
            None => {
                let mut f = df.clone();
                f.nullable = true;
                out.fields.push(f);
            }
            Some(tf) => {
                let merged = merge_types(&tf.name, &tf.data_type, &df.data_type, widen)?;
                if matches!((&tf.data_type, &merged), (DataType::Primitive(a), DataType::Primitive(b)) if a != b) {
                    let from = tf.data_type.clone();
                    crate::alter::record_type_change(tf, &from, &merged);
                }
                tf.data_type = merged;
            }
        }
    }
    Ok(out)
}

fn merge_types(name: &str, table: &DataType, data: &DataType, widen: bool) -> DeltaResult<DataType> {
    use PrimitiveType as P;
    Ok(match (table, data) {
        (a, b) if a == b => a.clone(),
        (DataType::Struct(t), DataType::Struct(d)) => DataType::Struct(merge_schemas(t, d, widen)?),
        (DataType::Array(t, n), DataType::Array(d, _)) => DataType::Array(Box::new(merge_types(name, t, d, widen)?), *n),
        (DataType::Map(tk, tv, n), DataType::Map(dk, dv, _)) => {
            DataType::Map(Box::new(merge_types(name, tk, dk, widen)?), Box::new(merge_types(name, tv, dv, widen)?), *n)
        }
        (DataType::Primitive(t), DataType::Primitive(d)) => {
            // Narrower data into a wider column is a plain write.
            let into_wider = matches!(
                (t, d),
                (P::Long, P::Integer | P::Short | P::Byte) | (P::Integer, P::Short | P::Byte) | (P::Short, P::Byte) | (P::Double, P::Float)
            );
            let widening = matches!(
                (t, d),
                (P::Byte, P::Short | P::Integer | P::Long)
                    | (P::Short, P::Integer | P::Long)
                    | (P::Integer, P::Long)
                    | (P::Float, P::Double)
                    | (P::Date, P::TimestampNtz)
            );
            if into_wider {
                table.clone()
            } else if widening && widen {
                data.clone()
            } else {
                return Err(DeltaError::WriteRefused {
                    reason: format!("column `{name}` has type {table} in the table and {data} in the data"),
                });
            }
        }
        (DataType::Void, other) => other.clone(),
        (t, DataType::Void) => t.clone(),
        (t, d) => {
            return Err(DeltaError::WriteRefused { reason: format!("column `{name}` has type {t} in the table and {d} in the data") })
        }
    })
}

/// The CHECK constraints (`delta.constraints.<name>`) and column invariants of a table.
pub(crate) fn table_rules(metadata: &Metadata, schema: &StructType) -> DeltaResult<Vec<(String, Expr)>> {
    let mut rules = Vec::new();
    for (k, v) in &metadata.configuration {
        if let (Some(name), Some(text)) = (k.strip_prefix("delta.constraints."), v) {
            rules.push((format!("CHECK constraint {name} ({text})"), Expr::parse(text)?));
        }
    }
    for (path, f) in crate::schema::leaf_columns(schema) {
        if let Some(inv) = f.metadata.get("delta.invariants").and_then(Value::as_str) {
            let v: Value = serde_json::from_str(inv).map_err(|e| DeltaError::schema(format!("invariant of `{}`: {e}", path.join("."))))?;
            if let Some(text) = v.pointer("/expression/expression").and_then(Value::as_str) {
                rules.push((format!("invariant on `{}` ({text})", path.join(".")), Expr::parse(text)?));
            }
        }
    }
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rules)
}

pub(crate) fn check_rules(batch: &RecordBatch, rules: &[(String, Expr)]) -> DeltaResult<()> {
    for (name, expr) in rules {
        // A row violates a CHECK when the expression is false (NULL passes, as in SQL).
        let not = Expr::Not(Box::new(expr.clone()));
        let violations = evaluate_predicate(&not, batch)?.true_count();
        if violations > 0 {
            return Err(DeltaError::WriteRefused { reason: format!("{name} violated by {violations} row(s)") });
        }
    }
    Ok(())
}

/// Characters Spark escapes in partition directory names (`ExternalCatalogUtils.escapePathName`).
fn escape_partition_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        let needs =
            (c as u32) < 0x20 || matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\x7f' | '{' | '[' | ']' | '^');
        if needs {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Percent-encodes a relative path for `add.path` (a URI reference).
pub fn encode_path(path: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b'=');
    percent_encoding::utf8_percent_encode(path, KEEP).to_string()
}

/// The string form of a partition value (Delta's partition value serialisation).
fn partition_strings(col: &ArrayRef) -> DeltaResult<Vec<Option<String>>> {
    let n = col.len();
    Ok(match col.data_type() {
        ArrowType::Timestamp(TimeUnit::Microsecond, tz) => {
            let a = col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            (0..n)
                .map(|i| {
                    a.is_valid(i).then(|| {
                        let t = chrono::DateTime::from_timestamp_micros(a.value(i)).unwrap_or_default();
                        if tz.is_some() {
                            t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
                        } else {
                            t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
                        }
                    })
                })
                .collect()
        }
        ArrowType::Binary => {
            // Spark and readers (this one too) take a binary partition value's string as its
            // UTF-8 bytes; other bytes have no faithful string form.
            let a = col.as_binary::<i32>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        return Ok(None);
                    }
                    std::str::from_utf8(a.value(i)).map(|s| Some(s.to_string())).map_err(|_| DeltaError::WriteRefused {
                        reason: format!("binary partition value {:02x?} is not UTF-8 text, which partition values must be", a.value(i)),
                    })
                })
                .collect::<DeltaResult<Vec<_>>>()?
        }
        ArrowType::Struct(_) | ArrowType::List(_) | ArrowType::Map(_, _) => {
            return Err(DeltaError::WriteRefused { reason: format!("partition columns of type {} are not supported", col.data_type()) })
        }
        _ => {
            let s = cast(col, &ArrowType::Utf8)?;
            let s = s.as_string::<i32>();
            (0..n).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect()
        }
    })
}

/// Renames a logical batch's fields to physical names with field ids (column mapping), nested
/// fields too (inside structs, arrays and maps). Array elements and map keys and values get the
/// field ids IcebergCompatV2 assigns them (`delta.columnMapping.nested.ids` of the nearest field).
fn to_physical(batch: &RecordBatch, schema: &StructType, mode: ColumnMappingMode) -> DeltaResult<RecordBatch> {
    if mode == ColumnMappingMode::None {
        return Ok(batch.clone());
    }
    type Ids = serde_json::Map<String, Value>;
    fn with_id(f: Field, id: Option<i64>) -> Field {
        match id {
            Some(id) => {
                let md: std::collections::HashMap<String, String> = [(PARQUET_FIELD_ID_KEY.to_string(), id.to_string())].into();
                f.with_metadata(md)
            }
            None => f,
        }
    }
    fn field_for(sf: &StructField, array: &ArrayRef, mode: ColumnMappingMode) -> DeltaResult<(Field, ArrayRef)> {
        let ids = match sf.metadata.get(crate::features::NESTED_IDS_KEY) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let name = sf.physical_name(mode);
        let (t, a) = physical_array(&sf.data_type, array, mode, ids, name)?;
        Ok((with_id(Field::new(name, t, true), sf.field_id()), a))
    }
    fn physical_array(
        t: &DataType,
        array: &ArrayRef,
        mode: ColumnMappingMode,
        ids: Option<&Ids>,
        key: &str,
    ) -> DeltaResult<(ArrowType, ArrayRef)> {
        let id = |k: &str| ids.and_then(|m| m.get(k)).and_then(Value::as_i64);
        Ok(match (t, array.data_type()) {
            (DataType::Struct(st), ArrowType::Struct(_)) => {
                let s = array.as_struct();
                let mut fields = Vec::new();
                let mut cols = Vec::new();
                for (i, sf) in st.fields.iter().enumerate() {
                    let (f, a) = field_for(sf, s.column(i), mode)?;
                    fields.push(Arc::new(f));
                    cols.push(a);
                }
                let fields = Fields::from(fields);
                let out = StructArray::try_new(fields.clone(), cols, s.nulls().cloned())?;
                (ArrowType::Struct(fields), Arc::new(out))
            }
            (DataType::Array(elem, _), ArrowType::List(field)) => {
                let list = array.as_list::<i32>();
                let key = format!("{key}.element");
                let (et, values) = physical_array(elem, list.values(), mode, ids, &key)?;
                let field = Arc::new(with_id(Field::new(field.name(), et, field.is_nullable()), id(&key)));
                let out = arrow::array::ListArray::try_new(field, list.offsets().clone(), values, list.nulls().cloned())?;
                (out.data_type().clone(), Arc::new(out))
            }
            (DataType::Map(k, v, _), ArrowType::Map(entries, sorted)) => {
                let m = array.as_map();
                let ArrowType::Struct(entry_fields) = entries.data_type() else {
                    return Err(DeltaError::Internal("map entries are not a struct".into()));
                };
                let (key_key, value_key) = (format!("{key}.key"), format!("{key}.value"));
                let (kt, keys) = physical_array(k, m.keys(), mode, ids, &key_key)?;
                let (vt, values) = physical_array(v, m.values(), mode, ids, &value_key)?;
                let value_nullable = entry_fields.get(1).is_none_or(|f| f.is_nullable());
                let fields = Fields::from(vec![
                    with_id(Field::new("key", kt, false), id(&key_key)),
                    with_id(Field::new("value", vt, value_nullable), id(&value_key)),
                ]);
                let entries_out = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
                let entries_field = Arc::new(Field::new(entries.name(), ArrowType::Struct(fields), false));
                let out = arrow::array::MapArray::try_new(entries_field, m.offsets().clone(), entries_out, m.nulls().cloned(), *sorted)?;
                (out.data_type().clone(), Arc::new(out))
            }
            _ => (array.data_type().clone(), array.clone()),
        })
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (i, sf) in schema.fields.iter().enumerate() {
        let (f, a) = field_for(sf, batch.column(i), mode)?;
        fields.push(f);
        cols.push(a);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        cols,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Statistics of one leaf column within one file: the null count and whether bounds may be
/// given, kept while rows are written. The bounds themselves come from the parquet writer's
/// column chunk statistics when the file closes ([`chunk_bounds`]): it computes them anyway, and
/// a second pass here cost a tenth of the encoding time.
struct ColumnStats {
    path: Vec<String>,
    /// The leaf's Arrow type (from the first batch).
    data_type: Option<ArrowType>,
    nulls: u64,
    /// Min/max are not collected for this type (or became unreliable, e.g. NaN).
    no_bounds: bool,
}

/// The smallest (or largest) non-null value as a one-row array: arrow's aggregate kernels for
/// primitives and strings (one pass), a partial sort for anything else.
fn extreme(a: &ArrayRef, descending: bool) -> DeltaResult<Option<ArrayRef>> {
    use arrow::datatypes::*;
    if a.len() == a.null_count() {
        return Ok(None);
    }
    macro_rules! prim {
        ($t:ty) => {{
            let p = a.as_primitive::<$t>();
            let v = if descending { arrow::compute::max(p) } else { arrow::compute::min(p) };
            return Ok(
                v.map(|v| Arc::new(arrow::array::PrimitiveArray::<$t>::from(vec![v]).with_data_type(a.data_type().clone())) as ArrayRef)
            );
        }};
    }
    match a.data_type() {
        ArrowType::Int8 => prim!(Int8Type),
        ArrowType::Int16 => prim!(Int16Type),
        ArrowType::Int32 => prim!(Int32Type),
        ArrowType::Int64 => prim!(Int64Type),
        ArrowType::Float32 => prim!(Float32Type),
        ArrowType::Float64 => prim!(Float64Type),
        ArrowType::Date32 => prim!(Date32Type),
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType),
        ArrowType::Decimal128(_, _) => prim!(Decimal128Type),
        ArrowType::Utf8 => {
            let s = a.as_string::<i32>();
            let v = if descending { arrow::compute::max_string(s) } else { arrow::compute::min_string(s) };
            return Ok(v.map(|v| Arc::new(arrow::array::StringArray::from(vec![v])) as ArrayRef));
        }
        _ => {}
    }
    let idx = sort_to_indices(a, Some(SortOptions { descending, nulls_first: false }), Some(1))?;
    Ok(Some(take(a, &idx, None)?))
}

fn leaf_arrays(batch: &RecordBatch, schema: &StructType, mode: ColumnMappingMode) -> Vec<(Vec<String>, ArrayRef)> {
    fn walk(prefix: &[String], t: &StructType, arrays: &[ArrayRef], mode: ColumnMappingMode, out: &mut Vec<(Vec<String>, ArrayRef)>) {
        for (f, a) in t.fields.iter().zip(arrays) {
            let mut p = prefix.to_vec();
            p.push(f.physical_name(mode).to_string());
            match (&f.data_type, a.as_struct_opt()) {
                (DataType::Struct(inner), Some(s)) => walk(&p, inner, s.columns(), mode, out),
                _ => out.push((p, a.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk(&[], schema, batch.columns(), mode, &mut out);
    out
}

impl ColumnStats {
    fn update(&mut self, a: &ArrayRef) -> DeltaResult<()> {
        self.nulls += a.null_count() as u64;
        if self.data_type.is_none() {
            self.data_type = Some(a.data_type().clone());
        }
        if self.no_bounds {
            return Ok(());
        }
        match a.data_type() {
            ArrowType::Boolean | ArrowType::Binary | ArrowType::Null | ArrowType::List(_) | ArrowType::Map(_, _) | ArrowType::Struct(_) => {
                self.no_bounds = true;
                return Ok(());
            }
            ArrowType::Float32 | ArrowType::Float64 => {
                fn any_nan<T: arrow::datatypes::ArrowPrimitiveType>(a: &ArrayRef, is_nan: impl Fn(T::Native) -> bool) -> bool {
                    let p = a.as_primitive::<T>();
                    match p.nulls() {
                        None => p.values().iter().any(|v| is_nan(*v)),
                        Some(_) => p.iter().flatten().any(is_nan),
                    }
                }
                let nan = match a.data_type() {
                    ArrowType::Float32 => any_nan::<arrow::datatypes::Float32Type>(a, f32::is_nan),
                    _ => any_nan::<arrow::datatypes::Float64Type>(a, f64::is_nan),
                };
                // Parquet's float statistics leave NaN out; Spark orders it above every value.
                if nan {
                    self.no_bounds = true;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parquet column chunk statistics of strings are kept to this many bytes: the first 32
/// characters (at most 4 bytes each) always survive whole, so the Delta statistics cut from them
/// (32 characters, see [`stat_value`]) are the same as if cut from the exact values.
const STATS_TRUNCATE_BYTES: usize = 32 * 4 + 4;

/// A parquet statistics value pair as one-row arrays of the leaf's Arrow type `t` (`None` when
/// absent or of a type stats are not kept for).
fn stat_arrays(st: &parquet::file::statistics::Statistics, t: &ArrowType) -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
    use arrow::array::{Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, StringArray};
    use parquet::file::statistics::Statistics as S;
    fn pair<A: Array + 'static, V: Clone>(lo: Option<&V>, hi: Option<&V>, make: impl Fn(V) -> A) -> Option<(ArrayRef, ArrayRef)> {
        Some((Arc::new(make(lo?.clone())) as ArrayRef, Arc::new(make(hi?.clone())) as ArrayRef))
    }
    let decimal = |v: i128| -> DeltaResult<ArrayRef> {
        let ArrowType::Decimal128(p, s) = t else { return Err(DeltaError::Internal("not a decimal".into())) };
        Ok(Arc::new(Decimal128Array::from(vec![v]).with_precision_and_scale(*p, *s)?))
    };
    let decimal_pair = |lo: Option<i128>, hi: Option<i128>| -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
        match (lo, hi) {
            (Some(lo), Some(hi)) => Ok(Some((decimal(lo)?, decimal(hi)?))),
            _ => Ok(None),
        }
    };
    let raw = match (st, t) {
        (S::Int32(v), ArrowType::Decimal128(_, _)) => decimal_pair(v.min_opt().map(|x| *x as i128), v.max_opt().map(|x| *x as i128))?,
        (S::Int64(v), ArrowType::Decimal128(_, _)) => decimal_pair(v.min_opt().map(|x| *x as i128), v.max_opt().map(|x| *x as i128))?,
        (S::FixedLenByteArray(v), ArrowType::Decimal128(_, _)) => {
            // Big-endian two's complement, sign-extended to 16 bytes.
            let value = |b: &[u8]| -> Option<i128> {
                if b.is_empty() || b.len() > 16 {
                    return None;
                }
                let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
                let mut bytes = [fill; 16];
                bytes[16 - b.len()..].copy_from_slice(b);
                Some(i128::from_be_bytes(bytes))
            };
            decimal_pair(v.min_bytes_opt().and_then(value), v.max_bytes_opt().and_then(value))?
        }
        (S::Int32(v), _) => pair(v.min_opt(), v.max_opt(), |x: i32| Int32Array::from(vec![x])),
        (S::Int64(v), _) => pair(v.min_opt(), v.max_opt(), |x: i64| Int64Array::from(vec![x])),
        (S::Float(v), _) => pair(v.min_opt(), v.max_opt(), |x: f32| Float32Array::from(vec![x])),
        (S::Double(v), _) => pair(v.min_opt(), v.max_opt(), |x: f64| Float64Array::from(vec![x])),
        (S::ByteArray(v), ArrowType::Utf8) => {
            match (v.min_bytes_opt().map(std::str::from_utf8), v.max_bytes_opt().map(std::str::from_utf8)) {
                (Some(Ok(lo)), Some(Ok(hi))) => {
                    Some((Arc::new(StringArray::from(vec![lo])) as ArrayRef, Arc::new(StringArray::from(vec![hi])) as ArrayRef))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some((lo, hi)) = raw else { return Ok(None) };
    if lo.data_type() == t {
        return Ok(Some((lo, hi)));
    }
    // Physical to logical: Int32 → Int8/Int16/Date32, Int64 → Timestamp(µs).
    match t {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 | ArrowType::Date32 | ArrowType::Timestamp(_, _) => {
            Ok(Some((cast(&lo, t)?, cast(&hi, t)?)))
        }
        _ => Ok(None),
    }
}

/// The bounds of leaf `path` over a file's row groups, from the parquet writer's column chunk
/// statistics; `None` when some row group with values lacks them.
fn chunk_bounds(
    groups: &[parquet::file::metadata::RowGroupMetaData],
    path: &[String],
    t: &ArrowType,
) -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
    let mut bounds: Option<(ArrayRef, ArrayRef)> = None;
    for g in groups {
        let Some(col) = g.columns().iter().find(|c| c.column_path().parts() == path) else { return Ok(None) };
        let Some(st) = col.statistics() else { return Ok(None) };
        let Some((lo, hi)) = stat_arrays(st, t)? else {
            if st.null_count_opt() == Some(g.num_rows() as u64) {
                continue; // only nulls here
            }
            return Ok(None);
        };
        bounds = Some(match bounds {
            None => (lo, hi),
            Some((min, max)) => {
                let min = extreme(&concat(&[min.as_ref(), lo.as_ref()])?, false)?;
                let max = extreme(&concat(&[max.as_ref(), hi.as_ref()])?, true)?;
                match min.zip(max) {
                    Some(b) => b,
                    None => return Ok(None),
                }
            }
        });
    }
    Ok(bounds)
}

/// Renders a one-row array as a stats JSON value; `is_max` rounds the way readers expect
/// (strings truncated to 32 characters with a tie-breaker for maxima, timestamps to ms).
fn stat_value(a: &ArrayRef, is_max: bool) -> DeltaResult<Option<Value>> {
    Ok(Some(match a.data_type() {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 => {
            json!(cast(a, &ArrowType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().value(0))
        }
        ArrowType::Float32 | ArrowType::Float64 => {
            let v = cast(a, &ArrowType::Float64)?.as_primitive::<arrow::datatypes::Float64Type>().value(0);
            match serde_json::Number::from_f64(v) {
                Some(n) => Value::Number(n),
                None => return Ok(None),
            }
        }
        ArrowType::Decimal128(_, _) => {
            let s = cast(a, &ArrowType::Utf8)?;
            let text = s.as_string::<i32>().value(0).to_string();
            match serde_json::from_str::<Value>(&text) {
                // serde_json keeps integers exact; fractional decimals become f64 (exact for
                // the precision stats need to bound, since parsing rounds to nearest).
                Ok(v) if v.is_number() => v,
                _ => return Ok(None),
            }
        }
        ArrowType::Date32 => json!(cast(a, &ArrowType::Utf8)?.as_string::<i32>().value(0)),
        ArrowType::Timestamp(TimeUnit::Microsecond, tz) => {
            let us = a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0);
            let ms = us.div_euclid(1000);
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            let _ = is_max; // readers widen maxima by 999 µs
            if tz.is_some() {
                json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            } else {
                json!(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
            }
        }
        ArrowType::Utf8 => {
            let s = a.as_string::<i32>().value(0);
            if s.chars().count() > 32 {
                let prefix: String = s.chars().take(32).collect();
                if is_max {
                    json!(format!("{prefix}\u{10FFFF}"))
                } else {
                    json!(prefix)
                }
            } else {
                json!(s)
            }
        }
        _ => return Ok(None),
    }))
}

fn insert_path(obj: &mut serde_json::Map<String, Value>, path: &[String], v: Value) {
    if path.len() == 1 {
        obj.insert(path[0].clone(), v);
        return;
    }
    let child = obj.entry(path[0].clone()).or_insert_with(|| json!({}));
    if let Some(o) = child.as_object_mut() {
        insert_path(o, &path[1..], v);
    }
}

/// Which leaf columns get statistics: `delta.dataSkippingStatsColumns`, else the first
/// `delta.dataSkippingNumIndexedCols` (default 32; -1 for all).
pub(crate) fn stats_columns(metadata: &Metadata, schema: &StructType, mode: ColumnMappingMode) -> Vec<Vec<String>> {
    let leaves: Vec<(Vec<String>, Vec<String>)> = crate::schema::leaf_columns(schema)
        .into_iter()
        .map(|(logical, _)| {
            let physical = crate::schema::physical_path(schema, &logical, mode).unwrap_or_else(|| logical.clone());
            (logical, physical)
        })
        .collect();
    if let Some(cols) = metadata.property("delta.dataSkippingStatsColumns") {
        let wanted: Vec<Vec<String>> =
            cols.split(',').map(|c| c.trim().split('.').map(|p| p.trim_matches('`').to_string()).collect()).collect();
        return leaves
            .into_iter()
            .filter(|(l, _)| {
                wanted.iter().any(|w| l.len() >= w.len() && l[..w.len()].iter().zip(w).all(|(a, b)| a.eq_ignore_ascii_case(b)))
            })
            .map(|(_, p)| p)
            .collect();
    }
    let n: i64 = metadata.property("delta.dataSkippingNumIndexedCols").and_then(|v| v.parse().ok()).unwrap_or(32);
    let take_n = if n < 0 { usize::MAX } else { n as usize };
    leaves.into_iter().take(take_n).map(|(_, p)| p).collect()
}

/// One data file being written. Row groups are encoded into `writer`'s buffer; once the flushed
/// bytes pass [`STREAM_BYTES`] the file streams to the store as a multipart upload (nothing is
/// visible until it completes), so a large file never sits whole in memory. Smaller files are
/// one `put` when they close.
struct OpenFile {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
    stats: Vec<ColumnStats>,
    /// The file's path relative to the table root, and its partition values (physical names).
    rel: String,
    partition_values: HashMap<String, Option<String>>,
    upload: Option<object_store::WriteMultipart>,
    /// Bytes already handed to `upload`.
    streamed: u64,
}

/// Flushed bytes past which a data file streams to the store in parts of this size (small in
/// unit tests, so that they stream).
const STREAM_BYTES: usize = if cfg!(test) { 64 * 1024 } else { 8 * 1024 * 1024 };

/// Rows per row group at most: parquet's default, small in unit tests.
const ROW_GROUP_ROWS: usize = if cfg!(test) { 8192 } else { 1024 * 1024 };

/// Largest row group (encoded bytes) a writer holds before flushing it, as Spark's 128 MiB
/// `parquet.block.size`: wide rows do not fill a 1M-row group in memory.
const ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;

/// Writes partitioned parquet files with statistics and returns their `add` actions.
pub struct DeltaWriter {
    location: TableLocation,
    schema: StructType,
    logical_arrow: SchemaRef,
    /// The columns data files hold, in file order: `schema`'s non-partition columns, then the
    /// partition columns where they are materialised (IcebergCompat).
    data_schema: StructType,
    /// Positions in `schema` of `data_schema`'s columns.
    keep: Vec<usize>,
    partition_columns: Vec<String>,
    /// Partition values are also written into the data files (IcebergCompatV1/V2 require it).
    materialize_partitions: bool,
    mode: ColumnMappingMode,
    stats_columns: Vec<Vec<String>>,
    target_file_size: u64,
    open: BTreeMap<Vec<Option<String>>, OpenFile>,
    /// Files opened so far (their sequence number in the file name).
    opened: usize,
    done: Vec<AddFile>,
    rows: u64,
    /// `_change_data/` for change data files, empty for data files.
    prefix: &'static str,
}

/// The column change data files add to the table's columns.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";

impl DeltaWriter {
    /// A writer for a table with this metadata.
    pub fn new(
        location: TableLocation,
        metadata: &Metadata,
        schema: &StructType,
        mode: ColumnMappingMode,
        target_file_size: u64,
    ) -> DeltaResult<Self> {
        let partition_columns = metadata.partition_columns.clone();
        let non_partition = StructType {
            fields: schema.fields.iter().filter(|f| !partition_columns.iter().any(|p| p.eq_ignore_ascii_case(&f.name))).cloned().collect(),
        };
        let stats_columns = stats_columns(metadata, &non_partition, mode);
        let mut w = DeltaWriter {
            location,
            logical_arrow: schema.to_arrow()?,
            schema: schema.clone(),
            data_schema: StructType::default(),
            keep: Vec::new(),
            partition_columns,
            materialize_partitions: crate::features::iceberg_compat(metadata).is_some(),
            mode,
            stats_columns,
            target_file_size: target_file_size.max(1),
            open: BTreeMap::new(),
            opened: 0,
            done: Vec::new(),
            rows: 0,
            prefix: "",
        };
        w.lay_out_files();
        Ok(w)
    }

    /// Computes which of `schema`'s columns data files hold, and in which order.
    fn lay_out_files(&mut self) {
        let is_partition = |f: &StructField| self.partition_columns.iter().any(|p| p.eq_ignore_ascii_case(&f.name));
        let mut keep: Vec<usize> = (0..self.schema.fields.len()).filter(|&i| !is_partition(&self.schema.fields[i])).collect();
        if self.materialize_partitions {
            keep.extend((0..self.schema.fields.len()).filter(|&i| is_partition(&self.schema.fields[i])));
        }
        self.data_schema = StructType { fields: keep.iter().map(|&i| self.schema.fields[i].clone()).collect() };
        self.keep = keep;
    }

    /// A writer of change data files (`_change_data/`, CDF): the table's columns plus
    /// [`CHANGE_TYPE_COLUMN`], partitioned like the table, without statistics.
    pub fn for_change_data(
        location: TableLocation,
        metadata: &Metadata,
        schema: &StructType,
        mode: ColumnMappingMode,
    ) -> DeltaResult<Self> {
        let mut with_type = schema.clone();
        with_type.fields.push(StructField::new(CHANGE_TYPE_COLUMN, DataType::Primitive(PrimitiveType::String), true));
        let mut w = DeltaWriter::new(location, metadata, &with_type, mode, u64::MAX)?;
        w.stats_columns.clear();
        w.prefix = "_change_data/";
        // Change data files are not data files: partition values stay in the log only.
        w.materialize_partitions = false;
        w.lay_out_files();
        Ok(w)
    }

    /// Adds hidden columns after the table's (row tracking's materialised row ids and commit
    /// versions): written to the files, never in statistics.
    pub(crate) fn with_hidden_columns(mut self, fields: Vec<StructField>) -> DeltaResult<Self> {
        self.schema.fields.extend(fields);
        self.lay_out_files();
        self.logical_arrow = self.schema.to_arrow()?;
        Ok(self)
    }

    /// The table schema as Arrow (logical names): what [`DeltaWriter::write`] expects.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.logical_arrow.clone()
    }

    /// Writes one batch already conformed to [`DeltaWriter::arrow_schema`].
    pub async fn write(&mut self, batch: &RecordBatch) -> DeltaResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        if self.partition_columns.is_empty() {
            return self.write_partition(Vec::new(), batch).await;
        }
        // Partition keys per row.
        let mut keys: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(self.partition_columns.len()); batch.num_rows()];
        for p in &self.partition_columns {
            let idx = self
                .schema
                .fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(p))
                .ok_or_else(|| DeltaError::schema(format!("partition column `{p}` is not in the schema")))?;
            for (row, v) in partition_strings(batch.column(idx))?.into_iter().enumerate() {
                keys[row].push(v.filter(|s| !s.is_empty()));
            }
        }
        let mut groups: BTreeMap<Vec<Option<String>>, Vec<u32>> = BTreeMap::new();
        for (row, k) in keys.into_iter().enumerate() {
            groups.entry(k).or_default().push(row as u32);
        }
        for (key, rows) in groups {
            let idx = UInt32Array::from(rows);
            let cols = batch.columns().iter().map(|c| take(c, &idx, None)).collect::<Result<Vec<_>, _>>()?;
            let part = RecordBatch::try_new(batch.schema(), cols)?;
            self.write_partition(key, &part).await?;
        }
        Ok(())
    }

    async fn write_partition(&mut self, key: Vec<Option<String>>, batch: &RecordBatch) -> DeltaResult<()> {
        // Data files hold the non-partition columns (and the materialised partition columns
        // after them), under physical names.
        let data = batch.project(&self.keep)?;
        let physical = to_physical(&data, &self.data_schema, self.mode)?;
        if !self.open.contains_key(&key) {
            // Snappy, as Spark and delta-rs write by default.
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_statistics_truncate_length(Some(STATS_TRUNCATE_BYTES))
                .build();
            let writer =
                ArrowWriter::try_new(Vec::new(), physical.schema(), Some(props)).map_err(|e| DeltaError::parquet("new file", e))?;
            let stats =
                self.stats_columns.iter().map(|p| ColumnStats { path: p.clone(), data_type: None, nulls: 0, no_bounds: false }).collect();
            let (rel, partition_values) = self.new_file_path(&key)?;
            self.open.insert(key.clone(), OpenFile { writer, rows: 0, stats, rel, partition_values, upload: None, streamed: 0 });
        }
        let leaves = leaf_arrays(&data, &self.data_schema, self.mode);
        let Some(mut file) = self.open.remove(&key) else { return Err(DeltaError::Internal("open file vanished".into())) };
        // Encoding is CPU work: off the async runtime's threads.
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = (|| -> DeltaResult<()> {
                file.writer.write(&physical).map_err(|e| DeltaError::parquet("new file", e))?;
                file.rows += physical.num_rows() as u64;
                for s in &mut file.stats {
                    if let Some((_, a)) = leaves.iter().find(|(p, _)| *p == s.path) {
                        s.update(a)?;
                    }
                }
                Ok(())
            })();
            (file, result)
        })
        .await
        .map_err(|e| DeltaError::Internal(format!("encoding task failed: {e}")))?;
        result?;
        let full = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64 >= self.target_file_size;
        let mut file = file;
        if file.writer.inner().len() >= STREAM_BYTES {
            Self::stream_part(&self.location, &mut file).await?;
        }
        self.open.insert(key.clone(), file);
        if full {
            self.close_file(&key).await?;
        }
        Ok(())
    }

    /// A new data file's path (Hive-style partition directories) and partition values.
    fn new_file_path(&mut self, key: &[Option<String>]) -> DeltaResult<(String, HashMap<String, Option<String>>)> {
        let mut dir = String::new();
        let mut partition_values = HashMap::new();
        for (p, v) in self.partition_columns.iter().zip(key) {
            let field = self.schema.field(p).ok_or_else(|| DeltaError::schema(format!("partition column `{p}` is not in the schema")))?;
            let name = field.physical_name(self.mode).to_string();
            let shown = v.as_deref().map(escape_partition_value).unwrap_or_else(|| "__HIVE_DEFAULT_PARTITION__".into());
            dir.push_str(&format!("{}={shown}/", escape_partition_value(&name)));
            partition_values.insert(name, v.clone());
        }
        let n = self.opened;
        self.opened += 1;
        // Spark's names: `part-00000-<uuid>-c000…` for data, `cdc-00000-<uuid>.c000…` for changes.
        let rel = if self.prefix.is_empty() {
            format!("{dir}part-{n:05}-{}-c000.snappy.parquet", uuid::Uuid::new_v4())
        } else {
            format!("{}{dir}cdc-{n:05}-{}.c000.snappy.parquet", self.prefix, uuid::Uuid::new_v4())
        };
        Ok((encode_path(&rel), partition_values))
    }

    /// Hands the bytes `file` has flushed so far to its multipart upload (started on first use),
    /// waiting while two parts are in flight.
    async fn stream_part(location: &TableLocation, file: &mut OpenFile) -> DeltaResult<()> {
        // The next row group's bytes go to a buffer of this one's size: no regrowing (realloc
        // copies and page faults) while a row group is flushed.
        let capacity = file.writer.inner().len();
        let bytes = bytes::Bytes::from(std::mem::replace(file.writer.inner_mut(), Vec::with_capacity(capacity)));
        if bytes.is_empty() {
            return Ok(());
        }
        if file.upload.is_none() {
            let path = location.resolve(PathKind::Data, &file.rel)?;
            let upload = object_store::ObjectStoreExt::put_multipart(location.store().as_ref(), &path.store_path).await?;
            file.upload = Some(object_store::WriteMultipart::new_with_chunk_size(upload, STREAM_BYTES));
        }
        let Some(upload) = file.upload.as_mut() else { return Err(DeltaError::Internal("upload vanished".into())) };
        file.streamed += bytes.len() as u64;
        upload.put(bytes);
        upload.wait_for_capacity(2).await?;
        Ok(())
    }

    async fn close_file(&mut self, key: &Vec<Option<String>>) -> DeltaResult<()> {
        let Some(file) = self.open.remove(key) else { return Ok(()) };
        let OpenFile { writer, rows, stats: stats_of_file, rel, partition_values, upload, streamed } = file;
        let (bytes, groups) = tokio::task::spawn_blocking(move || {
            let mut writer = writer;
            writer.flush()?;
            let groups = writer.flushed_row_groups().to_vec();
            writer.into_inner().map(|bytes| (bytes, groups))
        })
        .await
        .map_err(|e| DeltaError::Internal(format!("encoding task failed: {e}")))?
        .map_err(|e| DeltaError::parquet("new file", e))?;
        let size = streamed as i64 + bytes.len() as i64;
        match upload {
            Some(mut upload) => {
                upload.put(bytes.into());
                upload.finish().await?;
            }
            None => {
                let path = self.location.resolve(PathKind::Data, &rel)?;
                self.location.put(&path.store_path, bytes).await?;
            }
        }
        let mut min = serde_json::Map::new();
        let mut max = serde_json::Map::new();
        let mut nulls = serde_json::Map::new();
        for s in &stats_of_file {
            insert_path(&mut nulls, &s.path, json!(s.nulls));
            let Some(t) = s.data_type.as_ref().filter(|_| !s.no_bounds) else { continue };
            let Some((lo, hi)) = chunk_bounds(&groups, &s.path, t)? else { continue };
            if let Some(v) = stat_value(&lo, false)? {
                insert_path(&mut min, &s.path, v);
            }
            if let Some(v) = stat_value(&hi, true)? {
                insert_path(&mut max, &s.path, v);
            }
        }
        let stats = json!({"numRecords": rows, "minValues": min, "maxValues": max, "nullCount": nulls});
        self.done.push(AddFile {
            modification_time: chrono::Utc::now().timestamp_millis(),
            stats: Some(stats.to_string()),
            ..AddFile::new(rel, partition_values, size)
        });
        Ok(())
    }

    /// Closes the open files now: the next rows start new files (e.g. at a boundary the caller
    /// chose, such as a Z-order range).
    pub async fn close_open_files(&mut self) -> DeltaResult<()> {
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for k in keys {
            self.close_file(&k).await?;
        }
        Ok(())
    }

    /// Closes every open file and returns the `add` actions.
    pub async fn finish(mut self) -> DeltaResult<(Vec<AddFile>, u64)> {
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for k in keys {
            self.close_file(&k).await?;
        }
        Ok((self.done, self.rows))
    }
}

/// What one writer task returns: its files and the rows it wrote.
type WriterOutput = DeltaResult<(Vec<AddFile>, u64)>;

/// Up to four [`DeltaWriter`]s encoding in parallel, each on its own task. Batches go to one
/// writer until it has taken [`ParallelWriter::SWITCH_ROWS`] rows, then to the next, so small
/// outputs stay in one file and large ones spread over all encoders.
pub(crate) struct ParallelWriter {
    senders: Vec<tokio::sync::mpsc::Sender<RecordBatch>>,
    handles: Vec<tokio::task::JoinHandle<WriterOutput>>,
    current: usize,
    rows_on_current: usize,
}

impl ParallelWriter {
    const SWITCH_ROWS: usize = 256 * 1024;

    pub(crate) fn new(make: impl Fn() -> DeltaResult<DeltaWriter>) -> DeltaResult<Self> {
        let parallelism = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4);
        let mut senders = Vec::with_capacity(parallelism);
        let mut handles = Vec::with_capacity(parallelism);
        for _ in 0..parallelism {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
            let mut writer = make()?;
            senders.push(tx);
            handles.push(tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    writer.write(&b).await?;
                }
                writer.finish().await
            }));
        }
        Ok(ParallelWriter { senders, handles, current: 0, rows_on_current: 0 })
    }

    /// Queues a batch; `false` when the writer stopped (its error comes from `finish`).
    pub(crate) async fn write(&mut self, batch: RecordBatch) -> bool {
        if batch.num_rows() == 0 {
            return true;
        }
        if self.rows_on_current >= Self::SWITCH_ROWS {
            self.current = (self.current + 1) % self.senders.len();
            self.rows_on_current = 0;
        }
        self.rows_on_current += batch.num_rows();
        self.senders[self.current].send(batch).await.is_ok()
    }

    /// Closes every file: the `add` actions and the number of rows written.
    pub(crate) async fn finish(self) -> DeltaResult<(Vec<AddFile>, u64)> {
        drop(self.senders);
        let mut adds = Vec::new();
        let mut rows = 0u64;
        let mut error = None;
        for h in self.handles {
            match h.await {
                Ok(Ok((a, r))) => {
                    adds.extend(a);
                    rows += r;
                }
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(e) => error = error.or(Some(DeltaError::Internal(format!("writer task failed: {e}")))),
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok((adds, rows)),
        }
    }
}

fn new_metadata(schema: &StructType, partition_columns: Vec<String>, properties: &HashMap<String, String>) -> Metadata {
    Metadata {
        id: uuid::Uuid::new_v4().to_string(),
        name: None,
        description: None,
        format: Format { provider: "parquet".into(), options: HashMap::new() },
        schema_string: schema.to_json().to_string(),
        partition_columns,
        created_time: Some(chrono::Utc::now().timestamp_millis()),
        configuration: properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
    }
}

/// Assigns column mapping ids and physical names to every field (new tables and new columns).
pub(crate) fn assign_column_mapping(schema: &mut StructType, next_id: &mut i64) {
    for f in &mut schema.fields {
        if !f.metadata.contains_key(FIELD_ID_KEY) {
            f.metadata.insert(FIELD_ID_KEY.into(), json!(*next_id));
            f.metadata.insert(crate::schema::PHYSICAL_NAME_KEY.into(), json!(format!("col-{}", uuid::Uuid::new_v4())));
            *next_id += 1;
        }
        // Fields of structs inside arrays and maps are columns too.
        crate::schema::for_each_nested_struct_mut(&mut f.data_type, &mut |inner| assign_column_mapping(inner, next_id));
    }
}

/// Gives the fields of a column-mapped table's schema that have none an id and a physical name
/// (and, where the table enables IcebergCompatV2, its ids of array elements and map keys and
/// values), counting on from the table's `delta.columnMapping.maxColumnId`, which moves.
pub(crate) fn assign_new_column_ids(schema: &mut StructType, metadata: &mut Metadata) {
    let recorded = metadata.property("delta.columnMapping.maxColumnId").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let mut next = recorded.max(max_column_id(schema)) + 1;
    assign_column_mapping(schema, &mut next);
    if crate::features::iceberg_compat(metadata) == Some(2) {
        crate::features::assign_nested_ids(schema, &mut next);
    }
    metadata.configuration.insert("delta.columnMapping.maxColumnId".into(), Some((next - 1).to_string()));
}

/// The largest column mapping id in the schema (nested fields, and IcebergCompatV2's ids of array
/// elements and map keys and values, included).
pub(crate) fn max_column_id(schema: &StructType) -> i64 {
    let mut max = 0;
    for f in &schema.fields {
        max = max.max(f.field_id().unwrap_or(0));
        if let Some(Value::Object(ids)) = f.metadata.get(crate::features::NESTED_IDS_KEY) {
            max = max.max(ids.values().filter_map(Value::as_i64).max().unwrap_or(0));
        }
        crate::schema::for_each_nested_struct(&f.data_type, &mut |inner| max = max.max(max_column_id(inner)));
    }
    max
}

impl Table {
    /// Creates the table at version 0 with this schema, partitioning and properties.
    pub async fn create(&self, schema: StructType, partition_columns: &[String], properties: HashMap<String, String>) -> DeltaResult<i64> {
        self.create_clustered(schema, partition_columns, &[], properties).await
    }

    /// Creates the table at version 0, clustered by `clustering_columns` when any are given
    /// (`CLUSTER BY`: the `clustering` and `domainMetadata` features and the `delta.clustering`
    /// domain; a clustered table cannot be partitioned). Properties that enable IcebergCompat
    /// turn column mapping on where they leave it off.
    pub async fn create_clustered(
        &self,
        schema: StructType,
        partition_columns: &[String],
        clustering_columns: &[Vec<String>],
        properties: HashMap<String, String>,
    ) -> DeltaResult<i64> {
        self.ensure_no_table().await?;
        for p in partition_columns {
            if schema.field(p).is_none() {
                return Err(DeltaError::WriteRefused { reason: format!("partition column `{p}` is not in the schema") });
            }
        }
        if !clustering_columns.is_empty() && !partition_columns.is_empty() {
            return Err(DeltaError::FeatureRequirement {
                feature: "clustering".into(),
                reason: "a table cannot be both partitioned and clustered".into(),
            });
        }
        let mut schema = schema;
        let mut properties = properties;
        crate::features::prepare_properties(&mut properties);
        if properties.get("delta.columnMapping.mode").is_some_and(|m| m != "none") {
            let mut next = 1;
            assign_column_mapping(&mut schema, &mut next);
            if crate::features::iceberg_compat_in(&properties) == Some(2) {
                crate::features::assign_nested_ids(&mut schema, &mut next);
            }
            properties.insert("delta.columnMapping.maxColumnId".into(), (next - 1).to_string());
        }
        if properties.get("delta.enableRowTracking").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            // As delta-spark does at enablement: the names rewrites will materialise row ids under.
            for (key, name) in crate::row_tracking::missing_names(|k| properties.contains_key(k)) {
                properties.insert(key.to_string(), name);
            }
        }
        let mut protocol = min_protocol(&schema, &properties);
        let mut domain = None;
        if !clustering_columns.is_empty() {
            let mode = ColumnMappingMode::from_config(properties.get("delta.columnMapping.mode").map(String::as_str))?;
            domain = Some(crate::features::clustering_domain(&schema, mode, clustering_columns)?);
            // `clustering` brings `domainMetadata` with it.
            if let Some(p) = crate::alter::feature_protocol(&["clustering"])?.and_then(|p| protocol.upgraded_with(&p)) {
                protocol = p;
            }
        }
        let metadata = new_metadata(&schema, partition_columns.to_vec(), &properties);
        let snapshot = Snapshot::new_table(self.location().clone(), protocol.clone(), metadata.clone())?;
        let cluster_by: Vec<String> = clustering_columns.iter().map(|c| c.join(".")).collect();
        let mut parameters = json!({"partitionBy": serde_json::to_string(partition_columns).unwrap_or_default(), "properties": serde_json::to_string(&properties).unwrap_or_default()});
        if !cluster_by.is_empty() {
            parameters["clusterBy"] = json!(serde_json::to_string(&cluster_by).unwrap_or_default());
        }
        let mut txn = Transaction::create(snapshot).with_operation("CREATE TABLE", parameters);
        txn.add_action(Action::Protocol(protocol));
        txn.add_action(Action::Metadata(metadata));
        if let Some(d) = domain {
            txn.add_action(Action::DomainMetadata(d));
        }
        self.commit_new_table(txn).await
    }

    /// Refuses when a table already exists here (creating and cloning need an empty location).
    pub(crate) async fn ensure_no_table(&self) -> DeltaResult<()> {
        match self.snapshot().await {
            Ok(s) => Err(DeltaError::WriteRefused {
                reason: format!("a table already exists at {} (version {})", self.location().root_url(), s.version()),
            }),
            Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Commits version 0; losing the race to another creator is a refusal, not a conflict.
    pub(crate) async fn commit_new_table(&self, txn: Transaction) -> DeltaResult<i64> {
        match txn.commit().await? {
            CommitOutcome::Committed { version } => Ok(version),
            CommitOutcome::Conflict(_) => {
                Err(DeltaError::WriteRefused { reason: format!("a table was created concurrently at {}", self.location().root_url()) })
            }
            other => other.version(),
        }
    }

    /// Writes batches (any stream of them) with `options`; creates the table from the first
    /// batch's schema when it does not exist.
    pub async fn write_stream<S>(&self, batches: S, options: WriteOptions) -> DeltaResult<WriteResult>
    where
        S: Stream<Item = DeltaResult<RecordBatch>> + Send + Unpin,
    {
        let mut batches = batches.peekable();
        let existing = match self.snapshot().await {
            Ok(s) => Some(s),
            Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. }) => None,
            Err(e) => return Err(e),
        };
        let first_schema = match std::pin::Pin::new(&mut batches).peek().await {
            Some(Ok(b)) => Some(b.schema()),
            Some(Err(_)) => match batches.next().await {
                // The input failed before producing anything: that error, not "empty input".
                Some(Err(e)) => return Err(e),
                _ => None,
            },
            None => None,
        };
        let snapshot = match existing {
            Some(s) => {
                match options.mode {
                    SaveMode::ErrorIfExists => {
                        return Err(DeltaError::WriteRefused { reason: format!("table exists at version {}", s.version()) })
                    }
                    SaveMode::Ignore => {
                        return Ok(WriteResult {
                            version: None,
                            files_added: 0,
                            files_removed: 0,
                            rows_written: 0,
                            post_commit_error: None,
                        })
                    }
                    _ => {}
                }
                s
            }
            None => {
                let schema = match &first_schema {
                    Some(s) => schema_from_arrow(s)?,
                    None => {
                        return Err(DeltaError::WriteRefused {
                            reason: "cannot create a table from an empty input without a schema".into(),
                        })
                    }
                };
                let parts = options.partition_by.clone().unwrap_or_default();
                let clustering = crate::features::parse_columns(options.cluster_by.as_deref().unwrap_or_default())?;
                self.create_clustered(schema, &parts, &clustering, options.properties.clone()).await?;
                self.snapshot().await?
            }
        };
        if let Some(parts) = &options.partition_by {
            let same = parts.len() == snapshot.partition_columns().len()
                && parts.iter().zip(snapshot.partition_columns()).all(|(a, b)| a.eq_ignore_ascii_case(b));
            let replacing = options.overwrite_schema && options.mode == SaveMode::Overwrite;
            if !same && !replacing {
                return Err(DeltaError::WriteRefused {
                    reason: format!("partitioning {:?} differs from the table's {:?}", parts, snapshot.partition_columns()),
                });
            }
        }
        if let Some(cols) = &options.cluster_by {
            let wanted = crate::features::parse_columns(cols)?;
            let current = crate::features::clustering_columns(&snapshot)?;
            let same = wanted.len() == current.len() && wanted.iter().zip(&current).all(|(a, b)| crate::alter::same_path(a, b));
            if !same {
                let show = |c: &[Vec<String>]| c.iter().map(|p| p.join(".")).collect::<Vec<_>>();
                return Err(DeltaError::WriteRefused {
                    reason: format!(
                        "clustering {:?} differs from the table's {:?} (change it with Table::cluster_by)",
                        show(&wanted),
                        show(&current)
                    ),
                });
            }
        }
        write_to_snapshot(self, snapshot, batches, options, first_schema).await
    }

    /// Writes in-memory batches; see [`Table::write_stream`].
    pub async fn write(&self, batches: Vec<RecordBatch>, options: WriteOptions) -> DeltaResult<WriteResult> {
        self.write_stream(futures::stream::iter(batches.into_iter().map(Ok)), options).await
    }
}

async fn write_to_snapshot<S>(
    table: &Table,
    snapshot: Snapshot,
    mut batches: S,
    options: WriteOptions,
    first_schema: Option<SchemaRef>,
) -> DeltaResult<WriteResult>
where
    S: Stream<Item = DeltaResult<RecordBatch>> + Send + Unpin,
{
    let mut metadata = snapshot.metadata().clone();
    let mut protocol = snapshot.protocol().clone();
    let mut schema = snapshot.schema().clone();
    ensure_writable(&protocol)?;
    if let Some((app, v)) = &options.app_transaction {
        if snapshot.app_transactions().get(app).is_some_and(|t| t.version >= *v) {
            return Ok(WriteResult { version: None, files_added: 0, files_removed: 0, rows_written: 0, post_commit_error: None });
        }
    }
    let removes_data = options.mode == SaveMode::Overwrite;
    if removes_data && metadata.bool_property("delta.appendOnly", false) {
        return Err(DeltaError::WriteRefused {
            reason: "the table is append-only (delta.appendOnly=true); overwrite is not allowed".into(),
        });
    }
    // Schema evolution.
    let mut schema_changed = false;
    let mut metadata_changed = false;
    if let Some(input) = &first_schema {
        let data_schema = schema_from_arrow(input)?;
        if options.overwrite_schema && options.mode == SaveMode::Overwrite && options.replace_where.is_none() {
            if data_schema != schema {
                schema = data_schema;
                schema_changed = true;
                if let Some(parts) = &options.partition_by {
                    metadata.partition_columns = parts.clone();
                }
            }
        } else if options.merge_schema {
            let widen = protocol.has_feature(&TableFeature::TypeWidening) || protocol.has_feature(&TableFeature::TypeWideningPreview);
            let merged = merge_schemas(&schema, &data_schema, widen)?;
            if merged != schema {
                schema = merged;
                schema_changed = true;
            }
        }
    }
    let mode = snapshot.column_mapping_mode();
    if schema_changed {
        if mode != ColumnMappingMode::None {
            assign_new_column_ids(&mut schema, &mut metadata);
        }
        metadata.schema_string = schema.to_json().to_string();
        let props: HashMap<String, String> = metadata.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let needed = min_protocol(&schema, &props);
        if needed.min_writer_version > protocol.min_writer_version || needed.min_reader_version > protocol.min_reader_version {
            protocol = needed;
        }
    }
    // Nullability is enforced by the checks above, not by Arrow: generated and identity columns are
    // null until they are filled in.
    let target = Arc::new(Schema::new(schema.to_arrow()?.fields().iter().map(|f| crate::schema::all_nullable(f)).collect::<Vec<_>>()));
    let rules = table_rules(&metadata, &schema)?;
    let mut identities = identity_columns(&schema)?;
    let target_size = options
        .target_file_size
        .or_else(|| metadata.property("delta.targetFileSize").and_then(|v| v.parse().ok()))
        .unwrap_or(128 * 1024 * 1024);
    // Several writers encode in parallel (one file each at a time).
    let location = snapshot.location().clone();
    // replaceWhere deletes what its predicate selects as DELETE does (whole files for a
    // partition predicate; otherwise deletion vectors or copied rows that keep their row ids,
    // and change data for the deleted and the written rows on a CDF table).
    let mut rewriter = None;
    let mut insert_changes = false;
    if let (SaveMode::Overwrite, Some(pred)) = (options.mode, &options.replace_where) {
        let mut rw = crate::dml::Rewriter::new(snapshot.clone(), "WRITE")?;
        if schema_changed {
            rw.evolve(schema.clone())?;
        }
        // A row-tracking table that never declared its materialised column names gets them.
        for (k, v) in &rw.metadata.configuration {
            if k.starts_with("delta.rowTracking.") && !metadata.configuration.contains_key(k) {
                metadata.configuration.insert(k.clone(), v.clone());
                metadata_changed = true;
            }
        }
        // Once a commit has change data files readers use only those: with rows deleted from
        // inside files (change data written for them), the written rows get theirs too.
        insert_changes = rw.cdf && !rw.is_partition_only(pred);
        rewriter = Some(rw);
    }
    let mut writers = ParallelWriter::new(|| DeltaWriter::new(location.clone(), &metadata, &schema, mode, target_size))?;
    let mut input_error = None;
    while let Some(batch) = batches.next().await {
        let checked = (|| -> DeltaResult<RecordBatch> {
            let (batch, provided) = conform_without_generated(&batch?, &target, &schema)?;
            let batch = fill_identity_columns(batch, &provided, &mut identities)?;
            let batch = fill_generated_columns((batch, provided), &schema)?;
            check_rules(&batch, &rules)?;
            if let Some(pred) = &options.replace_where {
                let outside = batch.num_rows() - evaluate_predicate(pred, &batch)?.true_count();
                if outside > 0 {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("{outside} written row(s) do not match replaceWhere `{pred}`"),
                    });
                }
            }
            Ok(batch)
        })();
        let checked = match (checked, rewriter.as_mut()) {
            (Ok(b), Some(rw)) if insert_changes => rw.write_changes(&b, crate::dml::ChangeType::Insert).await.map(|()| b),
            (checked, _) => checked,
        };
        match checked {
            Ok(b) => {
                if !writers.write(b).await {
                    break;
                }
            }
            Err(e) => {
                input_error = Some(e);
                break;
            }
        }
    }
    let written = writers.finish().await;
    let (adds, rows) = match (input_error, written) {
        (Some(e), _) | (None, Err(e)) => return Err(e),
        (None, Ok(w)) => w,
    };
    // Nothing is committed on error; files already written stay unreferenced (VACUUM removes them).
    let written_partitions: Vec<HashMap<String, Option<String>>> = adds.iter().map(|a| a.partition_values.clone()).collect();

    let isolation = options.isolation.unwrap_or(IsolationLevel::WriteSerializable);
    let mut txn = Transaction::new(snapshot.clone()).with_isolation(isolation);
    let now = chrono::Utc::now().timestamp_millis();
    let mut removed = 0usize;
    let mut extra_adds: Vec<AddFile> = Vec::new();
    let mut rewritten = 0usize;
    let mut rewrite_metrics = serde_json::Map::new();
    let op_mode = if options.mode == SaveMode::Overwrite { "Overwrite" } else { "Append" };
    let mut params = json!({"mode": op_mode, "partitionBy": serde_json::to_string(&metadata.partition_columns).unwrap_or_default()});
    if options.mode == SaveMode::Overwrite {
        let current = snapshot.add_files()?;
        if let Some(pred) = &options.replace_where {
            params["predicate"] = json!(pred.to_string());
            txn.read_predicate(pred.clone());
            let mut rw = rewriter.take().ok_or_else(|| DeltaError::Internal("replaceWhere without its rewriter".into()))?;
            rw.delete_rows(Some(pred)).await?;
            for f in &rw.read {
                txn.read_file(f);
            }
            let (actions, rw_metrics, _) = rw.finish().await?;
            for action in actions {
                match action {
                    // This commit's own metadata carries the schema and row tracking names.
                    Action::Metadata(_) | Action::Protocol(_) => {}
                    Action::Add(a) => extra_adds.push(a),
                    other => txn.add_action(other),
                }
            }
            removed += rw_metrics.get("numRemovedFiles").copied().unwrap_or(0) as usize;
            rewritten = rw_metrics.get("numAddedFiles").copied().unwrap_or(0) as usize;
            for m in ["numDeletedRows", "numCopiedRows", "numDeletionVectorsAdded", "numDeletionVectorsUpdated", "numAddedChangeFiles"] {
                if let Some(v) = rw_metrics.get(m) {
                    rewrite_metrics.insert(m.to_string(), json!(v.to_string()));
                }
            }
        } else if options.dynamic_partition_overwrite && !metadata.partition_columns.is_empty() {
            params["partitionOverwriteMode"] = json!("dynamic");
            let pruner = FilePruner::new(&snapshot)?;
            for add in current {
                let pv = pruner.logical_partition_values(&add.partition_values);
                let written = written_partitions.iter().any(|w| pruner.logical_partition_values(w) == pv);
                if written {
                    txn.read_file(&add.path);
                    txn.add_action(Action::Remove(add.to_remove(now, true)));
                    removed += 1;
                }
            }
            // The transaction read the partitions it replaced.
            for w in &written_partitions {
                let pv = pruner.logical_partition_values(w);
                let mut pred: Option<Expr> = None;
                for (col, v) in pv {
                    let term = match v {
                        Some(v) => Expr::Cmp(
                            crate::expr::CmpOp::Eq,
                            Box::new(Expr::col(&col)),
                            Box::new(Expr::Literal(crate::expr::Scalar::String(v))),
                        ),
                        None => Expr::IsNull(Box::new(Expr::col(&col))),
                    };
                    pred = Some(match pred {
                        None => term,
                        Some(p) => Expr::And(Box::new(p), Box::new(term)),
                    });
                }
                if let Some(p) = pred {
                    txn.read_predicate(p);
                }
            }
        } else {
            txn.read_whole_table();
            for add in current {
                txn.add_action(Action::Remove(add.to_remove(now, true)));
                removed += 1;
            }
        }
    }
    // Identity values assigned: the high-water marks move, which is a metadata change (so that
    // concurrent writers cannot hand out the same values).
    for id in &identities {
        if let Some(last) = id.assigned {
            schema.fields[id.index].metadata.insert("delta.identity.highWaterMark".into(), json!(last));
            schema_changed = true;
        }
    }
    if schema_changed || metadata_changed {
        metadata.schema_string = schema.to_json().to_string();
        txn.add_action(Action::Metadata(metadata.clone()));
        if &protocol != snapshot.protocol() {
            txn.add_action(Action::Protocol(protocol.clone()));
        }
    }
    // Files re-added with a deletion vector are not new files.
    let files_added = adds.len() + rewritten;
    for a in adds.into_iter().chain(extra_adds) {
        txn.add_action(Action::Add(a));
    }
    if let Some((app, v)) = &options.app_transaction {
        txn.read_app_transaction(app);
        txn.add_action(Action::Txn(AppTransaction { app_id: app.clone(), version: *v, last_updated: Some(now) }));
    }
    let mut metrics =
        json!({"numFiles": files_added.to_string(), "numOutputRows": rows.to_string(), "numRemovedFiles": removed.to_string()});
    if let Value::Object(m) = &mut metrics {
        m.extend(rewrite_metrics);
    }
    let txn = txn.with_operation("WRITE", params).with_metrics(metrics).with_commit_info(options.commit_info.clone());
    let version = txn.commit().await?.version()?;
    let post_commit_error = crate::checkpoint::post_commit(table, version).await.err().map(|e| e.to_string());
    Ok(WriteResult { version: Some(version), files_added, files_removed: removed, rows_written: rows, post_commit_error })
}

impl Table {
    /// Sets table properties (`ALTER TABLE … SET TBLPROPERTIES`), upgrading the protocol when a
    /// property needs a feature.
    pub async fn set_properties(&self, properties: HashMap<String, String>) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        ensure_writable(snapshot.protocol())?;
        if properties.keys().any(|k| k.starts_with("delta.constraints.")) {
            return Err(DeltaError::WriteRefused {
                reason: "use add_constraint to add CHECK constraints (existing rows must be validated)".into(),
            });
        }
        let shown = serde_json::to_string(&properties).unwrap_or_default();
        let mut properties = properties;
        if let Some(mode) = properties.get("delta.columnMapping.mode").map(|m| m.to_ascii_lowercase()) {
            match (snapshot.column_mapping_mode(), mode.as_str()) {
                (ColumnMappingMode::None, "name") => {
                    // Existing files name columns by their logical names: those become the
                    // physical names.
                    let mut schema = snapshot.schema().clone();
                    let mut next = crate::write::max_column_id(&schema) + 1;
                    crate::alter::enable_column_mapping(&mut schema, &mut next);
                    metadata.schema_string = schema.to_json().to_string();
                    properties.insert("delta.columnMapping.maxColumnId".into(), (next - 1).to_string());
                }
                (ColumnMappingMode::None, "none") => {}
                (current, m) if format!("{current:?}").eq_ignore_ascii_case(m) => {}
                (current, m) => {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("cannot change column mapping from {current:?} to `{m}` (only none → name is supported)"),
                    })
                }
            }
        }
        // `delta.feature.<name> = supported` enables features; it is not a stored property.
        let features: Vec<String> = properties.keys().filter_map(|k| k.strip_prefix("delta.feature.")).map(str::to_string).collect();
        for f in &features {
            let v = properties.remove(&format!("delta.feature.{f}")).unwrap_or_default();
            if !v.eq_ignore_ascii_case("supported") && !v.eq_ignore_ascii_case("enabled") {
                return Err(DeltaError::WriteRefused { reason: format!("delta.feature.{f} can only be set to 'supported', not '{v}'") });
            }
        }
        for (k, v) in &properties {
            metadata.configuration.insert(k.clone(), Some(v.clone()));
        }
        // IcebergCompat on an existing table: the files already there must be what the feature
        // asks of new ones; array elements and map keys and values get their ids (V2).
        if let Some(v) =
            crate::features::iceberg_compat(&metadata).filter(|v| crate::features::iceberg_compat(snapshot.metadata()) != Some(*v))
        {
            crate::features::check_files_for_iceberg(&snapshot, v)?;
            let mut schema = StructType::parse(&metadata.schema_string)?;
            if snapshot.column_mapping_mode() != ColumnMappingMode::None || metadata.property("delta.columnMapping.mode").is_some() {
                assign_new_column_ids(&mut schema, &mut metadata);
            }
            metadata.schema_string = schema.to_json().to_string();
        }
        let mut txn = Transaction::new(snapshot.clone()).with_operation("SET TBLPROPERTIES", json!({"properties": shown}));
        let names: Vec<&str> = features.iter().map(String::as_str).collect();
        let extra = crate::alter::feature_protocol(&names)?;
        self.commit_metadata_with(&snapshot, metadata, extra.as_ref(), &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Removes table properties (`UNSET TBLPROPERTIES`).
    pub async fn unset_properties(&self, keys: &[String]) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        for k in keys {
            metadata.configuration.remove(k);
        }
        let mut txn = Transaction::new(snapshot.clone())
            .with_operation("UNSET TBLPROPERTIES", json!({"properties": serde_json::to_string(keys).unwrap_or_default()}));
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Adds a CHECK constraint after validating every existing row.
    pub async fn add_constraint(&self, name: &str, expression: &str) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let key = format!("delta.constraints.{}", name.to_ascii_lowercase());
        if snapshot.metadata().configuration.contains_key(&key) {
            return Err(DeltaError::WriteRefused { reason: format!("constraint `{name}` already exists") });
        }
        let expr = Expr::parse(expression)?;
        let violating = Expr::Not(Box::new(expr.clone()));
        let bad = snapshot.scan().with_predicate(violating).build()?.count().await?;
        if bad > 0 {
            return Err(DeltaError::WriteRefused {
                reason: format!("{bad} existing row(s) violate CHECK constraint {name} ({expression})"),
            });
        }
        let mut metadata = snapshot.metadata().clone();
        metadata.configuration.insert(key, Some(expression.to_string()));
        let mut txn = Transaction::new(snapshot.clone()).with_operation("ADD CONSTRAINT", json!({"name": name, "expr": expression}));
        // The validation read every row: a concurrent append must conflict.
        txn.read_whole_table();
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Drops a CHECK constraint.
    pub async fn drop_constraint(&self, name: &str) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let key = format!("delta.constraints.{}", name.to_ascii_lowercase());
        let mut metadata = snapshot.metadata().clone();
        if metadata.configuration.remove(&key).is_none() {
            return Err(DeltaError::WriteRefused { reason: format!("constraint `{name}` does not exist") });
        }
        let mut txn = Transaction::new(snapshot.clone()).with_operation("DROP CONSTRAINT", json!({"name": name}));
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Stages a metadata change (and any protocol upgrade it needs: the features the new schema
    /// and properties use are added to the table's, never taken away).
    pub(crate) fn commit_metadata(&self, snapshot: &Snapshot, metadata: Metadata, txn: &mut Transaction) -> DeltaResult<()> {
        self.commit_metadata_with(snapshot, metadata, None, txn)
    }

    /// [`Table::commit_metadata`], also adding the features of `extra`.
    pub(crate) fn commit_metadata_with(
        &self,
        snapshot: &Snapshot,
        metadata: Metadata,
        extra: Option<&Protocol>,
        txn: &mut Transaction,
    ) -> DeltaResult<()> {
        let schema = StructType::parse(&metadata.schema_string)?;
        let props: HashMap<String, String> = metadata.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let needed = min_protocol(&schema, &props);
        let mut upgrade = snapshot.protocol().upgraded_with(&needed);
        if let Some(extra) = extra {
            let base = upgrade.clone().unwrap_or_else(|| snapshot.protocol().clone());
            if let Some(more) = base.upgraded_with(extra) {
                upgrade = Some(more);
            }
        }
        if let Some(upgraded) = upgrade {
            ensure_writable(&upgraded)?;
            txn.add_action(Action::Protocol(upgraded));
        }
        txn.add_action(Action::Metadata(metadata));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType as ArrowType, Field, Schema};

    /// A file larger than the streaming threshold goes to the store in parts and reads back
    /// whole: same rows, the size the `add` says, no staging file left beside it.
    #[tokio::test]
    async fn large_files_stream_to_the_store_and_read_back() {
        let dir = std::env::temp_dir().join(format!("delta-write-stream-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let location = TableLocation::open(dir.to_str().unwrap(), Default::default()).unwrap();
        let schema = StructType {
            fields: vec![
                StructField::new("id", DataType::Primitive(PrimitiveType::Long), true),
                StructField::new("s", DataType::Primitive(PrimitiveType::String), true),
            ],
        };
        let metadata = new_metadata(&schema, Vec::new(), &HashMap::new());
        let mut writer = DeltaWriter::new(location.clone(), &metadata, &schema, ColumnMappingMode::None, u64::MAX).unwrap();
        let arrow_schema = Arc::new(Schema::new(vec![Field::new("id", ArrowType::Int64, true), Field::new("s", ArrowType::Utf8, true)]));
        let n = 100_000i64;
        for start in (0..n).step_by(10_000) {
            let ids: Vec<i64> = (start..start + 10_000).collect();
            let strings: Vec<String> = ids.iter().map(|i| format!("value-{}", i.wrapping_mul(2_654_435_761) % 1_000_003)).collect();
            let batch =
                RecordBatch::try_new(arrow_schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(strings))])
                    .unwrap();
            writer.write(&batch).await.unwrap();
        }
        // The open file has streamed parts already.
        assert!(writer.open.values().any(|f| f.upload.is_some() && f.streamed > 0), "the file did not stream");
        let (adds, rows) = writer.finish().await.unwrap();
        assert_eq!((adds.len(), rows), (1, n as u64));
        let path = dir.join(&adds[0].path);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as i64, adds[0].size);
        let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 1, "staging files left: {names:?}");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut next = 0i64;
        for b in reader {
            let b = b.unwrap();
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..ids.len() {
                assert_eq!(ids.value(i), next);
                next += 1;
            }
        }
        assert_eq!(next, n);
        let stats: Value = serde_json::from_str(adds[0].stats.as_deref().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], json!(n));
        assert_eq!(stats["maxValues"]["id"], json!(n - 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The statistics of a file spanning several row groups equal the bounds computed from the
    /// data itself, for every type stats are kept for; NaN and boolean columns get no bounds,
    /// an all-NULL column only its null count.
    #[tokio::test]
    async fn statistics_equal_the_data_for_every_type() {
        use arrow::array::{
            BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array, Int8Array, StructArray,
            TimestampMicrosecondArray,
        };
        let dir = std::env::temp_dir().join(format!("delta-write-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let location = TableLocation::open(dir.to_str().unwrap(), Default::default()).unwrap();
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[
            {"name":"b","type":"byte","nullable":true,"metadata":{}},
            {"name":"s","type":"short","nullable":true,"metadata":{}},
            {"name":"i","type":"integer","nullable":true,"metadata":{}},
            {"name":"l","type":"long","nullable":true,"metadata":{}},
            {"name":"f","type":"float","nullable":true,"metadata":{}},
            {"name":"d","type":"double","nullable":true,"metadata":{}},
            {"name":"nan","type":"double","nullable":true,"metadata":{}},
            {"name":"dec","type":"decimal(10,2)","nullable":true,"metadata":{}},
            {"name":"big","type":"decimal(30,3)","nullable":true,"metadata":{}},
            {"name":"day","type":"date","nullable":true,"metadata":{}},
            {"name":"ts","type":"timestamp","nullable":true,"metadata":{}},
            {"name":"ntz","type":"timestamp_ntz","nullable":true,"metadata":{}},
            {"name":"str","type":"string","nullable":true,"metadata":{}},
            {"name":"flag","type":"boolean","nullable":true,"metadata":{}},
            {"name":"none","type":"long","nullable":true,"metadata":{}},
            {"name":"st","type":{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}"#,
        )
        .unwrap();
        let metadata = new_metadata(&schema, Vec::new(), &HashMap::new());
        let mut writer = DeltaWriter::new(location.clone(), &metadata, &schema, ColumnMappingMode::None, u64::MAX).unwrap();
        // Values that wander (a hash of the row), NULLs every 7th row; 3 row groups under test.
        let n = 20_000i64;
        let h = |r: i64| (r.wrapping_mul(2_654_435_761) % 1_000_003) - 500_000;
        fn opt<T>(r: i64, v: T) -> Option<T> {
            (r % 7 != 3).then_some(v)
        }
        let rows: Vec<i64> = (0..n).collect();
        let strings: Vec<Option<String>> =
            rows.iter().map(|r| opt(*r, format!("{}-ü-{}", "x".repeat((h(*r).rem_euclid(80)) as usize), h(*r)))).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from_iter(rows.iter().map(|r| opt(*r, (h(*r) % 128) as i8)))),
            Arc::new(Int16Array::from_iter(rows.iter().map(|r| opt(*r, (h(*r) % 30_000) as i16)))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as i32)))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) * 1_000_000_007)))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as f32 / 7.0)))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as f64 / 3.0)))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| opt(*r, if *r == 12_345 { f64::NAN } else { *r as f64 })))),
            Arc::new(Decimal128Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as i128))).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as i128 * 10i128.pow(20))))
                    .with_precision_and_scale(30, 3)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| opt(*r, (h(*r) / 100) as i32)))),
            Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| opt(*r, h(*r) * 1_000_003_001))).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| opt(*r, h(*r) * 999_983)))),
            Arc::new(StringArray::from(strings)),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| opt(*r, r % 2 == 0)))),
            Arc::new(Int64Array::from(vec![None::<i64>; n as usize])),
            Arc::new(StructArray::from(vec![(
                Arc::new(Field::new("a", ArrowType::Int64, true)),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| opt(*r, -h(*r))))) as ArrayRef,
            )])),
        ];
        let arrow_schema =
            Arc::new(Schema::new(schema.to_arrow().unwrap().fields().iter().map(|f| crate::schema::all_nullable(f)).collect::<Vec<_>>()));
        let batch = RecordBatch::try_new(arrow_schema, columns).unwrap();
        for start in (0..n as usize).step_by(5_000) {
            writer.write(&batch.slice(start, 5_000)).await.unwrap();
        }
        let (adds, _) = writer.finish().await.unwrap();
        assert_eq!(adds.len(), 1);
        let stats: Value = serde_json::from_str(adds[0].stats.as_deref().unwrap()).unwrap();
        let groups = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(dir.join(&adds[0].path)).unwrap()).unwrap(),
        )
        .num_row_groups();
        assert!(groups >= 3, "only {groups} row groups");
        for (path, column) in leaf_arrays(&batch, &schema, ColumnMappingMode::None) {
            let at = |key: &str| path.iter().fold(&stats[key], |v, p| &v[p.as_str()]).clone();
            assert_eq!(at("nullCount"), json!(column.null_count()), "nullCount of {path:?}");
            let expected = |desc| extreme(&column, desc).unwrap().map(|a| stat_value(&a, desc).unwrap().unwrap());
            match path[0].as_str() {
                "nan" | "flag" | "none" => {
                    assert_eq!((at("minValues"), at("maxValues")), (Value::Null, Value::Null), "{path:?} has no bounds")
                }
                _ => {
                    assert_eq!(Some(at("minValues")), expected(false), "minimum of {path:?}");
                    assert_eq!(Some(at("maxValues")), expected(true), "maximum of {path:?}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
