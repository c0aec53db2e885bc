//! The stage traits: a [`Transformer`] maps Arrow batches to batches, an [`Estimator`] fits a
//! transformer (a model) on a frame; and the bridge to `delta-exec`'s lazy DataFrames.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use delta_exec::DataFrame;
use serde_json::Value;

use crate::error::{column_error, invalid, MlError, Result};
use crate::lineage::Lineage;
use crate::pipeline::{stage_from_bytes, stage_to_bytes};
use crate::params::Params;
use crate::vector::VectorColumn;

/// What a fitted model saves beside its params: small values as JSON, arrays as Parquet tables.
#[derive(Debug, Default, Clone)]
pub struct ModelData {
    pub json: Value,
    pub tables: Vec<(String, RecordBatch)>,
}

impl ModelData {
    pub fn table(&self, name: &str) -> Result<&RecordBatch> {
        self.tables.iter().find(|(n, _)| n == name).map(|(_, b)| b).ok_or_else(|| MlError::Format(format!("model data table `{name}` is missing")))
    }

    pub fn field(&self, name: &str) -> Result<&Value> {
        self.json.get(name).ok_or_else(|| MlError::Format(format!("model data field `{name}` is missing")))
    }
}

/// Arrow batch in, batch out: feature transformers and fitted models. Usable on any stream of
/// batches (a Delta scan, a collected frame), and on a lazy [`DataFrame`] through [`transform`].
pub trait Transformer: Send + Sync + Debug {
    fn params(&self) -> &Params;

    /// The output schema for an input schema; errors name the missing or mistyped column.
    fn transform_schema(&self, schema: &Schema) -> Result<Schema>;

    /// Transforms one batch. Its schema is `transform_schema(batch.schema())`; rows may be
    /// dropped (`handleInvalid = skip`).
    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch>;

    /// The fitted state to save beside the params (nothing for param-only transformers).
    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData::default())
    }

    /// The data the model was fitted on, when it came from Delta tables.
    fn lineage(&self) -> Option<&Lineage> {
        None
    }

    /// A SQL statement over `__THIS__` (SQLTransformer): run by the engine instead of per batch.
    fn sql_statement(&self) -> Option<String> {
        None
    }

    fn as_any(&self) -> &dyn Any;
}

/// Fits a model on a frame. Estimators read their input once, into memory.
#[async_trait]
pub trait Estimator: Send + Sync + Debug {
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;
    fn clone_box(&self) -> Box<dyn Estimator>;

    /// Fits on in-memory rows.
    fn fit_frame(&self, frame: &Frame) -> Result<Arc<dyn Transformer>>;

    /// Fits on a DataFrame: runs it once, records the Delta tables and versions it read.
    async fn fit(&self, df: &DataFrame) -> Result<Arc<dyn Transformer>> {
        let frame = Frame::collect(df).await?;
        self.fit_frame(&frame)
    }
}

impl Clone for Box<dyn Estimator> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Rows in memory: what estimators fit on.
#[derive(Debug, Clone)]
pub struct Frame {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub lineage: Option<Lineage>,
}

impl Frame {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Frame { schema, batches, lineage: None }
    }

    /// Runs `df` and keeps its rows, with the lineage of the Delta tables it reads. Rows come
    /// partition by partition, so the same table version gives the same row order every time
    /// (fits sample rows by position: the same data must give the same model).
    pub async fn collect(df: &DataFrame) -> Result<Frame> {
        let schema: SchemaRef = Arc::new(df.inner().schema().as_arrow().clone());
        let batches: Vec<RecordBatch> = df.collect_partitioned().await?.into_iter().flatten().collect();
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let lineage = Lineage::of(df, rows);
        Ok(Frame { schema, batches, lineage })
    }

    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    pub fn field(&self, name: &str) -> Result<&Field> {
        self.schema.field_with_name(name).map_err(|_| column_error(name, format!("not found (columns: {})", column_names(&self.schema))))
    }

    /// The arrays of column `name`, one per batch.
    pub fn arrays(&self, name: &str) -> Result<Vec<ArrayRef>> {
        let idx = self.schema.index_of(name).map_err(|_| column_error(name, format!("not found (columns: {})", column_names(&self.schema))))?;
        Ok(self.batches.iter().map(|b| b.column(idx).clone()).collect())
    }

    /// A numeric column as f64 (nulls are an error naming the column).
    pub fn f64_values(&self, name: &str) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.num_rows());
        for a in self.arrays(name)? {
            let a = numeric_f64(name, &a)?;
            if a.null_count() > 0 {
                return Err(invalid(format!("column `{name}` has null values")));
            }
            out.extend_from_slice(a.as_primitive::<arrow::datatypes::Float64Type>().values());
        }
        Ok(out)
    }

    /// Row weights: `weightCol` when set (non-negative), else ones.
    pub fn weights(&self, col: Option<&str>) -> Result<Vec<f64>> {
        match col.filter(|c| !c.is_empty()) {
            None => Ok(vec![1.0; self.num_rows()]),
            Some(c) => {
                let w = self.f64_values(c)?;
                if let Some(bad) = w.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
                    return Err(invalid(format!("weight column `{c}` has the value {bad}; weights must be finite and >= 0")));
                }
                Ok(w)
            }
        }
    }

    /// A vector column as a dense row-major matrix.
    pub fn matrix(&self, name: &str) -> Result<Matrix> {
        let n = self.num_rows();
        let mut d = None;
        let mut data = Vec::new();
        let mut row0 = 0;
        for a in self.arrays(name)? {
            let col = VectorColumn::new(name, a.as_ref())?;
            // Dense vectors without nulls: the values are already row-major; copy them whole.
            if let VectorColumn::Dense { dim, values, array } = &col {
                if array.null_count() == 0 && d.is_none_or(|d| d == *dim) {
                    if d.is_none() {
                        data.reserve(n * dim);
                        d = Some(*dim);
                    }
                    data.extend_from_slice(values);
                    row0 += col.len();
                    continue;
                }
            }
            for i in 0..col.len() {
                if col.is_null(i) {
                    return Err(invalid(format!("column `{name}` has a null vector at row {}", row0 + i)));
                }
                let size = col.size(i);
                let dim = *d.get_or_insert_with(|| {
                    data.reserve(n * size);
                    size
                });
                if size != dim {
                    return Err(invalid(format!("column `{name}`: vectors of sizes {dim} and {size}")));
                }
                let at = data.len();
                data.resize(at + dim, 0.0);
                col.write_dense(i, &mut data[at..]);
            }
            row0 += col.len();
        }
        let d = match d {
            Some(d) => d,
            None => crate::vector::vector_size(self.field(name)?).flatten().unwrap_or(0),
        };
        Ok(Matrix { rows: n, cols: d, data })
    }
}

fn column_names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// A numeric (or boolean) array cast to Float64; other types are an error naming the column.
pub fn numeric_f64(name: &str, a: &ArrayRef) -> Result<ArrayRef> {
    match a.data_type() {
        t if t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null) => Ok(cast(a, &DataType::Float64)?),
        other => Err(column_error(name, format!("expected a numeric column, found {other}"))),
    }
}

/// A dense row-major matrix (`rows × cols`).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Appends (or replaces) columns of a batch, with `schema` as the result's schema.
pub fn with_columns(batch: &RecordBatch, schema: &SchemaRef, new: Vec<(String, ArrayRef)>) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        if let Some((_, a)) = new.iter().find(|(n, _)| n == f.name()) {
            columns.push(a.clone());
        } else {
            let idx = batch.schema().index_of(f.name()).map_err(|_| column_error(f.name(), "not found"))?;
            columns.push(batch.column(idx).clone());
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The input schema with `fields` appended; a name already present is an error (as in MLlib).
pub fn append_fields(schema: &Schema, fields: Vec<Field>) -> Result<Schema> {
    let mut all: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for f in fields {
        if schema.field_with_name(f.name()).is_ok() {
            return Err(column_error(f.name(), "output column already exists"));
        }
        all.push(f);
    }
    Ok(Schema::new_with_metadata(all, schema.metadata().clone()))
}

/// A transformer as a batch function of the engine ([`delta_exec::map`]): it runs where the
/// rows are, on a cluster's executors too, which rebuild it from [`stage_to_bytes`].
#[derive(Debug)]
struct StageMap {
    transformer: Arc<dyn Transformer>,
    schema: SchemaRef,
}

/// The kind under which stages travel in plans.
const STAGE_KIND: &str = "delta-ml-stage";

impl delta_exec::map::BatchMap for StageMap {
    fn name(&self) -> String {
        format!("{} ({})", self.transformer.params().stage(), self.transformer.params().uid())
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn map(&self, batch: &RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let out = self.transformer.transform_batch(batch).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        Ok(RecordBatch::try_new(self.schema.clone(), out.columns().to_vec())?)
    }

    fn encode(&self) -> datafusion::error::Result<(String, Vec<u8>)> {
        let bytes = stage_to_bytes(self.transformer.as_ref()).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        Ok((STAGE_KIND.to_string(), bytes))
    }
}

fn decode_stage(bytes: &[u8], schema: SchemaRef) -> datafusion::error::Result<Arc<dyn delta_exec::map::BatchMap>> {
    let transformer = stage_from_bytes(bytes).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    Ok(Arc::new(StageMap { transformer, schema }))
}

/// Lets this process run ML stages that plans from other processes carry (a cluster's
/// scheduler and executors). [`transform`] calls it; call it where a process starts.
pub fn register_cluster_codec() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| delta_exec::map::register_batch_map(STAGE_KIND, decode_stage));
}

/// Applies `t` to a lazy frame: nothing runs until an action on the result. Each partition of
/// the input goes through `t` batch by batch, in order, where the rows are.
pub async fn transform(t: &Arc<dyn Transformer>, df: &DataFrame) -> Result<DataFrame> {
    let session = df.session();
    if let Some(sql) = t.sql_statement() {
        let name = format!("__this_{}", t.params().uid().replace(|c: char| !c.is_ascii_alphanumeric(), "_").to_ascii_lowercase());
        let ctx = session.context();
        let _ = ctx.deregister_table(name.as_str())?;
        ctx.register_table(name.as_str(), df.inner().clone().into_view())?;
        let text = sql.replace("__THIS__", &name);
        let state = ctx.state();
        let plan = state.create_logical_plan(&text).await?;
        return Ok(DataFrame::from_datafusion(session, datafusion::dataframe::DataFrame::new(state, plan)));
    }
    register_cluster_codec();
    let input_schema = df.inner().schema().as_arrow().clone();
    let schema = Arc::new(t.transform_schema(&input_schema)?);
    Ok(df.map_batches(Arc::new(StageMap { transformer: t.clone(), schema }))?)
}

/// Applies `t` to in-memory rows.
pub fn transform_frame(t: &dyn Transformer, frame: &Frame) -> Result<Frame> {
    let schema = Arc::new(t.transform_schema(&frame.schema)?);
    let mut batches = Vec::with_capacity(frame.batches.len());
    for b in &frame.batches {
        let out = t.transform_batch(b)?;
        batches.push(RecordBatch::try_new(schema.clone(), out.columns().to_vec())?);
    }
    Ok(Frame { schema, batches, lineage: frame.lineage.clone() })
}
