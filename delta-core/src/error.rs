//! The one error type of `delta-core`.
//!
//! Every variant carries structured fields (versions, paths, feature names) so callers can react to
//! the kind of failure without parsing messages. [`DeltaError::Internal`] means "this is a bug in
//! delta-core"; every other variant describes the table, the input or the environment.

use std::fmt;

/// Result alias used across the crate.
pub type DeltaResult<T, E = DeltaError> = std::result::Result<T, E>;

/// What a refused path was meant to be, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A data file named by an `add` or `remove` action.
    Data,
    /// A deletion vector file.
    DeletionVector,
    /// A change data file named by a `cdc` action.
    ChangeData,
    /// A checkpoint sidecar file.
    Sidecar,
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathKind::Data => "data file",
            PathKind::DeletionVector => "deletion vector",
            PathKind::ChangeData => "change data file",
            PathKind::Sidecar => "sidecar",
        })
    }
}

/// Errors raised by delta-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The location has no `_delta_log` directory (or it is empty of any log file).
    #[error("not a Delta table: {location} has no _delta_log")]
    NotATable { location: String },

    /// The `_delta_log` exists but holds no commit or checkpoint file.
    #[error("no commits: {location}/_delta_log holds no commit or checkpoint")]
    NoCommits { location: String },

    /// The requested version does not exist (yet, or any more).
    #[error("version {requested} is not available: the table's versions are {earliest}..={latest}")]
    VersionNotFound { requested: i64, earliest: i64, latest: i64 },

    /// No commit at or before the requested timestamp.
    #[error("timestamp {timestamp_ms} ms is before the earliest retained commit ({earliest_ms} ms)")]
    TimestampTooEarly { timestamp_ms: i64, earliest_ms: i64 },

    /// The requested timestamp is after the latest commit.
    #[error("timestamp {timestamp_ms} ms is after the latest commit ({latest_ms} ms)")]
    TimestampAfterLatest { timestamp_ms: i64, latest_ms: i64 },

    /// The log has a gap between two versions that must be contiguous.
    #[error("log versions are not contiguous: missing commit(s) between {before} and {after}")]
    VersionsNotContiguous { before: i64, after: i64 },

    /// The log up to the snapshot's version has no `protocol` action.
    #[error("no protocol action in the log up to version {version}")]
    MissingProtocol { version: i64 },

    /// The log up to the snapshot's version has no `metaData` action.
    #[error("no metaData action in the log up to version {version}")]
    MissingMetadata { version: i64 },

    /// `minReaderVersion` outside the versions this reader implements.
    #[error("unsupported reader version {version}: this reader supports versions 1 to 3")]
    UnsupportedReaderVersion { version: i32 },

    /// `minWriterVersion` outside the versions this writer implements.
    #[error("unsupported writer version {version}")]
    UnsupportedWriterVersion { version: i32 },

    /// A writer feature this implementation cannot honour when writing.
    #[error("unsupported writer feature `{feature}`: refusing to write to the table")]
    UnsupportedWriterFeature { feature: String },

    /// A change would leave the table breaking a writer requirement of one of its features
    /// (IcebergCompatV1/V2, clustering): nothing was committed.
    #[error("table feature `{feature}` does not allow this: {reason}")]
    FeatureRequirement { feature: String, reason: String },

    /// A reader feature this implementation does not support.
    #[error("unsupported reader feature `{feature}`: refusing to read the table")]
    UnsupportedReaderFeature { feature: String },

    /// The table is managed by a catalog; commits must come from it, not from the filesystem.
    #[error("table is catalog-managed (reader feature `{feature}`): its commits must be read through the managing catalog")]
    CatalogManaged { feature: String },

    /// A log file could not be parsed.
    #[error("corrupt log file {path}: {reason}")]
    CorruptLog { path: String, reason: String },

    /// A checkpoint could not be read or is inconsistent.
    #[error("invalid checkpoint at version {version}: {reason}")]
    InvalidCheckpoint { version: i64, reason: String },

    /// The version checksum (CRC) file disagrees with the replayed state.
    #[error("checksum mismatch at version {version}: {field} is {actual} but the .crc file says {expected}")]
    ChecksumMismatch { version: i64, field: &'static str, expected: String, actual: String },

    /// The schema string could not be parsed or violates a rule.
    #[error("invalid schema: {reason}")]
    InvalidSchema { reason: String },

    /// A data type this implementation does not know.
    #[error("unsupported data type `{data_type}`")]
    UnsupportedType { data_type: String },

    /// A path that resolves outside the table root.
    #[error("{kind} path `{path}` resolves outside the table root; refusing to access it (allow its location with TableOptions::allowed_external_prefixes, `--allow-external` in the CLI, if it is trusted, e.g. a shallow clone's source)")]
    PathOutsideTable { kind: PathKind, path: String },

    /// A path that cannot be parsed.
    #[error("invalid {kind} path `{path}`: {reason}")]
    InvalidPath { kind: PathKind, path: String, reason: String },

    /// A data file referenced by the log does not exist.
    #[error("data file not found: {path}")]
    DataFileNotFound { path: String },

    /// A deletion vector file referenced by the log does not exist.
    #[error("deletion vector file not found: {path}")]
    DeletionVectorNotFound { path: String },

    /// A deletion vector descriptor or bitmap is malformed.
    #[error("invalid deletion vector: {reason}")]
    InvalidDeletionVector { reason: String },

    /// A partition value cannot be parsed as its column's type.
    #[error("invalid partition value {value:?} for column `{column}` of type {data_type}")]
    InvalidPartitionValue { column: String, value: String, data_type: String },

    /// Statistics JSON could not be parsed (reads ignore bad stats; this is for strict callers).
    #[error("invalid statistics: {reason}")]
    InvalidStats { reason: String },

    /// A predicate or expression could not be parsed.
    #[error("invalid expression `{text}`: {reason}")]
    InvalidExpression { text: String, reason: String },

    /// A column named in a projection or predicate does not exist.
    #[error("column `{column}` not found; available: {available}")]
    ColumnNotFound { column: String, available: String },

    /// A configured size cap was exceeded while reading untrusted input.
    #[error("{what} exceeds the limit: {actual} > {limit}")]
    LimitExceeded { what: &'static str, limit: u64, actual: u64 },

    /// A data file's contents do not match the table schema.
    #[error("data file {path} does not match the table schema: {reason}")]
    SchemaMismatch { path: String, reason: String },

    /// The store cannot make a commit visible only if no other writer made the same version
    /// visible first (conditional create), so committing there could lose data.
    #[error("refusing to commit to {url}: {reason}; Delta commits need conditional creates (S3 If-None-Match, Azure If-None-Match, GCS preconditions)")]
    UnsafeStore { url: String, reason: String },

    /// The table URL or storage options are invalid.
    #[error("invalid table location `{location}`: {reason}")]
    InvalidLocation { location: String, reason: String },

    /// A commit conflicted with a concurrent one (from `CommitOutcome::version` of a transaction).
    #[error("commit conflict: {reason}")]
    CommitConflict { reason: String },

    /// Whether a commit landed is unknown; look it up later by its transaction id.
    #[error("commit outcome unknown (txnId {txn_id}): {reason}")]
    CommitIndeterminate { txn_id: String, reason: String },

    /// VACUUM with a retention below the table's, without forcing it.
    #[error("VACUUM retention of {requested_hours} hours is shorter than the table's {table_hours} hours (delta.deletedFileRetentionDuration): readers of older versions could fail; lower the table's retention or disable the check")]
    RetentionTooShort { requested_hours: f64, table_hours: f64 },

    /// Row ids were asked of a table without the rowTracking feature.
    #[error("row ids were asked for, but the table does not support row tracking (delta.enableRowTracking)")]
    RowTrackingNotSupported,

    /// A write was refused by a table rule (schema, NOT NULL, CHECK, appendOnly …).
    #[error("write refused: {reason}")]
    WriteRefused { reason: String },

    /// MERGE: several source rows matched one target row and a matched clause would change it
    /// (delta-spark's `DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE`).
    #[error("cannot perform MERGE: {target_rows} target row(s) matched more than one source row; a matched clause would modify the same target row in possibly conflicting ways (deduplicate the source, or narrow the ON condition)")]
    MultipleSourceRowsMatched { target_rows: u64 },

    /// The change data feed was not enabled at a version in the requested range.
    #[error("change data was not recorded for version {version}: delta.enableChangeDataFeed was not true there")]
    ChangeDataNotRecorded { version: i64 },

    /// A SQL statement that cannot be run, with where in the text the problem is.
    #[error("{message} (line {line}, column {column})")]
    Sql { message: String, line: u64, column: u64 },

    /// An error from the object store.
    #[error("object store error: {source}")]
    ObjectStore {
        #[from]
        source: object_store::Error,
    },

    /// An error from the parquet reader or writer.
    #[error("parquet error in {path}: {source}")]
    Parquet { path: String, source: parquet::errors::ParquetError },

    /// An error from an Arrow kernel.
    #[error("arrow error: {source}")]
    Arrow {
        #[from]
        source: arrow::error::ArrowError,
    },

    /// A bug in delta-core: an invariant that should always hold did not.
    #[error("internal error (a bug in delta-core): {0}")]
    Internal(String),
}

impl DeltaError {
    /// A corrupt-log error for `path`.
    pub(crate) fn corrupt(path: impl fmt::Display, reason: impl fmt::Display) -> Self {
        DeltaError::CorruptLog { path: path.to_string(), reason: reason.to_string() }
    }

    /// A parquet error in `path`.
    pub(crate) fn parquet(path: impl fmt::Display, source: parquet::errors::ParquetError) -> Self {
        DeltaError::Parquet { path: path.to_string(), source }
    }

    pub(crate) fn schema(reason: impl fmt::Display) -> Self {
        DeltaError::InvalidSchema { reason: reason.to_string() }
    }

    pub(crate) fn dv(reason: impl fmt::Display) -> Self {
        DeltaError::InvalidDeletionVector { reason: reason.to_string() }
    }

    pub(crate) fn expr(text: impl fmt::Display, reason: impl fmt::Display) -> Self {
        DeltaError::InvalidExpression { text: text.to_string(), reason: reason.to_string() }
    }
}
