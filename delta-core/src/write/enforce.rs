//! Schema enforcement on write: the Arrow schema of the data against the table's (safe casts,
//! missing nullable columns, mergeSchema and type widening), generated and identity columns,
//! NOT NULL, invariants and CHECK constraints, and the writer features this writer honours.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

use crate::error::{DeltaError, DeltaResult};
use crate::table::expr::{evaluate_predicate, Expr};
use crate::table::protocol::{Metadata, Protocol, TableFeature};
use crate::table::schema::{DataType, PrimitiveType, StructField, StructType};

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
        let computed = crate::table::expr::evaluate(expr, &batch)?;
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
                    crate::log::replay::conform(c, tf.data_type())?
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
                    crate::table::schema::record_type_change(tf, &from, &merged);
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
    for (path, f) in crate::table::schema::leaf_columns(schema) {
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
