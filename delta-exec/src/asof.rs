//! As-of joins and point-in-time feature lookups.
//!
//! * [`DataFrame::join_asof_with`]: Polars' `join_asof` / pandas' `merge_asof` with their
//!   answers — `backward`, `forward` or `nearest`, optional `by` keys and `tolerance`; which row
//!   wins a tie is Polars' rule (pinned by a test against Polars' own output).
//! * [`DataFrame::join_features_as_of`]: the Delta-aware form. A feature table's change data
//!   feed is its history: every value each key ever had, with the version that wrote it. Each
//!   row of this frame gets the feature values that were current at its time — never a value
//!   written later. This is the point-in-time join of feature stores, answered from the Delta
//!   log instead of from a feature store's own copy.
//!
//! Both are planned as DataFusion operators, nothing hand-written: the two sides' rows, each
//! packed into one struct column, are unioned and ordered by (`by`, time) inside window
//! partitions, and a running `last_value(.. IGNORE NULLS)` carries the matching right row to
//! each left row. So they run wherever DataFusion runs, in parallel over `by` partitions, and
//! spill as its sorts do; each input is read once.

use datafusion::common::{Column, DataFusionError, Result, ScalarValue};
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::logical_expr::{cast, col, lit, Expr, ExprSchemable};

use crate::session::{DataFrame, DataFrameReader};
use crate::window::{Window, CURRENT_ROW, UNBOUNDED_PRECEDING};

/// Which right row an as-of join takes for a left row at time `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsOfDirection {
    /// The latest right row at or before `t` (ties at one time: the last in `other`).
    #[default]
    Backward,
    /// The earliest right row at or after `t` (ties: the first in `other`).
    Forward,
    /// The right row closest to `t`; at equal distance the later one (ties at one time: the
    /// last in `other`), as Polars answers.
    Nearest,
}

impl AsOfDirection {
    /// `backward`, `forward` or `nearest` (Polars' `strategy`, pandas' `direction`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "backward" => Ok(AsOfDirection::Backward),
            "forward" => Ok(AsOfDirection::Forward),
            "nearest" => Ok(AsOfDirection::Nearest),
            other => Err(DataFusionError::Plan(format!("unknown as-of direction `{other}` (backward, forward, nearest)"))),
        }
    }
}

/// The options of an as-of join: `AsOf::new("ts", "fts").by(&["user_id"]).tolerance("INTERVAL 1 DAY")`.
#[derive(Debug, Clone)]
pub struct AsOf {
    left_on: String,
    right_on: String,
    by: Vec<String>,
    direction: AsOfDirection,
    tolerance: Option<String>,
    /// Orders `other`'s rows at one time instead of their position in `other` (which needs a
    /// global numbering: one partition, one task on a cluster). A larger value counts as later.
    ties_by: Option<String>,
}

impl AsOf {
    /// Match this frame's `left_on` against `other`'s `right_on` (columns or expressions of any
    /// ordered type: integers, dates, timestamps).
    pub fn new(left_on: &str, right_on: &str) -> Self {
        AsOf { left_on: left_on.into(), right_on: right_on.into(), by: Vec::new(), direction: AsOfDirection::Backward, tolerance: None, ties_by: None }
    }

    /// Only rows with equal values of these columns (both sides have them) match.
    pub fn by(mut self, columns: &[&str]) -> Self {
        self.by = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    pub fn direction(mut self, direction: AsOfDirection) -> Self {
        self.direction = direction;
        self
    }

    /// The largest distance between the two times that still matches, inclusive: a number for
    /// numeric times, an interval (`INTERVAL 2 HOURS`) for dates and timestamps.
    pub fn tolerance(mut self, expr: &str) -> Self {
        self.tolerance = Some(expr.into());
        self
    }
}

/// Where a feature row's validity starts, for [`DataFrame::join_features_as_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureTime {
    /// The commit that wrote it (`_commit_timestamp` of the change feed): what the table
    /// actually held at each instant. Deletes end a key's values at their commit.
    Commit,
    /// A column of the feature table: an effective time (the end of the data window the
    /// features were computed from). Rows are valid from it, whenever they were committed;
    /// deletes are retention, not history, and end nothing. Two versions of one key with the
    /// same effective time: the later commit wins.
    Column(String),
}

impl DataFrame {
    /// A backward as-of join: [`DataFrame::join_asof_with`] with `AsOf::new(left_on,
    /// right_on).by(by)`.
    pub fn join_asof(&self, other: &DataFrame, left_on: &str, right_on: &str, by: &[&str]) -> Result<DataFrame> {
        self.join_asof_with(other, &AsOf::new(left_on, right_on).by(by))
    }

    /// An as-of join (Polars' `join_asof`, pandas' `merge_asof`): every row of this frame with
    /// the row of `other` that has the same `by` keys and the time `spec.direction` picks, or
    /// nulls. The result has this frame's columns, then `other`'s except its `by` keys; a name
    /// both sides have gets `_right` on the right's, as in Polars. Rows with a null time match
    /// nothing.
    pub fn join_asof_with(&self, other: &DataFrame, spec: &AsOf) -> Result<DataFrame> {
        // Each side's rows travel whole, as one struct column, through one union, one ordering
        // and a filter: no row numbers to join back on, which would be evaluated twice and
        // could differ between the two evaluations of a multi-partition input.
        let left_names: Vec<String> = self.inner().schema().fields().iter().map(|f| f.name().clone()).collect();
        let right_fields: Vec<(String, String)> = other
            .inner()
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !spec.by.iter().any(|b| b == n))
            .map(|n| {
                let out = if left_names.contains(&n) { format!("{n}_right") } else { n.clone() };
                (n, out)
            })
            .collect();
        if left_names.is_empty() || right_fields.is_empty() {
            return Err(DataFusionError::Plan("an as-of join needs columns on both sides beyond the `by` keys".into()));
        }
        let row_of = |fields: &[(String, String)]| -> Expr {
            let mut args = Vec::with_capacity(fields.len() * 2);
            for (name, out) in fields {
                args.push(lit(out.as_str()));
                args.push(Expr::Column(Column::from_name(name)));
            }
            named_struct(args)
        };
        let left_row = row_of(&left_names.iter().map(|n| (n.clone(), n.clone())).collect::<Vec<_>>());
        let right_row = row_of(&right_fields);
        let null_of = |df: &DataFrame, row: &Expr| -> Result<Expr> {
            let ty = row.get_type(df.inner().schema())?;
            Ok(lit(ScalarValue::try_from(&ty)?))
        };
        let null_left = null_of(self, &left_row)?;
        let null_right = null_of(other, &right_row)?;
        // Ties among right rows at one time are broken by their order in `other`.
        let numbered = match &spec.ties_by {
            Some(order) => other.with_column("__asof_r", &format!("CAST({order} AS BIGINT)"))?,
            None => other.with_column("__asof_r", "row_number() OVER ()")?,
        };
        let side = |df: &DataFrame, on: &str, is_left: bool| -> Result<DataFrame> {
            let mut cols: Vec<Expr> = Vec::new();
            for (i, b) in spec.by.iter().enumerate() {
                cols.push(df.expr(b)?.alias(format!("__asof_by{i}")));
            }
            cols.push(df.expr(on)?.alias("__asof_t"));
            cols.push(lit(i32::from(is_left)).alias("__asof_side"));
            if is_left {
                cols.push(lit(ScalarValue::Int64(None)).alias("__asof_r"));
                cols.push(left_row.clone().alias("__asof_lrow"));
                cols.push(null_right.clone().alias("__asof_rrow"));
            } else {
                cols.push(col("__asof_r"));
                cols.push(null_left.clone().alias("__asof_lrow"));
                cols.push(right_row.clone().alias("__asof_rrow"));
            }
            df.select_exprs(cols)?.filter("__asof_t IS NOT NULL OR __asof_side = 1")
        };
        let mut events = side(self, &spec.left_on, true)?.union(&side(&numbered, &spec.right_on, false)?)?;
        let key_names: Vec<String> = (0..spec.by.len()).map(|i| format!("__asof_by{i}")).collect();
        let keys: Vec<&str> = key_names.iter().map(String::as_str).collect();
        // Right rows come before left rows at one time (side 0 < 1), so equal times match; the
        // running last right row of the ordering is the match. Descending time looks forward.
        // A left row with a null time sorts first (Spark's null order), before every right row.
        let mut carry = |name: &str, order: &[&str]| -> Result<()> {
            let mut w = Window::order_by(order).rows_between(UNBOUNDED_PRECEDING, CURRENT_ROW);
            if !keys.is_empty() {
                w = w.partition_by(&keys);
            }
            events = events
                .with_column_over(&format!("{name}_row"), "last_value(__asof_rrow) IGNORE NULLS", &w)?
                .with_column_over(&format!("{name}_t"), "last_value(CASE WHEN __asof_side = 0 THEN __asof_t END) IGNORE NULLS", &w)?;
            Ok(())
        };
        match spec.direction {
            AsOfDirection::Backward => carry("__b", &["__asof_t", "__asof_side", "__asof_r"])?,
            // The first right row at the nearest later time: descending rows, last visited.
            AsOfDirection::Forward => carry("__f", &["__asof_t DESC NULLS FIRST", "__asof_side", "__asof_r DESC"])?,
            AsOfDirection::Nearest => {
                carry("__b", &["__asof_t", "__asof_side", "__asof_r"])?;
                // Polars' nearest takes the last row at the nearest later time.
                carry("__f", &["__asof_t DESC NULLS FIRST", "__asof_side", "__asof_r"])?;
            }
        }
        let (m, t) = match spec.direction {
            AsOfDirection::Backward => ("__b_row".to_string(), "__b_t".to_string()),
            AsOfDirection::Forward => ("__f_row".to_string(), "__f_t".to_string()),
            AsOfDirection::Nearest => {
                let later = "__b_t IS NULL OR (__f_t IS NOT NULL AND __f_t - __asof_t <= __asof_t - __b_t)";
                (format!("CASE WHEN {later} THEN __f_row ELSE __b_row END"), format!("CASE WHEN {later} THEN __f_t ELSE __b_t END"))
            }
        };
        let within = match &spec.tolerance {
            None => "__asof_t IS NOT NULL".to_string(),
            Some(tol) => format!("__asof_t IS NOT NULL AND {t} >= __asof_t - ({tol}) AND {t} <= __asof_t + ({tol})"),
        };
        // The match's fields are taken one by one, each kept only within the tolerance (a CASE
        // returning the whole struct kept matches outside the tolerance in DataFusion 55).
        let matched = events.filter("__asof_side = 1")?.with_column("__asof_match", &m)?.with_column("__asof_within", &within)?;
        let mut out: Vec<Expr> = left_names.iter().map(|n| get_field(col("__asof_lrow"), n.as_str()).alias(n)).collect();
        for (_, n) in &right_fields {
            let v = get_field(col("__asof_match"), n.as_str());
            out.push(datafusion::logical_expr::when(col("__asof_within"), v).end()?.alias(n));
        }
        matched.select_exprs(out)
    }

    /// Point-in-time features: every row of this frame with the values the feature table at
    /// `features` (a path or URL) held for the row's `by` keys at the row's time `on` — the
    /// latest version of the key's row whose [`FeatureTime`] is at or before `on`, or nulls.
    /// Adds `_feature_version`, the table version that wrote the values.
    ///
    /// The history is the table's change data feed from version 0 (`delta.enableChangeDataFeed`
    /// from its creation): inserts and update post-images are values; under
    /// [`FeatureTime::Commit`] a delete makes the key's values null from its commit on. A
    /// feature table is keyed by `by`: where one version holds several rows of a key (with the
    /// same time), which of them a row gets is not specified.
    pub async fn join_features_as_of(&self, features: &str, by: &[&str], on: &str, time: FeatureTime) -> Result<DataFrame> {
        let changes = DataFrameReader::change_feed_of(self.session(), features, 0, None).await?;
        let meta = ["_change_type", "_commit_version", "_commit_timestamp"];
        let value_cols: Vec<String> = changes
            .inner()
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !meta.contains(&n.as_str()) && !by.iter().any(|b| b == n))
            .collect();
        for b in by {
            if changes.inner().schema().field_with_unqualified_name(b).is_err() {
                return Err(DataFusionError::Plan(format!("the feature table {features} has no column `{b}` to join by")));
            }
        }
        let time_col = match &time {
            FeatureTime::Commit => "_commit_timestamp".to_string(),
            FeatureTime::Column(c) => {
                if !value_cols.contains(c) {
                    return Err(DataFusionError::Plan(format!("the feature table {features} has no time column `{c}`")));
                }
                c.clone()
            }
        };
        let kinds = match time {
            FeatureTime::Commit => "('insert', 'update_postimage', 'delete')",
            FeatureTime::Column(_) => "('insert', 'update_postimage')",
        };
        let history = changes.filter(&format!("_change_type IN {kinds}"))?;
        // One value per (key, time): the latest commit's.
        let mut partition: Vec<&str> = by.to_vec();
        partition.push(&time_col);
        // (The partition's maximum, not `row_number() = 1`: DataFusion 55 plans that as a per-partition
        // TopK whose state a cluster's re-run resets with a failing assertion.)
        let newest = Window::partition_by(&partition);
        let history = history.with_column_over("__asof_newest", "max(_commit_version)", &newest)?.filter("_commit_version = __asof_newest")?;
        // The history's time as the rows' time type (a commit timestamp is UTC microseconds).
        let left_type = self.inner().schema().field_with_unqualified_name(on).map(|f| f.data_type().clone()).ok();
        let deleted = col("_change_type").eq(lit("delete"));
        let mut exprs: Vec<Expr> = by.iter().map(|b| Expr::Column(datafusion::common::Column::from_name(*b))).collect();
        for c in &value_cols {
            let v = Expr::Column(datafusion::common::Column::from_name(c));
            exprs.push(if matches!(time_col.as_str(), "_commit_timestamp") {
                datafusion::logical_expr::when(deleted.clone(), lit(datafusion::common::ScalarValue::Null)).otherwise(v)?.alias(c)
            } else {
                v
            });
        }
        let t = Expr::Column(datafusion::common::Column::from_name(&time_col));
        let t = match left_type {
            Some(ty) if time_col == "_commit_timestamp" => cast(t, ty),
            _ => t,
        };
        exprs.push(t.alias("__asof_feature_time"));
        exprs.push(col("_commit_version").alias("_feature_version"));
        let history = history.select_exprs(exprs)?;
        // One row per key and time is left: the version orders what ties remain (several rows
        // of one key in one commit), and no global numbering of the history is needed.
        let spec = AsOf { ties_by: Some("_feature_version".into()), ..AsOf::new(on, "__asof_feature_time").by(by) };
        let joined = self.join_asof_with(&history, &spec)?;
        joined.drop(&["__asof_feature_time"])
    }
}

