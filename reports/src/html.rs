//! `report.html`: the report's tables and its charts in one self-contained file (inline CSS and
//! inline SVG drawn with `plotters`' SVG backend: no script, no font or network fetch), so it
//! opens offline and can be attached to a CI run.
//!
//! Charts: for one chosen run, availability and latency per second of simulated time with the
//! schedule's fault windows shaded and labelled (as Jepsen's plots shade nemesis activity); across
//! the sweep's runs, the distribution of recovery times per fault kind.

use std::fmt::Write as _;

use plotters::prelude::*;
use scenarios::availability::Availability;
use scenarios::RunReport;

use crate::report::{recoveries, Options, Report};
use crate::Summary;

const WIDTH: u32 = 960;
const FAULT_FILL: RGBColor = RGBColor(214, 69, 65);
type Fallible = Result<(), Box<dyn std::error::Error>>;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The whole page.
pub fn html(s: &Summary, r: &Report, options: &Options) -> String {
    let mut h = String::new();
    let verdict = if r.ok { "PASSED" } else { "FAILED" };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chaos report: {verdict}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;max-width:1000px}} table{{border-collapse:collapse;margin:1em 0}} \
         td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}} td:first-child,th:first-child{{text-align:left}} \
         .fail{{color:#b00;font-weight:bold}} .ok{{color:#070}} code{{background:#f3f3f3}} figure{{margin:1em 0}}</style></head><body>\n"
    );
    let _ = writeln!(
        h,
        "<h1>Chaos report: <span class=\"{}\">{verdict}</span></h1>\n<p>{} over seeds {}{} ({}): {} runs, {} passed, {} failed. \
         Availability objective {}%. Safe configurations: {}.</p>",
        if r.ok { "ok" } else { "fail" },
        esc(&r.scenarios.join(", ")),
        esc(&r.seeds),
        r.shard.as_ref().map(|s| format!(", shard {}", esc(s))).unwrap_or_default(),
        esc(&r.engine),
        r.total,
        r.passed,
        r.failed,
        r.slo_percent,
        if r.safe_ok { "all held" } else { "<span class=\"fail\">a safe configuration failed</span>" }
    );
    for v in &r.sweep_violations {
        let _ = writeln!(h, "<p class=\"fail\">sweep violation: {}</p>", esc(v));
    }
    match crate::report::timeline_run(s, options.seed) {
        Some(run) => {
            let a = run.availability.as_ref().expect("timeline runs have figures");
            let config = run.config.as_ref().map(|c| format!(" --config {c}")).unwrap_or_default();
            let _ =
                writeln!(h, "<h2>Over simulated time: {}{} seed {}</h2>", esc(&run.scenario), esc(&config), run.seed);
            let _ = writeln!(
                h,
                "<figure id=\"availability-over-time\">{}</figure>",
                availability_chart(run, a, r.slo_percent)
            );
            let _ = writeln!(h, "<figure id=\"latency-over-time\">{}</figure>", latency_chart(a));
        }
        None => {
            let _ = writeln!(h, "<p>No run recorded client operations: no chart over time.</p>");
        }
    }
    if let Some(svg) = recovery_chart(s, r.slo_percent) {
        let _ = writeln!(
            h,
            "<h2>Recovery time per fault kind, across runs</h2>\n<figure id=\"recovery-distribution\">{svg}</figure>"
        );
    }
    // The tables are the Markdown report's, rendered as HTML tables.
    h.push_str(&markdown_tables_to_html(&crate::render::markdown(s, r)));
    h.push_str("</body></html>\n");
    h
}

/// A small Markdown subset to HTML: headings, pipe tables, list items and paragraphs; images
/// (the separate SVG files) are dropped since the charts are inline.
fn markdown_tables_to_html(md: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for line in md.lines() {
        let cells =
            |l: &str| -> Vec<String> { l.trim().trim_matches('|').split(" | ").map(|c| inline(c.trim())).collect() };
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                out.push_str("<table>\n<tr>");
                for c in cells(line) {
                    let _ = write!(out, "<th>{c}</th>");
                }
                out.push_str("</tr>\n");
                in_table = true;
            } else {
                out.push_str("<tr>");
                for c in cells(line) {
                    let _ = write!(out, "<td>{c}</td>");
                }
                out.push_str("</tr>\n");
            }
            continue;
        }
        if in_table {
            out.push_str("</table>\n");
            in_table = false;
        }
        if line.starts_with("![") || line.trim().is_empty() || line.starts_with("# ") {
            continue;
        } else if let Some(t) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", inline(t));
        } else if let Some(t) = line.strip_prefix("- ") {
            let _ = writeln!(out, "<p>• {}</p>", inline(t));
        } else {
            let _ = writeln!(out, "<p>{}</p>", inline(line.trim()));
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out
}

/// `code` and **bold** spans, escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<b class=\"fail\">{p}</b>");
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

fn or_note(svg: String, result: Fallible) -> String {
    match result {
        Ok(()) => svg,
        Err(e) => format!("<p>chart not drawn: {}</p>", esc(&e.to_string())),
    }
}

fn end_s(a: &Availability) -> f64 {
    (a.workload_end_ms as f64 / 1000.0).max(1.0)
}

/// Shades each fault window over `y0..y1` and labels it (labels stagger so overlaps stay legible).
fn shade_faults<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    a: &Availability,
    (y0, y1): (f64, f64),
) -> Fallible
where
    DB::ErrorType: 'static,
{
    for (i, w) in a.faults.iter().enumerate() {
        let x0 = w.start_ms as f64 / 1000.0;
        let x1 = (w.end_ms as f64 / 1000.0).max(x0 + 0.25);
        chart
            .draw_series(std::iter::once(Rectangle::new([(x0, y0), (x1, y1)], FAULT_FILL.mix(0.15).filled())))
            .map_err(|e| e.to_string())?;
        let y = y1 - (y1 - y0) * (0.06 + 0.08 * (i % 5) as f64);
        let label = if w.nodes.is_empty() { w.kind.clone() } else { format!("{} {}", w.kind, w.nodes) };
        chart
            .draw_series(std::iter::once(Text::new(label, (x0, y), ("sans-serif", 11).into_font().color(&FAULT_FILL))))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Availability per second of invocation time, per operation class, with the fault windows.
pub fn availability_chart(run: &RunReport, a: &Availability, slo: f64) -> String {
    let mut svg = String::new();
    let result = (|| -> Fallible {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Availability per second, {} seed {} (fault windows shaded)", run.scenario, run.seed),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..end_s(a), 0f64..105f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("successful / attempted (%)")
            .draw()
            .map_err(|e| e.to_string())?;
        shade_faults(&mut chart, a, (0.0, 105.0))?;
        chart
            .draw_series(LineSeries::new([(0.0, slo), (end_s(a), slo)], BLACK.mix(0.4)))
            .map_err(|e| e.to_string())?
            .label(format!("SLO {slo}%"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK.mix(0.4)));
        for (i, (class, c)) in a.classes.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points =
                c.timeline.iter().map(|b| (b.t_s as f64 + 0.5, 100.0 * b.ok as f64 / b.attempted.max(1) as f64));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(class.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
        Ok(())
    })();
    or_note(svg, result)
}

/// Mean and slowest successful latency per second of invocation time, with the fault windows.
pub fn latency_chart(a: &Availability) -> String {
    let mut svg = String::new();
    let result = (|| -> Fallible {
        let top = a.classes.values().flat_map(|c| c.timeline.iter().map(|b| b.latency_max_ms)).max().unwrap_or(1).max(1)
            as f64
            * 1.1;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency of successful operations per second (line: mean, dots: max)", ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..end_s(a), 0f64..top)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("simulated time (s)").y_desc("latency (ms)").draw().map_err(|e| e.to_string())?;
        shade_faults(&mut chart, a, (0.0, top))?;
        for (i, (class, c)) in a.classes.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let ok: Vec<_> = c.timeline.iter().filter(|b| b.ok > 0).collect();
            chart
                .draw_series(LineSeries::new(
                    ok.iter().map(|b| (b.t_s as f64 + 0.5, b.latency_mean_ms as f64)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("{class} mean"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color.stroke_width(2)));
            chart
                .draw_series(
                    ok.iter().map(|b| Circle::new((b.t_s as f64 + 0.5, b.latency_max_ms as f64), 2, color.filled())),
                )
                .map_err(|e| e.to_string())?
                .label(format!("{class} max"))
                .legend(move |(x, y)| Circle::new((x + 7, y), 2, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
        Ok(())
    })();
    or_note(svg, result)
}

/// Every recovered fault of the sweep as a point: fault kind across, recovery time up.
pub fn recovery_chart(s: &Summary, slo: f64) -> Option<String> {
    let mut points: Vec<(String, u64)> = Vec::new();
    for a in s.runs.iter().filter_map(|r| r.availability.as_ref()) {
        points.extend(recoveries(a, slo).into_iter().filter_map(|(k, t)| t.map(|t| (k, t))));
    }
    if points.is_empty() {
        return None;
    }
    let mut kinds: Vec<String> = points.iter().map(|(k, _)| k.clone()).collect();
    kinds.sort();
    kinds.dedup();
    let top = points.iter().map(|(_, t)| *t).max().unwrap_or(1).max(1) as f64 / 1000.0 * 1.1;
    let mut svg = String::new();
    let result = (|| -> Fallible {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let names = kinds.clone();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Recovery time per fault kind over {} runs (back above {slo}%)", s.runs.len()),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..kinds.len() as f64 - 0.5, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(kinds.len() + 1)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("recovery time (s)")
            .draw()
            .map_err(|e| e.to_string())?;
        // Spread points of one kind sideways by their order, deterministically (no jitter draw).
        let mut seen: Vec<usize> = vec![0; kinds.len()];
        let dots: Vec<(f64, f64)> = points
            .iter()
            .map(|(k, t)| {
                let i = kinds.iter().position(|x| x == k).unwrap_or(0);
                seen[i] += 1;
                let offset = ((seen[i] * 37) % 61) as f64 / 61.0 * 0.6 - 0.3;
                (i as f64 + offset, *t as f64 / 1000.0)
            })
            .collect();
        chart
            .draw_series(dots.into_iter().map(|p| Circle::new(p, 3, BLUE.mix(0.5).filled())))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
        Ok(())
    })();
    Some(or_note(svg, result))
}
