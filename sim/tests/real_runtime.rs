//! Parity: the node code of the simulated tests, on the real runtime (real TCP on loopback,
//! real files under a temporary directory, the real clock).
#![cfg(not(madsim))]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use sim::disk::{Disk, RealDisk};
use sim::net::{Directory, Net};
use sim::NodeCtx;

mod common;
use common::{echo_server, ping, PORT};

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind").local_addr().expect("addr").port()
}

fn ctx(name: &str, dir: &Arc<Directory>, data: &std::path::Path) -> NodeCtx {
    let net = Net::tokio(name, dir.clone(), None);
    let disk = Disk::Real(RealDisk::new(data.join(name)).expect("data dir"));
    NodeCtx::real(name, "z1", "r1", net, disk, 7)
}

/// Pings until the echo server answers (it may not be listening yet), at most a second.
async fn ping_until_echoed(from: &NodeCtx, to: &str) -> Option<u64> {
    for _ in 0..50 {
        if let Some(rtt) = ping(from, to).await {
            return Some(rtt);
        }
        sim::timer::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn echo_and_disk_work_on_the_real_runtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut directory = Directory::default();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    directory.insert("a", loopback, 0);
    directory.insert("b", loopback, free_port() - PORT);
    let dir = Arc::new(directory);
    let (a, b) = (ctx("a", &dir, tmp.path()), ctx("b", &dir, tmp.path()));
    tokio::spawn(echo_server(b));
    let rtt = ping_until_echoed(&a, "b").await;
    assert!(rtt.is_some(), "no echo over real TCP");

    a.disk.append("log", b"one;").unwrap();
    a.disk.sync("log").await.unwrap();
    assert_eq!(a.disk.read("log").unwrap(), b"one;");
    assert!(tmp.path().join("a").join("log").exists());
    assert!(a.clock.wall_ms() > sim::clock::SIM_EPOCH_UNIX_MS);
}

/// Two nodes on one 127.0.0.1, each with its own block of ports: the well-known port maps to
/// the node's slot, so both can listen on "the same" port and reach each other.
#[tokio::test]
async fn port_blocks_keep_nodes_on_one_address_apart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut directory = Directory::default();
    directory.set_port_slots(&[8080, PORT]);
    let (base_a, base_b) = (free_port(), free_port());
    directory.insert_block("a", loopback, base_a - 1);
    directory.insert_block("b", loopback, base_b - 1);
    assert_eq!(directory.addr("b", PORT).unwrap().port(), base_b);
    assert!(directory.addr("b", 1234).is_err(), "a port without a slot has no address");
    let dir = Arc::new(directory);
    let (mut a, b) = (ctx("a", &dir, tmp.path()), ctx("b", &dir, tmp.path()));
    tokio::spawn(echo_server(a.fork()));
    tokio::spawn(echo_server(b));
    let rtt = ping_until_echoed(&a, "b").await;
    assert!(rtt.is_some(), "no echo between two blocks on 127.0.0.1");
}
