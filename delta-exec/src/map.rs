//! Per-batch functions in a plan: [`DataFrame::map_batches`] applies a [`BatchMap`] (an ML
//! stage, a fitted model) to every batch of a frame, lazily, where the rows are — in this
//! process or on a cluster's executors.
//!
//! ```text
//!  df.map_batches(f) ─► LogicalPlan::Extension(MapBatches { input, f })
//!                           │ MapPlanner
//!                           ▼
//!                      MapBatchesExec: each partition of the input, batch by batch, through f
//! ```
//!
//! The output keeps the input's partitions and, within each, its row order, so a frame read
//! partition by partition comes out the same on every run. No filter, limit or sort passes
//! through the node: `f` may drop rows (an ML stage's `handleInvalid = skip`).
//!
//! On a cluster the node travels as its function's bytes ([`BatchMap::encode`]) under a kind
//! name; the process that receives it rebuilds the function with the decoder registered for
//! that kind ([`register_batch_map`]). A crate with its own functions (delta-ml) registers its
//! decoder once; the `delta` binary does so for its scheduler and executors.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use crate::session::DataFrame;

/// A function from a batch to a batch, with a fixed output schema.
pub trait BatchMap: fmt::Debug + Send + Sync {
    /// What EXPLAIN shows.
    fn name(&self) -> String;

    /// The schema of every output batch.
    fn schema(&self) -> SchemaRef;

    /// One batch through the function (it may return fewer rows).
    fn map(&self, batch: &RecordBatch) -> Result<RecordBatch>;

    /// The function as bytes for another process: a kind with a registered decoder
    /// ([`register_batch_map`]) and the bytes it decodes.
    fn encode(&self) -> Result<(String, Vec<u8>)>;
}

/// Rebuilds a [`BatchMap`] from the bytes its `encode` wrote (the output schema is given).
pub type BatchMapDecoder = fn(&[u8], SchemaRef) -> Result<Arc<dyn BatchMap>>;

fn decoders() -> &'static RwLock<HashMap<String, BatchMapDecoder>> {
    static DECODERS: OnceLock<RwLock<HashMap<String, BatchMapDecoder>>> = OnceLock::new();
    DECODERS.get_or_init(RwLock::default)
}

/// Lets this process rebuild the functions of `kind` that plans from other processes carry.
pub fn register_batch_map(kind: &str, decoder: BatchMapDecoder) {
    decoders().write().unwrap_or_else(|p| p.into_inner()).insert(kind.to_string(), decoder);
}

/// The node on the wire: kind length (u32 LE), kind, output schema as an Arrow IPC schema
/// message length (u32 LE) and bytes, then the function's bytes.
pub(crate) fn encode(map: &dyn BatchMap, buf: &mut Vec<u8>) -> Result<()> {
    let (kind, bytes) = map.encode()?;
    let mut schema = Vec::new();
    arrow::ipc::writer::StreamWriter::try_new(&mut schema, &map.schema())?.finish()?;
    for part in [kind.as_bytes(), &schema] {
        let len = u32::try_from(part.len()).map_err(|_| DataFusionError::Internal("a batch function's header is too long to send".into()))?;
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(part);
    }
    buf.extend_from_slice(&bytes);
    Ok(())
}

pub(crate) fn decode(mut buf: &[u8]) -> Result<Arc<dyn BatchMap>> {
    let bad = |what: &str| DataFusionError::Internal(format!("cannot decode a batch function sent by the cluster: {what}"));
    let mut part = || -> Result<&[u8]> {
        let (len, rest) = buf.split_first_chunk::<4>().ok_or_else(|| bad("cut short"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad("cut short"));
        }
        let (p, rest) = rest.split_at(len);
        buf = rest;
        Ok(p)
    };
    let kind = String::from_utf8_lossy(part()?).into_owned();
    let schema = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(part()?), None)?.schema();
    let decoder = decoders().read().unwrap_or_else(|p| p.into_inner()).get(&kind).copied();
    let decoder = decoder.ok_or_else(|| {
        DataFusionError::Plan(format!("the plan applies a `{kind}` function to batches, and this process has no decoder for it (a build without that crate, or one that did not register it)"))
    })?;
    let map = decoder(buf, schema.clone())?;
    if map.schema() != schema {
        return Err(bad(&format!("`{kind}` decoded to another schema than it was sent with")));
    }
    Ok(map)
}

/// The logical node.
#[derive(Debug, Clone)]
pub struct MapBatches {
    input: LogicalPlan,
    map: Arc<dyn BatchMap>,
    schema: DFSchemaRef,
}

impl MapBatches {
    pub(crate) fn try_new(input: LogicalPlan, map: Arc<dyn BatchMap>) -> Result<Self> {
        let schema = Arc::new(DFSchema::try_from(map.schema().as_ref().clone())?);
        Ok(MapBatches { input, map, schema })
    }

    pub(crate) fn map(&self) -> &Arc<dyn BatchMap> {
        &self.map
    }
}

// Nodes are equal when they apply the same function object to the same input.
impl PartialEq for MapBatches {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.map, &other.map) && self.input == other.input
    }
}

impl Eq for MapBatches {}

impl Hash for MapBatches {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.map) as *const () as usize).hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for MapBatches {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if !Arc::ptr_eq(&self.map, &other.map) {
            return None;
        }
        self.input.partial_cmp(&other.input)
    }
}

impl UserDefinedLogicalNodeCore for MapBatches {
    fn name(&self) -> &str {
        "MapBatches"
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
        write!(f, "MapBatches: {}", self.map.name())
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs.pop().ok_or_else(|| DataFusionError::Internal("MapBatches has one input".into()))?;
        Ok(MapBatches { input, ..self.clone() })
    }

    /// The function sees every input column.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![(0..self.input.schema().fields().len()).collect()])
    }
}

/// Each partition of the input through the function.
#[derive(Debug)]
pub struct MapBatchesExec {
    input: Arc<dyn ExecutionPlan>,
    map: Arc<dyn BatchMap>,
    properties: Arc<PlanProperties>,
}

impl MapBatchesExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, map: Arc<dyn BatchMap>) -> Self {
        let input_properties = input.properties();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(map.schema()),
            input_properties.output_partitioning().clone(),
            input_properties.emission_type,
            input_properties.boundedness,
        ));
        MapBatchesExec { input, map, properties }
    }

    pub fn map(&self) -> &Arc<dyn BatchMap> {
        &self.map
    }
}

impl DisplayAs for MapBatchesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MapBatchesExec: {}", self.map.name())
    }
}

impl ExecutionPlan for MapBatchesExec {
    fn name(&self) -> &'static str {
        "MapBatchesExec"
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
            Some(input) => Ok(Arc::new(MapBatchesExec::new(input, self.map.clone()))),
            None => Ok(self),
        }
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let map = self.map.clone();
        let schema = map.schema();
        let out = input.map(move |b| map.map(&b?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, out)))
    }

    /// Rows keep their partition and order: the input is not re-split for the function.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }
}

/// Plans [`MapBatches`] as [`MapBatchesExec`].
#[derive(Debug)]
pub(crate) struct MapPlanner;

#[async_trait]
impl ExtensionPlanner for MapPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<MapBatches>() else { return Ok(None) };
        let input = physical_inputs.first().ok_or_else(|| DataFusionError::Internal("MapBatches has one input".into()))?;
        Ok(Some(Arc::new(MapBatchesExec::new(input.clone(), node.map.clone()))))
    }
}

impl DataFrame {
    /// `f` applied to every batch of this frame, lazily, in the process that holds the rows
    /// (on a cluster: the executors). Partitions and row order are kept.
    pub fn map_batches(&self, f: Arc<dyn BatchMap>) -> Result<DataFrame> {
        let (state, plan) = self.inner().clone().into_parts();
        let node = MapBatches::try_new(plan, f)?;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        Ok(self.with(datafusion::dataframe::DataFrame::new(state, plan)))
    }
}
