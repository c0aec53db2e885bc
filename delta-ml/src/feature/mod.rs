//! Feature stages: MLlib's names, params, defaults and edge cases.

mod assembler;
mod bucket;
pub(crate) mod indexer;
mod scaler;
mod sql;

pub use assembler::VectorAssembler;
pub use bucket::{Bucketizer, Imputer, ImputerModel, QuantileDiscretizer};
pub use indexer::{OneHotEncoder, OneHotEncoderModel, StringIndexer, StringIndexerModel, LABELS_KEY};
pub use scaler::{MinMaxScaler, MinMaxScalerModel, StandardScaler, StandardScalerModel};
pub use sql::SQLTransformer;

use crate::error::{MlError, Result};
use crate::params::Params;

/// `(inputCol, outputCol)` pairs from `inputCols`/`outputCols`, or from `inputCol`/`outputCol`.
pub(crate) fn in_out_cols(params: &Params) -> Result<Vec<(String, String)>> {
    if params.is_set("inputCols") {
        let ins = params.strings("inputCols")?;
        let outs = if params.is_set("outputCols") { params.strings("outputCols")? } else { Vec::new() };
        if ins.len() != outs.len() {
            return Err(MlError::InvalidParam {
                stage: params.stage().to_string(),
                param: "outputCols".into(),
                message: format!("{} inputCols but {} outputCols", ins.len(), outs.len()),
            });
        }
        if params.is_set("inputCol") {
            return Err(MlError::InvalidParam { stage: params.stage().to_string(), param: "inputCol".into(), message: "set inputCol or inputCols, not both".into() });
        }
        Ok(ins.into_iter().zip(outs).collect())
    } else {
        Ok(vec![(params.string("inputCol")?, params.output_col("outputCol")?)])
    }
}
