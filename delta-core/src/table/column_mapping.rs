//! Column mapping ids: field ids and physical names for new tables and new columns, counted on
//! from `delta.columnMapping.maxColumnId`.

use serde_json::{json, Value};

use crate::table::protocol::Metadata;
use crate::table::schema::{StructType, FIELD_ID_KEY, PHYSICAL_NAME_KEY};

/// Assigns column mapping ids and physical names to every field (new tables and new columns).
pub(crate) fn assign_column_mapping(schema: &mut StructType, next_id: &mut i64) {
    for f in &mut schema.fields {
        if !f.metadata.contains_key(FIELD_ID_KEY) {
            f.metadata.insert(FIELD_ID_KEY.into(), json!(*next_id));
            f.metadata.insert(crate::table::schema::PHYSICAL_NAME_KEY.into(), json!(format!("col-{}", uuid::Uuid::new_v4())));
            *next_id += 1;
        }
        // Fields of structs inside arrays and maps are columns too.
        crate::table::schema::for_each_nested_struct_mut(&mut f.data_type, &mut |inner| assign_column_mapping(inner, next_id));
    }
}

/// Gives the fields of a column-mapped table's schema that have none an id and a physical name
/// (and, where the table enables IcebergCompatV2, its ids of array elements and map keys and
/// values), counting on from the table's `delta.columnMapping.maxColumnId`, which moves.
pub(crate) fn assign_new_column_ids(schema: &mut StructType, metadata: &mut Metadata) {
    let recorded = metadata.property("delta.columnMapping.maxColumnId").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let mut next = recorded.max(max_column_id(schema)) + 1;
    assign_column_mapping(schema, &mut next);
    if crate::table::features::iceberg_compat(metadata) == Some(2) {
        crate::table::features::assign_nested_ids(schema, &mut next);
    }
    metadata.configuration.insert("delta.columnMapping.maxColumnId".into(), Some((next - 1).to_string()));
}

/// The largest column mapping id in the schema (nested fields, and IcebergCompatV2's ids of array
/// elements and map keys and values, included).
pub(crate) fn max_column_id(schema: &StructType) -> i64 {
    let mut max = 0;
    for f in &schema.fields {
        max = max.max(f.field_id().unwrap_or(0));
        if let Some(Value::Object(ids)) = f.metadata.get(crate::table::features::NESTED_IDS_KEY) {
            max = max.max(ids.values().filter_map(Value::as_i64).max().unwrap_or(0));
        }
        crate::table::schema::for_each_nested_struct(&f.data_type, &mut |inner| max = max.max(max_column_id(inner)));
    }
    max
}

/// Column mapping turned on for an existing table (`delta.columnMapping.mode` none → name):
/// every field gets an id and a physical name equal to its current name, which is what the
/// existing files call it.
pub(crate) fn enable_column_mapping(schema: &mut StructType, next_id: &mut i64) {
    for f in &mut schema.fields {
        if !f.metadata.contains_key(FIELD_ID_KEY) {
            f.metadata.insert(FIELD_ID_KEY.into(), json!(*next_id));
            f.metadata.insert(PHYSICAL_NAME_KEY.into(), json!(f.name.clone()));
            *next_id += 1;
        }
        crate::table::schema::for_each_nested_struct_mut(&mut f.data_type, &mut |inner| enable_column_mapping(inner, next_id));
    }
}
