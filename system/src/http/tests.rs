use super::*;

fn parse(bytes: &[u8]) -> Result<Request, HttpError> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut stream = bytes;
    rt.block_on(read_request(&mut stream))
}

#[test]
fn a_request_round_trips_through_its_encoding() {
    let req = Request::post_json("/auth/login?x=a%20b&flag", &serde_json::json!({"user": "u"})).header("X-Key", "v");
    let back = parse(&req.encode()).unwrap();
    assert_eq!(back.method, "POST");
    assert_eq!(back.path, "/auth/login");
    assert_eq!(back.query.get("x").map(String::as_str), Some("a b"));
    assert_eq!(back.query.get("flag").map(String::as_str), Some(""));
    assert_eq!(back.headers.get("x-key").map(String::as_str), Some("v"));
    assert_eq!(back.body, req.body);
    assert_eq!(back.head_bytes(), &req.encode()[..back.head_bytes().len()]);
}

#[test]
fn a_response_round_trips_through_its_encoding() {
    let res = Response::json(201, &serde_json::json!({"ok": true})).header("x-state-vector", "00");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let bytes = res.encode();
    let mut stream = &bytes[..];
    let back = rt.block_on(read_response(&mut stream)).unwrap();
    assert_eq!(back, res.clone().header("content-length", &res.body.len().to_string()).header("connection", "close"));
}

#[test]
fn malformed_and_oversized_requests_are_errors() {
    assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Err(HttpError::Closed)));
    assert!(matches!(parse(b"\x00\x01 nonsense\r\n\r\n"), Err(HttpError::Malformed(_))));
    assert!(matches!(parse(b"GET / HTTP/1.1\r\ncontent-length: x\r\n\r\n"), Err(HttpError::Malformed(_))));
    assert!(matches!(parse(b"GET / HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n"), Err(HttpError::TooLarge(_))));
    assert!(matches!(parse(b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"), Err(HttpError::Malformed(_))));
    assert!(parse(b"GET / HTTP/1.1\r\ncontent-length: 2\r\n\r\nab").is_ok());
    assert!(matches!(parse(b"GET / HTTP/1.1\r\ncontent-length: 2\r\n\r\na"), Err(HttpError::Closed)));
    let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES + 10));
    assert!(matches!(parse(huge.as_bytes()), Err(HttpError::TooLarge(_))));
    assert!(parse(b"GET /%zz%4 HTTP/1.1\r\n\r\n").is_ok());
}

#[test]
fn upgrade_and_bearer_are_read_from_headers() {
    let req = parse(b"GET /collab/t/d?token=abc HTTP/1.1\r\nUpgrade: websocket\r\nAuthorization: Bearer tok\r\n\r\n")
        .unwrap();
    assert!(req.is_upgrade());
    assert_eq!(req.bearer(), Some("tok"));
    assert_eq!(req.query.get("token").map(String::as_str), Some("abc"));
}

#[test]
fn a_query_escape_takes_two_hex_digits_and_nothing_else() {
    let req = parse_request(b"GET /p?a=%41%2b&b=%+1&c=%4&d=%zz HTTP/1.1\r\n\r\n").unwrap();
    let q = |k: &str| req.query.get(k).map(String::as_str);
    assert_eq!((q("a"), q("b"), q("c"), q("d")), (Some("A+"), Some("% 1"), Some("%4"), Some("%zz")));
}

#[test]
fn a_claimed_body_is_not_allocated_before_it_arrives() {
    // A head claiming the largest body, then the connection ends: refused as closed.
    let head = format!("POST /x HTTP/1.1\r\ncontent-length: {MAX_BODY_BYTES}\r\n\r\nab");
    assert!(matches!(parse(head.as_bytes()), Err(HttpError::Closed)));
    assert!(matches!(parse_request(head.as_bytes()), Err(HttpError::Closed)));
    let over = format!("POST /x HTTP/1.1\r\ncontent-length: {}\r\n\r\n", MAX_BODY_BYTES + 1);
    assert!(matches!(parse_request(over.as_bytes()), Err(HttpError::TooLarge("body"))));
}

/// A kept connection serves probe after probe (one accepted connection for all of them); a
/// killed server fails the probe in flight, the next ones find nobody, and after the restart
/// a fresh connection is made and kept again.
#[test]
fn a_persistent_connection_is_kept_while_it_works_and_remade_after_a_failure() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use sim::{node_main, Fault, NodeCtx, Plan, RunOptions, Target, Topology};

    use super::health::{HealthFlag, HEALTH_PORT};
    use super::persistent::Persistent;

    let mut topology = Topology::new();
    topology.add("svc", "az-1", "r-1");
    topology.add("cli", "az-2", "r-1");
    let mut plan = Plan::new(topology, 6_000);
    plan.node(
        "svc",
        node_main(|ctx: NodeCtx| async move {
            let flag = HealthFlag::new();
            flag.set(true);
            let _ = super::health::serve(ctx.net.clone(), flag).await;
        }),
    );
    // (time, passed, connection kept after the probe)
    let probes: Arc<Mutex<Vec<(u64, bool, bool)>>> = Arc::default();
    let connects = Arc::new(AtomicUsize::new(0));
    let (p, c) = (probes.clone(), connects.clone());
    plan.client(
        "cli",
        node_main(move |ctx: NodeCtx| {
            let (probes, connects) = (p.clone(), c.clone());
            async move {
                let mut upstream = Persistent::new("svc", HEALTH_PORT);
                for _ in 0..50 {
                    let was_open = upstream.is_open();
                    let answer = upstream.call(&ctx.net, &Request::get("/health"), Duration::from_millis(150)).await;
                    if !was_open && answer.is_ok() {
                        connects.fetch_add(1, Ordering::Relaxed);
                    }
                    let passed = answer.is_ok_and(|r| r.status == 200);
                    probes.lock().unwrap().push((ctx.clock.now_ms(), passed, upstream.is_open()));
                    sim::timer::sleep(Duration::from_millis(100)).await;
                }
            }
        }),
    );
    plan.at(2_000, Fault::Kill(Target::node("svc")));
    plan.at(3_500, Fault::Restart(Target::node("svc")));
    sim::engine::run(plan, RunOptions { seed: 11, ..Default::default() });

    let probes = probes.lock().unwrap().clone();
    let text = format!("{probes:?}");
    let before: Vec<_> = probes.iter().filter(|(t, _, _)| *t < 1_900).collect();
    let down: Vec<_> = probes.iter().filter(|(t, _, _)| (2_300..3_400).contains(t)).collect();
    let after: Vec<_> = probes.iter().filter(|(t, _, _)| *t > 4_500).collect();
    assert!(before.len() > 5 && before.iter().all(|(_, ok, kept)| *ok && *kept), "{text}");
    assert!(!down.is_empty() && down.iter().all(|(_, ok, kept)| !*ok && !*kept), "{text}");
    assert!(after.len() > 5 && after.iter().all(|(_, ok, kept)| *ok && *kept), "{text}");
    assert_eq!(connects.load(Ordering::Relaxed), 2, "one connection before the kill, one after: {text}");
}
