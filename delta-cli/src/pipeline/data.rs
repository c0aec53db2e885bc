//! The raw events, generated from a seed the way `../shared/bench/ml/make_data.py` makes its
//! `events` dataset: lognormal user activity, a favourite category per user and Zipf-like
//! category frequencies (plus two categories of exactly equal counts), 10% of events in bursts
//! less than two minutes after the user's previous event, lognormal amounts with 2% spikes, and
//! a label that depends on what the engineered features estimate (the amount against the
//! user's typical amount, a short gap, the category, the night hour).
//!
//! The same seed and scale give the same rows, whatever the machine.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// 2024-01-01T00:00:00Z in microseconds.
pub const START_US: i64 = 1_704_067_200_000_000;
pub const DAY_US: i64 = 86_400_000_000;
/// 2024-01-01 in days since the epoch.
const START_DAY: i32 = 19_723;
pub const CATEGORIES: usize = 50;

/// splitmix64, with the draws the generator needs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The name of category `i`: `cat_00`..`cat_47`, then `tie_a`, `tie_b`.
pub fn category_name(i: usize) -> String {
    match i {
        48 => "tie_a".into(),
        49 => "tie_b".into(),
        _ => format!("cat_{i:02}"),
    }
}

/// One generated event.
#[derive(Debug, Clone)]
struct Event {
    user: i64,
    category: usize,
    amount: f64,
    ts: i64,
    label: i64,
}

/// All events of `days` days, ordered by time, with `event_id` in that order.
pub struct Events {
    users: usize,
    events: Vec<Event>,
}

impl Events {
    /// `scale` 1.0 is make_data.py's size: 2M events of 100k users (over 90 days there; over
    /// `days` here).
    pub fn generate(scale: f64, days: u32, seed: u64) -> Events {
        let mut rng = Rng::new(seed);
        let n_users = ((100_000.0 * scale) as usize).max(10);
        let n = ((2_000_000.0 * scale) as usize).max(n_users);
        let span = days as i64 * DAY_US;
        // Events per user: 1 + a lognormal share of the rest.
        let weights: Vec<f64> = (0..n_users).map(|_| rng.normal().exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut cdf = Vec::with_capacity(n_users);
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cdf.push(acc);
        }
        let mut counts = vec![1usize; n_users];
        for _ in 0..n - n_users {
            let u = rng.uniform();
            let i = cdf.partition_point(|c| *c < u).min(n_users - 1);
            counts[i] += 1;
        }
        // Categories: a favourite per user 30% of the time, else Zipf(0.8) over 48; two tie
        // levels with equal counts.
        let zipf: Vec<f64> = (1..=48).map(|k| 1.0 / (k as f64).powf(0.8)).collect();
        let zsum: f64 = zipf.iter().sum();
        let mut zcdf = Vec::with_capacity(48);
        let mut acc = 0.0;
        for z in &zipf {
            acc += z / zsum;
            zcdf.push(acc);
        }
        let cat_eff: Vec<f64> = (0..CATEGORIES).map(|_| 0.3 * rng.normal()).collect();
        let cat_risk: Vec<f64> = (0..CATEGORIES).map(|_| 0.6 * rng.normal()).collect();
        let mut events = Vec::with_capacity(n);
        for (u, &count) in counts.iter().enumerate() {
            let user = ((u as i64 + 1) * 7919) % 10_000_019;
            let home = rng.below(48);
            let mu = 3.0 + 0.7 * rng.normal();
            let mut times: Vec<i64> = (0..count).map(|_| START_US + (rng.uniform() * span as f64) as i64).collect();
            times.sort_unstable();
            // Bursts: 10% of events follow the previous one within two minutes.
            for i in 1..count {
                if rng.uniform() < 0.10 {
                    times[i] = times[i - 1] + (rng.uniform() * 120e6) as i64;
                }
            }
            times.sort_unstable();
            for i in 0..count {
                let ts = times[i].min(START_US + span - 1);
                let category = if rng.uniform() < 0.3 {
                    home
                } else {
                    let x = rng.uniform();
                    zcdf.partition_point(|c| *c < x).min(47)
                };
                let spike = if rng.uniform() < 0.02 { 1.6 + 1.4 * rng.uniform() } else { 0.0 };
                let log_amount = mu + cat_eff[category] + 0.6 * rng.normal() + spike;
                let amount = (log_amount.exp() * 100.0).round() / 100.0;
                let short_gap = i > 0 && ts - times[i - 1] < 120_000_000;
                let hour = (ts / 3_600_000_000) % 24;
                let z = (log_amount - mu) / 0.6;
                let logit = -3.2 + 0.9 * z + 1.6 * f64::from(u8::from(short_gap)) + cat_risk[category] + 0.6 * f64::from(u8::from(hour < 6));
                let label = i64::from(rng.uniform() < 1.0 / (1.0 + (-logit).exp()));
                events.push(Event { user, category, amount, ts, label });
            }
        }
        // Two categories with exactly equal counts (StringIndexer's tie-break).
        let ties = ((1500.0 * scale) as usize).max(1).min(n / 4);
        let mut picked = std::collections::HashSet::new();
        while picked.len() < 2 * ties {
            picked.insert(rng.below(n));
        }
        let mut picked: Vec<usize> = picked.into_iter().collect();
        picked.sort_unstable();
        for (k, i) in picked.into_iter().enumerate() {
            events[i].category = if k % 2 == 0 { 48 } else { 49 };
        }
        events.sort_by_key(|e| (e.ts, e.user));
        Events { users: n_users, events }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn users(&self) -> usize {
        self.users
    }

    pub fn schema(with_device: bool) -> SchemaRef {
        let mut fields = vec![
            Field::new("event_id", DataType::Int64, false),
            Field::new("user_id", DataType::Int64, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("amount", DataType::Float64, false),
            Field::new("event_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("label", DataType::Int64, false),
            Field::new("date", DataType::Date32, false),
        ];
        if with_device {
            fields.push(Field::new("device", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// The events of day `day` (0-based) as one batch; `with_device` adds a column the table
    /// does not have yet.
    pub fn day(&self, day: u32, with_device: bool) -> Result<RecordBatch, arrow::error::ArrowError> {
        let lo = START_US + day as i64 * DAY_US;
        let from = self.events.partition_point(|e| e.ts < lo);
        let to = self.events.partition_point(|e| e.ts < lo + DAY_US);
        let rows = &self.events[from..to];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values((from..to).map(|i| i as i64 + 1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.user))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|e| category_name(e.category)))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|e| e.amount))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|e| e.ts)).with_timezone("UTC")),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.label))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|_| START_DAY + day as i32))),
        ];
        if with_device {
            let devices = ["web", "ios", "android"];
            columns.push(Arc::new(StringArray::from_iter((from..to).map(|i| Some(devices[i % 3])))));
        }
        RecordBatch::try_new(Events::schema(with_device), columns)
    }
}

/// The date of day `day` (0-based) as `YYYY-MM-DD`.
pub fn date_of(day: u32) -> String {
    chrono::DateTime::from_timestamp_micros(START_US + day as i64 * DAY_US).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// The small category table the features join: each category's group and rank.
pub fn categories() -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("category_group", DataType::Utf8, false),
        Field::new("category_rank", DataType::Int64, false),
    ]));
    let groups = ["grocery", "travel", "electronics", "fashion", "services"];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values((0..CATEGORIES).map(category_name))),
            Arc::new(StringArray::from_iter_values((0..CATEGORIES).map(|i| groups[i % groups.len()]))),
            Arc::new(Int64Array::from_iter_values((0..CATEGORIES).map(|i| i as i64 + 1))),
        ],
    )
}
