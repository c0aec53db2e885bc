//! Reading parquet files from the object store: an [`AsyncFileReader`] whose footer is checked
//! before any reader trusts its offsets. Used by log replay (checkpoints, sidecars) and by scans.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// An `AsyncFileReader` over an object store.
pub struct StoreFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: Option<u64>,
}

impl StoreFileReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: Option<u64>) -> Self {
        StoreFileReader { store, path, size }
    }
}

impl AsyncFileReader for StoreFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(|e| parquet::errors::ParquetError::External(Box::new(e))) }
            .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(|e| parquet::errors::ParquetError::External(Box::new(e))) }
            .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = match self.size {
                Some(s) => s,
                None => {
                    let head = self.store.head(&self.path).await.map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
                    self.size = Some(head.size);
                    head.size
                }
            };
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(64 * 1024));
            let metadata = reader.load_and_finish(self, size).await?;
            validate_metadata(&metadata, size)?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Checks the footer's offsets and sizes before any reader uses them: the parquet crate asserts
/// (panics) on negative column offsets, and the footer is untrusted input.
fn validate_metadata(metadata: &ParquetMetaData, file_size: u64) -> parquet::errors::Result<()> {
    let bad = |what: String| Err(parquet::errors::ParquetError::General(format!("corrupt parquet footer: {what}")));
    for (i, rg) in metadata.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return bad(format!("row group {i} has {} rows", rg.num_rows()));
        }
        for (j, col) in rg.columns().iter().enumerate() {
            let start = col.dictionary_page_offset().unwrap_or(col.data_page_offset());
            let len = col.compressed_size();
            if start < 0 || len < 0 || col.data_page_offset() < 0 || (start as u64).saturating_add(len as u64) > file_size {
                return bad(format!("row group {i} column {j}: chunk at {start} of {len} bytes in a {file_size}-byte file"));
            }
        }
    }
    Ok(())
}
