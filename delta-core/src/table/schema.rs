//! Delta schemas: parsing `schemaString`, mapping to Arrow, column mapping and type widening.
//!
//! The Delta schema is a tree of [`StructField`]s. Its Arrow form uses the table's logical names;
//! [`StructField::physical_name`] and [`StructField::field_id`] give what data files use under
//! column mapping. Parsing is bounded by [`SchemaLimits`] because the log is untrusted.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::{json, Map, Value};

use crate::error::{DeltaError, DeltaResult};

/// Metadata key of a column's physical name under column mapping.
pub const PHYSICAL_NAME_KEY: &str = "delta.columnMapping.physicalName";
/// Metadata key of a column's field id under column mapping.
pub const FIELD_ID_KEY: &str = "delta.columnMapping.id";
/// Arrow field metadata key holding the parquet field id.
pub const PARQUET_FIELD_ID_KEY: &str = "PARQUET:field_id";

/// Caps applied while parsing a schema from the log.
#[derive(Debug, Clone, Copy)]
pub struct SchemaLimits {
    /// Maximum nesting depth of struct/array/map types.
    pub max_depth: usize,
    /// Maximum number of fields in the whole schema.
    pub max_fields: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        SchemaLimits { max_depth: 64, max_fields: 100_000 }
    }
}

/// Primitive Delta types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimitiveType {
    String,
    Long,
    Integer,
    Short,
    Byte,
    Float,
    Double,
    Boolean,
    Binary,
    Date,
    Timestamp,
    TimestampNtz,
    /// `decimal(precision, scale)`, precision 1..=38.
    Decimal(u8, i8),
}

/// A Delta data type.
#[derive(Debug, Clone, PartialEq)]
pub enum DataType {
    Primitive(PrimitiveType),
    Struct(StructType),
    Array(Box<DataType>, bool),
    Map(Box<DataType>, Box<DataType>, bool),
    /// Semi-structured `variant`, read as `struct<metadata: binary, value: binary>`.
    Variant,
    /// `void` (null type), read as Arrow `Null`.
    Void,
}

/// A field of a struct.
#[derive(Debug, Clone, PartialEq)]
pub struct StructField {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub metadata: Map<String, Value>,
}

impl StructField {
    /// A field without metadata.
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        StructField { name: name.into(), data_type, nullable, metadata: Map::new() }
    }
}

/// A struct type; the table schema is one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StructType {
    pub fields: Vec<StructField>,
}

/// Column mapping mode (`delta.columnMapping.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnMappingMode {
    None,
    Name,
    Id,
}

impl ColumnMappingMode {
    /// The mode from table properties; unknown strings are an error.
    pub fn from_config(value: Option<&str>) -> DeltaResult<Self> {
        match value.map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("none") => Ok(ColumnMappingMode::None),
            Some("name") => Ok(ColumnMappingMode::Name),
            Some("id") => Ok(ColumnMappingMode::Id),
            Some(other) => Err(DeltaError::schema(format!("unknown column mapping mode `{other}`"))),
        }
    }
}

impl fmt::Display for PrimitiveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimitiveType::String => f.write_str("string"),
            PrimitiveType::Long => f.write_str("long"),
            PrimitiveType::Integer => f.write_str("integer"),
            PrimitiveType::Short => f.write_str("short"),
            PrimitiveType::Byte => f.write_str("byte"),
            PrimitiveType::Float => f.write_str("float"),
            PrimitiveType::Double => f.write_str("double"),
            PrimitiveType::Boolean => f.write_str("boolean"),
            PrimitiveType::Binary => f.write_str("binary"),
            PrimitiveType::Date => f.write_str("date"),
            PrimitiveType::Timestamp => f.write_str("timestamp"),
            PrimitiveType::TimestampNtz => f.write_str("timestamp_ntz"),
            PrimitiveType::Decimal(p, s) => write!(f, "decimal({p},{s})"),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Primitive(p) => p.fmt(f),
            DataType::Struct(s) => {
                f.write_str("struct<")?;
                for (i, field) in s.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", field.name, field.data_type)?;
                }
                f.write_str(">")
            }
            DataType::Array(e, _) => write!(f, "array<{e}>"),
            DataType::Map(k, v, _) => write!(f, "map<{k}, {v}>"),
            DataType::Variant => f.write_str("variant"),
            DataType::Void => f.write_str("void"),
        }
    }
}

fn parse_primitive(s: &str) -> DeltaResult<DataType> {
    use PrimitiveType as P;
    let p = match s {
        "string" => P::String,
        "long" => P::Long,
        "integer" => P::Integer,
        "short" => P::Short,
        "byte" => P::Byte,
        "float" => P::Float,
        "double" => P::Double,
        "boolean" => P::Boolean,
        "binary" => P::Binary,
        "date" => P::Date,
        "timestamp" => P::Timestamp,
        "timestamp_ntz" => P::TimestampNtz,
        "variant" => return Ok(DataType::Variant),
        "void" => return Ok(DataType::Void),
        "decimal" => P::Decimal(10, 0),
        other => {
            if let Some(inner) = other.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
                let mut parts = inner.split(',').map(str::trim);
                let precision: u8 = parts
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| DeltaError::UnsupportedType { data_type: other.to_string() })?;
                let scale: i8 = parts
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| DeltaError::UnsupportedType { data_type: other.to_string() })?;
                if parts.next().is_some() || !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
                    return Err(DeltaError::UnsupportedType { data_type: other.to_string() });
                }
                P::Decimal(precision, scale)
            } else {
                return Err(DeltaError::UnsupportedType { data_type: other.to_string() });
            }
        }
    };
    Ok(DataType::Primitive(p))
}

/// A [`DataType`] as serde data in Delta's JSON type form (`"long"`, `{"type":"array",…}`), for
/// `#[serde(with = "…")]` on fields that hold a type (a cast in a serialized predicate).
pub mod type_json {
    use super::{DataType, Parser, SchemaLimits};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
        t.to_json().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Parser { limits: SchemaLimits::default(), fields_seen: 0 }.data_type(&v, 0).map_err(serde::de::Error::custom)
    }
}

struct Parser {
    limits: SchemaLimits,
    fields_seen: usize,
}

impl Parser {
    fn data_type(&mut self, v: &Value, depth: usize) -> DeltaResult<DataType> {
        if depth > self.limits.max_depth {
            return Err(DeltaError::LimitExceeded {
                what: "schema nesting depth",
                limit: self.limits.max_depth as u64,
                actual: depth as u64,
            });
        }
        match v {
            Value::String(s) => parse_primitive(s),
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("struct") => Ok(DataType::Struct(self.struct_type(o, depth)?)),
                Some("array") => {
                    let element = o.get("elementType").ok_or_else(|| DeltaError::schema("array without elementType"))?;
                    let contains_null = o.get("containsNull").and_then(Value::as_bool).unwrap_or(true);
                    Ok(DataType::Array(Box::new(self.data_type(element, depth + 1)?), contains_null))
                }
                Some("map") => {
                    let k = o.get("keyType").ok_or_else(|| DeltaError::schema("map without keyType"))?;
                    let val = o.get("valueType").ok_or_else(|| DeltaError::schema("map without valueType"))?;
                    let contains_null = o.get("valueContainsNull").and_then(Value::as_bool).unwrap_or(true);
                    Ok(DataType::Map(Box::new(self.data_type(k, depth + 1)?), Box::new(self.data_type(val, depth + 1)?), contains_null))
                }
                other => Err(DeltaError::UnsupportedType { data_type: format!("{other:?}") }),
            },
            other => Err(DeltaError::schema(format!("type must be a string or an object, got {other}"))),
        }
    }

    fn struct_type(&mut self, o: &Map<String, Value>, depth: usize) -> DeltaResult<StructType> {
        let fields = o.get("fields").and_then(Value::as_array).ok_or_else(|| DeltaError::schema("struct without a fields array"))?;
        self.fields_seen += fields.len();
        if self.fields_seen > self.limits.max_fields {
            return Err(DeltaError::LimitExceeded {
                what: "schema field count",
                limit: self.limits.max_fields as u64,
                actual: self.fields_seen as u64,
            });
        }
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let f = f.as_object().ok_or_else(|| DeltaError::schema("struct field is not an object"))?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| DeltaError::schema("struct field without a name"))?.to_string();
            let data_type =
                self.data_type(f.get("type").ok_or_else(|| DeltaError::schema(format!("field `{name}` has no type")))?, depth + 1)?;
            let nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
            let metadata = f.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
            out.push(StructField { name, data_type, nullable, metadata });
        }
        Ok(StructType { fields: out })
    }
}

impl StructType {
    /// The error for `column` not being one of this struct's fields (which the message lists).
    pub(crate) fn column_not_found(&self, column: impl Into<String>) -> DeltaError {
        DeltaError::ColumnNotFound {
            column: column.into(),
            available: self.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
        }
    }

    /// Parses a `schemaString` with the default limits.
    pub fn parse(schema_string: &str) -> DeltaResult<Self> {
        Self::parse_with_limits(schema_string, SchemaLimits::default())
    }

    /// Parses a `schemaString`, refusing schemas deeper or wider than `limits`.
    pub fn parse_with_limits(schema_string: &str, limits: SchemaLimits) -> DeltaResult<Self> {
        // serde_json has its own recursion limit (128), which bounds the stack before ours applies.
        let v: Value = serde_json::from_str(schema_string).map_err(DeltaError::schema)?;
        let o = v.as_object().ok_or_else(|| DeltaError::schema("schema is not a JSON object"))?;
        if o.get("type").and_then(Value::as_str) != Some("struct") {
            return Err(DeltaError::schema("top-level schema type must be struct"));
        }
        Parser { limits, fields_seen: 0 }.struct_type(o, 0)
    }

    /// The field named `name` (exact match first, then case-insensitive as Spark resolves).
    pub fn field(&self, name: &str) -> Option<&StructField> {
        self.fields.iter().find(|f| f.name == name).or_else(|| self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
    }

    /// The field at a path (`["a", "b"]` is `a.b`), case-insensitively.
    pub fn field_at(&self, path: &[String]) -> Option<&StructField> {
        let (first, rest) = path.split_first()?;
        let f = self.field(first)?;
        if rest.is_empty() {
            return Some(f);
        }
        match &f.data_type {
            DataType::Struct(inner) => inner.field_at(rest),
            _ => None,
        }
    }

    /// Serialises back to Delta's JSON form.
    pub fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "type": f.data_type.to_json(),
                    "nullable": f.nullable,
                    "metadata": Value::Object(f.metadata.clone()),
                })
            })
            .collect();
        serde_json::json!({"type": "struct", "fields": fields})
    }

    /// The Arrow schema with logical names (what scans return).
    pub fn to_arrow(&self) -> DeltaResult<SchemaRef> {
        let fields: DeltaResult<Vec<Field>> = self.fields.iter().map(|f| f.to_arrow(false)).collect();
        Ok(Arc::new(Schema::new(fields?)))
    }
}

impl DataType {
    /// Serialises a type to Delta's JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            DataType::Primitive(p) => Value::String(p.to_string()),
            DataType::Variant => Value::String("variant".into()),
            DataType::Void => Value::String("void".into()),
            DataType::Struct(s) => s.to_json(),
            DataType::Array(e, n) => serde_json::json!({"type": "array", "elementType": e.to_json(), "containsNull": n}),
            DataType::Map(k, v, n) => {
                serde_json::json!({"type": "map", "keyType": k.to_json(), "valueType": v.to_json(), "valueContainsNull": n})
            }
        }
    }

    /// The Arrow type; `physical` uses physical names for nested struct fields.
    pub fn to_arrow(&self, physical: bool) -> DeltaResult<ArrowType> {
        Ok(match self {
            DataType::Primitive(p) => primitive_to_arrow(*p),
            DataType::Variant => variant_arrow_type(),
            DataType::Void => ArrowType::Null,
            DataType::Struct(s) => {
                let fields: DeltaResult<Vec<Field>> = s.fields.iter().map(|f| f.to_arrow(physical)).collect();
                ArrowType::Struct(Fields::from(fields?))
            }
            DataType::Array(e, n) => ArrowType::List(Arc::new(Field::new("element", e.to_arrow(physical)?, *n))),
            DataType::Map(k, v, n) => ArrowType::Map(
                Arc::new(Field::new(
                    "key_value",
                    ArrowType::Struct(Fields::from(vec![
                        Field::new("key", k.to_arrow(physical)?, false),
                        Field::new("value", v.to_arrow(physical)?, *n),
                    ])),
                    false,
                )),
                false,
            ),
        })
    }
}

/// The Arrow type of an unshredded variant.
pub fn variant_arrow_type() -> ArrowType {
    ArrowType::Struct(Fields::from(vec![Field::new("metadata", ArrowType::Binary, true), Field::new("value", ArrowType::Binary, true)]))
}

/// The Arrow type of a primitive Delta type.
pub fn primitive_to_arrow(p: PrimitiveType) -> ArrowType {
    match p {
        PrimitiveType::String => ArrowType::Utf8,
        PrimitiveType::Long => ArrowType::Int64,
        PrimitiveType::Integer => ArrowType::Int32,
        PrimitiveType::Short => ArrowType::Int16,
        PrimitiveType::Byte => ArrowType::Int8,
        PrimitiveType::Float => ArrowType::Float32,
        PrimitiveType::Double => ArrowType::Float64,
        PrimitiveType::Boolean => ArrowType::Boolean,
        PrimitiveType::Binary => ArrowType::Binary,
        PrimitiveType::Date => ArrowType::Date32,
        PrimitiveType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        PrimitiveType::TimestampNtz => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        PrimitiveType::Decimal(p, s) => ArrowType::Decimal128(p, s),
    }
}

impl StructField {
    /// The name data files use: the physical name under column mapping, else the logical name.
    pub fn physical_name(&self, mode: ColumnMappingMode) -> &str {
        match mode {
            ColumnMappingMode::None => &self.name,
            _ => self.metadata.get(PHYSICAL_NAME_KEY).and_then(Value::as_str).unwrap_or(&self.name),
        }
    }

    /// The column mapping field id, if any.
    pub fn field_id(&self) -> Option<i64> {
        self.metadata.get(FIELD_ID_KEY).and_then(Value::as_i64)
    }

    /// The Arrow field with the logical name (or the physical name for `physical`).
    pub fn to_arrow(&self, physical: bool) -> DeltaResult<Field> {
        let name = if physical { self.physical_name(ColumnMappingMode::Name) } else { &self.name };
        Ok(Field::new(name, self.data_type.to_arrow(physical)?, self.nullable))
    }
}

/// Parses a Spark SQL type name: primitives (with their SQL aliases), `decimal(p,s)`,
/// `array<T>`, `map<K,V>`, `struct<a: T, ...>`.
pub fn parse_sql_type(t: &str) -> DeltaResult<DataType> {
    let t = t.trim();
    let lower = t.to_ascii_lowercase();
    let bad = || DeltaError::UnsupportedType { data_type: t.to_string() };
    let p = |p: PrimitiveType| Ok(DataType::Primitive(p));
    match lower.as_str() {
        "string" | "varchar" | "text" => return p(PrimitiveType::String),
        "long" | "bigint" => return p(PrimitiveType::Long),
        "int" | "integer" => return p(PrimitiveType::Integer),
        "short" | "smallint" => return p(PrimitiveType::Short),
        "byte" | "tinyint" => return p(PrimitiveType::Byte),
        "float" | "real" => return p(PrimitiveType::Float),
        "double" => return p(PrimitiveType::Double),
        "boolean" | "bool" => return p(PrimitiveType::Boolean),
        "binary" => return p(PrimitiveType::Binary),
        "date" => return p(PrimitiveType::Date),
        "timestamp" => return p(PrimitiveType::Timestamp),
        "timestamp_ntz" => return p(PrimitiveType::TimestampNtz),
        "variant" => return Ok(DataType::Variant),
        _ => {}
    }
    if let Some(inner) = lower.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
        return parse_primitive(&format!("decimal({})", inner.replace(' ', "")));
    }
    let inner = |prefix: &str| t.get(prefix.len()..t.len().saturating_sub(1)).filter(|_| lower.starts_with(prefix) && lower.ends_with('>'));
    if let Some(e) = inner("array<") {
        return Ok(DataType::Array(Box::new(parse_sql_type(e)?), true));
    }
    if let Some(kv) = inner("map<") {
        let parts = split_top_level(kv, ',');
        if parts.len() != 2 {
            return Err(bad());
        }
        return Ok(DataType::Map(Box::new(parse_sql_type(&parts[0])?), Box::new(parse_sql_type(&parts[1])?), true));
    }
    if let Some(fs) = inner("struct<") {
        let mut fields = Vec::new();
        for f in split_top_level(fs, ',') {
            let (name, ty) = f.split_once(':').ok_or_else(bad)?;
            fields.push(StructField {
                name: name.trim().trim_matches('`').to_string(),
                data_type: parse_sql_type(ty)?,
                nullable: true,
                metadata: Map::new(),
            });
        }
        return Ok(DataType::Struct(StructType { fields }));
    }
    Err(bad())
}

/// Splits on `sep` outside `<…>` and `(…)`.
pub fn split_top_level(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// The field with every nested field marked nullable (scan output: files written before a column
/// existed, or by lax writers, hold nulls anywhere).
pub fn all_nullable(f: &Field) -> Field {
    let t = match f.data_type() {
        ArrowType::Struct(fields) => ArrowType::Struct(fields.iter().map(|c| Arc::new(all_nullable(c))).collect()),
        ArrowType::List(e) => ArrowType::List(Arc::new(all_nullable(e))),
        ArrowType::Map(e, sorted) => {
            let ArrowType::Struct(kv) = e.data_type() else { return f.clone().with_nullable(true) };
            let kv: Fields =
                kv.iter().enumerate().map(|(i, c)| Arc::new(if i == 0 { c.as_ref().clone() } else { all_nullable(c) })).collect();
            ArrowType::Map(Arc::new(Field::new(e.name(), ArrowType::Struct(kv), false)), *sorted)
        }
        other => other.clone(),
    };
    f.clone().with_data_type(t).with_nullable(true)
}

/// Calls `f` for each struct directly inside `t` (itself a struct, or the element, key or value
/// of arrays and maps at any depth), not descending into those structs.
pub fn for_each_nested_struct<'a>(t: &'a DataType, f: &mut dyn FnMut(&'a StructType)) {
    match t {
        DataType::Struct(s) => f(s),
        DataType::Array(e, _) => for_each_nested_struct(e, f),
        DataType::Map(k, v, _) => {
            for_each_nested_struct(k, f);
            for_each_nested_struct(v, f);
        }
        _ => {}
    }
}

/// [`for_each_nested_struct`] with mutable access.
pub fn for_each_nested_struct_mut(t: &mut DataType, f: &mut dyn FnMut(&mut StructType)) {
    match t {
        DataType::Struct(s) => f(s),
        DataType::Array(e, _) => for_each_nested_struct_mut(e, f),
        DataType::Map(k, v, _) => {
            for_each_nested_struct_mut(k, f);
            for_each_nested_struct_mut(v, f);
        }
        _ => {}
    }
}

/// Every column path of a schema (dot-joined logical names) with its field, depth first.
pub fn leaf_columns(schema: &StructType) -> Vec<(Vec<String>, &StructField)> {
    fn walk<'a>(prefix: &[String], s: &'a StructType, out: &mut Vec<(Vec<String>, &'a StructField)>) {
        for f in &s.fields {
            let mut path = prefix.to_vec();
            path.push(f.name.clone());
            if let DataType::Struct(inner) = &f.data_type {
                walk(&path, inner, out);
            } else {
                out.push((path, f));
            }
        }
    }
    let mut out = Vec::new();
    walk(&[], schema, &mut out);
    out
}

/// Logical → physical name path for a (possibly nested) column.
pub fn physical_path(schema: &StructType, logical: &[String], mode: ColumnMappingMode) -> Option<Vec<String>> {
    let mut current = schema;
    let mut out = Vec::with_capacity(logical.len());
    for (i, part) in logical.iter().enumerate() {
        let f = current.field(part)?;
        out.push(f.physical_name(mode).to_string());
        if i + 1 < logical.len() {
            match &f.data_type {
                DataType::Struct(s) => current = s,
                _ => return None,
            }
        }
    }
    Some(out)
}

/// Partition column name → (field, physical name) for every partition column.
pub fn partition_fields<'a>(
    schema: &'a StructType,
    partition_columns: &[String],
    mode: ColumnMappingMode,
) -> DeltaResult<Vec<(&'a StructField, String)>> {
    partition_columns
        .iter()
        .map(|c| {
            let f = schema.field(c).ok_or_else(|| DeltaError::schema(format!("partition column `{c}` is not in the schema")))?;
            Ok((f, f.physical_name(mode).to_string()))
        })
        .collect()
}

/// Splits a dotted column path (backticks quote names containing dots).
pub(crate) fn split_path(path: &str) -> DeltaResult<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '`' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    if quoted || out.iter().any(|p| p.trim().is_empty()) {
        return Err(DeltaError::InvalidExpression { text: path.to_string(), reason: "not a column path (a.b.c, `quoted.name`)".into() });
    }
    Ok(out.into_iter().map(|p| p.trim().to_string()).collect())
}

/// Whether `a` names `b` or a field inside it (case-insensitive).
pub(crate) fn within(a: &[String], b: &[String]) -> bool {
    a.len() >= b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Whether two column paths name the same column (case-insensitive).
pub(crate) fn same_path(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && within(a, b)
}

/// Whether a column of type `from` may become `to` without rewriting files (typeWidening).
pub fn is_widening(from: &DataType, to: &DataType) -> bool {
    use PrimitiveType as P;
    match (from, to) {
        (DataType::Primitive(f), DataType::Primitive(t)) => match (f, t) {
            (P::Byte, P::Short | P::Integer | P::Long)
            | (P::Short, P::Integer | P::Long)
            | (P::Integer, P::Long)
            | (P::Float, P::Double)
            | (P::Date, P::TimestampNtz) => true,
            (P::Decimal(p1, s1), P::Decimal(p2, s2)) => p2 >= p1 && s2 >= s1 && (*p2 as i32 - *s2 as i32) >= (*p1 as i32 - *s1 as i32),
            _ => false,
        },
        _ => false,
    }
}

/// Records a type change in the field's `delta.typeChanges` metadata, as the protocol asks.
pub(crate) fn record_type_change(field: &mut StructField, from: &DataType, to: &DataType) {
    let mut changes = field.metadata.get("delta.typeChanges").and_then(Value::as_array).cloned().unwrap_or_default();
    changes.push(json!({ "fromType": from.to_string(), "toType": to.to_string() }));
    field.metadata.insert("delta.typeChanges".into(), Value::Array(changes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_round_trips() {
        let s = r#"{"type":"struct","fields":[
            {"name":"a","type":"decimal(38,18)","nullable":true,"metadata":{}},
            {"name":"b","type":{"type":"array","elementType":"timestamp_ntz","containsNull":false},"nullable":false,"metadata":{}},
            {"name":"c","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[{"name":"x","type":"variant","nullable":true,"metadata":{}}]},"valueContainsNull":true},"nullable":true,"metadata":{"k":1}}]}"#;
        let parsed = StructType::parse(s).unwrap();
        let again = StructType::parse(&parsed.to_json().to_string()).unwrap();
        assert_eq!(parsed, again);
        assert_eq!(parsed.fields[0].data_type, DataType::Primitive(PrimitiveType::Decimal(38, 18)));
        assert!(parsed.to_arrow().is_ok());
    }

    #[test]
    fn rejects_bad_decimals_and_unknown_types() {
        for t in ["decimal(39,1)", "decimal(5,6)", "decimal(x)", "geometry(OGC:CRS84)", "interval"] {
            let s = format!(r#"{{"type":"struct","fields":[{{"name":"a","type":"{t}","nullable":true,"metadata":{{}}}}]}}"#);
            assert!(StructType::parse(&s).is_err(), "{t} must be refused");
        }
    }

    #[test]
    fn depth_is_capped() {
        let mut t = String::from("\"long\"");
        for _ in 0..70 {
            t = format!(r#"{{"type":"array","elementType":{t},"containsNull":true}}"#);
        }
        let s = format!(r#"{{"type":"struct","fields":[{{"name":"a","type":{t},"nullable":true,"metadata":{{}}}}]}}"#);
        assert!(matches!(StructType::parse(&s), Err(DeltaError::LimitExceeded { .. })));
    }

    #[test]
    fn paths_split_on_unquoted_dots() {
        assert_eq!(split_path("a.b").unwrap(), vec!["a", "b"]);
        assert_eq!(split_path("`a.b`.c").unwrap(), vec!["a.b", "c"]);
        assert!(split_path("a..b").is_err());
        assert!(split_path("`a").is_err());
    }

    #[test]
    fn widening_is_one_way() {
        let t = |p| DataType::Primitive(p);
        assert!(is_widening(&t(PrimitiveType::Integer), &t(PrimitiveType::Long)));
        assert!(!is_widening(&t(PrimitiveType::Long), &t(PrimitiveType::Integer)));
        assert!(is_widening(&t(PrimitiveType::Decimal(10, 2)), &t(PrimitiveType::Decimal(12, 3))));
        assert!(!is_widening(&t(PrimitiveType::Decimal(10, 2)), &t(PrimitiveType::Decimal(10, 3))));
        assert!(!is_widening(&t(PrimitiveType::String), &t(PrimitiveType::Long)));
    }
}
