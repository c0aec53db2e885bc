//! `Pipeline` / `PipelineModel`, and saving and loading fitted stages.
//!
//! A saved model is a directory:
//! ```text
//! DIR/metadata.json          {"class": "PipelineModel", "formatVersion": 1, "uid", "stages": [..],
//!                              "lineage": {"tables": [{"uri", "version"}], "rows", "plan"}}
//! DIR/stages/00_<Class>/metadata.json   {"class", "formatVersion", "uid", "params" (set),
//!                                        "defaultParams", "data" (small fitted values)}
//! DIR/stages/00_<Class>/<name>.parquet  arrays of the fitted state (coefficients, …)
//! ```
//! Loading an unknown class or a newer `formatVersion` is a [`MlError::Format`] naming it.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use delta_exec::DataFrame;
use serde_json::{json, Value};

use crate::error::{MlError, Result};
use crate::feature::{
    Bucketizer, ImputerModel, MinMaxScalerModel, OneHotEncoderModel, SQLTransformer, StandardScalerModel, StringIndexerModel, VectorAssembler,
};
use crate::lineage::Lineage;
use crate::models::{LinearRegressionModel, LogisticRegressionModel};
use crate::params::Params;
use crate::stage::{transform, transform_frame, Estimator, Frame, ModelData, Transformer};

/// The model directory format this build writes and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;

/// A stage of a pipeline: fitted when the pipeline is fitted, or applied as is.
#[derive(Debug, Clone)]
pub enum Stage {
    Estimator(Box<dyn Estimator>),
    Transformer(Arc<dyn Transformer>),
}

impl Stage {
    pub fn params(&self) -> &Params {
        match self {
            Stage::Estimator(e) => e.params(),
            Stage::Transformer(t) => t.params(),
        }
    }
}

/// Stages run in order; fitting fits each estimator on the output of the stages before it.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
}

/// A DataFrame over rows in memory, in `like`'s session; in a local one when `like` runs on a
/// cluster: the rows are here, and a cluster would only be sent them to send them back.
pub(crate) fn frame_to_df(like: &DataFrame, frame: &Frame) -> Result<DataFrame> {
    let table = MemTable::try_new(frame.schema.clone(), vec![frame.batches.clone()])?;
    let local;
    let session = if like.session().is_distributed() {
        local = delta_exec::Session::new();
        &local
    } else {
        like.session()
    };
    let df = session.context().read_table(Arc::new(table))?;
    Ok(DataFrame::from_datafusion(session, df))
}

impl Pipeline {
    pub fn new(stages: Vec<Stage>) -> Self {
        Pipeline { stages }
    }

    /// Fits every estimator in order. The input is read once; each estimator's input is kept
    /// in memory and reused for the stages after it. The model records the Delta tables and
    /// versions the input read.
    pub async fn fit(&self, df: &DataFrame) -> Result<PipelineModel> {
        let last_estimator = self.stages.iter().rposition(|s| matches!(s, Stage::Estimator(_)));
        let mut cur = df.clone();
        let mut models: Vec<Arc<dyn Transformer>> = Vec::with_capacity(self.stages.len());
        let mut rows = None;
        for (i, stage) in self.stages.iter().enumerate() {
            let more = last_estimator.is_some_and(|l| i < l);
            match stage {
                Stage::Estimator(e) => {
                    let frame = Frame::collect(&cur).await?;
                    if rows.is_none() {
                        rows = Some(frame.num_rows() as u64);
                    }
                    let started = std::time::Instant::now();
                    let model = e.fit_frame(&frame)?;
                    if std::env::var_os("DELTA_ML_TRACE").is_some() {
                        eprintln!("delta-ml: {} fitted on {} rows in {:.3} s", e.params().stage(), frame.num_rows(), started.elapsed().as_secs_f64());
                    }
                    if more {
                        cur = transform(&model, &frame_to_df(df, &frame)?).await?;
                    }
                    models.push(model);
                }
                Stage::Transformer(t) => {
                    if more {
                        cur = transform(t, &cur).await?;
                    }
                    models.push(t.clone());
                }
            }
        }
        let rows = match rows {
            Some(r) => r,
            None => df.count().await? as u64,
        };
        Ok(PipelineModel { uid: Params::new("PipelineModel", &[]).uid().to_string(), stages: models, lineage: Lineage::of(df, rows) })
    }
}

/// A fitted pipeline: transformers applied in order.
#[derive(Debug, Clone)]
pub struct PipelineModel {
    pub uid: String,
    pub stages: Vec<Arc<dyn Transformer>>,
    lineage: Option<Lineage>,
}

impl PipelineModel {
    pub fn new(stages: Vec<Arc<dyn Transformer>>, lineage: Option<Lineage>) -> Self {
        PipelineModel { uid: Params::new("PipelineModel", &[]).uid().to_string(), stages, lineage }
    }

    /// The Delta tables, versions and rows the pipeline was fitted on.
    pub fn lineage(&self) -> Option<&Lineage> {
        self.lineage.as_ref()
    }

    /// Applies every stage to a lazy frame.
    pub async fn transform(&self, df: &DataFrame) -> Result<DataFrame> {
        let mut cur = df.clone();
        for t in &self.stages {
            cur = transform(t, &cur).await?;
        }
        Ok(cur)
    }

    /// Applies every stage to rows in memory (stages that need the engine, like
    /// `SQLTransformer`, need [`Self::transform`]).
    pub fn transform_frame(&self, frame: &Frame) -> Result<Frame> {
        let mut cur = frame.clone();
        for t in &self.stages {
            cur = transform_frame(t.as_ref(), &cur)?;
        }
        Ok(cur)
    }

    /// The last stage, which is the model in a feature → model pipeline.
    pub fn last(&self) -> Option<&Arc<dyn Transformer>> {
        self.stages.last()
    }

    /// Writes the model under `dir`, which must not exist yet (or be empty).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(MlError::Format(format!("{} already exists and is not empty", dir.display())));
        }
        std::fs::create_dir_all(dir.join("stages"))?;
        let mut stages = Vec::new();
        for (i, t) in self.stages.iter().enumerate() {
            let name = format!("{i:02}_{}", t.params().stage());
            save_stage(t.as_ref(), &dir.join("stages").join(&name))?;
            stages.push(json!({"class": t.params().stage(), "uid": t.params().uid(), "dir": format!("stages/{name}")}));
        }
        let meta = json!({
            "class": "PipelineModel",
            "formatVersion": FORMAT_VERSION,
            "uid": self.uid,
            "writer": concat!("delta-ml ", env!("CARGO_PKG_VERSION")),
            "stages": stages,
            "lineage": self.lineage,
        });
        std::fs::write(dir.join("metadata.json"), serde_json::to_vec_pretty(&meta)?)?;
        Ok(())
    }

    /// Reads a model written by [`Self::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<PipelineModel> {
        let dir = dir.as_ref();
        let meta = read_metadata(dir)?;
        if meta.get("class").and_then(Value::as_str) != Some("PipelineModel") {
            return Err(MlError::Format(format!("{} holds a {}, not a PipelineModel", dir.display(), meta.get("class").unwrap_or(&Value::Null))));
        }
        let lineage: Option<Lineage> = match meta.get("lineage") {
            Some(Value::Null) | None => None,
            Some(l) => Some(serde_json::from_value(l.clone())?),
        };
        let mut stages = Vec::new();
        for s in meta.get("stages").and_then(Value::as_array).ok_or_else(|| MlError::Format("metadata.json has no stages".into()))? {
            let sub = s.get("dir").and_then(Value::as_str).ok_or_else(|| MlError::Format("a stage has no dir".into()))?;
            stages.push(load_stage(&dir.join(sub), lineage.clone())?);
        }
        Ok(PipelineModel { uid: meta.get("uid").and_then(Value::as_str).unwrap_or_default().to_string(), stages, lineage })
    }
}

fn read_metadata(dir: &Path) -> Result<Value> {
    let path = dir.join("metadata.json");
    let bytes = std::fs::read(&path).map_err(|e| MlError::Format(format!("cannot read {}: {e}", path.display())))?;
    let meta: Value = serde_json::from_slice(&bytes).map_err(|e| MlError::Format(format!("{}: {e}", path.display())))?;
    check_format(&meta, &path.display().to_string())?;
    Ok(meta)
}

/// Refuses metadata without a format version or written by a newer delta-ml.
fn check_format(meta: &Value, at: &str) -> Result<()> {
    let version = meta.get("formatVersion").and_then(Value::as_u64).ok_or_else(|| MlError::Format(format!("{at} has no formatVersion")))?;
    if version > FORMAT_VERSION {
        return Err(MlError::Format(format!("{at} was written in format {version} by a newer delta-ml; this build reads format {FORMAT_VERSION} and older")));
    }
    Ok(())
}

/// Writes one fitted stage (params, JSON data, Parquet tables) under `dir`.
pub fn save_stage(t: &dyn Transformer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let data: ModelData = t.model_data()?;
    for (name, batch) in &data.tables {
        let file = std::fs::File::create(dir.join(format!("{name}.parquet")))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
        w.write(batch)?;
        w.close()?;
    }
    std::fs::write(dir.join("metadata.json"), serde_json::to_vec_pretty(&stage_metadata(t, &data))?)?;
    Ok(())
}

/// A stage's `metadata.json`: class, params, small fitted values, the names of its tables.
fn stage_metadata(t: &dyn Transformer, data: &ModelData) -> Value {
    let tables: Vec<&str> = data.tables.iter().map(|(n, _)| n.as_str()).collect();
    json!({
        "class": t.params().stage(),
        "formatVersion": FORMAT_VERSION,
        "uid": t.params().uid(),
        "params": t.params().to_json(),
        "defaultParams": t.params().defaults_json(),
        "data": data.json,
        "tables": tables,
        "lineage": t.lineage(),
    })
}

/// Reads one fitted stage written by [`save_stage`].
pub fn load_stage(dir: &Path, lineage: Option<Lineage>) -> Result<Arc<dyn Transformer>> {
    let meta = read_metadata(dir)?;
    let mut tables = Vec::new();
    for name in meta.get("tables").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let file = std::fs::File::open(dir.join(format!("{name}.parquet")))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = batches.first().map(|b| b.schema()).ok_or_else(|| MlError::Format(format!("{name}.parquet is empty")))?;
        tables.push((name.to_string(), arrow::compute::concat_batches(&schema, &batches)?));
    }
    build_stage(&meta, tables, lineage, &dir.display().to_string())
}

/// One fitted stage as bytes, for plans sent to other processes: the length of its metadata
/// (u64 LE; the same JSON as [`save_stage`] writes), the metadata, then each data table as an
/// Arrow IPC stream with its length before it.
pub fn stage_to_bytes(t: &dyn Transformer) -> Result<Vec<u8>> {
    let data: ModelData = t.model_data()?;
    let meta = stage_metadata(t, &data);
    let json = serde_json::to_vec(&meta)?;
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, batch) in &data.tables {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
        let bytes = w.into_inner()?;
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Reads what [`stage_to_bytes`] wrote.
pub fn stage_from_bytes(mut bytes: &[u8]) -> Result<Arc<dyn Transformer>> {
    let mut part = || -> Result<&[u8]> {
        let cut = || MlError::Format("a stage's bytes are cut short".into());
        let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(cut)?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| cut())?;
        if rest.len() < len {
            return Err(cut());
        }
        let (p, rest) = rest.split_at(len);
        bytes = rest;
        Ok(p)
    };
    let meta: Value = serde_json::from_slice(part()?)?;
    check_format(&meta, "a stage sent by another process")?;
    let mut tables = Vec::new();
    for name in meta.get("tables").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(part()?), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        tables.push((name.to_string(), arrow::compute::concat_batches(&schema, &batches)?));
    }
    build_stage(&meta, tables, None, "a stage sent by another process")
}

/// A stage from its metadata and data tables; `at` names where they came from in errors.
fn build_stage(meta: &Value, tables: Vec<(String, arrow::array::RecordBatch)>, lineage: Option<Lineage>, at: &str) -> Result<Arc<dyn Transformer>> {
    let class = meta.get("class").and_then(Value::as_str).ok_or_else(|| MlError::Format(format!("{at}: no class")))?.to_string();
    let uid = meta.get("uid").and_then(Value::as_str).unwrap_or_default().to_string();
    let set = meta.get("params").cloned().unwrap_or(json!({}));
    let data = ModelData { json: meta.get("data").cloned().unwrap_or(Value::Null), tables };
    let lineage = match meta.get("lineage") {
        Some(Value::Null) | None => lineage,
        Some(l) => Some(serde_json::from_value(l.clone())?),
    };
    let params_of = |mut p: Params| -> Result<Params> {
        p.set_uid(&uid);
        p.set_json(&set)?;
        Ok(p)
    };
    use crate::feature as f;
    use crate::models as m;
    let t: Arc<dyn Transformer> = match class.as_str() {
        "StringIndexerModel" => Arc::new(StringIndexerModel::load(params_of(f::StringIndexer::new().params().clone())?, &data)?),
        "OneHotEncoderModel" => Arc::new(OneHotEncoderModel::load(params_of(f::OneHotEncoder::new().params().clone())?, &data)?),
        "StandardScalerModel" => Arc::new(StandardScalerModel::load(params_of(f::StandardScaler::new().params().clone())?, &data)?),
        "MinMaxScalerModel" => Arc::new(MinMaxScalerModel::load(params_of(f::MinMaxScaler::new().params().clone())?, &data)?),
        "ImputerModel" => Arc::new(ImputerModel::load(params_of(f::Imputer::new().params().clone())?, &data)?),
        "VectorAssembler" => {
            let mut v = VectorAssembler::new();
            *v.params_mut() = params_of(v.params().clone())?;
            Arc::new(v)
        }
        "Bucketizer" => {
            let mut v = Bucketizer::new();
            *v.params_mut() = params_of(v.params().clone())?;
            Arc::new(v)
        }
        "SQLTransformer" => {
            let mut v = SQLTransformer::new();
            *v.params_mut() = params_of(v.params().clone())?;
            Arc::new(v)
        }
        "LogisticRegressionModel" => Arc::new(LogisticRegressionModel::load(params_of(m::LogisticRegression::new().params().clone())?, &data, lineage)?),
        "KMeansModel" => Arc::new(crate::models::KMeansModel::load(params_of(m::KMeans::new().params().clone())?, &data, lineage)?),
        "LinearRegressionModel" => Arc::new(LinearRegressionModel::load(params_of(m::LinearRegression::new().params().clone())?, &data, lineage)?),
        other => match m::TreeKind::from_name(other) {
            Some(kind) if kind.model_name() == other => Arc::new(m::TreeEnsembleModel::load(kind, params_of(m::TreeEstimator::new(kind).params().clone())?, &data, lineage)?),
            _ => return Err(MlError::Format(format!("unknown stage class `{other}` in {at}"))),
        },
    };
    Ok(t)
}
