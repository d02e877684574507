//! `stack bench`, short: it brings up its own stack and the pinned Node server, runs both
//! loops at N = 2 against all three servers, and every run must be valid (state vectors equal,
//! every update of ours acknowledged), with the per-run tables and the summary printed. It
//! asserts nothing about speed: the figures are the command's to print, not a test's to judge.
#![cfg(not(madsim))]

use std::process::Command;

mod common;
use common::{free_base, STACK};

#[test]
fn bench_usage_errors_exit_2() {
    let code = |args: &[&str]| Command::new(STACK).args(args).output().expect("run stack").status.code();
    assert_eq!(code(&["bench", "--clients", "1"]), Some(2), "one client has no one to deliver to");
    assert_eq!(code(&["bench", "--cores", "3"]), Some(2), "cores 1 or 2");
    assert_eq!(code(&["bench", "--repeat", "0"]), Some(2), "no runs");
    assert_eq!(code(&["bench", "--mode", "sideways"]), Some(2), "an unknown mode");
}

#[test]
fn a_short_bench_brings_up_both_servers_and_every_run_is_valid() {
    let base = free_base(3);
    let out = Command::new(STACK)
        .args(["bench", "--clients", "2", "--cores", "2", "--mode", "open,closed", "--seconds", "1"])
        .args(["--base-port", &base.to_string(), "--node-port", &(base + 999).to_string()])
        .output()
        .expect("run stack bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "a void run or a failure");
    assert!(stdout.contains("bench: node y-websocket-server on 127.0.0.1:"), "the Node server was not brought up");
    for server in ["ours (collab instance)", "ours (via balancer)", "node y-websocket-server"] {
        let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&format!("| {server}"))).collect();
        assert_eq!(rows.len(), 2, "one row per loop for {server}:\n{stdout}");
        assert!(rows.iter().all(|r| r.trim_end().ends_with("| yes   |")), "{rows:?}");
    }
    let summary = stdout.split("## Summary: ours / Node").nth(1).expect("a summary table");
    assert_eq!(summary.lines().filter(|l| l.starts_with("|     2 |")).count(), 2, "{summary}");
}
