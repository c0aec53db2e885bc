//! Tables named ``parquet.`/path/file.parquet` `` (or a directory of parquet files) in SQL, as
//! Spark names them: a plain parquet read, one partition per file, schema from the first file.
//! For loading and comparing, not a Delta table: no log, no statistics, no pruning.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;

/// The `parquet` schema of SQL: every table name is a parquet file or folder.
#[derive(Debug)]
pub(crate) struct ParquetPathSchema;

/// The parquet files of `path`: the file itself, or the `*.parquet` files directly in the folder
/// (sorted by name).
fn files_of(path: &str) -> Result<Vec<std::path::PathBuf>> {
    let p = std::path::Path::new(path.strip_prefix("file://").unwrap_or(path));
    if p.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x.eq_ignore_ascii_case("parquet")))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataFusionError::Plan(format!("no parquet files in `{path}`")));
        }
        Ok(files)
    } else if p.is_file() {
        Ok(vec![p.to_path_buf()])
    } else {
        Err(DataFusionError::Plan(format!("parquet.`{path}`: no such file or folder")))
    }
}

fn pq(e: parquet::errors::ParquetError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[derive(Debug)]
struct ParquetFileStream {
    path: std::path::PathBuf,
    schema: SchemaRef,
}

impl PartitionStream for ParquetFileStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let path = self.path.clone();
        let schema = self.schema.clone();
        let batch_size = ctx.session_config().batch_size();
        let stream = futures::stream::once(async move {
            let file = tokio::fs::File::open(&path).await?;
            let builder = ParquetRecordBatchStreamBuilder::new(file).await.map_err(pq)?.with_batch_size(batch_size);
            if builder.schema().fields() != schema.fields() {
                return Err(DataFusionError::Plan(format!("{}: its schema differs from the first file's", path.display())));
            }
            Ok(builder.build().map_err(pq)?.map_err(pq))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream.boxed()))
    }
}

#[async_trait::async_trait]
impl SchemaProvider for ParquetPathSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let files = files_of(name)?;
        let first = tokio::fs::File::open(&files[0]).await?;
        let schema = ParquetRecordBatchStreamBuilder::new(first).await.map_err(pq)?.schema().clone();
        let partitions: Vec<Arc<dyn PartitionStream>> =
            files.into_iter().map(|path| Arc::new(ParquetFileStream { path, schema: schema.clone() }) as Arc<dyn PartitionStream>).collect();
        Ok(Some(Arc::new(StreamingTable::try_new(schema, partitions)?)))
    }

    fn table_exist(&self, _name: &str) -> bool {
        true
    }
}
