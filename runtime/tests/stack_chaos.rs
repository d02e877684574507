//! `stack chaos`, short: its own stack, editors typing through the balancers while the
//! document's collaboration owner, the PostgreSQL primary, a Kafka partition leader, a MongoDB
//! primary and the Redis master are SIGKILLed and restarted; it must end with a passing summary
//! line and exit 0. (That the verdict fails on a lost acknowledged edit is the unit test
//! `chaos::verdict::tests::an_acknowledged_edit_missing_from_the_store_fails`.)
#![cfg(not(madsim))]

use std::process::Command;

mod common;
use common::{free_base, STACK};

#[test]
fn chaos_usage_errors_exit_2() {
    let code = |args: &[&str]| Command::new(STACK).args(args).output().expect("run stack").status.code();
    assert_eq!(code(&["chaos"]), Some(2), "no seed");
    assert_eq!(code(&["chaos", "--seed", "x"]), Some(2), "a seed that is no number");
    assert_eq!(code(&["chaos", "--seed", "1", "--base-port", "80"]), Some(2), "a privileged base port");
}

#[test]
fn a_short_chaos_run_loses_no_acknowledged_edit_and_converges() {
    let base = free_base(2);
    let out = Command::new(STACK)
        .args(["chaos", "--seed", "1", "--duration", "20", "--base-port", &base.to_string()])
        .output()
        .expect("run stack chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = stdout.lines().rev().find(|l| l.starts_with("chaos seed 1:")).expect("a summary line");
    assert!(summary.contains(": pass —"), "{summary}");
    assert!(
        summary.contains("lost 0,") && summary.contains("docs converged 2/2") && summary.contains("faults 5"),
        "{summary}"
    );
    assert_eq!(out.status.code(), Some(0));
    for kind in ["collab owner", "postgres primary", "kafka partition leader", "mongo primary", "redis master"] {
        assert!(stdout.contains(&format!("({kind} of")), "no {kind} killed:\n{stdout}");
    }
}
