//! Spark's `broadcast(df)` join hint on DataFusion, which has no hints.
//!
//! ```text
//!  broadcast(df) ─► LogicalPlan::Extension(BroadcastHint)   (filters, projections and limits
//!                        │ BroadcastPlanner                    pass through it)
//!                        ▼
//!                   BroadcastHintExec (a marker, rows pass untouched)
//!                        │ BroadcastJoinRule, right after DataFusion's JoinSelection
//!                        ▼
//!  HashJoinExec(mode = CollectLeft, the hinted side on the left = the build side, collected
//!  whole and shared by every probe partition); the markers are then removed.
//! ```
//!
//! The hint is found on a join input through single-input operators (a filter or projection
//! between the hint and the join), as Spark finds it. A hash join only: a join without equality
//! keys stays a nested-loop join. The automatic threshold (Spark's
//! `spark.sql.autoBroadcastJoinThreshold`) is DataFusion's own JoinSelection, fed by the Delta
//! scan's sizes; see [`crate::Session::set_conf`].
//!
//! On a Ballista cluster the scheduler plans: with its static planner the rule runs as here;
//! its adaptive planner (the default) plans with its own optimizer rules, so the query planner
//! applies the rule itself to what it planned, and no marker is ever shipped. Ballista also
//! promotes small build sides by its own thresholds (`spark.sql.autoBroadcastJoinThreshold` sets
//! them on a cluster session).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;

/// The logical marker: "build the join this input feeds from all of it".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BroadcastHint {
    input: LogicalPlan,
}

impl PartialOrd for BroadcastHint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.input.partial_cmp(&other.input)
    }
}

impl BroadcastHint {
    /// The marker node over `input` (a codec rebuilding it in another process).
    pub(crate) fn node(input: LogicalPlan) -> Self {
        BroadcastHint { input }
    }

    /// `plan` marked for broadcast.
    pub fn plan(input: LogicalPlan) -> LogicalPlan {
        LogicalPlan::Extension(Extension { node: Arc::new(BroadcastHint { input }) })
    }
}

impl UserDefinedLogicalNodeCore for BroadcastHint {
    fn name(&self) -> &str {
        "BroadcastHint"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    /// Filters pass: a filter above the hint is the same rows as one below it.
    fn prevent_predicate_push_down_columns(&self) -> std::collections::HashSet<String> {
        std::collections::HashSet::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BroadcastHint")
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs.pop().ok_or_else(|| datafusion::error::DataFusionError::Internal("BroadcastHint has one input".into()))?;
        Ok(BroadcastHint { input })
    }

    /// Projections pass: the hint needs no column of its own.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

/// The physical marker: its child's rows, untouched, until [`BroadcastJoinRule`] removes it.
#[derive(Debug)]
pub struct BroadcastHintExec {
    input: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for BroadcastHintExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BroadcastHintExec")
    }
}

impl ExecutionPlan for BroadcastHintExec {
    fn name(&self) -> &'static str {
        "BroadcastHintExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>, _: ReplaceChildrenOptions) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) => Ok(Arc::new(BroadcastHintExec { input })),
            None => Ok(self),
        }
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    /// Its input's: the marker changes no rows.
    fn statistics_from_inputs(&self, input_stats: &[Arc<Statistics>], _args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        match input_stats.first() {
            Some(s) => Ok(s.clone()),
            None => Ok(Arc::new(Statistics::new_unknown(&self.input.schema()))),
        }
    }
}

/// Plans [`BroadcastHint`] as [`BroadcastHintExec`].
#[derive(Debug)]
struct BroadcastPlanner;

#[async_trait]
impl ExtensionPlanner for BroadcastPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if node.as_any().downcast_ref::<BroadcastHint>().is_none() {
            return Ok(None);
        }
        Ok(physical_inputs.first().map(|input| Arc::new(BroadcastHintExec { input: input.clone() }) as Arc<dyn ExecutionPlan>))
    }
}

/// DataFusion's planner with the hint's extension planner and the distributed write's
/// ([`crate::write`]).
#[derive(Debug)]
pub struct HintQueryPlanner;

#[async_trait]
impl QueryPlanner for HintQueryPlanner {
    async fn create_physical_plan(&self, logical_plan: &LogicalPlan, session: &dyn datafusion::catalog::Session) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(BroadcastPlanner), Arc::new(crate::write::WritePlanner), Arc::new(crate::map::MapPlanner)]);
        // A cluster's plan goes to executors: window functions keep all their settings there.
        let on_cluster = session.config().options().extensions.get::<ballista_core::config::BallistaConfig>().is_some();
        let plan = if on_cluster {
            let logical = crate::window::for_the_cluster(logical_plan.clone())?;
            planner.create_physical_plan(&logical, session).await?
        } else {
            planner.create_physical_plan(logical_plan, session).await?
        };
        // Ballista's adaptive planner plans with its own optimizer rules, without ours: the
        // markers are still there. The rule runs here then (a hinted join that is still a hash
        // join builds from the hinted side), and no marker is left for a plan to carry. Under
        // Ballista's adaptive join selection the joins are already its own, chosen when the
        // sizes of finished stages are known.
        let mut marked = false;
        plan.apply(|node| {
            marked |= node.downcast_ref::<BroadcastHintExec>().is_some();
            Ok(if marked { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if marked {
            return BroadcastJoinRule.optimize(plan, session.config_options());
        }
        Ok(plan)
    }
}

/// Makes hash joins with a hinted input collect-left joins built from that input, then removes
/// the markers. Runs right after JoinSelection, before distribution is enforced.
#[derive(Debug, Default)]
pub struct BroadcastJoinRule;

/// Whether `plan` carries the hint: it is a marker, or a single-input operator (not a join or an
/// aggregate, which change what is built) above one.
fn hinted(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.downcast_ref::<BroadcastHintExec>().is_some() {
        return true;
    }
    let children = plan.children();
    let passes = children.len() == 1 && !plan.name().contains("Join") && !plan.name().contains("Aggregate");
    passes && children.first().is_some_and(|c| hinted(c))
}

impl PhysicalOptimizerRule for BroadcastJoinRule {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let joined = plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let (left, right) = (hinted(join.left()), hinted(join.right()));
            if left && join.partition_mode() != &PartitionMode::CollectLeft {
                return Ok(Transformed::yes(join.builder().with_partition_mode(PartitionMode::CollectLeft).build_exec()?));
            }
            if right && !left {
                // Build from the right: swap the inputs (a projection above restores the order
                // of the columns).
                return Ok(Transformed::yes(join.swap_inputs(PartitionMode::CollectLeft)?));
            }
            Ok(Transformed::no(node))
        })?;
        let cleaned = joined.data.transform_up(|node| match node.downcast_ref::<BroadcastHintExec>() {
            Some(hint) => Ok(Transformed::yes(hint.input.clone())),
            None => Ok(Transformed::no(node)),
        })?;
        Ok(cleaned.data)
    }

    fn name(&self) -> &str {
        "broadcast_join_hint"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
