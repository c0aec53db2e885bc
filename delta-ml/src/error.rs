//! The one error type of delta-ml: every failure is typed, names what is wrong, and never panics.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use delta_core::DeltaError;
use parquet::errors::ParquetError;

/// What went wrong in a stage, a spec, a model file or the data.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A param name the stage does not have.
    #[error("{stage}: unknown param `{param}` (known: {known})")]
    UnknownParam { stage: String, param: String, known: String },
    /// A param with a value of the wrong type or outside its range.
    #[error("{stage}: param `{param}`: {message}")]
    InvalidParam { stage: String, param: String, message: String },
    /// A stage name no registry knows.
    #[error("unknown stage `{0}`")]
    UnknownStage(String),
    /// A column that is missing or has the wrong type.
    #[error("column `{column}`: {message}")]
    Column { column: String, message: String },
    /// Data a stage cannot handle under its `handleInvalid` (nulls, NaN, unseen labels, …).
    #[error("{0}")]
    InvalidData(String),
    /// A saved model or pipeline that cannot be read (format version, missing file, bad JSON).
    #[error("model format: {0}")]
    Format(String),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    #[error(transparent)]
    Exec(#[from] DataFusionError),
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, MlError>;

pub(crate) fn column_error(column: &str, message: impl Into<String>) -> MlError {
    MlError::Column { column: column.to_string(), message: message.into() }
}

pub(crate) fn invalid(message: impl Into<String>) -> MlError {
    MlError::InvalidData(message.into())
}
