//! `SQLTransformer`: a query over `__THIS__`, run by the engine.

use std::any::Any;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use serde_json::Value;

use crate::error::{invalid, Result};
use crate::params::{Kind, ParamSpec, Params};
use crate::stage::Transformer;

static PARAMS: &[ParamSpec] = &[ParamSpec::new("statement", Kind::Str, "")];

/// `SELECT *, a * b AS ab FROM __THIS__ WHERE …`: any Spark SQL query delta-exec runs, with
/// the stage's input as `__THIS__`. It transforms DataFrames (through the engine), not single
/// batches in isolation.
#[derive(Debug, Clone)]
pub struct SQLTransformer {
    params: Params,
}

impl Default for SQLTransformer {
    fn default() -> Self {
        Self::new()
    }
}

impl SQLTransformer {
    /// The params, to set by name.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    pub fn new() -> Self {
        SQLTransformer { params: Params::new("SQLTransformer", PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

impl Transformer for SQLTransformer {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, _schema: &Schema) -> Result<Schema> {
        Err(invalid("SQLTransformer's output schema is known only when its query is planned on a DataFrame"))
    }

    fn transform_batch(&self, _batch: &RecordBatch) -> Result<RecordBatch> {
        Err(invalid("SQLTransformer runs on DataFrames (its statement is planned by the engine), not on single batches"))
    }

    fn sql_statement(&self) -> Option<String> {
        self.params.string("statement").ok()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
