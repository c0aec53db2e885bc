//! A Delta table's change data feed as a table of the engine (`read().option("readChangeFeed",
//! "true")`, `table_changes(..)` in SQL, [`crate::DataFrame::join_features_as_of`]'s history).
//!
//! The feed is planned once, from the log (delta-core's `table_changes`: which files of which
//! commits, read how), and its rows are read when the plan runs, streamed, by whichever process
//! runs it: on a cluster an executor reads the files itself, as for any scan, and the plan
//! carries only the list of files (never the rows).
//!
//! The scan is one partition, in commit order. (Ballista restricts only leaves it knows to a
//! task's partitions, see [`crate::file_source`]; a leaf of several partitions would be read
//! whole by every task.) Operators above it run in parallel after DataFusion's repartitioning.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use delta_core::cdf::{ChangeFiles, Changes};
use delta_core::{Expr as DeltaExpr, Snapshot};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::provider::df_error;

/// A change feed, planned: what to read and how.
#[derive(Debug, Clone)]
pub struct ChangeFeedProvider {
    snapshot: Snapshot,
    predicate: Option<DeltaExpr>,
    groups: Vec<ChangeFiles>,
    schema: SchemaRef,
}

/// A change feed as the codecs send it: the snapshot's definition, the files and, for a scan,
/// the columns it outputs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChangesWire {
    pub table: String,
    version: i64,
    protocol: delta_core::protocol::Protocol,
    metadata: delta_core::protocol::Metadata,
    predicate: Option<DeltaExpr>,
    groups: Vec<ChangeFiles>,
    projection: Option<Vec<usize>>,
}

impl ChangeFeedProvider {
    pub fn new(changes: Changes) -> Self {
        let schema = changes.schema();
        let (snapshot, predicate, groups) = changes.into_parts();
        ChangeFeedProvider { snapshot, predicate, groups, schema }
    }

    /// Data files (and change data files) the feed reads.
    pub fn num_files(&self) -> usize {
        self.groups.iter().map(|g| g.files.len()).sum()
    }

    fn wire(&self, projection: Option<Vec<usize>>) -> ChangesWire {
        ChangesWire {
            table: self.snapshot.location().root_url().to_string(),
            version: self.snapshot.version(),
            protocol: self.snapshot.protocol().clone(),
            metadata: self.snapshot.metadata().clone(),
            predicate: self.predicate.clone(),
            groups: self.groups.clone(),
            projection,
        }
    }

    pub(crate) fn to_wire(&self) -> ChangesWire {
        self.wire(None)
    }

    /// The feed `wire` describes, reading through `location` (opened by the receiving process).
    pub(crate) fn from_wire(wire: ChangesWire, location: delta_core::storage::TableLocation) -> Result<Self> {
        let snapshot = Snapshot::definition(location, wire.version, wire.protocol, wire.metadata).map_err(df_error)?;
        Ok(ChangeFeedProvider::new(Changes::from_parts(snapshot, wire.predicate, wire.groups)))
    }
}

#[async_trait]
impl TableProvider for ChangeFeedProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(&self, _state: &dyn CatalogSession, projection: Option<&Vec<usize>>, _filters: &[Expr], _limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ChangeFeedExec::new(self.clone(), projection.cloned())?))
    }
}

/// Reads a change feed's files in commit order (one partition).
#[derive(Debug)]
pub struct ChangeFeedExec {
    feed: ChangeFeedProvider,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl ChangeFeedExec {
    fn new(feed: ChangeFeedProvider, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(feed.schema.project(p)?),
            None => feed.schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(EquivalenceProperties::new(schema), Partitioning::UnknownPartitioning(1), EmissionType::Incremental, Boundedness::Bounded));
        Ok(ChangeFeedExec { feed, projection, properties })
    }

    pub(crate) fn to_wire(&self) -> ChangesWire {
        self.feed.wire(self.projection.clone())
    }

    pub(crate) fn from_wire(mut wire: ChangesWire, location: delta_core::storage::TableLocation) -> Result<Self> {
        let projection = wire.projection.take();
        ChangeFeedExec::new(ChangeFeedProvider::from_wire(wire, location)?, projection)
    }
}

impl DisplayAs for ChangeFeedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let versions = match (self.feed.groups.first(), self.feed.groups.last()) {
            (Some(a), Some(b)) => format!("{}..={}", a.version, b.version),
            _ => "none".into(),
        };
        write!(f, "ChangeFeedExec: commits={versions}, files={}", self.feed.num_files())
    }
}

impl ExecutionPlan for ChangeFeedExec {
    fn name(&self) -> &'static str {
        "ChangeFeedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(self: Arc<Self>, _: Vec<Arc<dyn ExecutionPlan>>, _: ReplaceChildrenOptions) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("a change feed scan has one partition, not {}", partition + 1)));
        }
        let feed = &self.feed;
        let changes = Changes::from_parts(feed.snapshot.clone(), feed.predicate.clone(), feed.groups.clone());
        let projection = self.projection.clone();
        let rows = changes.execute().map(move |r| {
            let batch = r.map_err(df_error)?;
            match &projection {
                Some(p) => Ok(batch.project(p)?),
                None => Ok(batch),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.properties.eq_properties.schema().clone(), rows)))
    }
}
