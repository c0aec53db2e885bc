//! Table features that constrain the shape of the whole table rather than one operation: clustered
//! tables (liquid clustering) and Iceberg compatibility (V1 and V2).
//!
//! ```text
//!  CREATE / SET TBLPROPERTIES / CLUSTER BY ─► prepare (column mapping, nested ids, domain)
//!  every commit ─► Transaction::commit ─► validate(before, protocol, metadata, clustering, actions)
//!                                           └─ refused: DeltaError::FeatureRequirement, nothing written
//!  DeltaWriter ─► partition values materialised into data files when IcebergCompat is enabled
//!  OPTIMIZE on a clustered table ─► unclustered files rewritten along the clustering columns'
//!                                   Z-order curve, `clusteringProvider` = "liquid"
//! ```
//!
//! The checks run in [`crate::write::txn::Transaction::commit`], the one place every change passes, so
//! no operation (a write with `mergeSchema`, an ALTER, a property change, a DML rewrite) can leave
//! a table that breaks its own features' writer requirements.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::table::actions::{Action, AddFile};
use crate::table::protocol::{DomainMetadata, Metadata, Protocol, TableFeature, READER_WRITER_FEATURES};
use crate::table::schema::{ColumnMappingMode, DataType, PrimitiveType, StructType};

/// The domain that names a clustered table's clustering columns.
pub const CLUSTERING_DOMAIN: &str = "delta.clustering";
/// The `clusteringProvider` this implementation sets on the files it clusters (delta-spark's name
/// for liquid clustering, so each implementation may recluster the other's files).
pub const CLUSTERING_PROVIDER: &str = "liquid";
/// delta-spark allows at most this many clustering columns.
pub const MAX_CLUSTERING_COLUMNS: usize = 4;
/// Column metadata holding IcebergCompatV2's ids of array elements and map keys and values.
pub const NESTED_IDS_KEY: &str = "delta.columnMapping.nested.ids";

fn refused(feature: &str, reason: impl Into<String>) -> DeltaError {
    DeltaError::FeatureRequirement { feature: feature.to_string(), reason: reason.into() }
}

/// The Iceberg compatibility version that `enabled` (is this boolean property true?) says is
/// on: the highest if both are.
fn iceberg_version(enabled: impl Fn(&str) -> bool) -> Option<u8> {
    if enabled("delta.enableIcebergCompatV2") {
        Some(2)
    } else if enabled("delta.enableIcebergCompatV1") {
        Some(1)
    } else {
        None
    }
}

/// The Iceberg compatibility version these table properties enable (the highest if both are).
pub fn iceberg_compat_in(properties: &HashMap<String, String>) -> Option<u8> {
    iceberg_version(|k| properties.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// The Iceberg compatibility version the table enables, if any.
pub fn iceberg_compat(metadata: &Metadata) -> Option<u8> {
    iceberg_version(|k| metadata.bool_property(k, false))
}

/// Parses column names as given by a user (`a`, `s.b`, `` `odd.name` ``) into paths.
pub fn parse_columns<S: AsRef<str>>(columns: &[S]) -> DeltaResult<Vec<Vec<String>>> {
    columns.iter().map(|c| crate::table::schema::split_path(c.as_ref())).collect()
}

/// Parses the `delta.clustering` domain's configuration into column paths (physical names under
/// column mapping). Accepts delta-spark's `[["a"], ["s", "b"]]` and the protocol example's `["a"]`.
pub fn parse_clustering_domain(configuration: &str) -> DeltaResult<Vec<Vec<String>>> {
    let bad = |reason: &str| DeltaError::CorruptLog {
        path: CLUSTERING_DOMAIN.into(),
        reason: format!("invalid clustering domain configuration ({reason}): {configuration}"),
    };
    let v: Value = serde_json::from_str(configuration).map_err(|_| bad("not JSON"))?;
    let columns = v.get("clusteringColumns").and_then(Value::as_array).ok_or_else(|| bad("no clusteringColumns list"))?;
    columns
        .iter()
        .map(|c| match c {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(parts) if !parts.is_empty() => {
                parts.iter().map(|p| p.as_str().map(str::to_string).ok_or_else(|| bad("a path part is not a string"))).collect()
            }
            _ => Err(bad("a column is neither a name nor a path")),
        })
        .collect()
}

/// The logical path of a physical column path.
fn logical_path(schema: &StructType, physical: &[String], mode: ColumnMappingMode) -> Option<Vec<String>> {
    let mut current = schema;
    let mut out = Vec::with_capacity(physical.len());
    for (i, part) in physical.iter().enumerate() {
        let f = current.fields.iter().find(|f| f.physical_name(mode) == part.as_str()).or_else(|| {
            // Spark resolves names case-insensitively.
            current.fields.iter().find(|f| f.physical_name(mode).eq_ignore_ascii_case(part))
        })?;
        out.push(f.name.clone());
        if i + 1 < physical.len() {
            match &f.data_type {
                DataType::Struct(s) => current = s,
                _ => return None,
            }
        }
    }
    Some(out)
}

/// The clustering columns (physical paths) named by the first `delta.clustering` domain among
/// `domains` (newest first); empty when there is none or it is removed.
pub fn clustering_paths<'a>(domains: impl IntoIterator<Item = &'a DomainMetadata>) -> DeltaResult<Vec<Vec<String>>> {
    match domains.into_iter().find(|d| d.domain == CLUSTERING_DOMAIN) {
        Some(d) if !d.removed => parse_clustering_domain(&d.configuration),
        _ => Ok(Vec::new()),
    }
}

/// The clustering columns of a table (its protocol, schema, column mapping mode and domain
/// metadata) as logical paths; empty when it is not clustered. [`Snapshot::clustering_columns`]
/// asks this of a snapshot.
///
/// [`Snapshot::clustering_columns`]: crate::Snapshot::clustering_columns
pub fn logical_clustering_columns<'a>(
    protocol: &Protocol,
    schema: &StructType,
    mode: ColumnMappingMode,
    domains: impl IntoIterator<Item = &'a DomainMetadata>,
) -> DeltaResult<Vec<Vec<String>>> {
    if !protocol.has_feature(&TableFeature::Clustering) {
        return Ok(Vec::new());
    }
    clustering_paths(domains)?
        .iter()
        .map(|p| {
            logical_path(schema, p, mode)
                .ok_or_else(|| DeltaError::schema(format!("clustering column `{}` is not in the schema", p.join("."))))
        })
        .collect()
}

/// The `delta.clustering` domain naming these logical columns, checked: they exist, are leaves
/// of a type statistics bound (what clustering skips by), at most [`MAX_CLUSTERING_COLUMNS`], no
/// repeats.
pub(crate) fn clustering_domain(schema: &StructType, mode: ColumnMappingMode, columns: &[Vec<String>]) -> DeltaResult<DomainMetadata> {
    if columns.len() > MAX_CLUSTERING_COLUMNS {
        return Err(refused("clustering", format!("at most {MAX_CLUSTERING_COLUMNS} clustering columns, not {}", columns.len())));
    }
    let mut physical = Vec::with_capacity(columns.len());
    for c in columns {
        let name = c.join(".");
        let path = crate::table::schema::physical_path(schema, c, mode).ok_or_else(|| schema.column_not_found(name.clone()))?;
        let field = leaf_field(schema, c).ok_or_else(|| schema.column_not_found(name.clone()))?;
        let orderable = matches!(
            &field.data_type,
            DataType::Primitive(
                PrimitiveType::Byte
                    | PrimitiveType::Short
                    | PrimitiveType::Integer
                    | PrimitiveType::Long
                    | PrimitiveType::Float
                    | PrimitiveType::Double
                    | PrimitiveType::Decimal(..)
                    | PrimitiveType::String
                    | PrimitiveType::Date
                    | PrimitiveType::Timestamp
                    | PrimitiveType::TimestampNtz
            )
        );
        if !orderable {
            return Err(refused("clustering", format!("cannot cluster by `{name}` of type {}: no min/max statistics", field.data_type)));
        }
        if physical.contains(&path) {
            return Err(refused("clustering", format!("`{name}` is named twice")));
        }
        physical.push(path);
    }
    Ok(DomainMetadata {
        domain: CLUSTERING_DOMAIN.into(),
        configuration: json!({ "clusteringColumns": physical }).to_string(),
        removed: false,
    })
}

fn leaf_field<'a>(schema: &'a StructType, path: &[String]) -> Option<&'a crate::table::schema::StructField> {
    let (first, rest) = path.split_first()?;
    let f = schema.field(first)?;
    if rest.is_empty() {
        return Some(f);
    }
    match &f.data_type {
        DataType::Struct(s) => leaf_field(s, rest),
        _ => None,
    }
}

/// Gives every array element and map key and value in the schema an IcebergCompatV2 id (in the
/// nearest field's [`NESTED_IDS_KEY`] metadata, keyed by that field's physical name and the path
/// below it), counting from `next_id`; ids already assigned are kept.
pub(crate) fn assign_nested_ids(schema: &mut StructType, next_id: &mut i64) {
    fn keys(t: &DataType, prefix: &str, out: &mut Vec<String>) {
        match t {
            DataType::Array(e, _) => {
                let k = format!("{prefix}.element");
                keys(e, &k, out);
                out.push(k);
            }
            DataType::Map(k, v, _) => {
                let (kk, vk) = (format!("{prefix}.key"), format!("{prefix}.value"));
                keys(k, &kk, out);
                keys(v, &vk, out);
                out.push(kk);
                out.push(vk);
            }
            _ => {}
        }
    }
    for f in &mut schema.fields {
        let mut needed = Vec::new();
        keys(&f.data_type, f.physical_name(ColumnMappingMode::Name), &mut needed);
        if !needed.is_empty() {
            let mut ids = match f.metadata.get(NESTED_IDS_KEY) {
                Some(Value::Object(m)) => m.clone(),
                _ => serde_json::Map::new(),
            };
            needed.sort();
            for k in needed {
                ids.entry(k).or_insert_with(|| {
                    *next_id += 1;
                    json!(*next_id - 1)
                });
            }
            f.metadata.insert(NESTED_IDS_KEY.into(), Value::Object(ids));
        }
        crate::table::schema::for_each_nested_struct_mut(&mut f.data_type, &mut |inner| assign_nested_ids(inner, next_id));
    }
}

/// Whether every array element and map key and value has its IcebergCompatV2 id.
fn has_nested_ids(schema: &StructType) -> bool {
    let mut copy = schema.clone();
    let mut next = i64::MAX / 2;
    let start = next;
    assign_nested_ids(&mut copy, &mut next);
    next == start
}

/// Prepares a new table's properties for the features they enable: IcebergCompat turns column
/// mapping on (name mode) when the properties leave it off, as delta-spark does.
pub(crate) fn prepare_properties(properties: &mut HashMap<String, String>) {
    if iceberg_compat_in(properties).is_some() && properties.get("delta.columnMapping.mode").is_none_or(|m| m == "none") {
        properties.insert("delta.columnMapping.mode".into(), "name".into());
    }
}

/// Enabling IcebergCompat on a table with data: its files must already carry what the feature
/// asks of new files (numRecords, no deletion vectors, partition values inside the file). Files
/// this writer wrote before the feature was on lack the last, so a partitioned table with files
/// is refused (delta-spark rewrites them with REORG … UPGRADE UNIFORM, not implemented here).
pub(crate) fn check_files_for_iceberg(partitioned: bool, files: &[AddFile], version: u8) -> DeltaResult<()> {
    let feature = format!("icebergCompatV{version}");
    if partitioned && !files.is_empty() {
        return Err(refused(&feature, "the table is partitioned and its existing files do not hold their partition values"));
    }
    files.iter().try_for_each(|add| check_iceberg_file(&feature, add))
}

/// What IcebergCompat asks of every file in the table: numRecords, and no deletion vector.
fn check_iceberg_file(feature: &str, add: &AddFile) -> DeltaResult<()> {
    if add.num_records().is_none() {
        return Err(refused(feature, format!("file {} has no numRecords statistic", add.path)));
    }
    if add.deletion_vector.is_some() {
        return Err(refused(feature, format!("file {} has a deletion vector (purge them first: REORG … APPLY (PURGE))", add.path)));
    }
    Ok(())
}

/// A type change (from `delta.typeChanges`) Iceberg's schema evolution cannot express.
fn iceberg_blocks_type_change(from: &str, to: &str) -> bool {
    let integral = |t: &str| matches!(t, "byte" | "short" | "integer");
    let decimal = |t: &str| t.starts_with("decimal");
    let scale = |t: &str| t.trim_end_matches(')').rsplit(',').next().and_then(|s| s.trim().parse::<i32>().ok());
    (integral(from) && to == "double")
        || (from == "date" && to == "timestamp_ntz")
        || ((integral(from) || from == "long") && decimal(to))
        || (decimal(from) && decimal(to) && scale(to) > scale(from))
}

/// Checks the table state a commit leaves against its features' writer requirements. `before`
/// is the table's state before (none for a new table); `clustering` the clustering columns
/// (physical paths) after the commit; `changes_shape` whether the commit changes the protocol,
/// metadata or domains, or creates the table (the whole-table rules are checked only then);
/// `actions` the commit's file actions.
pub(crate) fn validate(
    before: Option<(&Protocol, &Metadata)>,
    protocol: &Protocol,
    metadata: &Metadata,
    clustering: &[Vec<String>],
    changes_shape: bool,
    actions: &[Action],
) -> DeltaResult<()> {
    // UniForm: delta-spark writes Iceberg (or Hudi) metadata after each commit; a commit from
    // here would leave it stale, so those readers would silently miss it.
    if let Some(formats) = metadata.property("delta.universalFormat.enabledFormats").filter(|f| !f.trim().is_empty()) {
        return Err(refused(
            "universalFormat",
            format!("UniForm ({formats}) needs its metadata written after every commit, which this writer does not do"),
        ));
    }
    let iceberg = iceberg_compat(metadata);
    if changes_shape {
        let schema = if metadata.schema_string.is_empty() { StructType::default() } else { StructType::parse(&metadata.schema_string)? };
        let mode = ColumnMappingMode::from_config(metadata.property("delta.columnMapping.mode"))?;
        if let Some(v) = iceberg {
            validate_iceberg(v, before, protocol, metadata, &schema, mode)?;
        }
        if protocol.has_feature(&TableFeature::Clustering) {
            validate_clustering(protocol, metadata, &schema, mode, clustering)?;
        }
    }
    if let Some(v) = iceberg {
        let feature = format!("icebergCompatV{v}");
        for a in actions {
            if let Action::Add(add) = a {
                check_iceberg_file(&feature, add)?;
            }
        }
    }
    Ok(())
}

fn validate_iceberg(
    version: u8,
    before: Option<(&Protocol, &Metadata)>,
    protocol: &Protocol,
    metadata: &Metadata,
    schema: &StructType,
    mode: ColumnMappingMode,
) -> DeltaResult<()> {
    let feature = format!("icebergCompatV{version}");
    let name = feature.as_str();
    if metadata.bool_property("delta.enableIcebergCompatV1", false) && metadata.bool_property("delta.enableIcebergCompatV2", false) {
        return Err(refused(name, "icebergCompatV1 and icebergCompatV2 cannot both be enabled"));
    }
    let listed = protocol.writer_feature_set().iter().any(|f| f.name() == name);
    if !listed {
        return Err(refused(name, format!("the protocol does not list `{name}`")));
    }
    if mode == ColumnMappingMode::None {
        return Err(refused(name, "column mapping must be enabled (delta.columnMapping.mode = name or id)"));
    }
    if version == 1 && protocol.has_feature(&TableFeature::DeletionVectors) {
        return Err(refused(name, "the deletionVectors feature must not be in the protocol"));
    }
    if version == 2 && metadata.bool_property("delta.enableDeletionVectors", false) {
        return Err(refused(name, "deletion vectors must not be enabled (delta.enableDeletionVectors)"));
    }
    let mut bad_type = None;
    let mut type_change = None;
    // Types down to the next struct (whose fields are in `all` themselves).
    fn walk(t: &DataType, f: &mut dyn FnMut(&DataType)) {
        f(t);
        match t {
            DataType::Array(e, _) => walk(e, f),
            DataType::Map(k, v, _) => {
                walk(k, f);
                walk(v, f);
            }
            _ => {}
        }
    }
    fn fields<'a>(s: &'a StructType, out: &mut Vec<&'a crate::table::schema::StructField>) {
        for f in &s.fields {
            out.push(f);
            crate::table::schema::for_each_nested_struct(&f.data_type, &mut |inner| fields(inner, out));
        }
    }
    let mut all = Vec::new();
    fields(schema, &mut all);
    for f in &all {
        walk(&f.data_type, &mut |t| {
            let blocked = match t {
                DataType::Void | DataType::Variant => true,
                DataType::Array(..) | DataType::Map(..) => version == 1,
                _ => false,
            };
            if blocked && bad_type.is_none() {
                bad_type = Some(format!("`{}` has type {t}", f.name));
            }
        });
        for change in f.metadata.get("delta.typeChanges").and_then(Value::as_array).into_iter().flatten() {
            let (from, to) = (change.get("fromType").and_then(Value::as_str), change.get("toType").and_then(Value::as_str));
            if let (Some(from), Some(to)) = (from, to) {
                if iceberg_blocks_type_change(from, to) && type_change.is_none() {
                    type_change = Some(format!("`{}` was widened from {from} to {to}, which Iceberg cannot express", f.name));
                }
            }
        }
    }
    if let Some(t) = bad_type {
        return Err(refused(name, format!("{t}, which {name} does not allow")));
    }
    if let Some(c) = type_change {
        return Err(refused(name, c));
    }
    if version == 2 && !has_nested_ids(schema) {
        return Err(refused(name, format!("array elements and map keys and values need ids in `{NESTED_IDS_KEY}`")));
    }
    if let Some((_, old)) = before.filter(|(_, old)| iceberg_compat(old).is_some()) {
        let renamed = !old.partition_columns.is_empty()
            && (old.partition_columns.len() != metadata.partition_columns.len()
                || old.partition_columns.iter().zip(&metadata.partition_columns).any(|(a, b)| !a.eq_ignore_ascii_case(b)));
        if renamed {
            return Err(refused(
                name,
                format!("cannot replace the partitioning {:?} with {:?}", old.partition_columns, metadata.partition_columns),
            ));
        }
    }
    Ok(())
}

fn validate_clustering(
    protocol: &Protocol,
    metadata: &Metadata,
    schema: &StructType,
    mode: ColumnMappingMode,
    clustering: &[Vec<String>],
) -> DeltaResult<()> {
    if !protocol.has_feature(&TableFeature::DomainMetadata) {
        return Err(refused("clustering", "the protocol must list domainMetadata too"));
    }
    if !metadata.partition_columns.is_empty() && !clustering.is_empty() {
        return Err(refused("clustering", "a table cannot be both partitioned and clustered"));
    }
    let stats = crate::table::features::stats_columns(metadata, schema, mode);
    for path in clustering {
        let Some(logical) = logical_path(schema, path, mode) else {
            return Err(refused("clustering", format!("clustering column `{}` is not in the schema", path.join("."))));
        };
        if !stats.contains(path) {
            return Err(refused(
                "clustering",
                format!(
                    "clustering column `{}` must have statistics (within delta.dataSkippingNumIndexedCols or delta.dataSkippingStatsColumns)",
                    logical.join(".")
                ),
            ));
        }
    }
    Ok(())
}

/// The protocol that has exactly these (known) features, or `None` for none.
pub(crate) fn feature_protocol(names: &[&str]) -> DeltaResult<Option<Protocol>> {
    if names.is_empty() {
        return Ok(None);
    }
    for n in names {
        if let TableFeature::Unknown(_) = n.parse::<TableFeature>().unwrap_or(TableFeature::Unknown(n.to_string())) {
            return Err(DeltaError::UnsupportedWriterFeature { feature: n.to_string() });
        }
    }
    let reader: Vec<String> = names.iter().filter(|n| READER_WRITER_FEATURES.contains(n)).map(|n| n.to_string()).collect();
    let mut writer: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    // Features that need another (the protocol names both).
    if writer.iter().any(|n| n == "clustering" || n == "rowTracking") && !writer.iter().any(|n| n == "domainMetadata") {
        writer.push("domainMetadata".into());
    }
    Ok(Some(Protocol {
        min_reader_version: if reader.is_empty() { 1 } else { 3 },
        min_writer_version: 7,
        reader_features: (!reader.is_empty()).then_some(reader),
        writer_features: Some(writer),
    }))
}

/// The smallest protocol for a new table with this schema and these properties, as delta-spark
/// chooses: legacy versions where they suffice, table features (3, 7) otherwise.
pub fn min_protocol(schema: &StructType, properties: &HashMap<String, String>) -> Protocol {
    let prop = |k: &str| properties.get(k).map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(false);
    let mut reader_features: Vec<&str> = Vec::new();
    let mut writer_features: Vec<&str> = Vec::new();
    let has_ntz =
        crate::table::schema::leaf_columns(schema).iter().any(|(_, f)| f.data_type == DataType::Primitive(PrimitiveType::TimestampNtz));
    let has_variant = crate::table::schema::leaf_columns(schema).iter().any(|(_, f)| f.data_type == DataType::Variant);
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

/// Which leaf columns get statistics: `delta.dataSkippingStatsColumns`, else the first
/// `delta.dataSkippingNumIndexedCols` (default 32; -1 for all).
pub(crate) fn stats_columns(metadata: &Metadata, schema: &StructType, mode: ColumnMappingMode) -> Vec<Vec<String>> {
    let leaves: Vec<(Vec<String>, Vec<String>)> = crate::table::schema::leaf_columns(schema)
        .into_iter()
        .map(|(logical, _)| {
            let physical = crate::table::schema::physical_path(schema, &logical, mode).unwrap_or_else(|| logical.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustering_domain_parses_both_shapes() {
        assert_eq!(
            parse_clustering_domain(r#"{"clusteringColumns":[["col1"],["user","address","city"]]}"#).unwrap(),
            vec![vec!["col1".to_string()], vec!["user".into(), "address".into(), "city".into()]]
        );
        assert_eq!(parse_clustering_domain(r#"{"clusteringColumns":["a","b"]}"#).unwrap(), vec![vec!["a".to_string()], vec!["b".into()]]);
        assert!(matches!(parse_clustering_domain("{}"), Err(DeltaError::CorruptLog { .. })));
        assert!(matches!(parse_clustering_domain(r#"{"clusteringColumns":[1]}"#), Err(DeltaError::CorruptLog { .. })));
    }

    #[test]
    fn user_column_lists_split_on_unquoted_dots() {
        assert_eq!(
            parse_columns(&["a", " s.b ", "`x.y`.z"]).unwrap(),
            vec![vec!["a".to_string()], vec!["s".into(), "b".into()], vec!["x.y".into(), "z".into()]]
        );
        assert!(matches!(parse_columns(&["a..b"]), Err(DeltaError::InvalidExpression { .. })));
    }

    #[test]
    fn nested_ids_follow_the_protocol_example() {
        // col2: map<int, array<int>>, physical name col-bbb.
        let mut schema = StructType::parse(
            r#"{"type":"struct","fields":[{"name":"col2","type":{"type":"map","keyType":"integer","valueType":{"type":"array","elementType":"integer","containsNull":true},"valueContainsNull":true},"nullable":true,"metadata":{"delta.columnMapping.id":2,"delta.columnMapping.physicalName":"col-bbb"}}]}"#,
        )
        .unwrap();
        assert!(!has_nested_ids(&schema));
        let mut next = 102;
        assign_nested_ids(&mut schema, &mut next);
        let ids = schema.fields[0].metadata[NESTED_IDS_KEY].as_object().unwrap().clone();
        let mut keys: Vec<&String> = ids.keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["col-bbb.key", "col-bbb.value", "col-bbb.value.element"]);
        let mut values: Vec<i64> = ids.values().map(|v| v.as_i64().unwrap()).collect();
        values.sort();
        assert_eq!(values, vec![102, 103, 104]);
        assert_eq!(next, 105);
        assert!(has_nested_ids(&schema));
        // Already assigned ids stay.
        assign_nested_ids(&mut schema, &mut next);
        assert_eq!(next, 105);
    }

    #[test]
    fn iceberg_type_change_rules() {
        assert!(iceberg_blocks_type_change("integer", "double"));
        assert!(iceberg_blocks_type_change("date", "timestamp_ntz"));
        assert!(iceberg_blocks_type_change("long", "decimal(20,0)"));
        assert!(iceberg_blocks_type_change("decimal(10,2)", "decimal(12,4)"));
        assert!(!iceberg_blocks_type_change("integer", "long"));
        assert!(!iceberg_blocks_type_change("float", "double"));
        assert!(!iceberg_blocks_type_change("decimal(10,2)", "decimal(12,2)"));
    }
}
