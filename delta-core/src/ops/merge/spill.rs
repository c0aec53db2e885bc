//! A source over the memory budget: spilled to Arrow IPC files by join-key hash partition,
//! read back a group of partitions per pass.

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use futures::stream::BoxStream;
use futures::TryStreamExt;

use super::index::{take_batch, FxHasher};
use super::SPILL_PARTITIONS;
use crate::error::{DeltaError, DeltaResult};

/// The partition (of `n`) each row's keys hash to; rows with a NULL key go to partition 0.
pub(super) fn partitions_of(keys: &[ArrayRef], n: usize) -> DeltaResult<Vec<usize>> {
    use std::hash::Hasher;
    let rows = keys.first().map(|k| k.len()).unwrap_or(0);
    if n <= 1 || keys.is_empty() {
        return Ok(vec![0; rows]);
    }
    let converter = RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(keys)?;
    Ok((0..rows)
        .map(|i| {
            if keys.iter().any(|k| k.is_null(i)) {
                return 0;
            }
            let mut h = FxHasher::default();
            h.write(encoded.row(i).as_ref());
            // The high bits: FxHash's low bits are weak for small integers.
            ((h.finish() >> 32) % n as u64) as usize
        })
        .collect())
}

/// Removes a spill directory when the MERGE ends, however it ends.
struct SpillDir(std::path::PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The MERGE source: one in-memory batch, or [`SPILL_PARTITIONS`] Arrow IPC files.
pub(super) struct SourceSide {
    schema: SchemaRef,
    pub(super) rows: u64,
    memory: Option<RecordBatch>,
    spilled: Vec<std::path::PathBuf>,
    /// Partitions per pass: consecutive partitions whose spill files together fit the budget.
    groups: Vec<Vec<usize>>,
    _dir: Option<SpillDir>,
}

/// Evaluates a source batch's join keys (cast to the key types).
type KeysOf<'a> = &'a (dyn Fn(&RecordBatch) -> DeltaResult<Vec<ArrayRef>> + Sync);

type IpcWriter = arrow::ipc::writer::FileWriter<std::io::BufWriter<std::fs::File>>;

impl SourceSide {
    /// Reads the source; past `budget` bytes (and with join keys to partition by) the batches
    /// held so far and every later one go to spill files by key hash.
    pub(super) async fn collect(
        first: Option<RecordBatch>,
        mut rest: BoxStream<'static, DeltaResult<RecordBatch>>,
        schema: SchemaRef,
        budget: usize,
        keys_of: Option<KeysOf<'_>>,
    ) -> DeltaResult<SourceSide> {
        let mut held: Vec<RecordBatch> = Vec::new();
        let mut bytes = 0usize;
        let mut rows = 0u64;
        let mut writers: Option<(SpillDir, Vec<IpcWriter>, Vec<std::path::PathBuf>)> = None;
        let mut next = first;
        loop {
            let Some(batch) = next.take() else {
                match rest.try_next().await? {
                    Some(b) => {
                        next = Some(b);
                        continue;
                    }
                    None => break,
                }
            };
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows() as u64;
            match (&mut writers, keys_of) {
                (Some((_, ws, _)), Some(keys_of)) => spill(&batch, keys_of, ws)?,
                (None, Some(keys_of)) if bytes + batch.get_array_memory_size() > budget => {
                    let dir = std::env::temp_dir().join(format!("delta-merge-spill-{}", uuid::Uuid::new_v4()));
                    std::fs::create_dir_all(&dir).map_err(|e| DeltaError::Internal(format!("cannot create spill directory: {e}")))?;
                    let guard = SpillDir(dir.clone());
                    let mut ws = Vec::with_capacity(SPILL_PARTITIONS);
                    let mut paths = Vec::with_capacity(SPILL_PARTITIONS);
                    for i in 0..SPILL_PARTITIONS {
                        let path = dir.join(format!("part-{i}.arrow"));
                        let file =
                            std::fs::File::create(&path).map_err(|e| DeltaError::Internal(format!("cannot create spill file: {e}")))?;
                        ws.push(arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema)?);
                        paths.push(path);
                    }
                    for b in held.drain(..) {
                        spill(&b, keys_of, &mut ws)?;
                    }
                    spill(&batch, keys_of, &mut ws)?;
                    writers = Some((guard, ws, paths));
                }
                _ => {
                    bytes += batch.get_array_memory_size();
                    held.push(batch);
                }
            }
        }
        match writers {
            Some((guard, ws, paths)) => {
                for mut w in ws {
                    w.finish()?;
                }
                let mut groups: Vec<Vec<usize>> = Vec::new();
                let mut size = 0u64;
                for (i, p) in paths.iter().enumerate() {
                    let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    match groups.last_mut() {
                        Some(g) if size + len <= budget as u64 => g.push(i),
                        _ => {
                            groups.push(vec![i]);
                            size = 0;
                        }
                    }
                    size += len;
                }
                Ok(SourceSide { schema, rows, memory: None, spilled: paths, groups, _dir: Some(guard) })
            }
            None => {
                let memory = arrow::compute::concat_batches(&schema, &held)?;
                Ok(SourceSide { schema, rows, memory: Some(memory), spilled: Vec::new(), groups: Vec::new(), _dir: None })
            }
        }
    }

    pub(super) fn passes(&self) -> usize {
        self.groups.len().max(1)
    }

    /// The pass that handles spill partition `p`.
    pub(super) fn pass_of(&self, p: usize) -> usize {
        self.groups.iter().position(|g| g.contains(&p)).unwrap_or(0)
    }

    /// The source rows of one pass.
    pub(super) fn load(&self, pass: usize) -> DeltaResult<RecordBatch> {
        if let Some(m) = &self.memory {
            return Ok(m.clone());
        }
        let group = self.groups.get(pass).ok_or_else(|| DeltaError::Internal(format!("no spill pass {pass}")))?;
        let mut batches = Vec::new();
        for p in group {
            let path = self.spilled.get(*p).ok_or_else(|| DeltaError::Internal(format!("no spill partition {p}")))?;
            let file = std::fs::File::open(path).map_err(|e| DeltaError::Internal(format!("cannot read spill file: {e}")))?;
            let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
            for b in reader {
                batches.push(b?);
            }
        }
        Ok(arrow::compute::concat_batches(&self.schema, &batches)?)
    }
}

/// Appends each row of `batch` to the spill file of its key partition.
fn spill(batch: &RecordBatch, keys_of: KeysOf<'_>, writers: &mut [IpcWriter]) -> DeltaResult<()> {
    let parts = partitions_of(&keys_of(batch)?, writers.len())?;
    for (p, w) in writers.iter_mut().enumerate() {
        let idx = UInt32Array::from(parts.iter().enumerate().filter(|(_, q)| **q == p).map(|(i, _)| i as u32).collect::<Vec<_>>());
        if !idx.is_empty() {
            w.write(&take_batch(batch, &idx)?)?;
        }
    }
    Ok(())
}
