//! Stock Yjs clients against the stack on the real runtime: `stack up` on a temporary data dir,
//! then the Node test in `interop/` (yjs, y-protocols, y-websocket and ws at the versions its
//! lockfile pins, installed with `npm ci`): stock clients sign in through auth, connect through
//! the balancers, type concurrently (random edits and a prefix of the two-agent trace) with our
//! Rust client (`stack-edit`) in the same document, converge with each other and with the
//! document as stored, keep their edits through a kill of the document's collaboration
//! instance, and a client without a valid token is refused.
//!
//! Needs Node.js 20 or newer and npm on the PATH (Debian: `apt-get install nodejs npm`).
#![cfg(not(madsim))]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{free_base, Up, STACK};

const STACK_EDIT: &str = env!("CARGO_BIN_EXE_stack-edit");
/// A generous bound for a loaded 2-core machine; it fails the test, it measures nothing.
const NODE_WITHIN: Duration = Duration::from_secs(600);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// `program --version`, or a failure naming what to install.
fn require(program: &str) -> String {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!(
            "`{program}` is needed to run the stock Yjs clients of interop/: install Node.js 20 or newer and npm \
             (Debian: apt-get install nodejs npm)"
        ),
    }
}

/// `npm ci` in interop/, unless node_modules already holds what the lockfile pins (npm writes
/// node_modules/.package-lock.json as a copy of the lockfile's packages on install).
fn install() {
    let dir = interop_dir();
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("package-lock.json")).expect("interop/package-lock.json"))
            .expect("lockfile JSON");
    let installed: Option<serde_json::Value> = std::fs::read(dir.join("node_modules/.package-lock.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let up_to_date = installed.is_some_and(|i| {
        let pinned = lock["packages"].as_object().expect("lockfile packages");
        pinned.iter().filter(|(k, _)| !k.is_empty()).all(|(k, v)| i["packages"][k]["version"] == v["version"])
    });
    if up_to_date {
        return;
    }
    let out =
        Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).output().expect("run npm ci");
    assert!(
        out.status.success(),
        "npm ci in interop/ failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_yjs_clients_and_the_rust_client_converge_through_the_stack() {
    let node = require("node");
    require("npm");
    let major: u32 = node.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= 20, "Node.js {node} is too old for interop/: install Node.js 20 or newer");
    tokio::task::block_in_place(install);

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("stack");
    let up = Up::start(&data, free_base(0)).await;

    let run = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "interop.test.js"])
        .current_dir(interop_dir())
        .env("STACK_DATA_DIR", &data)
        .env("STACK_BIN", STACK)
        .env("STACK_EDIT_BIN", STACK_EDIT)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = sim::timer::timeout(NODE_WITHIN, run).await.expect("node --test did not finish").expect("run node");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{output}");
    assert!(out.status.success(), "node --test in interop/ failed ({}):\n{output}", out.status);

    up.stop().await;
}
