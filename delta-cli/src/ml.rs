//! `delta ml fit | transform | evaluate`: delta-ml pipelines on Delta tables, one JSON line out.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use clap::Subcommand;
use delta_exec::{DataFrame, Session};
use delta_ml::evaluation::Evaluator;
use delta_ml::spec::pipeline_from_json;
use delta_ml::stage::Frame;
use delta_ml::{BinaryClassificationEvaluator, ClusteringEvaluator, MulticlassClassificationEvaluator, PipelineModel, RegressionEvaluator};
use serde_json::json;

use crate::{parse_timestamp, CliError};

#[derive(Subcommand)]
pub enum MlCommand {
    /// Fit a pipeline (SPEC.json: {"stages": [{"stage": "StringIndexer", …}, …]}) on a table and
    /// save it with the table version it read; prints rows, version, seconds and the training metric.
    Fit {
        table: String,
        #[arg(long)]
        pipeline: String,
        #[arg(long, conflicts_with = "timestamp")]
        version: Option<i64>,
        /// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD`.
        #[arg(long)]
        timestamp: Option<String>,
        /// A Spark SQL predicate selecting the training rows.
        #[arg(long = "where")]
        predicate: Option<String>,
        /// The directory to save the fitted pipeline in (must not exist or be empty).
        #[arg(long)]
        model: String,
    },
    /// Apply a saved pipeline to a table; write the rows to FILE.parquet or a Delta table path.
    Transform {
        model: String,
        table: String,
        #[arg(long = "where")]
        predicate: Option<String>,
        #[arg(long)]
        output: String,
    },
    /// Score a saved pipeline on a table: one JSON line with the metric.
    Evaluate {
        model: String,
        table: String,
        #[arg(long = "where")]
        predicate: Option<String>,
        /// areaUnderROC, areaUnderPR, f1, accuracy, weightedPrecision, weightedRecall, logLoss,
        /// rmse, mse, r2, mae, var or silhouette.
        #[arg(long)]
        metric: String,
        /// The label column, where the pipeline's last stage does not name it.
        #[arg(long)]
        label: Option<String>,
    },
}

fn ml_error(e: delta_ml::MlError) -> CliError {
    CliError::Output(e.to_string())
}

async fn read(session: &Session, table: &str, version: Option<i64>, timestamp: Option<&str>, predicate: Option<&str>) -> Result<DataFrame, CliError> {
    let mut reader = session.read();
    if let Some(v) = version {
        reader = reader.version_as_of(v);
    }
    if let Some(t) = timestamp {
        reader = reader.timestamp_as_of(parse_timestamp(t)?);
    }
    let mut df = reader.delta(table).await.map_err(crate::query_error)?;
    if let Some(p) = predicate {
        df = df.filter(p).map_err(crate::query_error)?;
    }
    Ok(df)
}

/// The evaluator for a metric name, reading the label column `label`.
fn evaluator(metric: &str, label: &str) -> Result<Box<dyn Evaluator>, CliError> {
    let e: Box<dyn Evaluator> = match metric {
        "areaUnderROC" | "areaUnderPR" => Box::new(BinaryClassificationEvaluator::new().with("metricName", metric).and_then(|e| e.with("labelCol", label)).map_err(ml_error)?),
        "rmse" | "mse" | "r2" | "mae" | "var" => Box::new(RegressionEvaluator::new().with("metricName", metric).and_then(|e| e.with("labelCol", label)).map_err(ml_error)?),
        "silhouette" => Box::new(ClusteringEvaluator::new()),
        other => Box::new(MulticlassClassificationEvaluator::new().with("metricName", other).and_then(|e| e.with("labelCol", label)).map_err(ml_error)?),
    };
    Ok(e)
}

/// The training metric a fitted pipeline reports: by its last stage.
fn default_metric(model: &PipelineModel, frame: &Frame) -> Option<(&'static str, String)> {
    let last = model.last()?;
    let label = last.params().string("labelCol").unwrap_or_else(|_| "label".into());
    match last.params().stage() {
        "LogisticRegressionModel" => {
            let binary = last.as_any().downcast_ref::<delta_ml::LogisticRegressionModel>().is_some_and(|m| !m.is_multinomial());
            Some((if binary { "areaUnderROC" } else { "f1" }, label))
        }
        "LinearRegressionModel" => Some(("rmse", label)),
        _ if last.as_any().downcast_ref::<delta_ml::TreeEnsembleModel>().is_some() => {
            let t = last.as_any().downcast_ref::<delta_ml::TreeEnsembleModel>()?;
            match (t.kind().is_classifier(), t.num_classes()) {
                (true, 2) => Some(("areaUnderROC", label)),
                (true, _) => Some(("f1", label)),
                (false, _) => Some(("rmse", label)),
            }
        }
        _ => {
            let _ = frame;
            None
        }
    }
}

fn label_of(model: &PipelineModel) -> String {
    model.last().and_then(|t| t.params().string("labelCol").ok()).unwrap_or_else(|| "label".into())
}

/// Vector columns as Delta can store them: `array<double>`.
fn delta_compatible(frame: &Frame) -> Result<Frame, CliError> {
    let fields: Vec<Field> = frame
        .schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::FixedSizeList(item, _) => Field::new(f.name(), DataType::List(item.clone()), f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for b in &frame.batches {
        let cols = b.columns().iter().zip(schema.fields()).map(|(c, f)| arrow::compute::cast(c, f.data_type())).collect::<Result<Vec<_>, _>>().map_err(|e| CliError::Output(e.to_string()))?;
        batches.push(arrow::array::RecordBatch::try_new(schema.clone(), cols).map_err(|e| CliError::Output(e.to_string()))?);
    }
    Ok(Frame::new(schema, batches))
}

pub async fn run(command: MlCommand) -> Result<(), CliError> {
    let session = Session::new();
    match command {
        MlCommand::Fit { table, pipeline, version, timestamp, predicate, model } => {
            let text = std::fs::read_to_string(&pipeline).map_err(|e| CliError::Usage(format!("cannot read {pipeline}: {e}")))?;
            let spec: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{pipeline}: {e}")))?;
            let pipeline = pipeline_from_json(&spec).map_err(ml_error)?;
            let tuning = delta_ml::spec::tuning_from_json(&spec).map_err(ml_error)?;
            let df = read(&session, &table, version, timestamp.as_deref(), predicate.as_deref()).await?;
            let started = std::time::Instant::now();
            let (fitted, search) = match &tuning {
                None => (pipeline.fit(&df).await.map_err(ml_error)?, None),
                Some(t) => {
                    let result = t.fit(&df).await.map_err(ml_error)?;
                    (result.best.clone(), Some((t.stage(), result)))
                }
            };
            let fit_seconds = started.elapsed().as_secs_f64();
            let lineage = fitted.lineage().cloned();
            let mut line = json!({
                "rows": lineage.as_ref().map(|l| l.rows),
                "table_version": lineage.as_ref().and_then(|l| l.tables.first().map(|t| t.version)),
                "fit_seconds": fit_seconds,
            });
            let scored = Frame::collect(&fitted.transform(&df).await.map_err(ml_error)?).await.map_err(ml_error)?;
            if let Some((metric, label)) = default_metric(&fitted, &scored) {
                let value = evaluator(metric, &label)?.evaluate_frame(&scored).map_err(ml_error)?;
                line["metric"] = json!(metric);
                line["value"] = json!(value);
            }
            match &search {
                None => fitted.save(&model).map_err(ml_error)?,
                Some((stage, result)) => {
                    result.save(&model, stage).map_err(ml_error)?;
                    let summary = result.summary(stage);
                    line["tuning"] = json!({"stage": stage, "metricName": summary["metricName"], "avgMetrics": summary["avgMetrics"], "bestParams": summary["bestParams"]});
                }
            }
            println!("{line}");
        }
        MlCommand::Transform { model, table, predicate, output } => {
            let fitted = PipelineModel::load(&model).map_err(ml_error)?;
            let df = read(&session, &table, None, None, predicate.as_deref()).await?;
            let out = Frame::collect(&fitted.transform(&df).await.map_err(ml_error)?).await.map_err(ml_error)?;
            if output.ends_with(".parquet") {
                let file = std::fs::File::create(&output)?;
                let mut w = parquet::arrow::ArrowWriter::try_new(file, out.schema.clone(), None).map_err(|e| CliError::Output(e.to_string()))?;
                for b in &out.batches {
                    w.write(b).map_err(|e| CliError::Output(e.to_string()))?;
                }
                w.close().map_err(|e| CliError::Output(e.to_string()))?;
            } else {
                let out = delta_compatible(&out)?;
                let table = session.context().read_batches(out.batches.clone()).map_err(crate::query_error)?;
                let df = DataFrame::from_datafusion(&session, table);
                df.write().mode("errorIfExists").map_err(crate::query_error)?.save(&output).await.map_err(crate::query_error)?;
            }
            println!("{}", json!({"rows": out.num_rows(), "output": output}));
        }
        MlCommand::Evaluate { model, table, predicate, metric, label } => {
            let fitted = PipelineModel::load(&model).map_err(ml_error)?;
            let df = read(&session, &table, None, None, predicate.as_deref()).await?;
            let label = label.unwrap_or_else(|| label_of(&fitted));
            let ev = evaluator(&metric, &label)?;
            let out = Frame::collect(&fitted.transform(&df).await.map_err(ml_error)?).await.map_err(ml_error)?;
            let value = ev.evaluate_frame(&out).map_err(ml_error)?;
            println!("{}", json!({"metric": metric, "value": value, "rows": out.num_rows()}));
        }
    }
    Ok(())
}
