//! A small expression IR, its parser from Spark SQL expression text, and an Arrow evaluator.
//!
//! Predicates are written as Spark writes them (`date > '2024-01-01' AND country IN ('UK','FR')`)
//! and parsed with `sqlparser`. Literals are coerced to the type of the column they meet (Spark's
//! rule for comparing a string literal with a date, say). Evaluation follows SQL's three-valued
//! logic; a filter keeps only rows where the predicate is `true`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, Datum, RecordBatch, Scalar as ArrowScalar, StringArray};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::DataType as ArrowType;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{self, BinaryOperator, UnaryOperator};
use sqlparser::dialect::DatabricksDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::error::{DeltaError, DeltaResult};

/// A literal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    Null,
    Boolean(bool),
    /// An integer literal (typed when it meets a column).
    Integer(i64),
    /// A non-integer numeric literal, kept as text so decimals stay exact.
    Number(String),
    String(String),
    /// `DATE '…'` literal.
    Date(String),
    /// `TIMESTAMP '…'` literal.
    Timestamp(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `<=>`: null-safe equality.
    NullSafeEq,
}

impl CmpOp {
    /// The operator with its operands swapped (`a < b` ⇔ `b > a`).
    pub fn flip(self) -> Self {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            other => other,
        }
    }

    /// The negated operator (`NOT a < b` ⇔ `a >= b`), where one exists.
    pub fn negate(self) -> Option<Self> {
        Some(match self {
            CmpOp::Eq => CmpOp::NotEq,
            CmpOp::NotEq => CmpOp::Eq,
            CmpOp::Lt => CmpOp::GtEq,
            CmpOp::LtEq => CmpOp::Gt,
            CmpOp::Gt => CmpOp::LtEq,
            CmpOp::GtEq => CmpOp::Lt,
            CmpOp::NullSafeEq => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "!=",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
            CmpOp::NullSafeEq => "<=>",
        }
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// An expression.
/// Serializable (serde) so that an engine can ship a pushed-down predicate to another process
/// with the files it applies to; a cast's type travels in Delta's JSON type form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A (possibly nested) column by logical name path.
    Column(Vec<String>),
    Literal(Scalar),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>),
    IsNotNull(Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: String,
        negated: bool,
    },
    /// `CAST(expr AS type)`: Spark's non-ANSI cast (a value that does not convert is NULL).
    Cast {
        expr: Box<Expr>,
        #[serde(with = "crate::table::schema::type_json")]
        to: crate::table::schema::DataType,
    },
    /// A scalar function of Spark SQL (see [`FUNCTIONS`]); the name is lower case.
    Function {
        name: String,
        args: Vec<Expr>,
    },
}

/// The scalar functions this evaluator implements, with Spark's semantics.
pub const FUNCTIONS: &[&str] = &[
    "year",
    "month",
    "day",
    "dayofmonth",
    "hour",
    "minute",
    "second",
    "upper",
    "lower",
    "concat",
    "coalesce",
    "length",
    "char_length",
    "substring",
    "substr",
    "to_date",
    "date",
    "abs",
];

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("NULL"),
            Scalar::Boolean(b) => write!(f, "{b}"),
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Number(n) => f.write_str(n),
            Scalar::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Scalar::Date(s) => write!(f, "DATE '{s}'"),
            Scalar::Timestamp(s) => write!(f, "TIMESTAMP '{s}'"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(p) => {
                let quoted: Vec<String> = p.iter().map(|s| format!("`{}`", s.replace('`', "``"))).collect();
                f.write_str(&quoted.join("."))
            }
            Expr::Literal(s) => s.fmt(f),
            Expr::Cmp(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::Arith(op, l, r) => {
                let s = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                    ArithOp::Mod => "%",
                };
                write!(f, "({l} {s} {r})")
            }
            Expr::And(l, r) => write!(f, "({l} AND {r})"),
            Expr::Or(l, r) => write!(f, "({l} OR {r})"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::IsNull(e) => write!(f, "({e} IS NULL)"),
            Expr::IsNotNull(e) => write!(f, "({e} IS NOT NULL)"),
            Expr::In { expr, list, negated } => {
                let items: Vec<String> = list.iter().map(|e| e.to_string()).collect();
                write!(f, "({expr} {}IN ({}))", if *negated { "NOT " } else { "" }, items.join(", "))
            }
            Expr::Like { expr, pattern, negated } => {
                write!(f, "({expr} {}LIKE {})", if *negated { "NOT " } else { "" }, Scalar::String(pattern.clone()))
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {})", sql_type_name(to)),
            Expr::Function { name, args } => {
                let items: Vec<String> = args.iter().map(|e| e.to_string()).collect();
                write!(f, "{name}({})", items.join(", "))
            }
        }
    }
}

impl Expr {
    pub fn col(name: &str) -> Expr {
        Expr::Column(vec![name.to_string()])
    }

    /// Parses Spark SQL expression text.
    pub fn parse(text: &str) -> DeltaResult<Expr> {
        let dialect = DatabricksDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(text).map_err(|e| DeltaError::expr(text, e))?;
        let parsed = parser.parse_expr().map_err(|e| DeltaError::expr(text, e))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(DeltaError::expr(text, format!("unexpected `{}` at {}", next.token, next.span.start)));
        }
        from_sql(text, parsed)
    }

    /// Every column path the expression reads.
    pub fn columns(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column(p) = e {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        });
        out
    }

    fn walk(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Cmp(_, l, r) | Expr::Arith(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.walk(f);
                r.walk(f);
            }
            Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) | Expr::Like { expr: e, .. } | Expr::Cast { expr: e, .. } => e.walk(f),
            Expr::Function { args, .. } => {
                for e in args {
                    e.walk(f);
                }
            }
            Expr::In { expr, list, .. } => {
                expr.walk(f);
                for e in list {
                    e.walk(f);
                }
            }
        }
    }

    /// A copy with every column path replaced by `f(path)`.
    pub fn map_columns(&self, f: &mut impl FnMut(&[String]) -> DeltaResult<Vec<String>>) -> DeltaResult<Expr> {
        let mut m = |e: &Expr| e.map_columns(f).map(Box::new);
        Ok(match self {
            Expr::Column(p) => Expr::Column(f(p)?),
            Expr::Literal(_) => self.clone(),
            Expr::Cmp(op, l, r) => Expr::Cmp(*op, m(l)?, m(r)?),
            Expr::Arith(op, l, r) => Expr::Arith(*op, m(l)?, m(r)?),
            Expr::And(l, r) => Expr::And(m(l)?, m(r)?),
            Expr::Or(l, r) => Expr::Or(m(l)?, m(r)?),
            Expr::Not(e) => Expr::Not(m(e)?),
            Expr::IsNull(e) => Expr::IsNull(m(e)?),
            Expr::IsNotNull(e) => Expr::IsNotNull(m(e)?),
            Expr::In { expr, list, negated } => {
                Expr::In { expr: m(expr)?, list: list.iter().map(|e| e.map_columns(f)).collect::<DeltaResult<_>>()?, negated: *negated }
            }
            Expr::Like { expr, pattern, negated } => Expr::Like { expr: m(expr)?, pattern: pattern.clone(), negated: *negated },
            Expr::Cast { expr, to } => Expr::Cast { expr: m(expr)?, to: to.clone() },
            Expr::Function { name, args } => {
                Expr::Function { name: name.clone(), args: args.iter().map(|e| e.map_columns(f)).collect::<DeltaResult<_>>()? }
            }
        })
    }

    /// Splits a conjunction into its parts.
    pub fn conjuncts(&self) -> Vec<&Expr> {
        match self {
            Expr::And(l, r) => {
                let mut v = l.conjuncts();
                v.extend(r.conjuncts());
                v
            }
            other => vec![other],
        }
    }
}

pub(crate) fn from_sql(text: &str, e: ast::Expr) -> DeltaResult<Expr> {
    let conv = |e: ast::Expr| from_sql(text, e).map(Box::new);
    Ok(match e {
        ast::Expr::Identifier(id) => Expr::Column(vec![id.value]),
        ast::Expr::CompoundIdentifier(ids) => Expr::Column(ids.into_iter().map(|i| i.value).collect()),
        ast::Expr::Nested(inner) => from_sql(text, *inner)?,
        ast::Expr::Value(v) => Expr::Literal(value_to_scalar(text, v.value)?),
        ast::Expr::TypedString(ts) => {
            let value = ts.value.value.into_string().ok_or_else(|| DeltaError::expr(text, "typed literal without a string"))?;
            match ts.data_type {
                ast::DataType::Date => Expr::Literal(Scalar::Date(value)),
                ast::DataType::Timestamp(_, _) | ast::DataType::Datetime(_) => Expr::Literal(Scalar::Timestamp(value)),
                other => return Err(DeltaError::expr(text, format!("unsupported typed literal {other}"))),
            }
        }
        ast::Expr::BinaryOp { left, op, right } => {
            let cmp = |op| -> DeltaResult<Expr> { Ok(Expr::Cmp(op, conv(*left.clone())?, conv(*right.clone())?)) };
            match op {
                BinaryOperator::Eq => cmp(CmpOp::Eq)?,
                BinaryOperator::NotEq => cmp(CmpOp::NotEq)?,
                BinaryOperator::Lt => cmp(CmpOp::Lt)?,
                BinaryOperator::LtEq => cmp(CmpOp::LtEq)?,
                BinaryOperator::Gt => cmp(CmpOp::Gt)?,
                BinaryOperator::GtEq => cmp(CmpOp::GtEq)?,
                BinaryOperator::Spaceship => cmp(CmpOp::NullSafeEq)?,
                BinaryOperator::And => Expr::And(conv(*left)?, conv(*right)?),
                BinaryOperator::Or => Expr::Or(conv(*left)?, conv(*right)?),
                BinaryOperator::Plus => Expr::Arith(ArithOp::Add, conv(*left)?, conv(*right)?),
                BinaryOperator::Minus => Expr::Arith(ArithOp::Sub, conv(*left)?, conv(*right)?),
                BinaryOperator::Multiply => Expr::Arith(ArithOp::Mul, conv(*left)?, conv(*right)?),
                BinaryOperator::Divide => Expr::Arith(ArithOp::Div, conv(*left)?, conv(*right)?),
                BinaryOperator::Modulo => Expr::Arith(ArithOp::Mod, conv(*left)?, conv(*right)?),
                other => return Err(DeltaError::expr(text, format!("unsupported operator {other}"))),
            }
        }
        ast::Expr::UnaryOp { op: UnaryOperator::Not, expr } => Expr::Not(conv(*expr)?),
        ast::Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match from_sql(text, *expr)? {
            Expr::Literal(Scalar::Integer(i)) => Expr::Literal(Scalar::Integer(-i)),
            Expr::Literal(Scalar::Number(n)) => Expr::Literal(Scalar::Number(format!("-{n}"))),
            other => Expr::Arith(ArithOp::Sub, Box::new(Expr::Literal(Scalar::Integer(0))), Box::new(other)),
        },
        ast::Expr::UnaryOp { op: UnaryOperator::Plus, expr } => from_sql(text, *expr)?,
        ast::Expr::IsNull(e) => Expr::IsNull(conv(*e)?),
        ast::Expr::IsNotNull(e) => Expr::IsNotNull(conv(*e)?),
        ast::Expr::In { expr, target: ast::InTarget::List(list), negated, .. } => {
            Expr::In { expr: conv(*expr)?, list: list.into_iter().map(|e| from_sql(text, e)).collect::<DeltaResult<_>>()?, negated }
        }
        ast::Expr::Between { expr, negated, low, high } => {
            let e = from_sql(text, *expr)?;
            let between = Expr::And(
                Box::new(Expr::Cmp(CmpOp::GtEq, Box::new(e.clone()), conv(*low)?)),
                Box::new(Expr::Cmp(CmpOp::LtEq, Box::new(e), conv(*high)?)),
            );
            if negated {
                Expr::Not(Box::new(between))
            } else {
                between
            }
        }
        ast::Expr::Like { negated, any: false, expr, pattern, escape_char: None } => match from_sql(text, *pattern)? {
            Expr::Literal(Scalar::String(p)) => Expr::Like { expr: conv(*expr)?, pattern: p, negated },
            _ => return Err(DeltaError::expr(text, "LIKE needs a string literal pattern")),
        },
        ast::Expr::Cast { kind: ast::CastKind::Cast | ast::CastKind::DoubleColon, expr, data_type, format: None } => {
            let to = crate::table::schema::parse_sql_type(&data_type.to_string()).map_err(|e| DeltaError::expr(text, e))?;
            Expr::Cast { expr: conv(*expr)?, to }
        }
        ast::Expr::Substring { expr, substring_from, substring_for, .. } => {
            let mut args = vec![from_sql(text, *expr)?];
            args.push(match substring_from {
                Some(f) => from_sql(text, *f)?,
                None => Expr::Literal(Scalar::Integer(1)),
            });
            if let Some(n) = substring_for {
                args.push(from_sql(text, *n)?);
            }
            Expr::Function { name: "substring".into(), args }
        }
        ast::Expr::Function(func) => {
            let name = func.name.to_string().to_ascii_lowercase();
            if !FUNCTIONS.contains(&name.as_str()) {
                return Err(DeltaError::expr(text, format!("unsupported function `{name}`")));
            }
            if func.filter.is_some() || func.over.is_some() || !func.within_group.is_empty() {
                return Err(DeltaError::expr(text, format!("`{name}` is a scalar function here")));
            }
            let args = match func.args {
                ast::FunctionArguments::List(list) if list.duplicate_treatment.is_none() && list.clauses.is_empty() => list
                    .args
                    .into_iter()
                    .map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => from_sql(text, e),
                        other => Err(DeltaError::expr(text, format!("unsupported argument `{other}`"))),
                    })
                    .collect::<DeltaResult<Vec<_>>>()?,
                ast::FunctionArguments::None => Vec::new(),
                _ => return Err(DeltaError::expr(text, format!("unsupported arguments to `{name}`"))),
            };
            Expr::Function { name, args }
        }
        other => return Err(DeltaError::expr(text, format!("unsupported expression `{other}`"))),
    })
}

/// The SQL spelling of a type in `CAST` (parsable back by [`crate::table::schema::parse_sql_type`]).
pub(crate) fn sql_type_name(t: &crate::table::schema::DataType) -> String {
    use crate::table::schema::{DataType as D, PrimitiveType as P};
    match t {
        D::Primitive(P::Long) => "bigint".into(),
        D::Primitive(P::Integer) => "int".into(),
        D::Primitive(P::Short) => "smallint".into(),
        D::Primitive(P::Byte) => "tinyint".into(),
        D::Array(e, _) => format!("array<{}>", sql_type_name(e)),
        D::Map(k, v, _) => format!("map<{}, {}>", sql_type_name(k), sql_type_name(v)),
        D::Struct(s) => format!(
            "struct<{}>",
            s.fields.iter().map(|f| format!("{}: {}", f.name, sql_type_name(&f.data_type))).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn int64s(a: &ArrayRef) -> DeltaResult<arrow::array::Int64Array> {
    Ok(arrow::compute::cast(a, &ArrowType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().clone())
}

/// Evaluates a Spark scalar function over evaluated arguments (arrays of the batch's length).
fn call(name: &str, args: Vec<ArrayRef>, len: usize) -> DeltaResult<ArrayRef> {
    use arrow::compute::kernels::temporal::{date_part, DatePart};
    let arity = |n: usize| -> DeltaResult<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(DeltaError::expr(name, format!("takes {n} argument(s), got {}", args.len())))
        }
    };
    let strings = |a: &ArrayRef| -> DeltaResult<StringArray> { Ok(arrow::compute::cast(a, &ArrowType::Utf8)?.as_string::<i32>().clone()) };
    Ok(match name {
        "year" | "month" | "day" | "dayofmonth" | "hour" | "minute" | "second" => {
            arity(1)?;
            let part = match name {
                "year" => DatePart::Year,
                "month" => DatePart::Month,
                "day" | "dayofmonth" => DatePart::Day,
                "hour" => DatePart::Hour,
                "minute" => DatePart::Minute,
                _ => DatePart::Second,
            };
            let a = match args[0].data_type() {
                ArrowType::Utf8 => arrow::compute::cast(&args[0], &ArrowType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None))?,
                _ => args[0].clone(),
            };
            date_part(&a, part)?
        }
        "upper" | "lower" => {
            arity(1)?;
            let s = strings(&args[0])?;
            let up = name == "upper";
            Arc::new(s.iter().map(|v| v.map(|v| if up { v.to_uppercase() } else { v.to_lowercase() })).collect::<StringArray>())
        }
        "length" | "char_length" => {
            arity(1)?;
            let s = strings(&args[0])?;
            Arc::new(s.iter().map(|v| v.map(|v| v.chars().count() as i32)).collect::<arrow::array::Int32Array>())
        }
        "concat" => {
            // NULL if any argument is NULL (Spark's concat).
            let cols = args.iter().map(strings).collect::<DeltaResult<Vec<_>>>()?;
            let mut out = Vec::with_capacity(len);
            for i in 0..len {
                let mut v = Some(String::new());
                for c in &cols {
                    match (&mut v, c.is_null(i)) {
                        (Some(acc), false) => acc.push_str(c.value(i)),
                        _ => v = None,
                    }
                }
                out.push(v);
            }
            Arc::new(out.into_iter().collect::<StringArray>())
        }
        "coalesce" => {
            let Some(first) = args.first() else { return Err(DeltaError::expr(name, "needs arguments")) };
            let t = first.data_type().clone();
            let mut acc = first.clone();
            for a in &args[1..] {
                let a = arrow::compute::cast(a, &t)?;
                let keep = arrow::compute::is_not_null(&acc)?;
                acc = arrow::compute::kernels::zip::zip(&keep, &acc, &a)?;
            }
            acc
        }
        "substring" | "substr" => {
            if args.len() != 2 && args.len() != 3 {
                return Err(DeltaError::expr(name, "takes 2 or 3 arguments"));
            }
            let s = strings(&args[0])?;
            let pos = int64s(&args[1])?;
            let n = args.get(2).map(int64s).transpose()?;
            let mut out = Vec::with_capacity(len);
            for i in 0..len {
                if s.is_null(i) || pos.is_null(i) || n.as_ref().is_some_and(|n| n.is_null(i)) {
                    out.push(None);
                    continue;
                }
                let chars: Vec<char> = s.value(i).chars().collect();
                let count = chars.len() as i64;
                // Spark: 1-based; 0 behaves as 1; a negative position counts from the end.
                let p = pos.value(i);
                let start = if p > 0 {
                    p - 1
                } else if p < 0 {
                    (count + p).max(0)
                } else {
                    0
                };
                let take = n.as_ref().map(|n| n.value(i)).unwrap_or(i64::MAX).max(0);
                let end = start.saturating_add(take).min(count);
                out.push(Some(if start >= count { String::new() } else { chars[start as usize..end as usize].iter().collect::<String>() }));
            }
            Arc::new(out.into_iter().collect::<StringArray>())
        }
        "to_date" | "date" => {
            arity(1)?;
            cast_with_options(&args[0], &ArrowType::Date32, &CastOptions { safe: true, ..Default::default() })?
        }
        "abs" => {
            arity(1)?;
            let a = &args[0];
            let zeros: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![0; len]));
            let zero = arrow::compute::cast(&zeros, a.data_type())?;
            let negative = cmp::lt(a, &zero)?;
            let negated = numeric::sub(&zero, a)?;
            arrow::compute::kernels::zip::zip(&negative, &negated, a)?
        }
        other => return Err(DeltaError::expr(other, "unsupported function")),
    })
}

fn value_to_scalar(text: &str, v: ast::Value) -> DeltaResult<Scalar> {
    Ok(match v {
        ast::Value::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Scalar::Integer(i),
            Err(_) => Scalar::Number(n),
        },
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Scalar::String(s),
        ast::Value::Boolean(b) => Scalar::Boolean(b),
        ast::Value::Null => Scalar::Null,
        other => return Err(DeltaError::expr(text, format!("unsupported literal {other}"))),
    })
}

/// Resolves a column path in a batch (nested structs by name; case-insensitive fallback).
pub fn column_in_batch(batch: &RecordBatch, path: &[String]) -> DeltaResult<ArrayRef> {
    let not_found = || DeltaError::ColumnNotFound {
        column: path.join("."),
        available: batch.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
    };
    let first = path.first().ok_or_else(not_found)?;
    let schema = batch.schema();
    let idx = schema
        .index_of(first)
        .ok()
        .or_else(|| schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(first)))
        .ok_or_else(not_found)?;
    let mut array = batch.column(idx).clone();
    for part in &path[1..] {
        let s = array.as_struct_opt().ok_or_else(not_found)?;
        let (i, _) = s
            .fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.name() == part)
            .or_else(|| s.fields().iter().enumerate().find(|(_, f)| f.name().eq_ignore_ascii_case(part)))
            .ok_or_else(not_found)?;
        array = s.column(i).clone();
    }
    Ok(array)
}

/// A literal as a one-row Arrow array of `target` type (Spark's implicit cast of literals).
pub fn scalar_to_array(s: &Scalar, target: &ArrowType) -> DeltaResult<ArrayRef> {
    let text: ArrayRef = match s {
        Scalar::Null => return Ok(new_null_array(target, 1)),
        Scalar::Boolean(b) => Arc::new(BooleanArray::from(vec![*b])),
        Scalar::Integer(i) => Arc::new(arrow::array::Int64Array::from(vec![*i])),
        Scalar::Number(n) | Scalar::String(n) | Scalar::Date(n) | Scalar::Timestamp(n) => Arc::new(StringArray::from(vec![n.as_str()])),
    };
    let opts = CastOptions { safe: false, ..Default::default() };
    // Numbers written with a fraction become decimals when the column is integral (Spark widens).
    let target = match (s, target) {
        (Scalar::Number(_), t) if t.is_integer() => ArrowType::Float64,
        _ => target.clone(),
    };
    cast_with_options(&text, &target, &opts).map_err(|e| DeltaError::expr(s, format!("cannot be read as {target}: {e}")))
}

/// The natural Arrow type of a literal that meets no column.
pub fn scalar_default_type(s: &Scalar) -> ArrowType {
    match s {
        Scalar::Null => ArrowType::Null,
        Scalar::Boolean(_) => ArrowType::Boolean,
        Scalar::Integer(_) => ArrowType::Int64,
        Scalar::Number(_) => ArrowType::Float64,
        Scalar::String(_) => ArrowType::Utf8,
        Scalar::Date(_) => ArrowType::Date32,
        Scalar::Timestamp(_) => ArrowType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// Evaluated operand: a full column or a one-row scalar.
enum Value {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Value {
    fn array(&self) -> &ArrayRef {
        match self {
            Value::Array(a) | Value::Scalar(a) => a,
        }
    }
    fn datum(&self) -> Box<dyn Datum + '_> {
        match self {
            Value::Array(a) => Box::new(a.clone()),
            Value::Scalar(a) => Box::new(ArrowScalar::new(a.clone())),
        }
    }
    fn into_array(self, len: usize) -> DeltaResult<ArrayRef> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(a) => {
                let idx = arrow::array::UInt32Array::from(vec![0u32; len]);
                Ok(arrow::compute::take(&a, &idx, None)?)
            }
        }
    }
}

/// Evaluates operands of a binary operator with literal coercion to the other side's type.
fn operands(l: &Expr, r: &Expr, batch: &RecordBatch) -> DeltaResult<(Value, Value)> {
    match (l, r) {
        (Expr::Literal(a), Expr::Literal(b)) => {
            let t = match (a, b) {
                (Scalar::Null, other) | (other, Scalar::Null) => scalar_default_type(other),
                (a, _) => scalar_default_type(a),
            };
            Ok((Value::Scalar(scalar_to_array(a, &t)?), Value::Scalar(scalar_to_array(b, &t)?)))
        }
        (Expr::Literal(a), other) => {
            let v = eval(other, batch)?;
            let s = scalar_to_array(a, v.array().data_type())?;
            Ok((Value::Scalar(s), v))
        }
        (other, Expr::Literal(b)) => {
            let v = eval(other, batch)?;
            let s = scalar_to_array(b, v.array().data_type())?;
            Ok((v, Value::Scalar(s)))
        }
        (a, b) => {
            let a = eval(a, batch)?;
            let b = eval(b, batch)?;
            if a.array().data_type() == b.array().data_type() {
                return Ok((a, b));
            }
            let target = common_type(a.array().data_type(), b.array().data_type());
            let cast = |v: Value| -> DeltaResult<Value> {
                Ok(match v {
                    Value::Array(x) => Value::Array(arrow::compute::cast(&x, &target)?),
                    Value::Scalar(x) => Value::Scalar(arrow::compute::cast(&x, &target)?),
                })
            };
            Ok((cast(a)?, cast(b)?))
        }
    }
}

fn common_type(a: &ArrowType, b: &ArrowType) -> ArrowType {
    use ArrowType::*;
    match (a, b) {
        (Null, x) | (x, Null) => x.clone(),
        (x, y) if x.is_integer() && y.is_integer() => Int64,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            let s = (*s1).max(*s2);
            let int = (*p1 as i16 - *s1 as i16).max(*p2 as i16 - *s2 as i16);
            Decimal128(((int + s as i16) as u8).min(38), s)
        }
        (x, y) if x.is_numeric() && y.is_numeric() => Float64,
        (Date32, Timestamp(u, tz)) | (Timestamp(u, tz), Date32) => Timestamp(*u, tz.clone()),
        (x, _) => x.clone(),
    }
}

fn eval(e: &Expr, batch: &RecordBatch) -> DeltaResult<Value> {
    Ok(match e {
        Expr::Column(path) => Value::Array(column_in_batch(batch, path)?),
        Expr::Literal(s) => Value::Scalar(scalar_to_array(s, &scalar_default_type(s))?),
        Expr::Cmp(op, l, r) => {
            let (a, b) = operands(l, r, batch)?;
            let (da, db) = (a.datum(), b.datum());
            let out = match op {
                CmpOp::Eq => cmp::eq(da.as_ref(), db.as_ref())?,
                CmpOp::NotEq => cmp::neq(da.as_ref(), db.as_ref())?,
                CmpOp::Lt => cmp::lt(da.as_ref(), db.as_ref())?,
                CmpOp::LtEq => cmp::lt_eq(da.as_ref(), db.as_ref())?,
                CmpOp::Gt => cmp::gt(da.as_ref(), db.as_ref())?,
                CmpOp::GtEq => cmp::gt_eq(da.as_ref(), db.as_ref())?,
                CmpOp::NullSafeEq => cmp::not_distinct(da.as_ref(), db.as_ref())?,
            };
            wrap(out, &a, &b)
        }
        Expr::Arith(op, l, r) => {
            let (a, b) = operands(l, r, batch)?;
            let (da, db) = (a.datum(), b.datum());
            let out = match op {
                ArithOp::Add => numeric::add(da.as_ref(), db.as_ref())?,
                ArithOp::Sub => numeric::sub(da.as_ref(), db.as_ref())?,
                ArithOp::Mul => numeric::mul(da.as_ref(), db.as_ref())?,
                ArithOp::Div => numeric::div(da.as_ref(), db.as_ref())?,
                ArithOp::Mod => numeric::rem(da.as_ref(), db.as_ref())?,
            };
            match (&a, &b) {
                (Value::Scalar(_), Value::Scalar(_)) => Value::Scalar(out),
                _ => Value::Array(out),
            }
        }
        Expr::And(l, r) => {
            let n = batch.num_rows();
            let a = bool_array(eval(l, batch)?, n)?;
            let b = bool_array(eval(r, batch)?, n)?;
            Value::Array(Arc::new(boolean::and_kleene(&a, &b)?))
        }
        Expr::Or(l, r) => {
            let n = batch.num_rows();
            let a = bool_array(eval(l, batch)?, n)?;
            let b = bool_array(eval(r, batch)?, n)?;
            Value::Array(Arc::new(boolean::or_kleene(&a, &b)?))
        }
        Expr::Not(inner) => {
            let a = bool_array(eval(inner, batch)?, batch.num_rows())?;
            Value::Array(Arc::new(boolean::not(&a)?))
        }
        Expr::IsNull(inner) => {
            let a = eval(inner, batch)?.into_array(batch.num_rows())?;
            Value::Array(Arc::new(arrow::compute::is_null(&a)?))
        }
        Expr::IsNotNull(inner) => {
            let a = eval(inner, batch)?.into_array(batch.num_rows())?;
            Value::Array(Arc::new(arrow::compute::is_not_null(&a)?))
        }
        Expr::In { expr, list, negated } => {
            // x IN (a, b) ≡ x = a OR x = b, with SQL's null semantics.
            let mut acc: Option<Expr> = None;
            for item in list {
                let eq = Expr::Cmp(CmpOp::Eq, expr.clone(), Box::new(item.clone()));
                acc = Some(match acc {
                    None => eq,
                    Some(prev) => Expr::Or(Box::new(prev), Box::new(eq)),
                });
            }
            let Some(disjunction) = acc else {
                let n = batch.num_rows();
                return Ok(Value::Array(Arc::new(BooleanArray::from(vec![*negated; n]))));
            };
            let e = if *negated { Expr::Not(Box::new(disjunction)) } else { disjunction };
            eval(&e, batch)?
        }
        Expr::Cast { expr, to } => {
            let a = eval(expr, batch)?.into_array(batch.num_rows())?;
            let t = to.to_arrow(false)?;
            Value::Array(cast_with_options(&a, &t, &CastOptions { safe: true, ..Default::default() })?)
        }
        Expr::Function { name, args } => {
            let n = batch.num_rows();
            let values = args.iter().map(|a| eval(a, batch)?.into_array(n)).collect::<DeltaResult<Vec<_>>>()?;
            Value::Array(call(name, values, n)?)
        }
        Expr::Like { expr, pattern, negated } => {
            let a = eval(expr, batch)?.into_array(batch.num_rows())?;
            let a = arrow::compute::cast(&a, &ArrowType::Utf8)?;
            let p = ArrowScalar::new(StringArray::from(vec![pattern.as_str()]));
            let out = if *negated {
                arrow::compute::kernels::comparison::nlike(&a, &p)?
            } else {
                arrow::compute::kernels::comparison::like(&a, &p)?
            };
            Value::Array(Arc::new(out))
        }
    })
}

fn wrap(out: BooleanArray, a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Scalar(_), Value::Scalar(_)) => Value::Scalar(Arc::new(out)),
        _ => Value::Array(Arc::new(out)),
    }
}

fn bool_array(v: Value, len: usize) -> DeltaResult<BooleanArray> {
    let a = v.into_array(len)?;
    let a = match a.data_type() {
        ArrowType::Boolean => a,
        ArrowType::Null => new_null_array(&ArrowType::Boolean, a.len()),
        other => return Err(DeltaError::expr(format!("{other}"), "a predicate must be boolean")),
    };
    Ok(a.as_boolean().clone())
}

/// Evaluates any expression over a batch to an array of `num_rows`.
pub fn evaluate(e: &Expr, batch: &RecordBatch) -> DeltaResult<ArrayRef> {
    eval(e, batch)?.into_array(batch.num_rows())
}

/// Evaluates a predicate to a filter mask: null counts as false.
pub fn evaluate_predicate(e: &Expr, batch: &RecordBatch) -> DeltaResult<BooleanArray> {
    let a = bool_array(eval(e, batch)?, batch.num_rows())?;
    Ok(match a.nulls() {
        Some(nulls) => BooleanArray::new(a.values() & nulls.inner(), None),
        None => a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Int32Array};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", ArrowType::Int32, true),
            Field::new("d", ArrowType::Date32, true),
            Field::new("country", ArrowType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(4)])),
                Arc::new(Date32Array::from(vec![Some(19723), Some(19724), Some(19725), None])),
                Arc::new(StringArray::from(vec![Some("UK"), Some("FR"), Some("DE"), None])),
            ],
        )
        .unwrap()
    }

    fn rows(text: &str) -> Vec<bool> {
        let e = Expr::parse(text).unwrap();
        evaluate_predicate(&e, &batch()).unwrap().iter().map(|v| v.unwrap()).collect()
    }

    #[test]
    fn spark_predicates_evaluate_with_coercion() {
        assert_eq!(rows("d > '2024-01-01' AND country IN ('UK','FR')"), vec![false, true, false, false]);
        assert_eq!(rows("id >= 2 OR country = 'UK'"), vec![true, true, false, true]);
        assert_eq!(rows("id IS NULL"), vec![false, false, true, false]);
        assert_eq!(rows("NOT (id = 1)"), vec![false, true, false, true]);
        assert_eq!(rows("id BETWEEN 2 AND 4"), vec![false, true, false, true]);
        assert_eq!(rows("country LIKE 'U%'"), vec![true, false, false, false]);
        assert_eq!(rows("id + 1 = 3"), vec![false, true, false, false]);
        assert_eq!(rows("d = DATE '2024-01-02'"), vec![false, true, false, false]);
        assert_eq!(rows("country NOT IN ('UK')"), vec![false, true, true, false]);
    }

    #[test]
    fn casts_and_functions_follow_spark() {
        let b = batch();
        let eval_strings = |t: &str| -> Vec<Option<String>> {
            let a = evaluate(&Expr::parse(t).unwrap(), &b).unwrap();
            let s = arrow::compute::cast(&a, &ArrowType::Utf8).unwrap();
            s.as_string::<i32>().iter().map(|v| v.map(String::from)).collect()
        };
        assert_eq!(eval_strings("year(d)"), vec![Some("2024".into()), Some("2024".into()), Some("2024".into()), None]);
        assert_eq!(eval_strings("concat(country, '-x')"), vec![Some("UK-x".into()), Some("FR-x".into()), Some("DE-x".into()), None]);
        assert_eq!(eval_strings("coalesce(country, 'none')")[3], Some("none".into()));
        assert_eq!(eval_strings("CAST(id AS string)")[0], Some("1".into()));
        assert_eq!(eval_strings("CAST(country AS int)")[0], None, "non-ANSI cast: NULL on failure");
        assert_eq!(eval_strings("substring('hello', 2, 3)")[0], Some("ell".into()));
        assert_eq!(eval_strings("upper(lower(country))")[1], Some("FR".into()));
        assert_eq!(eval_strings("abs(0 - id)")[3], Some("4".into()));
        assert!(Expr::parse("md5(x)").is_err());
    }

    #[test]
    fn bad_text_is_a_typed_error() {
        for t in ["id >", "id = 1 garbage", "foo(1)", "", "a IN (SELECT 1)", "year(d) OVER ()"] {
            assert!(matches!(Expr::parse(t), Err(DeltaError::InvalidExpression { .. })), "{t}");
        }
        let e = Expr::parse("missing = 1").unwrap();
        assert!(matches!(evaluate_predicate(&e, &batch()), Err(DeltaError::ColumnNotFound { .. })));
    }

    #[test]
    fn display_round_trips() {
        for t in [
            "a > 1 AND (b = 'x''y' OR c IS NULL)",
            "`odd name`.x IN (1, 2.5, -3)",
            "NOT a LIKE 'x%'",
            "CAST(ts AS date) = year(ts)",
            "concat(a, 'b', CAST(c AS decimal(10,2)))",
        ] {
            let e = Expr::parse(t).unwrap();
            assert_eq!(Expr::parse(&e.to_string()).unwrap(), e, "{t}");
        }
    }
}
