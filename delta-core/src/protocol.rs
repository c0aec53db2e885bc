//! Delta log actions, table features and the reader gate.
//!
//! The small actions (protocol, metaData, txn, domainMetadata, commitInfo, checkpointMetadata,
//! sidecar) are plain serde structs. File actions (`add`, `remove`) are never materialised one
//! struct per file during replay: they stay in Arrow columns (see [`crate::replay`]); the
//! [`ACTION_SCHEMA`](action_schema) here is the columnar layout both commits and checkpoints are
//! decoded into. Unknown actions and unknown fields are ignored everywhere.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{DeltaError, DeltaResult};

/// The `protocol` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
}

/// The `format` of a `metaData` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Format {
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default)]
    pub options: HashMap<String, Option<String>>,
}

fn default_provider() -> String {
    "parquet".to_string()
}

/// The `metaData` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// The table schema as JSON. Empty when the log's metaData lacks it (scans then refuse).
    #[serde(default)]
    pub schema_string: String,
    #[serde(default)]
    pub partition_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
    #[serde(default)]
    pub configuration: HashMap<String, Option<String>>,
}

impl Metadata {
    /// A table property, if set (and not null).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.configuration.get(key).and_then(|v| v.as_deref())
    }

    /// A boolean table property (`true`/`false`, case-insensitive); `default` when unset or invalid.
    pub fn bool_property(&self, key: &str, default: bool) -> bool {
        match self.property(key) {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            _ => default,
        }
    }
}

/// The `txn` action: an application's last committed transaction version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppTransaction {
    pub app_id: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
}

/// The `domainMetadata` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainMetadata {
    pub domain: String,
    pub configuration: String,
    #[serde(default)]
    pub removed: bool,
}

/// The `checkpointMetadata` action of a V2 checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointMetadata {
    pub version: i64,
}

/// The `sidecar` action of a V2 checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    pub path: String,
    #[serde(default)]
    pub size_in_bytes: i64,
    #[serde(default)]
    pub modification_time: i64,
}

/// A deletion vector descriptor (`add.deletionVector`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionVectorDescriptor {
    /// `u` (relative, UUID-named), `i` (inline) or `p` (absolute path).
    pub storage_type: String,
    pub path_or_inline_dv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    pub size_in_bytes: i32,
    pub cardinality: i64,
}

impl DeletionVectorDescriptor {
    /// The identity of a DV within log replay: storage type, path/inline data and offset.
    pub fn unique_id(&self) -> String {
        match self.offset {
            Some(o) => format!("{}{}@{}", self.storage_type, self.path_or_inline_dv, o),
            None => format!("{}{}", self.storage_type, self.path_or_inline_dv),
        }
    }
}

/// A table feature. Unknown names are kept so that the error can name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableFeature {
    AppendOnly,
    Invariants,
    CheckConstraints,
    ChangeDataFeed,
    GeneratedColumns,
    ColumnMapping,
    IdentityColumns,
    DeletionVectors,
    RowTracking,
    TimestampNtz,
    DomainMetadata,
    V2Checkpoint,
    IcebergCompatV1,
    IcebergCompatV2,
    Clustering,
    InCommitTimestamp,
    TypeWidening,
    TypeWideningPreview,
    VariantType,
    VariantTypePreview,
    VariantShredding,
    VariantShreddingPreview,
    VacuumProtocolCheck,
    CheckpointProtection,
    AllowColumnDefaults,
    CatalogManaged,
    CatalogOwnedPreview,
    CollationsPreview,
    Geospatial,
    Unknown(String),
}

const FEATURE_NAMES: &[(&str, TableFeature)] = &[
    ("appendOnly", TableFeature::AppendOnly),
    ("invariants", TableFeature::Invariants),
    ("checkConstraints", TableFeature::CheckConstraints),
    ("changeDataFeed", TableFeature::ChangeDataFeed),
    ("generatedColumns", TableFeature::GeneratedColumns),
    ("columnMapping", TableFeature::ColumnMapping),
    ("identityColumns", TableFeature::IdentityColumns),
    ("deletionVectors", TableFeature::DeletionVectors),
    ("rowTracking", TableFeature::RowTracking),
    ("timestampNtz", TableFeature::TimestampNtz),
    ("domainMetadata", TableFeature::DomainMetadata),
    ("v2Checkpoint", TableFeature::V2Checkpoint),
    ("icebergCompatV1", TableFeature::IcebergCompatV1),
    ("icebergCompatV2", TableFeature::IcebergCompatV2),
    ("clustering", TableFeature::Clustering),
    ("inCommitTimestamp", TableFeature::InCommitTimestamp),
    ("typeWidening", TableFeature::TypeWidening),
    ("typeWidening-preview", TableFeature::TypeWideningPreview),
    ("variantType", TableFeature::VariantType),
    ("variantType-preview", TableFeature::VariantTypePreview),
    ("variantShredding", TableFeature::VariantShredding),
    ("variantShredding-preview", TableFeature::VariantShreddingPreview),
    ("vacuumProtocolCheck", TableFeature::VacuumProtocolCheck),
    ("checkpointProtection", TableFeature::CheckpointProtection),
    ("allowColumnDefaults", TableFeature::AllowColumnDefaults),
    ("catalogManaged", TableFeature::CatalogManaged),
    ("catalogOwned-preview", TableFeature::CatalogOwnedPreview),
    ("collations-preview", TableFeature::CollationsPreview),
    ("geospatial", TableFeature::Geospatial),
];

impl FromStr for TableFeature {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(FEATURE_NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| TableFeature::Unknown(s.to_string())))
    }
}

impl TableFeature {
    /// The feature's name in the protocol.
    pub fn name(&self) -> &str {
        match self {
            TableFeature::Unknown(s) => s,
            known => FEATURE_NAMES.iter().find(|(_, f)| f == known).map(|(n, _)| *n).unwrap_or("?"),
        }
    }

    /// Whether this reader can read tables that require the feature on the read side.
    pub fn is_readable(&self) -> bool {
        matches!(
            self,
            TableFeature::ColumnMapping
                | TableFeature::DeletionVectors
                | TableFeature::TimestampNtz
                | TableFeature::V2Checkpoint
                | TableFeature::TypeWidening
                | TableFeature::TypeWideningPreview
                | TableFeature::VariantType
                | TableFeature::VariantTypePreview
                | TableFeature::VariantShredding
                | TableFeature::VariantShreddingPreview
                | TableFeature::VacuumProtocolCheck
                | TableFeature::AppendOnly
                | TableFeature::Invariants
                | TableFeature::CheckConstraints
                | TableFeature::ChangeDataFeed
                | TableFeature::GeneratedColumns
                | TableFeature::IdentityColumns
                | TableFeature::RowTracking
                | TableFeature::DomainMetadata
                | TableFeature::InCommitTimestamp
                | TableFeature::Clustering
                | TableFeature::CheckpointProtection
                | TableFeature::AllowColumnDefaults
                | TableFeature::IcebergCompatV1
                | TableFeature::IcebergCompatV2
        )
    }
}

impl fmt::Display for TableFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Protocol {
    /// Reader features as parsed names (empty below reader version 3).
    pub fn reader_feature_set(&self) -> Vec<TableFeature> {
        self.reader_features.iter().flatten().map(|s| s.parse().unwrap_or(TableFeature::Unknown(s.clone()))).collect()
    }

    /// Writer features as parsed names (empty below writer version 7).
    pub fn writer_feature_set(&self) -> Vec<TableFeature> {
        self.writer_features.iter().flatten().map(|s| s.parse().unwrap_or(TableFeature::Unknown(s.clone()))).collect()
    }

    /// Whether the table has `feature` enabled, on the reader or writer side, including the
    /// features implied by legacy protocol versions.
    pub fn has_feature(&self, feature: &TableFeature) -> bool {
        let listed = self.reader_feature_set().iter().chain(self.writer_feature_set().iter()).any(|f| f == feature);
        listed
            || match feature {
                TableFeature::ColumnMapping => self.min_reader_version == 2 && self.min_writer_version >= 5,
                _ => false,
            }
    }

    /// The reader gate: refuse, naming the feature, anything this reader cannot read correctly.
    /// Runs before any data (or even the schema) is interpreted.
    pub fn ensure_readable(&self) -> DeltaResult<()> {
        match self.min_reader_version {
            1 | 2 => Ok(()),
            3 => {
                for feature in self.reader_feature_set() {
                    match feature {
                        TableFeature::CatalogManaged | TableFeature::CatalogOwnedPreview => {
                            return Err(DeltaError::CatalogManaged { feature: feature.name().to_string() })
                        }
                        f if f.is_readable() => {}
                        f => return Err(DeltaError::UnsupportedReaderFeature { feature: f.name().to_string() }),
                    }
                }
                Ok(())
            }
            v => Err(DeltaError::UnsupportedReaderVersion { version: v }),
        }
    }
}

/// A `commitInfo` action kept as JSON: its content is free-form and only read for history.
pub type CommitInfo = serde_json::Map<String, serde_json::Value>;

fn string_map() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "key_value",
            DataType::Struct(Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Utf8, true)])),
            false,
        )),
        false,
    )
}

fn dv_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("storageType", DataType::Utf8, true),
        Field::new("pathOrInlineDv", DataType::Utf8, true),
        Field::new("offset", DataType::Int32, true),
        Field::new("sizeInBytes", DataType::Int32, true),
        Field::new("cardinality", DataType::Int64, true),
    ]))
}

/// Fields of the `add` struct in the columnar action layout; the file index of a snapshot is a set
/// of `StructArray`s of exactly these fields.
pub fn add_fields() -> Fields {
    Fields::from(vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("partitionValues", string_map(), true),
        Field::new("size", DataType::Int64, true),
        Field::new("modificationTime", DataType::Int64, true),
        Field::new("dataChange", DataType::Boolean, true),
        Field::new("stats", DataType::Utf8, true),
        Field::new("tags", string_map(), true),
        Field::new("deletionVector", dv_struct(), true),
        Field::new("baseRowId", DataType::Int64, true),
        Field::new("defaultRowCommitVersion", DataType::Int64, true),
        Field::new("clusteringProvider", DataType::Utf8, true),
    ])
}

/// Column positions inside [`add_fields`].
pub mod add_col {
    pub const PATH: usize = 0;
    pub const PARTITION_VALUES: usize = 1;
    pub const SIZE: usize = 2;
    pub const MODIFICATION_TIME: usize = 3;
    pub const STATS: usize = 5;
    pub const DELETION_VECTOR: usize = 7;
}

/// The columnar layout every log file (commit, compacted log, checkpoint, sidecar) is decoded into
/// for replay. Small actions are kept as their JSON-compatible structs.
pub fn action_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let strings = |n: &str| Field::new(n, DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))), true);
            Arc::new(Schema::new(vec![
                Field::new("add", DataType::Struct(add_fields()), true),
                Field::new(
                    "remove",
                    DataType::Struct(Fields::from(vec![
                        Field::new("path", DataType::Utf8, true),
                        Field::new("deletionTimestamp", DataType::Int64, true),
                        Field::new("dataChange", DataType::Boolean, true),
                        Field::new("deletionVector", dv_struct(), true),
                    ])),
                    true,
                ),
                Field::new(
                    "metaData",
                    DataType::Struct(Fields::from(vec![
                        Field::new("id", DataType::Utf8, true),
                        Field::new("name", DataType::Utf8, true),
                        Field::new("description", DataType::Utf8, true),
                        Field::new(
                            "format",
                            DataType::Struct(Fields::from(vec![
                                Field::new("provider", DataType::Utf8, true),
                                Field::new("options", string_map(), true),
                            ])),
                            true,
                        ),
                        Field::new("schemaString", DataType::Utf8, true),
                        strings("partitionColumns"),
                        Field::new("createdTime", DataType::Int64, true),
                        Field::new("configuration", string_map(), true),
                    ])),
                    true,
                ),
                Field::new(
                    "protocol",
                    DataType::Struct(Fields::from(vec![
                        Field::new("minReaderVersion", DataType::Int32, true),
                        Field::new("minWriterVersion", DataType::Int32, true),
                        strings("readerFeatures"),
                        strings("writerFeatures"),
                    ])),
                    true,
                ),
                Field::new(
                    "txn",
                    DataType::Struct(Fields::from(vec![
                        Field::new("appId", DataType::Utf8, true),
                        Field::new("version", DataType::Int64, true),
                        Field::new("lastUpdated", DataType::Int64, true),
                    ])),
                    true,
                ),
                Field::new(
                    "domainMetadata",
                    DataType::Struct(Fields::from(vec![
                        Field::new("domain", DataType::Utf8, true),
                        Field::new("configuration", DataType::Utf8, true),
                        Field::new("removed", DataType::Boolean, true),
                    ])),
                    true,
                ),
                Field::new(
                    "commitInfo",
                    DataType::Struct(Fields::from(vec![
                        Field::new("inCommitTimestamp", DataType::Int64, true),
                        Field::new("timestamp", DataType::Int64, true),
                    ])),
                    true,
                ),
                Field::new("checkpointMetadata", DataType::Struct(Fields::from(vec![Field::new("version", DataType::Int64, true)])), true),
                Field::new(
                    "sidecar",
                    DataType::Struct(Fields::from(vec![
                        Field::new("path", DataType::Utf8, true),
                        Field::new("sizeInBytes", DataType::Int64, true),
                        Field::new("modificationTime", DataType::Int64, true),
                    ])),
                    true,
                ),
            ]))
        })
        .clone()
}

/// Column positions inside [`action_schema`].
pub mod action_col {
    pub const ADD: usize = 0;
    pub const REMOVE: usize = 1;
    pub const METADATA: usize = 2;
    pub const PROTOCOL: usize = 3;
    pub const TXN: usize = 4;
    pub const DOMAIN_METADATA: usize = 5;
    pub const COMMIT_INFO: usize = 6;
    pub const CHECKPOINT_METADATA: usize = 7;
    pub const SIDECAR: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_features_are_kept_and_named() {
        let p = Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(vec!["deletionVectors".into(), "blahabl".into()]),
            writer_features: None,
        };
        match p.ensure_readable() {
            Err(DeltaError::UnsupportedReaderFeature { feature }) => assert_eq!(feature, "blahabl"),
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn reader_versions_are_gated() {
        for (v, ok) in [(1, true), (2, true), (3, true), (4, false), (99, false), (0, false)] {
            let p = Protocol { min_reader_version: v, min_writer_version: 2, reader_features: None, writer_features: None };
            assert_eq!(p.ensure_readable().is_ok(), ok, "reader version {v}");
        }
    }

    #[test]
    fn catalog_managed_is_refused_with_its_own_error() {
        let p = Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(vec!["catalogManaged".into()]),
            writer_features: None,
        };
        assert!(matches!(p.ensure_readable(), Err(DeltaError::CatalogManaged { .. })));
    }
}
