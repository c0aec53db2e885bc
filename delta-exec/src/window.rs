//! Spark's `Window` specifications: `Window::partition_by(["user"]).order_by(["ts"])` with an
//! optional row or range frame, applied to a window function (`lag`, `lead`, `row_number`,
//! `rank`, `dense_rank`, or an aggregate such as `sum`) by [`crate::DataFrame::over`] and
//! [`crate::DataFrame::with_column_over`].
//!
//! A specification renders to the SQL `OVER (…)` clause DataFusion plans, so a window written
//! here and the same window in SQL are the same plan. Without a frame, the frame is Spark's: the
//! whole partition when unordered, `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` when
//! ordered. Ordering keys take `ASC`/`DESC` and `NULLS FIRST`/`NULLS LAST`, with Spark's defaults
//! (ascending puts nulls first).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::expr::{NullTreatment, WindowFunction};
use datafusion::logical_expr::function::{ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Expr, LimitEffect, LogicalPlan, PartitionEvaluator, ReversedUDWF, Signature, WindowFunctionDefinition, WindowUDF, WindowUDFImpl};

/// Frame boundary: every row before (Spark's `Window.unboundedPreceding`).
pub const UNBOUNDED_PRECEDING: i64 = i64::MIN;
/// Frame boundary: the current row (`Window.currentRow`).
pub const CURRENT_ROW: i64 = 0;
/// Frame boundary: every row after (`Window.unboundedFollowing`).
pub const UNBOUNDED_FOLLOWING: i64 = i64::MAX;

/// Spark's `Window` object: where specifications start.
pub struct Window;

impl Window {
    /// `Window.partitionBy(cols)`.
    pub fn partition_by(columns: &[&str]) -> WindowSpec {
        WindowSpec::default().partition_by(columns)
    }

    /// `Window.orderBy(cols)`: one partition, ordered.
    pub fn order_by(keys: &[&str]) -> WindowSpec {
        WindowSpec::default().order_by(keys)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameUnit {
    Rows,
    Range,
}

/// A window specification (Spark's `WindowSpec`).
#[derive(Debug, Clone, Default)]
pub struct WindowSpec {
    partition: Vec<String>,
    order: Vec<String>,
    frame: Option<(FrameUnit, i64, i64)>,
}

impl WindowSpec {
    /// Partitioning columns or expressions (replacing any given before).
    pub fn partition_by(mut self, columns: &[&str]) -> Self {
        self.partition = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Ordering keys, each `expr [ASC|DESC] [NULLS FIRST|NULLS LAST]` (replacing any before).
    pub fn order_by(mut self, keys: &[&str]) -> Self {
        self.order = keys.iter().map(|c| c.to_string()).collect();
        self
    }

    /// `rowsBetween(start, end)`: physical rows relative to the current one (negative before,
    /// positive after; [`UNBOUNDED_PRECEDING`], [`CURRENT_ROW`], [`UNBOUNDED_FOLLOWING`]).
    pub fn rows_between(mut self, start: i64, end: i64) -> Self {
        self.frame = Some((FrameUnit::Rows, start, end));
        self
    }

    /// `rangeBetween(start, end)`: rows whose ordering value is within the offsets of the
    /// current row's (one numeric ordering key).
    pub fn range_between(mut self, start: i64, end: i64) -> Self {
        self.frame = Some((FrameUnit::Range, start, end));
        self
    }

    /// The `OVER (…)` clause.
    pub fn to_sql(&self) -> String {
        let mut parts = Vec::new();
        if !self.partition.is_empty() {
            parts.push(format!("PARTITION BY {}", self.partition.join(", ")));
        }
        if !self.order.is_empty() {
            parts.push(format!("ORDER BY {}", self.order.join(", ")));
        }
        if let Some((unit, start, end)) = self.frame {
            let unit = match unit {
                FrameUnit::Rows => "ROWS",
                FrameUnit::Range => "RANGE",
            };
            parts.push(format!("{unit} BETWEEN {} AND {}", bound(start), bound(end)));
        }
        format!("OVER ({})", parts.join(" "))
    }
}

fn bound(offset: i64) -> String {
    match offset {
        UNBOUNDED_PRECEDING => "UNBOUNDED PRECEDING".into(),
        UNBOUNDED_FOLLOWING => "UNBOUNDED FOLLOWING".into(),
        CURRENT_ROW => "CURRENT ROW".into(),
        n if n < 0 => format!("{} PRECEDING", n.unsigned_abs()),
        n => format!("{n} FOLLOWING"),
    }
}

// ---------------------------------------------------------------------------------------------
// Window functions on a cluster.
//
// DataFusion 55 sends a physical window expression to executors without two of its settings:
// `IGNORE NULLS` of a window function (`lag`, `lead`, `first_value`, `last_value`,
// `nth_value`: the flag is written as false) and `FILTER (WHERE …)` of an aggregate. Executors
// would then answer silently differently from a local session (apache/datafusion#17417 is the
// logical side of it). Before a cluster session plans a query physically:
// * a window function with `IGNORE NULLS` is wrapped in [`IgnoreNulls`], which keeps the flag
//   inside the function: its name and result are the function's, and the codecs carry it as the
//   function's own encoding ([`encode_udwf`], [`decode_udwf`]);
// * a `FILTER` on a window aggregate is refused with a plan error.

/// A window function evaluated with `IGNORE NULLS` whatever its evaluation is told.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IgnoreNulls {
    inner: Arc<WindowUDF>,
}

impl IgnoreNulls {
    pub fn wrap(inner: Arc<WindowUDF>) -> Arc<WindowUDF> {
        if inner.inner().is::<IgnoreNulls>() {
            return inner;
        }
        Arc::new(WindowUDF::new_from_impl(IgnoreNulls { inner }))
    }
}

#[warn(clippy::missing_trait_methods)]
impl WindowUDFImpl for IgnoreNulls {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn expressions(&self, expr_args: ExpressionArgs) -> Vec<Arc<dyn datafusion::physical_plan::PhysicalExpr>> {
        self.inner.inner().expressions(expr_args)
    }

    fn partition_evaluator(&self, args: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        self.inner.partition_evaluator_factory(PartitionEvaluatorArgs::new(args.input_exprs(), args.input_fields(), args.is_reversed(), true))
    }

    fn simplify(&self) -> Option<datafusion::logical_expr::function::WindowFunctionSimplification> {
        self.inner.simplify()
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        self.inner.field(field_args)
    }

    fn sort_options(&self) -> Option<arrow::compute::SortOptions> {
        self.inner.sort_options()
    }

    fn coerce_types(&self, arg_types: &[arrow::datatypes::DataType]) -> Result<Vec<arrow::datatypes::DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn reverse_expr(&self) -> ReversedUDWF {
        // A reversed `last_value` is a `first_value`: it ignores nulls too.
        match self.inner.reverse_expr() {
            ReversedUDWF::Reversed(f) => ReversedUDWF::Reversed(IgnoreNulls::wrap(f)),
            other => other,
        }
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }

    fn limit_effect(&self, args: &[Arc<dyn datafusion::physical_plan::PhysicalExpr>]) -> LimitEffect {
        self.inner.inner().limit_effect(args)
    }
}

/// What [`IgnoreNulls`] is on the wire: this tag, then the wrapped function's name.
const IGNORE_NULLS_TAG: &[u8] = b"delta-window-ignore-nulls:";

/// Encodes `node` if it is [`IgnoreNulls`]; `false` leaves it to the next codec.
pub(crate) fn encode_udwf(node: &WindowUDF, buf: &mut Vec<u8>) -> bool {
    let Some(wrapped) = node.inner().downcast_ref::<IgnoreNulls>() else {
        return false;
    };
    buf.extend_from_slice(IGNORE_NULLS_TAG);
    buf.extend_from_slice(wrapped.inner.name().as_bytes());
    true
}

/// Decodes what [`encode_udwf`] wrote; `None` for anything else. The wrapped function is one of
/// DataFusion's own window functions.
pub(crate) fn decode_udwf(buf: &[u8]) -> Option<Result<Arc<WindowUDF>>> {
    let name = buf.strip_prefix(IGNORE_NULLS_TAG)?;
    let name = String::from_utf8_lossy(name);
    let found = datafusion::functions_window::all_default_window_functions().into_iter().find(|f| f.name() == name);
    Some(found.map(IgnoreNulls::wrap).ok_or_else(|| DataFusionError::Internal(format!("a plan names an unknown window function `{name}` with IGNORE NULLS"))))
}

/// `plan` made ready to be planned for a cluster (above): `IGNORE NULLS` kept inside the
/// functions, `FILTER` on window aggregates refused.
pub(crate) fn for_the_cluster(plan: LogicalPlan) -> Result<LogicalPlan> {
    let out = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| {
                let Expr::WindowFunction(w) = &e else {
                    return Ok(Transformed::no(e));
                };
                if w.params.filter.is_some() {
                    return Err(DataFusionError::Plan(format!(
                        "{}: FILTER (WHERE …) in a window function cannot run on a cluster: DataFusion 55 drops it when it sends the plan to executors; write the condition into the argument (CASE WHEN … THEN x END)",
                        e.schema_name()
                    )));
                }
                match (&w.fun, w.params.null_treatment) {
                    (WindowFunctionDefinition::WindowUDF(f), Some(NullTreatment::IgnoreNulls)) if !f.inner().is::<IgnoreNulls>() => {
                        let mut w: WindowFunction = w.as_ref().clone();
                        w.fun = WindowFunctionDefinition::WindowUDF(IgnoreNulls::wrap(f.clone()));
                        Ok(Transformed::yes(Expr::from(w)))
                    }
                    _ => Ok(Transformed::no(e)),
                }
            })
        })
    })?;
    Ok(out.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_spark_frames() {
        let w = Window::partition_by(&["user"]).order_by(&["ts DESC"]).rows_between(-2, CURRENT_ROW);
        assert_eq!(w.to_sql(), "OVER (PARTITION BY user ORDER BY ts DESC ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)");
        let w = Window::order_by(&["ts"]).range_between(UNBOUNDED_PRECEDING, UNBOUNDED_FOLLOWING);
        assert_eq!(w.to_sql(), "OVER (ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)");
        assert_eq!(Window::partition_by(&["a", "b"]).to_sql(), "OVER (PARTITION BY a, b)");
    }
}
