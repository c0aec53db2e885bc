//! Params with MLlib's names, types and defaults.
//!
//! Every stage owns a [`Params`]: the values set explicitly (kept as JSON, which is also how a
//! pipeline spec and a saved model carry them) over a static table of [`ParamSpec`]s holding
//! MLlib's defaults. Setting an unknown name, a wrong type or a value outside the allowed ones
//! is an error naming the stage and the param; reading falls back to the default.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::error::{MlError, Result};

/// The type of a param's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Strings,
    Floats,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Str => "a string",
            Kind::Strings => "a list of strings",
            Kind::Floats => "a list of numbers",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Bool => v.is_boolean(),
            Kind::Int => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15),
            Kind::Float => v.is_number() || v.as_str().is_some_and(|s| matches!(s, "Infinity" | "-Infinity" | "NaN" | "inf" | "-inf")),
            Kind::Str => v.is_string(),
            Kind::Strings => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::Floats => v.as_array().is_some_and(|a| a.iter().all(|x| Kind::Float.accepts(x))),
        }
    }
}

/// One param of a stage: MLlib's name, its type, its default (JSON text; empty when MLlib has
/// none), the allowed values of a string param and the lower bound of a number.
#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub choices: &'static [&'static str],
    pub min: Option<f64>,
}

impl ParamSpec {
    pub const fn new(name: &'static str, kind: Kind, default: &'static str) -> Self {
        ParamSpec { name, kind, default, choices: &[], min: None }
    }

    pub const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }

    pub const fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }
}

/// The params of one stage instance: its uid, MLlib's specs and the values set.
#[derive(Debug, Clone)]
pub struct Params {
    stage: &'static str,
    uid: String,
    specs: &'static [ParamSpec],
    set: BTreeMap<String, Value>,
}

fn new_uid(stage: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // MLlib's uids are the class name and 12 hex digits; ours mix the process id and a counter.
    let mut h = (std::process::id() as u64) << 32 ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    format!("{stage}_{:012x}", h & 0xFFFF_FFFF_FFFF)
}

/// Numbers as JSON: infinities and NaN as the strings MLlib's JSON writer uses.
pub fn f64_json(v: f64) -> Value {
    if v.is_finite() {
        serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
    } else if v.is_nan() {
        Value::String("NaN".into())
    } else if v > 0.0 {
        Value::String("Infinity".into())
    } else {
        Value::String("-Infinity".into())
    }
}

/// The inverse of [`f64_json`].
pub fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => None,
        },
        _ => None,
    }
}

impl Params {
    pub fn new(stage: &'static str, specs: &'static [ParamSpec]) -> Self {
        Params { stage, uid: new_uid(stage), specs, set: BTreeMap::new() }
    }

    /// The stage's class name (`LogisticRegression`).
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub(crate) fn set_uid(&mut self, uid: &str) {
        self.uid = uid.to_string();
    }

    pub fn specs(&self) -> &'static [ParamSpec] {
        self.specs
    }

    fn spec(&self, name: &str) -> Result<&'static ParamSpec> {
        self.specs.iter().find(|s| s.name == name).ok_or_else(|| MlError::UnknownParam {
            stage: self.stage.to_string(),
            param: name.to_string(),
            known: self.specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
        })
    }

    fn bad(&self, name: &str, message: String) -> MlError {
        MlError::InvalidParam { stage: self.stage.to_string(), param: name.to_string(), message }
    }

    /// Sets `name` after checking its type, allowed values and bound.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        let spec = self.spec(name)?;
        if !spec.kind.accepts(&value) {
            return Err(self.bad(name, format!("expected {}, got {value}", spec.kind.name())));
        }
        let value = match (spec.kind, &value) {
            (Kind::Str, Value::String(s)) if !spec.choices.is_empty() => {
                // MLlib compares these case-insensitively and keeps its own spelling.
                match spec.choices.iter().find(|c| c.eq_ignore_ascii_case(s)) {
                    Some(c) => Value::String(c.to_string()),
                    None => return Err(self.bad(name, format!("`{s}` is not one of {}", spec.choices.join(", ")))),
                }
            }
            (Kind::Int, v) => Value::from(v.as_f64().unwrap_or(0.0) as i64),
            _ => value,
        };
        if let (Some(min), Some(v)) = (spec.min, json_f64(&value)) {
            if v < min || v.is_nan() {
                return Err(self.bad(name, format!("{v} is below its minimum {min}")));
            }
        }
        self.set.insert(name.to_string(), value);
        Ok(())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.set.contains_key(name)
    }

    /// The value set, or MLlib's default; an error when neither exists.
    pub fn get(&self, name: &str) -> Result<Value> {
        let spec = self.spec(name)?;
        if let Some(v) = self.set.get(name) {
            return Ok(v.clone());
        }
        if spec.default.is_empty() {
            return Err(self.bad(name, "must be set".into()));
        }
        serde_json::from_str(spec.default).map_err(|e| self.bad(name, format!("bad default: {e}")))
    }

    pub fn f64(&self, name: &str) -> Result<f64> {
        let v = self.get(name)?;
        json_f64(&v).ok_or_else(|| self.bad(name, format!("expected a number, got {v}")))
    }

    pub fn i64(&self, name: &str) -> Result<i64> {
        let v = self.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).ok_or_else(|| self.bad(name, format!("expected an integer, got {v}")))
    }

    pub fn usize(&self, name: &str) -> Result<usize> {
        let v = self.i64(name)?;
        usize::try_from(v).map_err(|_| self.bad(name, format!("{v} is negative")))
    }

    pub fn bool(&self, name: &str) -> Result<bool> {
        let v = self.get(name)?;
        v.as_bool().ok_or_else(|| self.bad(name, format!("expected a boolean, got {v}")))
    }

    pub fn string(&self, name: &str) -> Result<String> {
        let v = self.get(name)?;
        v.as_str().map(str::to_string).ok_or_else(|| self.bad(name, format!("expected a string, got {v}")))
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        let v = self.get(name)?;
        v.as_array()
            .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| self.bad(name, format!("expected a list of strings, got {v}")))
    }

    pub fn floats(&self, name: &str) -> Result<Vec<f64>> {
        let v = self.get(name)?;
        v.as_array()
            .and_then(|a| a.iter().map(json_f64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| self.bad(name, format!("expected a list of numbers, got {v}")))
    }

    /// A string param that may be unset (no default): `None` then.
    pub fn opt_string(&self, name: &str) -> Result<Option<String>> {
        if self.is_set(name) || !self.spec(name)?.default.is_empty() {
            Ok(Some(self.string(name)?))
        } else {
            Ok(None)
        }
    }

    /// `outputCol` (or another output param), defaulting as MLlib does to `<uid>__output`.
    pub fn output_col(&self, name: &str) -> Result<String> {
        Ok(self.opt_string(name)?.unwrap_or_else(|| format!("{}__output", self.uid)))
    }

    /// The params set explicitly, as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// MLlib's defaults of every param that has one.
    pub fn defaults_json(&self) -> Value {
        Value::Object(
            self.specs
                .iter()
                .filter(|s| !s.default.is_empty())
                .filter_map(|s| serde_json::from_str(s.default).ok().map(|v| (s.name.to_string(), v)))
                .collect(),
        )
    }

    /// Sets every key of a JSON object (a spec or a saved model).
    pub fn set_json(&mut self, values: &Value) -> Result<()> {
        let Some(map) = values.as_object() else {
            return Err(self.bad("<params>", format!("expected an object of params, got {values}")));
        };
        for (k, v) in map {
            self.set(k, v.clone())?;
        }
        Ok(())
    }
}

/// Stages whose params can be read and set by name (tuning grids, specs, loading).
pub trait HasParams {
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;
}
