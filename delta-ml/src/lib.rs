//! # delta-ml
//!
//! MLlib's pipeline API and answers, trained on Delta tables read through `delta-exec`.
//!
//! ```text
//!  DataFrame (delta-exec; a Delta table at a version) ──► Pipeline::fit ──► PipelineModel
//!     stages: StringIndexer, OneHotEncoder, VectorAssembler, StandardScaler, MinMaxScaler,
//!             Imputer, Bucketizer, QuantileDiscretizer, SQLTransformer,
//!             LogisticRegression, LinearRegression, KMeans,
//!             DecisionTree/RandomForest/GBT Classifier and Regressor (histogram trees)
//!     each estimator reads its input once into memory (a [`stage::Frame`]) and fits there;
//!     transformers map Arrow batches lazily inside the engine's plan (`DataFrame::map_batches`),
//!     where the rows are: on a cluster, on the executors (a stage travels as its saved form)
//!  PipelineModel ─► transform(DataFrame) (lazy) · save(dir) / load(dir) · lineage()
//!  Evaluators: BinaryClassification, MulticlassClassification, Regression, Clustering
//!  Tuning: ParamGridBuilder, CrossValidator, TrainValidationSplit over a Pipeline ([`tuning`])
//! ```
//!
//! * **Params** carry MLlib's names and defaults ([`params`]); specs, tuning grids and saved
//!   models set them by name, with typed errors naming the stage and the param.
//! * **Vectors** are Arrow columns: dense `FixedSizeList<Float64>` or a sparse struct
//!   ([`vector`]).
//! * **Answers** are MLlib's: the objectives, standardisation, stopping rules and edge cases of
//!   each stage are documented where they are implemented and pinned by tests against values
//!   MLlib produced (`tests/`).
//! * **Lineage**: a model fitted on a frame read from Delta remembers the tables, versions,
//!   rows and plan it was fitted on ([`lineage`]).
//! * **Determinism**: row-parallel reductions combine fixed chunks in order ([`par`]), so a
//!   fit gives the same bits on 1 or 2 threads.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// Numeric kernels index several arrays by the same row or class; index loops read clearer there.
#![allow(clippy::needless_range_loop)]

pub mod error;
pub mod evaluation;
pub mod feature;
pub mod lineage;
pub mod models;
pub mod optim;
pub mod par;
pub mod params;
pub mod pipeline;
pub mod spec;
pub mod stage;
pub mod tuning;
pub mod vector;

pub use error::{MlError, Result};
pub use evaluation::{BinaryClassificationEvaluator, ClusteringEvaluator, Evaluator, MulticlassClassificationEvaluator, RegressionEvaluator};
pub use feature::{Bucketizer, Imputer, MinMaxScaler, OneHotEncoder, QuantileDiscretizer, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler};
pub use lineage::{Lineage, TableVersion};
pub use models::{DecisionTreeClassifier, DecisionTreeRegressor, GBTClassifier, GBTRegressor, RandomForestClassifier, RandomForestRegressor, TreeEnsembleModel, TreeEstimator, TreeKind, KMeans, KMeansModel, LinearRegression, LinearRegressionModel, LogisticRegression, LogisticRegressionModel};
pub use pipeline::{Pipeline, PipelineModel, Stage};
pub use stage::{transform, Estimator, Frame, Transformer};
pub use tuning::{CrossValidator, ParamGridBuilder, ParamMap, TrainValidationSplit, Tuning, TuningModel};
