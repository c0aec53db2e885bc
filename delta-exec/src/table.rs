//! `DeltaTable`: Spark's handle on one Delta table for operations that are not queries, here
//! MERGE with a [`DataFrame`] as its source.

use std::sync::Arc;

use datafusion::common::Result;
use delta_core::merge::MergeBuilder;
use delta_core::Table;
use futures::{StreamExt, TryStreamExt};

use crate::provider::df_error;
use crate::session::{DataFrame, Session};

/// `DeltaTable.forPath(spark, path)`.
pub struct DeltaTable {
    session: Session,
    table: Table,
}

impl DeltaTable {
    pub fn for_path(session: &Session, location: &str) -> Result<Self> {
        let table = Table::open_with(location, session.table_options()).map_err(df_error)?;
        Ok(DeltaTable { session: session.clone(), table })
    }

    /// delta-core's table, for everything else (history, optimize, vacuum, …).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// `toDF()`: the latest version as a DataFrame.
    pub async fn to_df(&self) -> Result<DataFrame> {
        let snapshot = self.table.snapshot().await.map_err(df_error)?;
        let provider = Arc::new(crate::provider::DeltaTableProvider::try_new(snapshot)?);
        Ok(self.session.frame(self.session.context().read_table(provider)?))
    }

    /// `merge(source, condition)`: the MERGE builder of delta-core with `source`'s rows streamed
    /// into it (the target is `t`/`target`, the source `s`/`source`, unless aliased on the
    /// builder). Add clauses, then `execute()`; the source query runs once, when it does.
    pub async fn merge(&self, source: &DataFrame, on: &str) -> Result<MergeBuilder<'_>> {
        let schema = Arc::new(source.inner().schema().as_arrow().clone());
        let stream = source
            .execute_stream()
            .await?
            .map_err(|e| delta_core::DeltaError::WriteRefused { reason: format!("the MERGE source query failed: {e}") })
            .boxed();
        Ok(self.table.merge_stream(stream, on).with_source_schema(schema))
    }
}
