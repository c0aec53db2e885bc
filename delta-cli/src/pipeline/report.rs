//! Step 7: the run as a page — ROC curves, feature importances and the table versions used —
//! one self-contained HTML file with the pictures inline as SVG (plotters' SVG backend).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::{PipelineError, Result, Summary};

fn plot_error(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Check(format!("drawing the report: {e}"))
}

/// The ROC curves of both models, with the chance diagonal.
pub fn roc_svg(s: &Summary) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("ROC on held-out users", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(plot_error)?;
        chart.configure_mesh().x_desc("false positive rate").y_desc("true positive rate").draw().map_err(plot_error)?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3))).map_err(plot_error)?;
        let blue = RGBColor(31, 119, 180);
        let orange = RGBColor(255, 127, 14);
        chart
            .draw_series(LineSeries::new(s.roc_gbt.iter().copied(), blue.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("GBT  AUC {:.4}", s.auc_gbt))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(s.roc_lr.iter().copied(), orange.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("LR   AUC {:.4}", s.auc_lr))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The GBT's feature importances as horizontal bars, largest on top.
pub fn importances_svg(s: &Summary) -> Result<String> {
    let mut svg = String::new();
    let n = s.importances.len().max(1);
    let top = s.importances.iter().map(|(_, v)| *v).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let names: Vec<String> = s.importances.iter().rev().map(|(n, _)| n.clone()).collect();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 60 + 26 * n as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("GBT feature importances", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(150)
            .build_cartesian_2d(0.0..top, -0.5..(n as f64 - 0.5))
            .map_err(plot_error)?;
        let label = |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart.configure_mesh().disable_y_mesh().y_labels(n).y_label_formatter(&label).draw().map_err(plot_error)?;
        let blue = RGBColor(31, 119, 180);
        chart
            .draw_series(s.importances.iter().rev().enumerate().map(|(i, (_, v))| Rectangle::new([(0.0, i as f64 - 0.35), (*v, i as f64 + 0.35)], blue.filled())))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page.
pub fn html(s: &Summary) -> Result<String> {
    let mut h = String::new();
    let w = |h: &mut String, text: String| {
        h.push_str(&text);
        h.push('\n');
    };
    w(&mut h, "<!doctype html><html><head><meta charset=\"utf-8\"><title>Feature pipeline report</title>".into());
    w(&mut h, "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f3f3f3}.plots{display:flex;flex-wrap:wrap;gap:1em}code{background:#f6f6f6;padding:1px 4px}</style></head><body>".into());
    w(&mut h, "<h1>Feature pipeline on Delta</h1>".into());
    w(&mut h, format!("<p>{} events of {} users; tables under <code>{}</code>; queries ran {}; model in <code>{}</code>.</p>", s.events, s.users, escape(&s.tables), escape(&s.engine), escape(&s.model_dir.display().to_string())));
    w(&mut h, format!("<p>AUC on {} rows of held-out users: <b>GBT {:.4}</b>, LogisticRegression {:.4}.</p>", s.test_rows, s.auc_gbt, s.auc_lr));
    w(&mut h, format!("<div class=\"plots\">{}{}</div>", roc_svg(s)?, importances_svg(s)?));
    w(&mut h, "<h2>Table versions the model was built from</h2><table><tr><th>table</th><th>version</th><th>used for</th><th>location</th></tr>".into());
    for v in &s.versions {
        w(&mut h, format!("<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>", escape(&v.table), v.version, escape(&v.role), escape(&v.location)));
    }
    w(&mut h, "</table>".into());
    let moved = s.changes_since.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
    w(&mut h, format!("<p>Re-read by version: the same {} training rows. Since then user_features changed: {}.</p>", s.reproduced_rows, escape(&moved)));
    w(&mut h, "<h2>Latest user_features commits</h2><table><tr><th>version</th><th>operation</th></tr>".into());
    for (v, op) in &s.feature_history {
        w(&mut h, format!("<tr><td>{v}</td><td>{}</td></tr>", escape(op)));
    }
    w(&mut h, "</table>".into());
    w(&mut h, "<h2>Steps</h2><table><tr><th>step</th><th>seconds</th><th>last detail</th></tr>".into());
    let mut total = 0.0;
    for st in &s.steps {
        total += st.seconds;
        w(&mut h, format!("<tr><td>{}</td><td>{:.2}</td><td>{}</td></tr>", escape(&st.name), st.seconds, escape(&st.detail)));
    }
    w(&mut h, format!("<tr><th>total</th><th>{total:.2}</th><th></th></tr></table>"));
    w(&mut h, "<h2>Validation (TrainValidationSplit)</h2><table><tr><th>params</th><th>AUC</th></tr>".into());
    for (p, m) in &s.validation {
        w(&mut h, format!("<tr><td><code>{}</code></td><td>{m:.4}</td></tr>", escape(p)));
    }
    w(&mut h, "</table>".into());
    let mut days = String::new();
    for (i, n) in s.users_recomputed.iter().enumerate() {
        let _ = write!(days, "{}day {}: {n}", if i > 0 { ", " } else { "" }, i + 1);
    }
    w(&mut h, format!("<p>Users recomputed per day: {days}. The feature table equals a recomputation from every event: {}.</p>", s.incremental_equals_full));
    w(&mut h, format!("<p>The day with a new column was first refused: <code>{}</code></p>", escape(&s.schema_refusal)));
    w(&mut h, "</body></html>".into());
    Ok(h)
}

pub fn write_html(s: &Summary, path: &Path) -> Result<()> {
    std::fs::write(path, html(s)?)?;
    Ok(())
}
