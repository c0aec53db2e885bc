//! Delta log actions, table features and the reader gate.
//!
//! The small actions (protocol, metaData, txn, domainMetadata, commitInfo, checkpointMetadata,
//! sidecar) are plain serde structs. File actions (`add`, `remove`) are never materialised one
//! struct per file during replay: they stay in Arrow columns (see [`crate::log::replay`]); the
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

/// Features that are both reader and writer features (the rest are writer-only).
pub const READER_WRITER_FEATURES: &[&str] = &[
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "v2Checkpoint",
    "typeWidening",
    "typeWidening-preview",
    "variantType",
    "variantType-preview",
    "variantShredding",
    "variantShredding-preview",
    "vacuumProtocolCheck",
    "catalogManaged",
    "catalogOwned-preview",
    "geospatial",
];

impl Protocol {
    /// The writer features this protocol has, legacy versions spelled out as features.
    pub fn effective_writer_features(&self) -> Vec<String> {
        if self.min_writer_version >= 7 {
            return self.writer_features.clone().unwrap_or_default();
        }
        let mut out = Vec::new();
        for (version, names) in [
            (2, &["appendOnly", "invariants"][..]),
            (3, &["checkConstraints"][..]),
            (4, &["changeDataFeed", "generatedColumns"][..]),
            (5, &["columnMapping"][..]),
            (6, &["identityColumns"][..]),
        ] {
            if self.min_writer_version >= version {
                out.extend(names.iter().map(|n| n.to_string()));
            }
        }
        out
    }

    /// The reader features this protocol has, legacy versions spelled out as features.
    pub fn effective_reader_features(&self) -> Vec<String> {
        match self.min_reader_version {
            3.. => self.reader_features.clone().unwrap_or_default(),
            2 => vec!["columnMapping".to_string()],
            _ => Vec::new(),
        }
    }

    /// The smallest protocol that has everything `self` and `other` have: `None` when `self`
    /// already does. Legacy versions stay legacy while they suffice; otherwise table features
    /// (writer 7, and reader 3 when a reader feature beyond column mapping is needed), with the
    /// features legacy versions implied listed explicitly.
    pub fn upgraded_with(&self, other: &Protocol) -> Option<Protocol> {
        let mut writer = self.effective_writer_features();
        let mut reader = self.effective_reader_features();
        let before = (writer.len(), reader.len());
        for f in other.effective_writer_features() {
            // A legacy version's blanket implications are not requests: a table-features table
            // that does not list appendOnly or invariants does not need them for `other`'s sake.
            let implied_only = self.min_writer_version >= 7 && other.min_writer_version < 7 && (f == "appendOnly" || f == "invariants");
            if !writer.contains(&f) && !implied_only {
                writer.push(f);
            }
        }
        for f in other.effective_reader_features() {
            if !reader.contains(&f) {
                reader.push(f);
            }
        }
        // Every reader feature is also a writer feature.
        for f in &reader {
            if !writer.contains(f) {
                writer.push(f.clone());
            }
        }
        let versions_suffice = other.min_reader_version <= self.min_reader_version && other.min_writer_version <= self.min_writer_version;
        if versions_suffice && (writer.len(), reader.len()) == before {
            return None;
        }
        let legacy = |candidate: &Protocol| {
            let mut w = candidate.effective_writer_features();
            let mut r = candidate.effective_reader_features();
            w.sort();
            r.sort();
            let mut ww = writer.clone();
            let mut rr = reader.clone();
            ww.sort();
            rr.sort();
            // A legacy version may imply more than needed; it must imply at least that.
            rr.iter().all(|f| r.contains(f)) && ww.iter().all(|f| w.contains(f))
        };
        if self.min_writer_version < 7 && other.min_writer_version < 7 {
            let candidate = Protocol {
                min_reader_version: self.min_reader_version.max(other.min_reader_version),
                min_writer_version: self.min_writer_version.max(other.min_writer_version),
                reader_features: None,
                writer_features: None,
            };
            if legacy(&candidate) {
                return Some(candidate);
            }
        }
        let reader_version =
            if reader.iter().all(|f| f == "columnMapping") { self.min_reader_version.max(other.min_reader_version).min(2) } else { 3 };
        Some(Protocol {
            min_reader_version: reader_version,
            min_writer_version: 7,
            reader_features: (reader_version == 3).then_some(reader),
            writer_features: Some(writer),
        })
    }

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
    fn proto(r: i32, w: i32, rf: Option<&[&str]>, wf: Option<&[&str]>) -> Protocol {
        Protocol {
            min_reader_version: r,
            min_writer_version: w,
            reader_features: rf.map(|f| f.iter().map(|s| s.to_string()).collect()),
            writer_features: wf.map(|f| f.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn upgrades_stay_legacy_while_they_can_and_keep_every_feature() {
        // Legacy + legacy: the larger versions.
        assert_eq!(proto(1, 2, None, None).upgraded_with(&proto(1, 3, None, None)), Some(proto(1, 3, None, None)));
        assert_eq!(proto(1, 4, None, None).upgraded_with(&proto(1, 3, None, None)), None);
        // Legacy + a reader feature: table features, the legacy implications spelled out.
        let up = proto(1, 4, None, None).upgraded_with(&proto(3, 7, Some(&["deletionVectors"]), Some(&["deletionVectors"]))).unwrap();
        assert_eq!((up.min_reader_version, up.min_writer_version), (3, 7));
        let w = up.writer_features.unwrap();
        for f in ["appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns", "deletionVectors"] {
            assert!(w.contains(&f.to_string()), "{f} in {w:?}");
        }
        assert_eq!(up.reader_features.unwrap(), vec!["deletionVectors".to_string()]);
        // Column mapping (reader 2) + a writer-only feature: reader stays 2.
        let up = proto(2, 5, None, None).upgraded_with(&proto(1, 7, None, Some(&["domainMetadata"]))).unwrap();
        assert_eq!((up.min_reader_version, up.min_writer_version), (2, 7));
        assert!(up.writer_features.unwrap().contains(&"columnMapping".to_string()));
        // Column mapping (reader 2) + a reader feature: reader 3 lists columnMapping too.
        let up = proto(2, 5, None, None).upgraded_with(&proto(3, 7, Some(&["timestampNtz"]), Some(&["timestampNtz"]))).unwrap();
        let r = up.reader_features.unwrap();
        assert!(r.contains(&"columnMapping".to_string()) && r.contains(&"timestampNtz".to_string()));
        // Features already there: nothing to do; legacy implications do not add appendOnly.
        let t = proto(3, 7, Some(&["deletionVectors"]), Some(&["deletionVectors"]));
        assert_eq!(t.upgraded_with(&proto(1, 2, None, None)), None);
        assert_eq!(t.upgraded_with(&proto(3, 7, Some(&["deletionVectors"]), Some(&["deletionVectors"]))), None);
    }

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
