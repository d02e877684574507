//! The full editor stack (`steady` and `kill-az` at their `short` size) on the turmoil engine, in
//! plain `cargo test`. Turmoil ticks every host each millisecond, so one three-minute run of the
//! stack's sixty-odd nodes takes about a minute: the suite runs one `steady` seed twice, in fresh
//! processes at once, requiring both runs to pass with one trace hash, and one `kill-az` seed.
//! The madsim suite sweeps the standard size.
#![cfg(not(madsim))]

mod common;

/// The child-process entry point of `common::hash_in_child` (run by it with `--ignored`).
#[test]
#[ignore = "a child-process entry point: the cross-process hash tests run it"]
fn hash_child() {
    common::hash_child();
}

#[test]
fn steady_short_passes_with_one_trace_hash_across_processes_on_turmoil() {
    // The two children run at once (beside `kill-az`'s): one after the other, they were the
    // longest stretch of `cargo test`.
    let runs: Vec<String> = std::thread::scope(|s| {
        let children: Vec<_> = (0..2).map(|_| s.spawn(|| common::hash_in_child("steady", 0, Some("short")))).collect();
        children.into_iter().map(|c| c.join().expect("a child's thread")).collect()
    });
    assert!(runs[0].ends_with(" passed"), "steady --config short seed 0 on turmoil: {}", runs[0]);
    assert_eq!(runs[0], runs[1], "one seed, two traces");
}

#[test]
fn kill_az_short_passes_on_turmoil() {
    let run = common::hash_in_child("kill-az", 0, Some("short"));
    assert!(run.ends_with(" passed"), "kill-az --config short seed 0 on turmoil: {run}");
}
