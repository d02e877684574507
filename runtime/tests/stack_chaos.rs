//! `stack chaos`, short: its own stack, editors typing through the balancers while the
//! document's collaboration owner, the PostgreSQL primary, a Kafka partition leader, a MongoDB
//! primary and the Redis master are SIGKILLed and restarted; it must end with a passing summary
//! line and exit 0. (That the verdict fails on a lost acknowledged edit is the unit test
//! `chaos::verdict::tests::an_acknowledged_edit_missing_from_the_store_fails`.)
#![cfg(not(madsim))]

use std::process::Command;

const STACK: &str = env!("CARGO_BIN_EXE_stack");

/// A base port whose whole range (20 ports per node, 50 nodes' worth) is free now.
fn free_base() -> u16 {
    let start = 31_000 + (std::process::id() % 10) as u16 * 100;
    (0..10)
        .map(|k| start + k * 1_000 % 10_000)
        .find(|base| (*base..base + 1_000).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .expect("a free range of ports")
}

#[test]
fn chaos_usage_errors_exit_2() {
    let code = |args: &[&str]| Command::new(STACK).args(args).output().expect("run stack").status.code();
    assert_eq!(code(&["chaos"]), Some(2), "no seed");
    assert_eq!(code(&["chaos", "--seed", "x"]), Some(2), "a seed that is no number");
    assert_eq!(code(&["chaos", "--seed", "1", "--base-port", "80"]), Some(2), "a privileged base port");
}

#[test]
fn a_short_chaos_run_loses_no_acknowledged_edit_and_converges() {
    let base = free_base();
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
