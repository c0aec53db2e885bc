//! Models: MLlib's estimators, objectives and output columns.

pub mod ensemble;
pub mod kmeans;
pub mod linear;
pub mod logistic;
pub mod tree;

pub use ensemble::{DecisionTreeClassifier, DecisionTreeRegressor, GBTClassifier, GBTRegressor, RandomForestClassifier, RandomForestRegressor, TreeEnsembleModel, TreeEstimator, TreeKind};
pub use kmeans::{KMeans, KMeansModel};
pub use linear::{LinearRegression, LinearRegressionModel};
pub use logistic::{LogisticRegression, LogisticRegressionModel};

use arrow::array::{AsArray, Float64Array, RecordBatch};
use arrow::datatypes::DataType;

use crate::error::{invalid, Result};
use crate::feature::LABELS_KEY;
use crate::stage::Frame;
use crate::vector::{dense_array, VectorColumn};

/// Weighted mean and weighted sample standard deviation of every column (MLlib's Summarizer:
/// variance = Σw(x−μ)² / (Σw − Σw²/Σw), which is n − 1 for unit weights).
pub(crate) fn weighted_moments(x: &crate::stage::Matrix, w: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = x.cols;
    let (mut sw, mut sw2) = (0.0, 0.0);
    let mut mean = vec![0.0; d];
    let mut m2 = vec![0.0; d];
    for (i, wi) in w.iter().enumerate() {
        if *wi == 0.0 {
            continue;
        }
        sw += wi;
        sw2 += wi * wi;
        for (j, xj) in x.row(i).iter().enumerate() {
            let delta = xj - mean[j];
            mean[j] += wi / sw * delta;
            m2[j] += wi * delta * (xj - mean[j]);
        }
    }
    let denom = sw - sw2 / sw;
    let sample: Vec<f64> = m2.iter().map(|m| if denom > 0.0 { (m / denom).max(0.0).sqrt() } else { 0.0 }).collect();
    let population: Vec<f64> = m2.iter().map(|m| if sw > 0.0 { (m / sw).max(0.0).sqrt() } else { 0.0 }).collect();
    (mean, sample, population)
}

/// The number of classes: the label column's labels (a `StringIndexer` output), else the
/// largest label + 1. Labels must be integers ≥ 0.
pub(crate) fn num_classes(frame: &Frame, label_col: &str, y: &[f64]) -> Result<usize> {
    let mut max = 0.0f64;
    for v in y {
        if !(*v >= 0.0 && v.fract() == 0.0) {
            return Err(invalid(format!("label column `{label_col}` has the value {v}; classifiers need labels 0, 1, 2, …")));
        }
        max = max.max(*v);
    }
    let from_data = max as usize + 1;
    let from_meta = frame.field(label_col)?.metadata().get(LABELS_KEY).and_then(|l| serde_json::from_str::<Vec<String>>(l).ok()).map(|l| l.len());
    Ok(from_meta.map_or(from_data, |m| m.max(from_data)))
}

/// Reads a feature column of a batch and calls `f(row, features)` for each row (nulls are an
/// error naming the column).
pub(crate) fn for_each_row(batch: &RecordBatch, col: &str, dim: usize, mut f: impl FnMut(usize, &[f64])) -> Result<()> {
    let idx = batch.schema().index_of(col).map_err(|_| crate::error::column_error(col, "not found"))?;
    let v = VectorColumn::new(col, batch.column(idx).as_ref())?;
    let mut row = vec![0.0; dim];
    for i in 0..v.len() {
        if v.is_null(i) {
            return Err(invalid(format!("column `{col}` has a null vector at row {i}")));
        }
        if v.size(i) != dim {
            return Err(invalid(format!("column `{col}`: a vector of size {} where the model expects {dim}", v.size(i))));
        }
        v.write_dense(i, &mut row);
        f(i, &row);
    }
    Ok(())
}

/// A dense vector column from row-major values.
pub(crate) fn vectors(dim: usize, values: Vec<f64>) -> Result<arrow::array::ArrayRef> {
    dense_array(dim, values, None)
}

/// A Float64 column.
pub(crate) fn doubles(values: Vec<f64>) -> arrow::array::ArrayRef {
    std::sync::Arc::new(Float64Array::from(values))
}

/// A Float64 column of a batch read back (tests and evaluators).
pub fn f64_column(batch: &RecordBatch, name: &str) -> Result<Vec<f64>> {
    let a = batch.column(batch.schema().index_of(name)?).clone();
    let a = arrow::compute::cast(&a, &DataType::Float64)?;
    Ok(a.as_primitive::<arrow::datatypes::Float64Type>().iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}
