//! A Delta scan as DataFusion's own file scan (`DataSourceExec` over a `FileScanConfig` whose
//! [`FileSource`] is [`DeltaFileSource`]): the form a scan takes on a Ballista cluster.
//!
//! Why a second form: Ballista runs several partitions of a stage in one task and restricts the
//! stage's leaves to that task's partitions before sending it. It knows how to restrict its own
//! readers and DataFusion's file and memory scans (it keeps the file groups of the task's
//! partitions); a leaf it does not know keeps all its partitions, and a task would then read the
//! wrong ones. As a file scan, each partition's files are a `FileGroup`, restricted like any other.
//!
//! Each `PartitionedFile` carries its delta-core [`ScanFile`] (deletion-vector descriptor,
//! partition values, row-tracking ids, byte range) in its extensions, and the opener reads it
//! with delta-core, exactly as [`crate::DeltaScanExec`] does: files are never re-split by
//! DataFusion (`supports_repartitioning` is false), so a deletion vector always meets its whole
//! file. The object store DataFusion hands the opener is not used: files are read through
//! delta-core's store for the table's URL.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan};
use delta_core::{Expr as DeltaExpr, ScanFile, Snapshot};
use futures::{StreamExt, TryStreamExt};
use datafusion::object_store::ObjectStore;

use crate::provider::df_error;

/// Reads a Delta table's files, one `PartitionedFile` (with its [`ScanFile`]) at a time.
#[derive(Clone)]
pub struct DeltaFileSource {
    pub(crate) snapshot: Snapshot,
    /// Table columns read (logical names).
    pub(crate) read: Vec<String>,
    /// The output: `read`'s columns, or none (rows only counted).
    table_schema: TableSchema,
    pub(crate) predicate: Option<DeltaExpr>,
    batch_size: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for DeltaFileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeltaFileSource").field("version", &self.snapshot.version()).field("read", &self.read).finish()
    }
}

impl DeltaFileSource {
    /// The output schema (what each opened file yields).
    pub(crate) fn schema(&self) -> SchemaRef {
        self.table_schema.file_schema().clone()
    }

    /// A `DataSourceExec` reading `partitions` (one file group each) of `snapshot`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan(
        snapshot: Snapshot,
        read: Vec<String>,
        schema: SchemaRef,
        predicate: Option<DeltaExpr>,
        partitions: &[Vec<ScanFile>],
        limit: Option<usize>,
        statistics: Option<(Statistics, Vec<Statistics>)>,
    ) -> Arc<dyn ExecutionPlan> {
        let source = DeltaFileSource {
            snapshot,
            read,
            table_schema: TableSchema::from(schema),
            predicate,
            batch_size: None,
            metrics: ExecutionPlanMetricsSet::new(),
        };
        let per_partition = statistics.as_ref().map(|(_, p)| p.clone());
        let groups: Vec<FileGroup> = partitions
            .iter()
            .enumerate()
            .map(|(i, files)| {
                let files = files
                    .iter()
                    .map(|f| PartitionedFile::new(f.path.clone(), f.size.max(0) as u64).with_extension(f.clone()))
                    .collect();
                let group = FileGroup::new(files);
                match per_partition.as_ref().and_then(|p| p.get(i)) {
                    Some(s) => group.with_statistics(Arc::new(s.clone())),
                    None => group,
                }
            })
            .collect();
        let mut builder = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source)).with_file_groups(groups).with_limit(limit);
        if let Some((total, _)) = statistics {
            builder = builder.with_statistics(total);
        }
        DataSourceExec::from_data_source(builder.build())
    }

    /// The Delta source and file scan of `plan`, when it is a Delta file scan.
    pub(crate) fn of(plan: &dyn ExecutionPlan) -> Option<(&DeltaFileSource, &FileScanConfig)> {
        let exec = plan.downcast_ref::<DataSourceExec>()?;
        let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
        let source = config.file_source().downcast_ref::<DeltaFileSource>()?;
        Some((source, config))
    }

    /// Each file group's [`ScanFile`]s.
    pub(crate) fn partitions(config: &FileScanConfig) -> Result<Vec<Vec<ScanFile>>> {
        config
            .file_groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|f| {
                        f.extensions
                            .get::<ScanFile>()
                            .cloned()
                            .ok_or_else(|| DataFusionError::Internal(format!("a Delta file scan's file {} lost its Delta descriptor", f.path())))
                    })
                    .collect()
            })
            .collect()
    }
}

impl FileSource for DeltaFileSource {
    fn create_file_opener(&self, _object_store: Arc<dyn ObjectStore>, _config: &FileScanConfig, _partition: usize) -> Result<Arc<dyn FileOpener>> {
        Ok(Arc::new(DeltaFileOpener { source: self.clone() }))
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        let mut s = self.clone();
        s.batch_size = Some(batch_size);
        Arc::new(s)
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    /// No physical expressions: the predicate is delta-core's.
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn file_type(&self) -> &str {
        "delta"
    }

    fn fmt_extra(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, ", version={}", self.snapshot.version())?;
        if let Some(p) = &self.predicate {
            write!(f, ", predicate={p}")?;
        }
        Ok(())
    }

    /// Never: a file is read whole by one partition (deletion vectors number its rows).
    fn supports_repartitioning(&self) -> bool {
        false
    }
}

struct DeltaFileOpener {
    source: DeltaFileSource,
}

impl FileOpener for DeltaFileOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let s = &self.source;
        let scan_file = file
            .extensions
            .get::<ScanFile>()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("a Delta file scan's file {} lost its Delta descriptor", file.path())))?;
        let mut builder = s.snapshot.scan().with_files(vec![scan_file]).with_columns(&s.read).with_view_types(true);
        if let Some(n) = s.batch_size {
            builder = builder.with_batch_size(n);
        }
        if let Some(p) = &s.predicate {
            builder = builder.with_predicate(p.clone());
        }
        let scan = builder.build().map_err(df_error)?;
        let schema = s.schema();
        let keep_columns = !schema.fields().is_empty();
        Ok(Box::pin(async move {
            let stream = scan.execute().map_err(df_error).and_then(move |batch| {
                let schema = schema.clone();
                async move {
                    if keep_columns {
                        Ok(RecordBatch::try_new(schema, batch.columns().to_vec())?)
                    } else {
                        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                        Ok(RecordBatch::try_new_with_options(schema, vec![], &options)?)
                    }
                }
            });
            Ok(stream.boxed())
        }))
    }
}
