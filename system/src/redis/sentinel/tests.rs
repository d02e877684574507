use super::*;

fn cfg(me: &str) -> SentinelConfig {
    let all = ["s1", "s2", "s3"];
    let peers = all.iter().filter(|p| **p != me).map(|p| p.to_string()).collect();
    let instances = vec!["r1".to_string(), "r2".to_string(), "r3".to_string()];
    SentinelConfig::simulation(me, peers, instances, "r1")
}

fn replica(node: &str, of: &str, offset: u64) -> RoleInfo {
    RoleInfo {
        node: node.into(),
        run_id: node.into(),
        role: ReplRole::Replica { master: of.into(), link_up: true },
        offset,
        priority: 100,
    }
}

fn master(node: &str) -> RoleInfo {
    RoleInfo {
        node: node.into(),
        run_id: node.into(),
        role: ReplRole::Master { replicas: vec![] },
        offset: 0,
        priority: 100,
    }
}

fn events(out: &[Output]) -> Vec<&'static str> {
    out.iter().filter_map(|o| if let Output::Event { kind, .. } = o { Some(*kind) } else { None }).collect()
}

/// Runs ticks from `from` to `to` (100 ms apart), answering every ping from `up` instances.
fn run(s: &mut Sentinel, from: u64, to: u64, up: &[RoleInfo]) -> Vec<Output> {
    let mut all = Vec::new();
    let mut t = from;
    while t <= to {
        let out = s.tick(t);
        for o in &out {
            if let Output::Ping(n) = o {
                if let Some(info) = up.iter().find(|i| i.node == *n) {
                    all.extend(s.on_info(t, info.clone()));
                }
            }
        }
        all.extend(out);
        t += 100;
    }
    all
}

#[test]
fn a_silent_master_goes_sdown_then_odown_with_a_peer_and_a_failover_starts() {
    let mut s = Sentinel::new(cfg("s1"), 1, 0);
    let up = [replica("r2", "r1", 10), replica("r3", "r1", 5)];
    let out = run(&mut s, 0, 3_000, &up);
    assert!(!events(&out).contains(&"+sdown"), "not before down-after-milliseconds");
    let out = run(&mut s, 3_100, 4_100, &up);
    assert!(events(&out).contains(&"+sdown"));
    assert!(!events(&out).contains(&"+odown"), "quorum 2 needs a peer");
    assert!(out.iter().any(|o| matches!(o, Output::Ask { candidate: None, .. })));
    s.on_peer_reply(4_100, "s2", true, None);
    let out = run(&mut s, 4_200, 4_200, &up);
    assert_eq!(events(&out), vec!["+odown", "+try-failover"]);
    assert!(out.contains(&Output::Ask { candidate: Some("s1".into()), current_epoch: 1 }));
}

#[test]
fn an_elected_leader_promotes_the_most_advanced_replica_and_reconfigures_the_rest() {
    let mut s = Sentinel::new(cfg("s1"), 2, 0);
    let up = [replica("r2", "r1", 10), replica("r3", "r1", 50)];
    run(&mut s, 0, 3_500, &up);
    s.on_peer_reply(3_500, "s2", true, None);
    run(&mut s, 3_600, 3_600, &up);
    // s2 votes for us in epoch 1: with our own vote that is a majority.
    s.on_peer_reply(3_700, "s2", true, Some(("s1".into(), 1)));
    let out = run(&mut s, 3_700, 3_700, &up);
    assert!(events(&out).contains(&"+elected-leader"));
    assert!(out.contains(&Output::ReplicaOf { node: "r3".into(), master: None }), "{out:?}");
    let out = s.on_info(3_800, master("r3"));
    assert!(out.contains(&Output::SwitchMaster { from: "r1".into(), to: "r3".into(), config_epoch: 1 }));
    assert!(out.contains(&Output::ReplicaOf { node: "r1".into(), master: Some("r3".into()) }));
    assert!(out.contains(&Output::ReplicaOf { node: "r2".into(), master: Some("r3".into()) }));
    assert_eq!(s.master(), "r3");
}

#[test]
fn one_vote_per_epoch_and_no_own_failover_right_after_voting() {
    let mut s = Sentinel::new(cfg("s3"), 3, 0);
    assert_eq!(s.on_vote_request(10, Some("s1"), 1).1, Some(("s1".into(), 1)));
    assert_eq!(s.on_vote_request(11, Some("s2"), 1).1, Some(("s1".into(), 1)));
    assert_eq!(s.on_vote_request(12, Some("s2"), 2).1, Some(("s2".into(), 2)));
    // A stale epoch gets the current vote, not a new one.
    assert_eq!(s.on_vote_request(13, Some("s1"), 1).1, Some(("s2".into(), 2)));
    // The master is down and a peer agrees, but we just voted: no failover of our own.
    let out = run(&mut s, 100, 4_000, &[]);
    s.on_peer_reply(4_000, "s1", true, None);
    let out2 = run(&mut s, 4_100, 4_500, &[]);
    assert!(events(&out).contains(&"+sdown"));
    assert!(events(&out2).contains(&"+odown"));
    assert!(!events(&out2).contains(&"+try-failover"));
}

#[test]
fn without_a_majority_the_attempt_times_out() {
    let mut s = Sentinel::new(cfg("s1"), 4, 0);
    run(&mut s, 0, 3_500, &[]);
    s.on_peer_reply(3_500, "s2", true, Some(("s2".into(), 1)));
    let out = run(&mut s, 3_600, 12_000, &[]);
    let e = events(&out);
    assert!(e.contains(&"+try-failover"));
    assert!(e.contains(&"-failover-abort-not-elected"), "{e:?}");
    assert!(!e.contains(&"+elected-leader"));
}

#[test]
fn newer_configurations_are_adopted_and_old_masters_converted() {
    let mut s = Sentinel::new(cfg("s2"), 5, 0);
    assert!(s.on_hello(100, "r2", 0, 0).is_empty(), "not newer");
    let out = s.on_hello(200, "r2", 3, 3);
    assert_eq!(out, vec![Output::SwitchMaster { from: "r1".into(), to: "r2".into(), config_epoch: 3 }]);
    // r1 comes back still believing it is the master: converted after the delay.
    let up = [master("r1"), master("r2"), replica("r3", "r2", 0)];
    let out = run(&mut s, 300, 5_000, &up);
    assert!(out.contains(&Output::ReplicaOf { node: "r1".into(), master: Some("r2".into()) }));
    assert!(!out.iter().any(|o| matches!(o, Output::ReplicaOf { node, .. } if node != "r1")));
    assert_eq!(s.persisted().config_epoch, 3);
}

#[test]
fn the_leader_reports_who_elected_it() {
    let mut s = Sentinel::new(cfg("s1"), 2, 0);
    let up = [replica("r2", "r1", 10), replica("r3", "r1", 50)];
    run(&mut s, 0, 3_500, &up);
    s.on_peer_reply(3_500, "s2", true, None);
    run(&mut s, 3_600, 3_600, &up);
    s.on_peer_reply(3_700, "s3", true, Some(("s1".into(), 1)));
    let out = run(&mut s, 3_700, 3_700, &up);
    assert!(out.contains(&Output::Elected { epoch: 1, voters: vec!["s3".into(), "s1".into()] }), "{out:?}");
}

#[test]
fn a_single_opinion_sentinel_fails_over_alone_and_a_correct_one_does_not() {
    let up = [replica("r2", "r1", 10), replica("r3", "r1", 50)];
    let mut unsafe_cfg = cfg("s1");
    unsafe_cfg.single_opinion = true;
    for (config, fails_over) in [(cfg("s1"), false), (unsafe_cfg, true)] {
        let mut s = Sentinel::new(config, 7, 0);
        // The master is silent to this Sentinel only: no peer reports it down or votes.
        let out = run(&mut s, 0, 6_000, &up);
        let e = events(&out);
        assert!(e.contains(&"+sdown"));
        assert_eq!(e.contains(&"+elected-leader"), fails_over, "{e:?}");
        assert_eq!(out.iter().any(|o| matches!(o, Output::ReplicaOf { master: None, .. })), fails_over);
    }
}
