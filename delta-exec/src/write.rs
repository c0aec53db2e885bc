//! Distributed writes: the executors of a cluster write a query's rows straight into the Delta
//! table's store, and the client commits what they wrote, once.
//!
//! ```text
//!  client: df.write().save(url), INSERT INTO, CTAS on a cluster session
//!    Table::begin_write(query schema, options)  ── save mode, table creation, schema evolution,
//!        │                                          partitioning: decided before any row is read
//!        ▼
//!    DeltaWrite(query plan, WriteTask)  ──DeltaLogicalCodec──►  scheduler: DeltaWriteExec over
//!                                                               the query's last stage
//!                                                                    │ DeltaPhysicalCodec
//!                                                                    ▼
//!    executors: each partition's rows checked (schema, NOT NULL, CHECK, generated columns) and
//!    written as parquet files by delta-core (TaskWriter); one row out per file: its `add` as JSON
//!        │
//!        ▼
//!  client: FileWrite::commit_files(adds) ── overwrite removes, metadata, conflict checks and
//!          retries as any write: one commit
//! ```
//!
//! A failed job commits nothing: the files its tasks wrote are never referenced (VACUUM removes
//! them), and a task run twice (a retry) returns only its own files. Storage credentials do not
//! travel: each process opens the table's URL with its own options.
//!
//! Writes a cluster cannot split run on the client from the query's rows (as a local session
//! writes): a table with identity columns (one writer hands out their values) and a
//! `replaceWhere` overwrite (see [`delta_core::write::FileWrite::task`]).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use delta_core::actions::AddFile;
use delta_core::storage::TableLocation;
use delta_core::write::WriteTask;
use futures::StreamExt;

use crate::provider::df_error;

/// The one column a write's plan outputs: each written file's `add` action as JSON.
pub const ADD_COLUMN: &str = "add";

fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(ADD_COLUMN, DataType::Utf8, false)]))
}

/// What a write node carries between processes: the task, and the names of the columns the
/// client planned the write with. The scheduler may rename columns of the query (a path-named
/// table's name inside an unaliased expression's name, see `cluster::PlainTableNames`); the
/// executors write each batch's columns, by position, under these names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteWire {
    pub task: WriteTask,
    pub columns: Vec<String>,
}

impl WriteWire {
    /// `batch` with the client's column names (by position).
    fn named(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        if schema.fields().len() != self.columns.len() || schema.fields().iter().zip(&self.columns).all(|(f, n)| f.name() == n) {
            return Ok(batch);
        }
        let fields: Vec<Field> = schema.fields().iter().zip(&self.columns).map(|(f, n)| f.as_ref().clone().with_name(n)).collect();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())?)
    }
}

/// The logical node: "write `input`'s rows as this task's data files".
#[derive(Debug, Clone)]
pub struct DeltaWrite {
    input: LogicalPlan,
    task: WriteWire,
    /// The task as sent (what the node is compared and hashed by).
    wire: String,
    location: TableLocation,
    schema: DFSchemaRef,
}

impl PartialEq for DeltaWrite {
    fn eq(&self, other: &Self) -> bool {
        self.wire == other.wire && self.input == other.input
    }
}

impl Eq for DeltaWrite {}

impl Hash for DeltaWrite {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.wire.hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for DeltaWrite {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.wire.partial_cmp(&other.wire) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            o => o,
        }
    }
}

impl DeltaWrite {
    /// `input` written as `task`'s files into the table at `location` (opened by this process).
    pub fn try_new(input: LogicalPlan, task: WriteTask, location: TableLocation) -> Result<Self> {
        let columns = input.schema().fields().iter().map(|f| f.name().clone()).collect();
        DeltaWrite::from_wire(input, WriteWire { task, columns }, location)
    }

    /// The node as a codec rebuilds it.
    pub(crate) fn from_wire(input: LogicalPlan, task: WriteWire, location: TableLocation) -> Result<Self> {
        let wire = serde_json::to_string(&task).map_err(|e| DataFusionError::Internal(format!("cannot encode a write task: {e}")))?;
        let schema = Arc::new(DFSchema::try_from(output_schema().as_ref().clone())?);
        Ok(DeltaWrite { input, task, wire, location, schema })
    }

    /// The plan of the write.
    pub fn plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension { node: Arc::new(self) })
    }

    /// The task as a codec sends it.
    pub(crate) fn wire(&self) -> &str {
        &self.wire
    }

    /// What a codec received.
    pub(crate) fn decode_task(json: &[u8]) -> Result<WriteWire> {
        serde_json::from_slice(json).map_err(|e| DataFusionError::Internal(format!("cannot decode a write task sent by the cluster: {e}")))
    }
}

impl UserDefinedLogicalNodeCore for DeltaWrite {
    fn name(&self) -> &str {
        "DeltaWrite"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeltaWrite: {}", self.task.task.table)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs.pop().ok_or_else(|| DataFusionError::Internal("DeltaWrite has one input".into()))?;
        Ok(DeltaWrite { input, ..self.clone() })
    }

    /// Every column of the input is written.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![(0..self.input.schema().fields().len()).collect()])
    }
}

/// Writes each partition of its input as data files; outputs one row per file (its `add`).
#[derive(Debug)]
pub struct DeltaWriteExec {
    input: Arc<dyn ExecutionPlan>,
    task: WriteWire,
    location: TableLocation,
    properties: Arc<PlanProperties>,
}

impl DeltaWriteExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, task: WriteWire, location: TableLocation) -> Self {
        let partitions = input.properties().output_partitioning().partition_count().max(1);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DeltaWriteExec { input, task, location, properties }
    }

    pub fn task(&self) -> &WriteWire {
        &self.task
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for DeltaWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeltaWriteExec: {}", self.task.task.table)
    }
}

impl ExecutionPlan for DeltaWriteExec {
    fn name(&self) -> &'static str {
        "DeltaWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>, _: ReplaceChildrenOptions) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) => Ok(Arc::new(DeltaWriteExec::new(input, self.task.clone(), self.location.clone()))),
            None => Ok(self),
        }
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    /// Rows are written as they arrive; the partition's files' `add`s come out at its end.
    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, context)?;
        let mut writer = self.task.task.writer(self.location.clone()).map_err(df_error)?;
        let wire = self.task.clone();
        let schema = output_schema();
        let out = schema.clone();
        let written = futures::stream::once(async move {
            while let Some(batch) = input.next().await {
                writer.write(&wire.named(batch?)?).await.map_err(df_error)?;
            }
            let (adds, _) = writer.finish().await.map_err(df_error)?;
            let json: Vec<String> = adds
                .iter()
                .map(|a| serde_json::to_string(a).map_err(|e| DataFusionError::Internal(format!("cannot encode an add action: {e}"))))
                .collect::<Result<_>>()?;
            Ok(RecordBatch::try_new(out, vec![Arc::new(StringArray::from(json))])?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, written)))
    }

    /// A partition's files are written by one task: no re-split of the input.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }
}

/// Plans [`DeltaWrite`] as [`DeltaWriteExec`].
#[derive(Debug)]
pub(crate) struct WritePlanner;

#[async_trait]
impl ExtensionPlanner for WritePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(write) = node.as_any().downcast_ref::<DeltaWrite>() else { return Ok(None) };
        let input = physical_inputs.first().ok_or_else(|| DataFusionError::Internal("DeltaWrite has one input".into()))?;
        Ok(Some(Arc::new(DeltaWriteExec::new(input.clone(), write.task.clone(), write.location.clone()))))
    }
}

/// The `add` actions in a write plan's output.
pub fn adds_of(batches: &[RecordBatch]) -> Result<Vec<AddFile>> {
    let mut adds = Vec::new();
    for b in batches {
        let column = b
            .column_by_name(ADD_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| DataFusionError::Internal("a write's output has no add column".into()))?;
        for json in column.iter().flatten() {
            adds.push(serde_json::from_str(json).map_err(|e| DataFusionError::Internal(format!("an executor returned an unreadable add: {e}")))?);
        }
    }
    Ok(adds)
}
