//! Row-level rewrites shared by writes that replace part of a file (replaceWhere today; DELETE,
//! UPDATE and MERGE build on the same pieces).

use arrow::array::RecordBatch;

use crate::actions::AddFile;
use crate::error::DeltaResult;
use crate::expr::Expr;
use crate::snapshot::Snapshot;

/// The rows of `file` (deletion vector applied) for which `predicate` is not true — what remains
/// when the matching rows are deleted. SQL semantics: rows where it is NULL remain.
pub async fn rows_not_matching(snapshot: &Snapshot, file: &AddFile, predicate: &Expr) -> DeltaResult<Vec<RecordBatch>> {
    let keep = Expr::Or(Box::new(Expr::Not(Box::new(predicate.clone()))), Box::new(Expr::IsNull(Box::new(predicate.clone()))));
    snapshot.scan().with_predicate(keep).only_files(std::slice::from_ref(&file.path)).build()?.collect().await
}
