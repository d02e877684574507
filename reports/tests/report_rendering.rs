//! The report's rendering on fixed runs: snapshots (`insta`) of `report.md`, `junit.xml` and
//! `report.json`, the HTML's charts drawn with their fault windows, and shards merged back into
//! the unsharded sweep's runs.

use reports::report::{Options, Report};
use reports::shard::{merge, Shard, ShardFile};
use reports::Summary;
use scenarios::RunReport;
use serde_json::json;

/// A smoke run with client figures: `append`s every second, an outage while a zone is down.
fn run(seed: u64, passed: bool) -> RunReport {
    let outage = 10 + seed; // the zone dies at this second and is back 4 s later
    let timeline: Vec<_> = (0..30u64)
        .map(|t| {
            let down = (outage..outage + 3).contains(&t);
            json!({"t_s": t, "attempted": 10, "ok": if down { 2 } else { 10 },
                   "latency_max_ms": if down { 2900 } else { 40 + t }, "latency_mean_ms": 20 + seed})
        })
        .collect();
    let attempted = 300u64;
    let ok = attempted - 24;
    let violations = if passed {
        json!([])
    } else {
        json!([{"kind": "lost acknowledged append", "message": "smoke-client-0-w1-7-0 is missing from log-2"}])
    };
    let lost = if passed { json!([]) } else { json!([{"what": "append", "acked_at_ms": 12_345}]) };
    serde_json::from_value(json!({
        "scenario": "smoke", "config": null, "seed": seed, "engine": "madsim", "passed": passed,
        "trace_hash": format!("{seed:016x}"), "sim_time_ms": 40_000, "wall_ms": 100 + seed, "events": 1000,
        "violations": violations, "sometimes": {"fault.kill": 1, "fault.partition": seed % 2},
        "metrics": {"availability_pct": 90.0}, "schedule": [],
        "availability": {
            "classes": {"append": {"attempted": attempted, "ok": ok,
                "latency_ms": [[20 + seed, ok - 6], [2900, 6]], "timeline": timeline}},
            "faults": [{"kind": "kill", "nodes": "log-1,log-2", "start_ms": outage * 1000 + 200, "end_ms": outage * 1000 + 4000},
                       {"kind": "pause", "nodes": "log-3", "start_ms": 22_000, "end_ms": 23_000}],
            "lost": lost,
            "workload_end_ms": 30_000
        }
    }))
    .expect("a run report")
}

fn summary(runs: Vec<RunReport>) -> Summary {
    Summary::new(&[&scenarios::smoke::SCENARIO], None, "0..4".into(), runs)
}

fn fixed() -> Summary {
    summary(vec![run(0, true), run(1, false), run(2, true), run(3, true)])
}

#[test]
fn markdown_report_snapshot() {
    let s = fixed();
    let r = Report::build(&s, &Options::default());
    insta::assert_snapshot!("report_md", reports::render::markdown(&s, &r));
}

#[test]
fn junit_snapshot() {
    insta::assert_snapshot!("junit_xml", reports::render::junit(&fixed()));
}

#[test]
fn report_json_snapshot_and_figures() {
    let s = fixed();
    let r = Report::build(&s, &Options::default());
    let v = serde_json::to_value(&r).unwrap();
    let g = &v["groups"][0];
    assert_eq!(g["availability"]["append"]["attempted"], 1200);
    assert_eq!(g["data_lost"]["count"], 1);
    assert_eq!(g["recovery_ms"]["kill"]["faults"], 4);
    assert_eq!(g["recovery_ms"]["kill"]["recovered"], 4);
    assert_eq!(g["recovery_ms"]["pause"]["p50"], 0, "no outage during the pause: recovered in zero");
    assert_eq!(v["safe_ok"], false, "a default-config run failed");
    insta::assert_json_snapshot!("report_json", v);
}

#[test]
fn html_is_self_contained_and_draws_the_charts_with_fault_windows() {
    let s = fixed();
    let options = Options::default();
    let html = reports::html::html(&s, &Report::build(&s, &options), &options);
    assert!(html.contains("<figure id=\"availability-over-time\"><svg"), "inline SVG chart");
    assert!(html.contains("id=\"latency-over-time\"") && html.contains("id=\"recovery-distribution\""));
    assert!(html.contains("kill log-1,log-2"), "fault windows are labelled");
    assert!(html.contains("fill=\"#D64541\""), "fault windows are shaded");
    for external in ["<script", "src=\"http", "href=\"http", "<link", "@import"] {
        assert!(!html.contains(external), "no external resource or script: {external}");
    }
    // The chart of the failing seed by default, of the chosen seed on request.
    assert!(html.contains("smoke seed 1"));
    let chosen = Options { seed: Some(3), ..Options::default() };
    assert!(reports::html::html(&s, &Report::build(&s, &chosen), &chosen).contains("smoke seed 3"));
    insta::assert_snapshot!(
        "availability_svg",
        reports::html::availability_chart(&s.runs[1], s.runs[1].availability.as_ref().unwrap(), 99.9)
    );
}

#[test]
fn shards_merged_equal_the_unsharded_sweep_run_for_run() {
    let all: Vec<RunReport> = (0..7).map(|seed| run(seed, seed != 4)).collect();
    let whole = summary(all.clone());
    let shard_file = |i| {
        let shard = Shard { index: i, count: 3 };
        let seeds = shard.seeds(0..7);
        let runs: Vec<RunReport> = all.iter().filter(|r| seeds.contains(&r.seed)).cloned().collect();
        let s = summary(runs).with_shard(Some(shard.label()));
        serde_json::from_str::<ShardFile>(&serde_json::to_string(&s).unwrap()).unwrap()
    };
    // Given out of order, as artifact downloads are.
    let merged = merge(vec![shard_file(2), shard_file(0), shard_file(1)], scenarios::all()).expect("merges");
    let merged = Summary::new(&merged.scenarios, merged.config, merged.seeds, merged.runs);
    assert_eq!(serde_json::to_value(&merged).unwrap(), serde_json::to_value(&whole).unwrap());
    let e = merge(vec![shard_file(0), shard_file(1)], scenarios::all()).err().expect("a missing shard is refused");
    assert!(e.contains("incomplete"), "{e}");
    let e = merge(vec![shard_file(0), shard_file(0), shard_file(1)], scenarios::all())
        .err()
        .expect("a duplicate shard is refused");
    assert!(e.contains("incomplete") || e.contains("more than one"), "{e}");
}
