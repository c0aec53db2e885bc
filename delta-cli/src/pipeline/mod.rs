//! The feature pipeline end to end, the job this project exists for (`delta pipeline`, and
//! `cargo run --release -p delta-cli --example pipeline`):
//!
//! ```text
//!  1 ingest    events (partitioned by date, change feed on), one commit per day; one day
//!              arrives with an extra column: refused, then accepted with mergeSchema
//!  2 features  DataFrame verbs only: lag over Window.partition_by(user_id)
//!              .order_by(event_timestamp, event_id), group_by(user_id).agg(..), a broadcast
//!              join with the small categories table
//!  3 MERGE     into user_features (change feed on): day 1 from every event, later days only
//!              the users in the events' change feed since the last processed version
//!  4 training  labels joined with the features that were current at each label's time
//!    set       (DataFrame::join_features_as_of over user_features' change feed), written as
//!              the training_set table, whose commit names the versions it was built from
//!  5 train     StringIndexer → OneHotEncoder → VectorAssembler → StandardScaler →
//!              GBTClassifier under TrainValidationSplit, and LogisticRegression to compare,
//!              on a pinned version of training_set; AUC on held-out users; saved with lineage
//!  6 reproduce the saved model's lineage re-read by version gives the same rows, while the
//!              feature table moved on (the next day): its change feed and history show how
//!  7 report    a summary on stdout and report.html (ROC curves, feature importances,
//!              versions) drawn with plotters
//! ```
//!
//! Every table lives under one base location: a local folder or an object-store URL
//! (`--store s3://bucket/prefix`, credentials from the environment as for every command).
//! The model and the report are local files under `--out`. With `--cluster df://host:port`
//! every query runs on a Ballista cluster (whose executors must reach the store): ingest is
//! delta-core's, the estimators fit here on the rows the cluster returns, and everything else
//! — features, MERGE sources, the as-of join, scoring with the fitted stages — runs there.

pub mod data;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::DataFusionError;
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{DeltaError, Table, TableOptions};
use delta_exec::{broadcast, DataFrame, DeltaTable, FeatureTime, Session, Window};
use delta_ml::{spec, BinaryClassificationEvaluator, Evaluator, PipelineModel};
use serde_json::{json, Value};

use data::{date_of, Events};

/// What can go wrong, by layer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Delta(#[from] DeltaError),
    #[error("{0}")]
    Query(#[from] DataFusionError),
    #[error("{0}")]
    Ml(#[from] delta_ml::MlError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("bad pipeline option: {0}")]
    Usage(String),
    #[error("pipeline check failed: {0}")]
    Check(String),
}

pub type Result<T> = std::result::Result<T, PipelineError>;

/// The pipeline's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// 1.0 is `make_data.py`'s `events`: 2M events of 100k users.
    pub scale: f64,
    /// Days of events, one commit each (at least 4). The last arrives after training.
    pub days: u32,
    /// Model, report and (without `store`) the tables.
    pub out: PathBuf,
    /// Where the tables live (`s3://…`, `az://…`, a folder); default `out/tables`.
    pub store: Option<String>,
    /// A Ballista cluster (`df://host:port`) to run every query on; default: this process.
    pub cluster: Option<String>,
    /// Session configuration, (KEY, VALUE) as `Session::set_conf` takes it.
    pub conf: Vec<(String, String)>,
    pub seed: u64,
    /// GBT iterations (MLlib's `maxIter`).
    pub gbt_iterations: usize,
    /// Print each step as it runs.
    pub verbose: bool,
    /// Storage options for every table (credentials, endpoints).
    pub options: TableOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scale: 1.0,
            days: 10,
            out: std::env::temp_dir().join("delta-pipeline"),
            store: None,
            cluster: None,
            conf: Vec::new(),
            seed: 42,
            gbt_iterations: 30,
            verbose: true,
            options: TableOptions::default(),
        }
    }
}

/// One timed step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub seconds: f64,
    pub detail: String,
}

/// A table and the version a step used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedVersion {
    pub table: String,
    pub location: String,
    pub version: i64,
    pub role: String,
}

/// Everything the run measured, for stdout, the report and the tests.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub steps: Vec<Step>,
    /// Where the queries ran: `in this process` or `on the cluster at URL`.
    pub engine: String,
    pub events: usize,
    pub users: usize,
    pub schema_refusal: String,
    /// Users recomputed per day (day 1: all).
    pub users_recomputed: Vec<usize>,
    pub feature_rows: usize,
    pub incremental_equals_full: bool,
    pub training_rows: usize,
    pub label_scan: (usize, usize),
    pub train_rows: usize,
    pub test_rows: usize,
    pub auc_gbt: f64,
    pub auc_lr: f64,
    pub validation: Vec<(String, f64)>,
    pub roc_gbt: Vec<(f64, f64)>,
    pub roc_lr: Vec<(f64, f64)>,
    pub importances: Vec<(String, f64)>,
    pub versions: Vec<UsedVersion>,
    pub reproduced_rows: u64,
    pub changes_since: Vec<(String, i64)>,
    pub feature_history: Vec<(i64, String)>,
    pub tables: String,
    pub model_dir: PathBuf,
    pub report: PathBuf,
}

/// The tables' locations under the base.
#[derive(Debug, Clone)]
pub struct Locations {
    pub events: String,
    pub categories: String,
    pub user_features: String,
    pub training_set: String,
}

impl Locations {
    fn under(base: &str) -> Locations {
        let base = base.trim_end_matches('/');
        Locations {
            events: format!("{base}/events"),
            categories: format!("{base}/categories"),
            user_features: format!("{base}/user_features"),
            training_set: format!("{base}/training_set"),
        }
    }
}

/// The numeric model inputs, in the order the assembler takes them after the category.
pub const NUMERIC_FEATURES: &[&str] = &[
    "log_amount",
    "amount_z",
    "short_gap",
    "gap_log_s",
    "night",
    "n_events",
    "avg_amount",
    "std_amount",
    "n_categories",
    "n_category_groups",
    "short_gap_rate",
    "avg_gap_log_s",
];

/// The lookback of the label-time gap: a longer gap counts as this long.
const GAP_CAP_US: i64 = 86_400_000_000;

struct Run<'a> {
    cfg: &'a Config,
    session: Session,
    at: Locations,
    summary: Summary,
}

impl Run<'_> {
    fn say(&self, line: &str) {
        if self.cfg.verbose {
            println!("{line}");
        }
    }

    fn step(&mut self, name: &str, start: Instant, detail: String) {
        let seconds = start.elapsed().as_secs_f64();
        self.say(&format!("   {name}: {detail} ({seconds:.2} s)"));
        match self.summary.steps.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.seconds += seconds;
                s.detail = detail;
            }
            None => self.summary.steps.push(Step { name: name.into(), seconds, detail }),
        }
    }

    fn table(&self, location: &str) -> Result<Table> {
        Ok(Table::open_with(location, self.cfg.options.clone())?)
    }

    async fn version_of(&self, location: &str) -> Result<i64> {
        Ok(self.table(location)?.snapshot().await?.version())
    }

    /// Step 1 for one day: one atomic append; the schema day is refused, then merged.
    async fn ingest(&mut self, events: &Events, day: u32, schema_day: u32) -> Result<i64> {
        let start = Instant::now();
        let table = self.table(&self.at.events)?;
        let batch = events.day(day, day == schema_day)?;
        let rows = batch.num_rows();
        let mut opts = WriteOptions { mode: SaveMode::Append, ..Default::default() };
        if day == 0 {
            opts.partition_by = Some(vec!["date".into()]);
            opts.properties.insert("delta.enableChangeDataFeed".into(), "true".into());
        }
        if day == schema_day {
            match table.write(vec![batch.clone()], opts.clone()).await {
                Ok(_) => return Err(PipelineError::Check("a day with an extra column was accepted without mergeSchema".into())),
                Err(e) => {
                    self.summary.schema_refusal = e.to_string();
                    self.say(&format!("   {}: refused without mergeSchema: {e}", date_of(day)));
                }
            }
            opts.merge_schema = true;
        }
        let result = table.write(vec![batch], opts).await?;
        let version = result.version.ok_or_else(|| PipelineError::Check(format!("day {} committed nothing", date_of(day))))?;
        let note = if day == schema_day { ", with a new column `device` (mergeSchema)" } else { "" };
        self.step("1 ingest", start, format!("{} → events v{version}: {rows} events{note}", date_of(day)));
        Ok(version)
    }

    /// Step 2: per-user features of `events` (a frame of raw events): amounts and categories
    /// per user, gaps between a user's events (a lag over the user's events in time order),
    /// joined by user.
    fn features(&self, events: &DataFrame, categories: &DataFrame) -> Result<DataFrame> {
        let per_user = events
            .join(&broadcast(categories), &["category"], "left")?
            .group_by(&["user_id"])?
            .agg(&[
                "count(*) AS n_events",
                "sum(amount) AS total_amount",
                "avg(amount) AS avg_amount",
                "stddev(amount) AS std_amount",
                "avg(ln(amount)) AS avg_log_amount",
                "stddev(ln(amount)) AS std_log_amount",
                "count(DISTINCT category) AS n_categories",
                "count(DISTINCT category_group) AS n_category_groups",
                "max(event_timestamp) AS last_event",
            ])?;
        let by_user = Window::partition_by(&["user_id"]).order_by(&["event_timestamp", "event_id"]);
        let gaps = events
            .with_column_over("prev_timestamp", "lag(event_timestamp)", &by_user)?
            .with_column("gap_us", "CAST(event_timestamp AS BIGINT) - CAST(prev_timestamp AS BIGINT)")?
            .group_by(&["user_id"])?
            .agg(&[
                "avg(ln(1.0 + CAST(gap_us AS DOUBLE) / 1e6)) AS avg_gap_log_s",
                "min(gap_us) AS min_gap_us",
                "sum(CASE WHEN gap_us < 120000000 THEN 1 ELSE 0 END) AS n_short_gaps",
            ])?;
        let df = per_user
            .join(&gaps, &["user_id"], "inner")?
            // Valid from the end of the day of the user's latest event: the day's run.
            .with_column("feature_time", "date_trunc('day', last_event) + INTERVAL 1 DAY")?;
        Ok(df)
    }

    async fn categories(&self) -> Result<DataFrame> {
        Ok(self.session.read().delta(&self.at.categories).await?)
    }

    /// Steps 2 and 3 for one day: recompute the affected users, MERGE them.
    async fn update_features(&mut self, day: u32, events_version: i64, processed: Option<i64>) -> Result<i64> {
        let start = Instant::now();
        let upto = format!("date <= DATE '{}'", date_of(day));
        let events = self.session.read().version_as_of(events_version).delta(&self.at.events).await?.filter(&upto)?;
        let source = match processed {
            None => events,
            Some(last) => {
                let changes = self
                    .session
                    .read()
                    .option("readChangeFeed", "true")?
                    .option("startingVersion", &(last + 1).to_string())?
                    .option("endingVersion", &events_version.to_string())?
                    .delta(&self.at.events)
                    .await?;
                // Held in memory (a day's users): the per-user aggregate above it then reads only
                // scans, and delta-exec's split of its distinct counts applies.
                let affected = changes.filter("_change_type = 'insert'")?.select(&["user_id"])?.distinct()?.cache().await?;
                events.join(&affected, &["user_id"], "semi")?
            }
        };
        let features = self.features(&source, &self.categories().await?)?;
        if processed.is_none() {
            // An empty table of the features' schema, change feed on from its first version.
            let schema = std::sync::Arc::new(features.inner().schema().as_arrow().clone());
            let mut opts = WriteOptions::default();
            opts.properties.insert("delta.enableChangeDataFeed".into(), "true".into());
            self.table(&self.at.user_features)?.write(vec![RecordBatch::new_empty(schema)], opts).await?;
        }
        let target = DeltaTable::for_path(&self.session, &self.at.user_features)?;
        let result = target.merge(&features, "t.user_id = s.user_id").await?.when_matched_update_all().when_not_matched_insert_all().execute().await?;
        let version = result.version.unwrap_or(self.version_of(&self.at.user_features).await?);
        let updated = result.metrics.get("numTargetRowsUpdated").copied().unwrap_or(0);
        let inserted = result.metrics.get("numTargetRowsInserted").copied().unwrap_or(0);
        self.summary.users_recomputed.push((updated + inserted) as usize);
        let how = if processed.is_none() { "every user (first day)".to_string() } else { format!("users in the change feed since events v{}", processed.unwrap_or(0) + 1) };
        self.step("2-3 features + MERGE", start, format!("{}: {how}: {updated} updated, {inserted} inserted → user_features v{version}", date_of(day)));
        Ok(version)
    }

    /// Step 4: labels from `first_label_day` on, with the features current at each label.
    async fn training_set(&mut self, events_version: i64, features_version: i64, first_label_day: u32) -> Result<i64> {
        let start = Instant::now();
        // The label-time gap looks back one day: older partitions are never read.
        let lookback = format!("date >= DATE '{}'", date_of(first_label_day - 1));
        let events = self.session.read().version_as_of(events_version).delta(&self.at.events).await?.filter(&lookback)?;
        let by_user = Window::partition_by(&["user_id"]).order_by(&["event_timestamp", "event_id"]);
        let labels = events
            .with_column_over("prev_timestamp", "lag(event_timestamp)", &by_user)?
            .with_column("gap_us", &format!("LEAST(COALESCE(CAST(event_timestamp AS BIGINT) - CAST(prev_timestamp AS BIGINT), {GAP_CAP_US}), {GAP_CAP_US})"))?
            .filter(&format!("date >= DATE '{}'", date_of(first_label_day)))?
            .select(&["event_id", "user_id", "category", "amount", "event_timestamp", "label", "date", "gap_us"])?;
        self.summary.label_scan = scan_counts(&labels).await?;
        // The feature table's whole history (its latest version is `features_version`).
        let joined = labels.join_features_as_of(&self.at.user_features, &["user_id"], "event_timestamp", FeatureTime::Column("feature_time".into())).await?;
        let set = joined
            .filter("n_events IS NOT NULL")?
            .with_column("log_amount", "ln(amount)")?
            .with_column("amount_z", "CASE WHEN std_log_amount > 0 THEN (ln(amount) - avg_log_amount) / std_log_amount ELSE 0.0 END")?
            .with_column("short_gap", "CASE WHEN gap_us < 120000000 THEN 1.0 ELSE 0.0 END")?
            .with_column("gap_log_s", "ln(1.0 + CAST(gap_us AS DOUBLE) / 1e6)")?
            .with_column("night", "CASE WHEN date_part('hour', event_timestamp) < 6 THEN 1.0 ELSE 0.0 END")?
            .with_column("short_gap_rate", "CAST(n_short_gaps AS DOUBLE) / n_events")?
            .with_column("n_events", "CAST(n_events AS DOUBLE)")?
            .with_column("n_categories", "CAST(n_categories AS DOUBLE)")?
            .with_column("n_category_groups", "CAST(n_category_groups AS DOUBLE)")?
            .with_column("std_amount", "COALESCE(std_amount, 0.0)")?
            .with_column("avg_gap_log_s", "COALESCE(avg_gap_log_s, ln(1.0 + 86400.0))")?
            .with_column("split", "CASE WHEN (user_id * 40503) % 100 < 20 THEN 'test' ELSE 'train' END")?;
        let mut cols: Vec<&str> = vec!["event_id", "user_id", "event_timestamp", "date", "category", "amount", "label", "split", "_feature_version"];
        cols.extend(NUMERIC_FEATURES);
        let set = set.select(&cols)?;
        let lineage = json!({"events": {"location": self.at.events, "version": events_version},
                             "user_features": {"location": self.at.user_features, "version": features_version}});
        let result = set.write().mode("overwrite")?.option("userMetadata", &lineage.to_string())?.save(&self.at.training_set).await?;
        let version = result.version.ok_or_else(|| PipelineError::Check("the training set committed nothing".into()))?;
        self.summary.training_rows = result.rows_written as usize;
        self.step(
            "4 training set",
            start,
            format!(
                "{} labels from {} on (events read: {} of {} files), as of their time → training_set v{version}",
                result.rows_written,
                date_of(first_label_day),
                self.summary.label_scan.1,
                self.summary.label_scan.0
            ),
        );
        Ok(version)
    }

    /// Step 5: tune and fit the GBT pipeline and the LR one; AUC on held-out users; save both.
    async fn train(&mut self, training_version: i64) -> Result<(PipelineModel, u64, i64)> {
        let start = Instant::now();
        // In event order, whatever the files' order: the split and the fit repeat run to run.
        let train = self.session.read().version_as_of(training_version).delta(&self.at.training_set).await?.filter("split = 'train'")?.order_by(&["event_id"])?;
        let test = self.session.read().version_as_of(training_version).delta(&self.at.training_set).await?.filter("split = 'test'")?;
        let (rows, checksum) = fingerprint(&train).await?;
        self.summary.train_rows = rows as usize;
        self.summary.test_rows = test.count().await?;
        let mut inputs = vec![json!("category_vec")];
        inputs.extend(NUMERIC_FEATURES.iter().map(|c| json!(c)));
        let stages = |model: Value| {
            json!([
                {"stage": "StringIndexer", "inputCol": "category", "outputCol": "category_idx", "handleInvalid": "keep"},
                {"stage": "OneHotEncoder", "inputCols": ["category_idx"], "outputCols": ["category_vec"]},
                {"stage": "VectorAssembler", "inputCols": inputs, "outputCol": "raw_features"},
                {"stage": "StandardScaler", "inputCol": "raw_features", "outputCol": "features"},
                model
            ])
        };
        let gbt = json!({
            "stages": stages(json!({"stage": "GBTClassifier", "maxIter": self.cfg.gbt_iterations, "seed": self.cfg.seed, "stepSize": 0.2})),
            "tuning": {"stage": "TrainValidationSplit", "trainRatio": 0.8, "seed": self.cfg.seed,
                       "grid": {"maxDepth": [3, 5]}, "evaluator": {"stage": "BinaryClassificationEvaluator"}}
        });
        let tuning = spec::tuning_from_json(&gbt)?.ok_or_else(|| PipelineError::Check("no tuning in the GBT spec".into()))?;
        let tuned = tuning.fit(&train).await?;
        self.summary.validation =
            tuned.param_maps.iter().zip(&tuned.metrics).map(|(p, m)| (p.to_json().to_string(), *m)).collect();
        let model_dir = self.cfg.out.join("model");
        let _ = std::fs::remove_dir_all(&model_dir);
        tuned.save(&model_dir, tuning.stage())?;
        // Beside the model's own lineage (training_set at its version): what that version was
        // built from, so the chain events → user_features → training_set → model is on disk.
        let sources: Vec<Value> = self.summary.versions.iter().map(|v| json!({"table": v.table, "location": v.location, "version": v.version, "role": v.role})).collect();
        std::fs::write(model_dir.join("sources.json"), serde_json::to_vec_pretty(&json!({"tables": sources}))?)?;
        self.step(
            "5 train GBT (TrainValidationSplit)",
            start,
            format!("{rows} rows of training_set v{training_version}; validation AUC {}", self.summary.validation.iter().map(|(p, m)| format!("{p}: {m:.4}")).collect::<Vec<_>>().join(", ")),
        );

        let start = Instant::now();
        let lr = json!({"stages": stages(json!({"stage": "LogisticRegression", "maxIter": 100, "regParam": 0.001}))});
        let lr_model = spec::pipeline_from_json(&lr)?.fit(&train).await?;
        let lr_dir = self.cfg.out.join("model_lr");
        let _ = std::fs::remove_dir_all(&lr_dir);
        lr_model.save(&lr_dir)?;
        self.step("5 train LR", start, "the same stages, LogisticRegression(regParam 0.001)".into());

        let start = Instant::now();
        let evaluator = BinaryClassificationEvaluator::new();
        let scored_gbt = tuned.best.transform(&test).await?;
        let scored_lr = lr_model.transform(&test).await?;
        self.summary.auc_gbt = evaluator.evaluate(&scored_gbt).await?;
        self.summary.auc_lr = evaluator.evaluate(&scored_lr).await?;
        self.summary.roc_gbt = roc(&scored_gbt.collect().await?)?;
        self.summary.roc_lr = roc(&scored_lr.collect().await?)?;
        self.summary.importances = importances(&tuned.best)?;
        self.step(
            "5 evaluate",
            start,
            format!("AUC on {} rows of held-out users: GBT {:.4}, LR {:.4}", self.summary.test_rows, self.summary.auc_gbt, self.summary.auc_lr),
        );
        self.summary.model_dir = model_dir;
        Ok((tuned.best, checksum, training_version))
    }

    /// Step 6: load the model, re-read its training rows by version, show what moved since.
    async fn reproduce(&mut self, checksum: u64, features_version: i64) -> Result<()> {
        let start = Instant::now();
        let model = PipelineModel::load(&self.summary.model_dir)?;
        let lineage = model.lineage().ok_or_else(|| PipelineError::Check("the saved model has no lineage".into()))?.clone();
        let source = lineage.tables.first().ok_or_else(|| PipelineError::Check("the model's lineage names no table".into()))?;
        let again = self.session.read().version_as_of(source.version).delta(&source.uri).await?.filter("split = 'train'")?;
        let (rows, sum) = fingerprint(&again).await?;
        if rows != lineage.rows || sum != checksum {
            return Err(PipelineError::Check(format!(
                "re-reading training_set v{} gave {rows} rows (checksum {sum}); the model was fitted on {} (checksum {checksum})",
                source.version, lineage.rows
            )));
        }
        self.summary.reproduced_rows = rows;
        let changes = self
            .session
            .read()
            .option("readChangeFeed", "true")?
            .option("startingVersion", &(features_version + 1).to_string())?
            .delta(&self.at.user_features)
            .await?
            .group_by(&["_change_type"])?
            .agg(&["count(*) AS n"])?
            .order_by(&["_change_type"])?
            .collect()
            .await?;
        self.summary.changes_since = pairs(&changes, "_change_type", "n")?;
        let history = self.table(&self.at.user_features)?.history(Some(4)).await?;
        self.summary.feature_history = history
            .iter()
            .map(|c| (c.version, c.commit_info.get("operation").and_then(Value::as_str).unwrap_or("?").to_string()))
            .collect();
        let moved = self.summary.changes_since.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
        self.step(
            "6 reproduce",
            start,
            format!(
                "model loaded; training_set v{} re-read: the same {rows} rows; user_features since v{features_version}: {moved}",
                source.version
            ),
        );
        Ok(())
    }

    /// The feature table against a recomputation from every event.
    async fn check_incremental(&mut self) -> Result<()> {
        let start = Instant::now();
        let events = self.session.read().delta(&self.at.events).await?;
        let full = self.features(&events, &self.categories().await?)?.order_by(&["user_id"])?.collect().await?;
        let table = self.session.read().delta(&self.at.user_features).await?.order_by(&["user_id"])?.collect().await?;
        let diff = same_rows(&full, &table)?;
        self.summary.incremental_equals_full = diff.is_none();
        self.summary.feature_rows = table.iter().map(RecordBatch::num_rows).sum();
        if let Some(d) = diff {
            return Err(PipelineError::Check(format!("the incremental feature table differs from a full recomputation: {d}")));
        }
        self.step("check", start, format!("user_features ({} users) equals a recomputation from every event", self.summary.feature_rows));
        Ok(())
    }
}

/// The command line of `delta pipeline` and of the `pipeline` example.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// 1.0 = make_data.py's events: 2M events of 100k users.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Days of events, one commit each (the last arrives after training).
    #[arg(long, default_value_t = 10)]
    pub days: u32,
    /// Where the model, the report and (without --store) the tables go [default: TMP/delta-pipeline].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The tables' base location: a folder or an object-store URL (s3://…, az://…, gs://…).
    #[arg(long)]
    pub store: Option<String>,
    /// Run the queries on a cluster (df://host:port, see `delta cluster`); its executors must
    /// reach the tables' store.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Session configuration, KEY=VALUE (repeatable), as for `delta sql`: e.g.
    /// spark.sql.shuffle.partitions=4.
    #[arg(long = "conf", value_parser = key_value)]
    pub conf: Vec<(String, String)>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// GBT iterations (MLlib's maxIter).
    #[arg(long, default_value_t = 30)]
    pub gbt_iterations: usize,
}

impl PipelineArgs {
    pub fn config(&self, options: TableOptions) -> Config {
        let d = Config::default();
        Config {
            scale: self.scale,
            days: self.days,
            out: self.out.clone().unwrap_or(d.out),
            store: self.store.clone(),
            cluster: self.cluster.clone(),
            conf: self.conf.clone(),
            seed: self.seed,
            gbt_iterations: self.gbt_iterations,
            verbose: true,
            options,
        }
    }
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).ok_or_else(|| format!("--conf takes KEY=VALUE, not `{s}`"))
}

/// The closing summary on stdout.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::from("== summary\n");
    let total: f64 = s.steps.iter().map(|st| st.seconds).sum();
    for st in &s.steps {
        out.push_str(&format!("   {:<36} {:>7.2} s\n", st.name, st.seconds));
    }
    out.push_str(&format!("   {:<36} {:>7.2} s\n", "total", total));
    out.push_str(&format!("   events {} of {} users; user_features {} rows, equal to a full recomputation: {}\n", s.events, s.users, s.feature_rows, s.incremental_equals_full));
    out.push_str(&format!("   training set {} rows ({} train, {} test); AUC GBT {:.4}, LR {:.4}\n", s.training_rows, s.train_rows, s.test_rows, s.auc_gbt, s.auc_lr));
    for v in &s.versions {
        out.push_str(&format!("   {} v{}: {}\n", v.table, v.version, v.role));
    }
    out.push_str(&format!("   queries ran {}\n   tables: {}\n   model:  {}\n   report: {}\n", s.engine, s.tables, s.model_dir.display(), s.report.display()));
    out
}

/// Runs the whole pipeline.
pub async fn run(cfg: &Config) -> Result<Summary> {
    if cfg.days < 4 {
        return Err(PipelineError::Usage(format!("--days must be at least 4, not {}", cfg.days)));
    }
    if !(cfg.scale > 0.0 && cfg.scale <= 100.0) {
        return Err(PipelineError::Usage(format!("--scale must be in (0, 100], not {}", cfg.scale)));
    }
    std::fs::create_dir_all(&cfg.out)?;
    let base = match &cfg.store {
        Some(url) => url.clone(),
        None => {
            let dir = cfg.out.join("tables");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            absolute(&dir)?.to_string_lossy().into_owned()
        }
    };
    let at = Locations::under(&base);
    if Table::open_with(&at.events, cfg.options.clone())?.snapshot().await.is_ok() {
        return Err(PipelineError::Usage(format!("{} already holds an events table: give an empty --store location", base)));
    }
    let session = match &cfg.cluster {
        Some(url) => Session::remote(url, cfg.options.clone()).await?,
        None => Session::new().with_table_options(cfg.options.clone()),
    };
    for (k, v) in &cfg.conf {
        session.set_conf(k, v).map_err(|e| PipelineError::Usage(format!("--conf {k}={v}: {e}")))?;
    }
    let engine = match &cfg.cluster {
        Some(url) => format!("on the cluster at {url}"),
        None => "in this process".to_string(),
    };
    let mut run = Run { cfg, session, at, summary: Summary { tables: base.clone(), engine: engine.clone(), ..Default::default() } };
    run.say(&format!("== the feature pipeline: scale {}, {} days, tables under {base}, queries {engine}", cfg.scale, cfg.days));

    let start = Instant::now();
    let events = Events::generate(cfg.scale, cfg.days, cfg.seed);
    run.summary.events = events.len();
    run.summary.users = events.users();
    run.table(&run.at.categories)?.write(vec![data::categories()?], WriteOptions::default()).await?;
    run.step("0 generate", start, format!("{} events of {} users over {} days; categories table", events.len(), events.users(), cfg.days));

    // Days 1..days-1, then the training set, the models; then the last day arrives.
    let schema_day = 3.min(cfg.days - 2);
    let first_label_day = cfg.days / 2;
    let mut processed = None;
    let mut features_version = 0;
    let mut events_version = 0;
    run.say("== 1-3 ingest, features, MERGE (incremental from the change feed after the first day)");
    for day in 0..cfg.days - 1 {
        events_version = run.ingest(&events, day, schema_day).await?;
        features_version = run.update_features(day, events_version, processed).await?;
        processed = Some(events_version);
    }
    run.say("== 4 point-in-time training set");
    let training_version = run.training_set(events_version, features_version, first_label_day).await?;
    run.summary.versions = vec![
        UsedVersion { table: "events".into(), location: run.at.events.clone(), version: events_version, role: "labels and features read".into() },
        UsedVersion { table: "user_features".into(), location: run.at.user_features.clone(), version: features_version, role: "features as of each label (change feed up to this version)".into() },
        UsedVersion { table: "training_set".into(), location: run.at.training_set.clone(), version: training_version, role: "the model's training data (pinned)".into() },
    ];
    run.say("== 5 train and evaluate");
    let (_, checksum, _) = run.train(training_version).await?;
    run.say("== the next day arrives");
    let last = cfg.days - 1;
    let v = run.ingest(&events, last, schema_day).await?;
    run.update_features(last, v, processed).await?;
    run.check_incremental().await?;
    run.say("== 6 reproduce and debug");
    run.reproduce(checksum, features_version).await?;
    let start = Instant::now();
    run.summary.report = cfg.out.join("report.html");
    report::write_html(&run.summary, &run.summary.report)?;
    run.step("7 report", start, format!("{}", run.summary.report.display()));
    Ok(run.summary)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

/// (files in the table version, files the scan reads) of every Delta scan in `df`'s plan.
async fn scan_counts(df: &DataFrame) -> Result<(usize, usize)> {
    fn walk(plan: &std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>, acc: &mut (usize, usize)) {
        if let Some(s) = plan.downcast_ref::<delta_exec::DeltaScanExec>() {
            acc.0 += s.files_total();
            acc.1 += s.files_scanned();
        }
        for c in plan.children() {
            walk(c, acc);
        }
    }
    // A cluster session's plan is the scheduler's to make: plan it here too, only to count.
    let plan = if df.session().is_distributed() {
        Session::new().context().state().create_physical_plan(df.inner().logical_plan()).await?
    } else {
        df.physical_plan().await?
    };
    let mut acc = (0, 0);
    walk(&plan, &mut acc);
    Ok(acc)
}

/// Rows and an order-free checksum of (event_id, label) of a frame.
async fn fingerprint(df: &DataFrame) -> Result<(u64, u64)> {
    let batches = df.select(&["event_id", "label"])?.collect().await?;
    let mut rows = 0u64;
    let mut sum = 0u64;
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let labels = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            rows += 1;
            let h = (ids.value(i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (labels.value(i) as u64);
            sum = sum.wrapping_add(h.rotate_left(17).wrapping_mul(0xBF58_476D_1CE4_E5B9));
        }
    }
    Ok((rows, sum))
}

/// The ROC curve of a scored frame (`label`, `probability`), at most ~200 points.
fn roc(batches: &[RecordBatch]) -> Result<Vec<(f64, f64)>> {
    let mut scored: Vec<(f64, bool)> = Vec::new();
    for b in batches {
        let label = arrow::compute::cast(column(b, "label")?, &DataType::Float64)?;
        let label = label.as_primitive::<Float64Type>();
        let prob = column(b, "probability")?;
        let prob = prob.as_fixed_size_list_opt().ok_or_else(|| PipelineError::Check("probability is not a vector".into()))?;
        for i in 0..b.num_rows() {
            let p = prob.value(i);
            let p = p.as_primitive::<Float64Type>();
            scored.push((p.value(p.len() - 1), label.value(i) > 0.5));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = scored.iter().filter(|s| s.1).count().max(1) as f64;
    let neg = scored.iter().filter(|s| !s.1).count().max(1) as f64;
    let step = (scored.len() / 200).max(1);
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, (_, y)) in scored.iter().enumerate() {
        if *y {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if i % step == step - 1 {
            out.push((fp / neg, tp / pos));
        }
    }
    out.push((1.0, 1.0));
    Ok(out)
}

/// The GBT's feature importances by input: the one-hot category slots summed as `category`.
fn importances(model: &PipelineModel) -> Result<Vec<(String, f64)>> {
    let last = model.last().ok_or_else(|| PipelineError::Check("an empty model".into()))?;
    let trees = last
        .as_any()
        .downcast_ref::<delta_ml::TreeEnsembleModel>()
        .ok_or_else(|| PipelineError::Check("the model's last stage is not a tree ensemble".into()))?;
    let w = trees.feature_importances();
    let n_cat = w.len().saturating_sub(NUMERIC_FEATURES.len());
    let mut out = vec![("category".to_string(), w[..n_cat].iter().sum())];
    out.extend(NUMERIC_FEATURES.iter().zip(&w[n_cat..]).map(|(n, v)| (n.to_string(), *v)));
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    b.column_by_name(name).ok_or_else(|| PipelineError::Check(format!("no column {name}")))
}

/// (text, count) pairs of two columns.
fn pairs(batches: &[RecordBatch], key: &str, value: &str) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for b in batches {
        let k = arrow::compute::cast(column(b, key)?, &DataType::Utf8)?;
        let v = arrow::compute::cast(column(b, value)?, &DataType::Int64)?;
        let (k, v) = (k.as_string::<i32>(), v.as_primitive::<Int64Type>());
        out.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), v.value(i))));
    }
    Ok(out)
}

/// Whether two row sets (same order) hold the same values: equal, floats up to 1e-9 relative
/// (sums in another order round differently). The first difference, if any.
pub fn same_rows(a: &[RecordBatch], b: &[RecordBatch]) -> Result<Option<String>> {
    let a = concat(a)?;
    let b = concat(b)?;
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(None);
    };
    if a.num_rows() != b.num_rows() {
        return Ok(Some(format!("{} rows against {}", a.num_rows(), b.num_rows())));
    }
    for field in a.schema().fields() {
        let name = field.name();
        let x = column(&a, name)?;
        let y = column(&b, name)?;
        let numeric = matches!(field.data_type(), DataType::Float64 | DataType::Float32);
        if numeric {
            let x = arrow::compute::cast(x, &DataType::Float64)?;
            let y = arrow::compute::cast(y, &DataType::Float64)?;
            let (x, y) = (x.as_primitive::<Float64Type>(), y.as_primitive::<Float64Type>());
            for i in 0..x.len() {
                let same = match (x.is_null(i), y.is_null(i)) {
                    (true, true) => true,
                    (false, false) => {
                        let (p, q) = (x.value(i), y.value(i));
                        (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0)
                    }
                    _ => false,
                };
                if !same {
                    return Ok(Some(format!("row {i}, {name}: {:?} against {:?}", x.is_valid(i).then(|| x.value(i)), y.is_valid(i).then(|| y.value(i)))));
                }
            }
        } else {
            let x = arrow::compute::cast(x, &DataType::Utf8)?;
            let y = arrow::compute::cast(y, &DataType::Utf8)?;
            let (x, y) = (x.as_string::<i32>(), y.as_string::<i32>());
            for i in 0..x.len() {
                let (p, q) = (x.is_valid(i).then(|| x.value(i)), y.is_valid(i).then(|| y.value(i)));
                if p != q {
                    return Ok(Some(format!("row {i}, {name}: {p:?} against {q:?}")));
                }
            }
        }
    }
    Ok(None)
}

fn concat(batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
    match batches.first() {
        None => Ok(None),
        Some(first) => Ok(Some(arrow::compute::concat_batches(&first.schema(), batches)?)),
    }
}
