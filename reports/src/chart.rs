//! Charts and the human-readable report of a sweep. SVG is written by hand: a bar per run is
//! all these charts need, and it keeps the report readable in any browser with no dependency.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::summary::Summary;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 240.0;
const MARGIN: f64 = 40.0;

/// One bar per run: wall-clock milliseconds, green when the run passed, red when it failed.
pub fn sim_time_svg(summary: &Summary) -> String {
    let bars: Vec<(String, f64, bool)> =
        summary.runs.iter().map(|r| (format!("{} #{}", r.scenario, r.seed), r.wall_ms as f64, r.passed)).collect();
    bar_chart("Wall-clock ms per run (red: failed)", &bars)
}

/// One bar per run that measured availability: the percentage of seconds users were served.
pub fn availability_svg(summary: &Summary) -> Option<String> {
    let bars: Vec<(String, f64, bool)> = summary
        .runs
        .iter()
        .filter_map(|r| r.metrics.get(AVAILABILITY).map(|a| (format!("{} #{}", r.scenario, r.seed), *a, r.passed)))
        .collect();
    (!bars.is_empty()).then(|| bar_chart("Availability % per run (red: failed)", &bars))
}

/// The metric scenarios report availability under.
pub const AVAILABILITY: &str = "availability_pct";

pub fn bar_chart(title: &str, bars: &[(String, f64, bool)]) -> String {
    let max = bars.iter().map(|b| b.1).fold(1.0_f64, f64::max);
    let step = (WIDTH - 2.0 * MARGIN) / bars.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<text x="{MARGIN}" y="20">{}</text>"#, escape(title));
    let _ = write!(svg, r#"<text x="4" y="{}">{max:.0}</text>"#, MARGIN);
    let base = HEIGHT - MARGIN;
    for (i, (label, value, ok)) in bars.iter().enumerate() {
        let h = (value / max) * (HEIGHT - 2.0 * MARGIN);
        let x = MARGIN + i as f64 * step;
        let color = if *ok { "#2e7d32" } else { "#c62828" };
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{}: {value:.0}</title></rect>"#,
            base - h,
            (step * 0.8).max(0.5),
            escape(label)
        );
    }
    let _ =
        write!(svg, r##"<line x1="{MARGIN}" y1="{base}" x2="{}" y2="{base}" stroke="#333"/></svg>"##, WIDTH - MARGIN);
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The sweep as Markdown: verdict, totals, failures with replay commands, sometimes records.
pub fn markdown(s: &Summary) -> String {
    let mut md = String::new();
    let verdict = if s.ok() { "PASSED" } else { "FAILED" };
    let _ = writeln!(md, "# Sweep of {} over seeds {} ({}): {verdict}\n", s.scenarios.join(", "), s.seeds, s.engine);
    let _ = writeln!(md, "{} runs: {} passed, {} failed.\n", s.total, s.passed, s.failed);
    if !s.sweep_violations.is_empty() {
        let _ = writeln!(md, "## Sweep violations\n");
        for v in &s.sweep_violations {
            let _ = writeln!(md, "- {v}");
        }
    }
    if s.failed > 0 {
        let _ = writeln!(md, "\n## Failing seeds\n");
        for r in s.runs.iter().filter(|r| !r.passed) {
            let _ = writeln!(
                md,
                "- seed {}: {}\n  `{}`",
                r.seed,
                r.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                r.replay_command()
            );
        }
    }
    metrics_table(s, &mut md);
    probes_table(s, &mut md);
    let _ = writeln!(md, "\n## Sometimes records (summed)\n");
    for (scenario, counts) in &s.sometimes {
        for (k, v) in counts {
            let _ = writeln!(md, "- {scenario} `{k}`: {v}");
        }
    }
    if availability_svg(s).is_some() {
        let _ = writeln!(md, "\n![availability per run](availability.svg)");
    }
    let _ = writeln!(md, "\n![wall time per run](sim-time.svg)");
    md
}

/// Per scenario: each window probe and must-reach record, with the share of runs that reached it.
fn probes_table(s: &Summary, md: &mut String) {
    if s.probes.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Window probes\n\nA requirement is judged once a sweep is large enough that a probe working at its \
         minimum rate would miss every run with chance under 1/1000; it fails when its count would be that \
         unlikely.\n\n| scenario | probe | kind | runs reached | rate | minimum | verdict |\n|---|---|---|---|---|---|---|"
    );
    for p in &s.probes {
        let verdict = match (p.judged, p.ok) {
            (false, _) => format!("not judged (needs {} runs)", p.runs_to_judge),
            (true, true) => "ok".to_string(),
            (true, false) => "**too rare**".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {}/{} | {:.1}% | {} | {verdict} |",
            p.scenario,
            p.name,
            p.requirement,
            p.reached,
            p.runs,
            100.0 * p.rate,
            p.min_rate
        );
    }
}

/// Per scenario and metric: p50, p99 and mean over the sweep's runs.
fn metrics_table(s: &Summary, md: &mut String) {
    let mut by: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for r in &s.runs {
        for (k, v) in &r.metrics {
            by.entry((r.scenario.as_str(), k.as_str())).or_default().push(*v);
        }
    }
    if by.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Measurements\n\n| scenario | metric | min | p50 | p99 | max | mean | runs |\n|---|---|---|---|---|---|---|---|");
    for ((scenario, metric), values) in by {
        let n = values.len();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (p50, p99, mean) = scenarios::bench::summarize(values);
        let _ = writeln!(md, "| {scenario} | {metric} | {min:.1} | {p50:.1} | {p99:.1} | {max:.1} | {mean:.1} | {n} |");
    }
}
