//! The nightly job's files stay valid: the GitHub workflow is YAML with a nightly schedule, a
//! manual trigger, a shard matrix and a merge job; the Kubernetes Indexed Job, rendered as its
//! header says, gives every completion index a valid `--shard i/n` and the shards cover the range.

use std::path::PathBuf;

use reports::shard::Shard;
use serde_norway::Value;

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_workflow_has_a_nightly_schedule_a_shard_matrix_and_a_merge_job() {
    let w: Value = serde_norway::from_str(&repo_file(".github/workflows/nightly.yml")).expect("valid YAML");
    let on = &w["on"];
    assert!(on["schedule"][0]["cron"].as_str().is_some(), "nightly");
    assert!(on.get("workflow_dispatch").is_some(), "on demand");
    let shards: u64 = w["env"]["SHARDS"].as_str().expect("SHARDS").parse().unwrap();
    let sweep = &w["jobs"]["sweep"];
    let matrix: Vec<u64> = sweep["strategy"]["matrix"]["shard"]
        .as_sequence()
        .expect("a shard matrix")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(matrix, (0..shards).collect::<Vec<_>>(), "one matrix entry per shard, from 0");
    let steps = |job: &Value| -> String {
        job["steps"].as_sequence().unwrap().iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
    };
    let run = steps(sweep);
    assert!(
        run.contains("cargo chaos sweep --scenario all") && run.contains("--shard \"${{ matrix.shard }}/${SHARDS}\""),
        "{run}"
    );
    let uploads = sweep["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact")))
        .count();
    assert_eq!(uploads, 1, "each shard uploads its output");
    let merge = &w["jobs"]["merge"];
    let needs: Vec<&str> = merge["needs"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(needs.contains(&"sweep"), "the merge job waits for the shards");
    let run = steps(merge);
    for expected in ["cargo chaos merge", "cargo chaos report", "GITHUB_STEP_SUMMARY", "safe_ok"] {
        assert!(run.contains(expected), "the merge job runs {expected}: {run}");
    }
}

/// `envsubst '${SEEDS} ${SHARDS} ${IMAGE}'`, as the manifest's header renders it.
fn render(template: &str, seeds: &str, shards: u64) -> String {
    template.replace("${SEEDS}", seeds).replace("${SHARDS}", &shards.to_string()).replace("${IMAGE}", "chaos:test")
}

#[test]
fn the_kubernetes_indexed_job_gives_every_index_its_shard() {
    let (seeds, n) = ("4000..6000", 8u64);
    let rendered = render(&repo_file("ci/k8s/nightly-job.yaml"), seeds, n);
    let job: Value = serde_norway::from_str(&rendered).expect("valid YAML once rendered");
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(spec["completions"].as_u64(), Some(n));
    assert_eq!(spec["parallelism"].as_u64(), Some(n));
    let container = &spec["template"]["spec"]["containers"][0];
    let args: String = container["args"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(args.contains(&format!("--seeds {seeds}")), "{args}");
    // Each pod's shell sees its completion index: every index gives a valid shard, and together
    // the shards cover the range once.
    let mut covered = Vec::new();
    for index in 0..n {
        let cmd = args.replace("$JOB_COMPLETION_INDEX", &index.to_string());
        let shard = cmd.split("--shard ").nth(1).expect("a --shard argument").split_whitespace().next().unwrap();
        let shard = Shard::parse(shard.trim_matches('"')).expect("a valid shard");
        assert_eq!(shard, Shard { index, count: n });
        covered.extend(shard.seeds(4000..6000));
    }
    covered.sort_unstable();
    assert_eq!(covered, (4000..6000).collect::<Vec<_>>());
}
