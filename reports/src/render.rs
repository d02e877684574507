//! The report as text: `report.md` (tables for a pull-request comment or a job summary) and
//! `junit.xml` (one test case per scenario, configuration and seed, so CI shows failures
//! natively).

use std::fmt::Write as _;

use crate::report::{Group, Report};
use crate::Summary;

fn config_label(config: &Option<String>) -> String {
    config.as_ref().map(|c| format!("`{c}`")).unwrap_or_else(|| "default".to_string())
}

fn ms(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "–".to_string())
}

/// `report.md`: the verdict, then per scenario and configuration the tables of the report, then
/// the sweep's own sections (failing seeds, measurements, probes, sometimes, charts).
pub fn markdown(s: &Summary, r: &Report) -> String {
    let mut md = String::new();
    let verdict = if r.ok { "PASSED" } else { "FAILED" };
    let shard = r.shard.as_ref().map(|s| format!(", shard {s}")).unwrap_or_default();
    let _ = writeln!(
        md,
        "# Chaos report: {} over seeds {}{shard} ({}): {verdict}\n",
        r.scenarios.join(", "),
        r.seeds,
        r.engine
    );
    let _ = writeln!(
        md,
        "{} runs: {} passed, {} failed. Availability objective: {}%. Safe configurations: {}.\n",
        r.total,
        r.passed,
        r.failed,
        r.slo_percent,
        if r.safe_ok { "all held" } else { "**a safe configuration failed**" }
    );
    let _ = writeln!(
        md,
        "| scenario | config | runs | passed | failed | data lost | invariants failed |\n|---|---|---|---|---|---|---|"
    );
    for g in &r.groups {
        let lost = g.data_lost.as_ref().map(|d| d.count.to_string()).unwrap_or_else(|| "not measured".into());
        let kinds: Vec<String> = g.invariants.iter().map(|i| format!("`{}` ({})", i.kind, i.failed_runs)).collect();
        let unsafe_mark = if g.is_unsafe { " (unsafe)" } else { "" };
        let _ = writeln!(
            md,
            "| {} | {}{unsafe_mark} | {} | {} | {} | {lost} | {} |",
            g.scenario,
            config_label(&g.config),
            g.runs,
            g.passed,
            g.failed,
            if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") }
        );
    }
    for g in &r.groups {
        group_section(g, &mut md);
    }
    md.push('\n');
    md.push_str(&crate::chart::markdown(s).replacen("# ", "## ", 1));
    md
}

fn group_section(g: &Group, md: &mut String) {
    let _ = writeln!(md, "\n## {} — {}\n", g.scenario, config_label(&g.config));
    match &g.availability {
        None => {
            let _ = writeln!(md, "Availability, latency, recovery and data lost: not measured (the scenario's clients record no operations).");
        }
        Some(classes) => {
            let _ = writeln!(
                md,
                "| operation | attempted | ok | availability | SLO | error budget burned | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for (class, c) in classes {
                let l = c.latency_ms.as_ref();
                let _ = writeln!(
                    md,
                    "| {class} | {} | {} | {:.3}% | {}%{} | {:.0}% | {} | {} | {} | {} | {} |",
                    c.attempted,
                    c.ok,
                    c.availability_percent,
                    c.slo_percent,
                    if c.meets_slo { "" } else { " **missed**" },
                    c.error_budget_burned_percent,
                    ms(l.map(|l| l.p50)),
                    ms(l.map(|l| l.p90)),
                    ms(l.map(|l| l.p99)),
                    ms(l.map(|l| l.p999)),
                    ms(l.map(|l| l.max)),
                );
            }
        }
    }
    if let Some(rec) = &g.recovery_ms {
        let _ = writeln!(
            md,
            "\n| fault kind | faults | recovered | recovery p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|"
        );
        for (kind, r) in rec {
            let _ = writeln!(
                md,
                "| {kind} | {} | {} | {} | {} | {} |",
                r.faults,
                r.recovered,
                ms(r.p50),
                ms(r.p99),
                ms(r.max)
            );
        }
    }
    if let Some(d) = &g.data_lost {
        let window = match (d.first_acked_ms, d.last_acked_ms) {
            (Some(a), Some(b)) => format!(", acknowledged between {a} ms and {b} ms"),
            _ => String::new(),
        };
        // What was lost, by kind: a cache write lost to asynchronous replication is not an
        // acknowledged edit lost, and a reader must tell them apart.
        let kinds = d.by_what.iter().map(|(what, n)| format!("{what} {n}")).collect::<Vec<_>>().join(", ");
        let _ =
            writeln!(md, "\nData lost: {} acknowledged items ({kinds}) in {} runs{window}.", d.count, d.runs_with_loss);
    }
    if g.invariants.is_empty() {
        let _ = writeln!(md, "\nInvariants: every invariant held in all {} runs.", g.runs);
    } else {
        let _ = writeln!(md, "\n| invariant | result | failing seeds | replay |\n|---|---|---|---|");
        for i in &g.invariants {
            let seeds: Vec<String> = i.seeds.iter().take(10).map(u64::to_string).collect();
            let more = if i.seeds.len() > 10 { " …" } else { "" };
            let _ = writeln!(
                md,
                "| `{}` | **failed** in {} runs | {}{more} | `{}` |",
                i.kind,
                i.failed_runs,
                seeds.join(", "),
                i.replay
            );
        }
    }
    let never: Vec<&str> = g.sometimes.iter().filter(|s| s.runs_fired == 0).map(|s| s.name.as_str()).collect();
    if !never.is_empty() {
        let _ = writeln!(
            md,
            "\n**Never fired:** {}",
            never.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        );
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `junit.xml`: a test suite per scenario and configuration, a test case per seed; a failing
/// run's case carries its violations and replay command. Sweep-level requirements are one more
/// case of their own suite.
pub fn junit(s: &Summary) -> String {
    let mut suites: Vec<(String, Vec<&scenarios::RunReport>)> = Vec::new();
    for r in &s.runs {
        let name = match &r.config {
            Some(c) => format!("{} --config {c}", r.scenario),
            None => r.scenario.clone(),
        };
        match suites.iter_mut().find(|(n, _)| *n == name) {
            Some((_, runs)) => runs.push(r),
            None => suites.push((name, vec![r])),
        }
    }
    let sweep_failures = usize::from(!s.sweep_violations.is_empty());
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ =
        writeln!(x, "<testsuites name=\"chaos\" tests=\"{}\" failures=\"{}\">", s.total + 1, s.failed + sweep_failures);
    for (name, runs) in &suites {
        let failed = runs.iter().filter(|r| !r.passed).count();
        let time: f64 = runs.iter().map(|r| r.wall_ms as f64 / 1000.0).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" time=\"{time:.3}\">",
            xml(name),
            runs.len()
        );
        for r in runs {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"seed {}\" time=\"{:.3}\"",
                xml(name),
                r.seed,
                r.wall_ms as f64 / 1000.0
            );
            if r.passed {
                x.push_str("/>\n");
                continue;
            }
            let first = r.violations.first().map(|v| v.to_string()).unwrap_or_default();
            let kind = r.violations.first().map(|v| v.kind.as_str()).unwrap_or("failure");
            let body: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
            let _ = writeln!(
                x,
                ">\n      <failure type=\"{}\" message=\"{}\">{}\nreplay: {}\nshrink: {}</failure>\n    </testcase>",
                xml(kind),
                xml(&first),
                xml(&body.join("\n")),
                xml(&r.replay_command()),
                xml(&r.shrink_command())
            );
        }
        x.push_str("  </testsuite>\n");
    }
    let _ = writeln!(x, "  <testsuite name=\"sweep requirements\" tests=\"1\" failures=\"{sweep_failures}\">");
    if s.sweep_violations.is_empty() {
        x.push_str("    <testcase classname=\"sweep requirements\" name=\"must-reach records and window probes\"/>\n");
    } else {
        let _ = writeln!(
            x,
            "    <testcase classname=\"sweep requirements\" name=\"must-reach records and window probes\">\n      <failure type=\"sweep\" message=\"{}\">{}</failure>\n    </testcase>",
            xml(&s.sweep_violations[0]),
            xml(&s.sweep_violations.join("\n"))
        );
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
