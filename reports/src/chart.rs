//! Charts and the human-readable report of a sweep. SVG is written by hand: a bar per run is
//! all these charts need, and it keeps the report readable in any browser with no dependency.

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
    let _ = write!(svg, r##"<line x1="{MARGIN}" y1="{base}" x2="{}" y2="{base}" stroke="#333"/></svg>"##, WIDTH - MARGIN);
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
            let _ = writeln!(md, "- seed {}: {}\n  `{}`", r.seed, r.violations.join("; "), r.replay_command());
        }
    }
    let _ = writeln!(md, "\n## Sometimes records (summed)\n");
    for (scenario, counts) in &s.sometimes {
        for (k, v) in counts {
            let _ = writeln!(md, "- {scenario} `{k}`: {v}");
        }
    }
    let _ = writeln!(md, "\n![wall time per run](sim-time.svg)");
    md
}
