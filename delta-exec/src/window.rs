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
