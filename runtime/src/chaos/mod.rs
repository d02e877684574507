//! `stack chaos --seed N`: real-process chaos. It starts its own stack (`stack up` on a fresh
//! data dir), signs up a tenant, runs editors typing seeded edits into a few documents through
//! different balancers, and meanwhile SIGKILLs, one after another, the collaboration instance
//! owning a document, the PostgreSQL primary, the leader of a document's Kafka partition, a
//! MongoDB shard primary and the Redis master, restarting each after a few seconds. After a
//! quiet period it reads every document back from the durable store and judges the run
//! ([`verdict`]).
//!
//! The seed fixes the plan: the edits each editor types, the order of the faults, which
//! documents and shards they aim at, and the gaps. The interleaving is the real machine's, so
//! two runs with one seed differ in timing and in what each fault catches in flight.

pub mod editor;
pub mod verdict;
pub mod victims;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Transact};

use crate::control::{self, Reply, Request};
use crate::data_dir::DataDir;
use crate::layout::Layout;
use crate::stack_child::StackChild;
use editor::{EditorSpec, Phase, Seen};
use verdict::{EditorEnd, Stored};
use victims::{Finder, Kind};

pub const TENANT: &str = "chaos";
const DOCS: usize = 2;
const EDITORS: usize = 4;
/// How long a killed node stays down before its restart.
const DOWN: Duration = Duration::from_secs(3);
/// How long, after typing stops, the editors' edits may take to be acknowledged and the
/// stored documents to catch up.
const SETTLE: Duration = Duration::from_secs(60);

pub struct Options {
    pub seed: u64,
    pub duration: Duration,
    pub data_dir: Option<PathBuf>,
    pub base_port: u16,
}

/// One fault as it happened.
struct FaultRun {
    kind: Kind,
    node: String,
    killed_at: Instant,
    restarted_at: Instant,
}

/// Runs the chaos and prints its progress and summary; whether it passed.
pub async fn run(opts: Options) -> anyhow::Result<bool> {
    let started = Instant::now();
    let tmp;
    let root = match &opts.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("stack-chaos-").tempdir().context("a temporary data dir")?;
            tmp.path().join("stack")
        }
    };
    let data = DataDir::new(root.clone());
    let layout = Arc::new(Layout::new(opts.base_port)?);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    println!("chaos seed {}: starting a stack in {} (base port {})", opts.seed, root.display(), opts.base_port);
    let up = StackChild::start_own(&root, opts.base_port, "chaos").await?;
    let outcome = drive(&opts, &layout, &data, &mut rng, started).await;
    let _ = up.stop().await;
    outcome
}

async fn drive(
    opts: &Options,
    layout: &Arc<Layout>,
    data: &DataDir,
    rng: &mut StdRng,
    started: Instant,
) -> anyhow::Result<bool> {
    let lbs: Vec<SocketAddr> = layout.balancers().iter().filter_map(|b| layout.balancer_addr(b)).collect();
    let token = login(lbs[0]).await?;
    let docs: Vec<String> = (1..=DOCS).map(|k| format!("{TENANT}/doc-{k}")).collect();
    let (phase_tx, phase_rx) = watch::channel(Phase::Typing);
    let mut editors = Vec::new();
    for i in 0..EDITORS {
        let spec = EditorSpec {
            name: format!("editor-{}", i + 1),
            doc: docs[i % DOCS].clone(),
            client: u64::from(rng.gen::<u32>()) + 1,
            lb: lbs[i % lbs.len()],
            token: token.clone(),
            seed: rng.gen(),
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(editor::run(spec.clone(), seen.clone(), phase_rx.clone()));
        editors.push((spec, seen, task));
    }
    println!("chaos: {EDITORS} editors typing into {} through {} balancers", docs.join(", "), lbs.len().min(EDITORS));

    // The plan: the faults in a seeded order, each aimed at a seeded document, spread over the
    // middle of the run.
    let mut kinds = Kind::ALL.to_vec();
    kinds.shuffle(rng);
    let warmup = opts.duration.mul_f64(0.15);
    let gap = opts.duration.mul_f64(0.7) / kinds.len() as u32;
    let mut finder = Finder::new(layout.clone(), data.root().join("chaos-client"), rng.gen())?;
    let t0 = Instant::now();
    sim::timer::sleep(warmup).await;
    let mut faults: Vec<FaultRun> = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        sim::timer::sleep_until(t0 + warmup + gap * k as u32).await;
        let doc = docs[rng.gen_range(0..docs.len())].clone();
        let node = finder.find(*kind, &doc, rng).await.with_context(|| format!("finding the {}", kind.label()))?;
        let killed_at = Instant::now();
        command(data, Request::Kill { node: node.clone() }).await?;
        // A MongoDB victim is a seeded shard's primary, whichever documents that shard holds.
        let target = match (kind, layout.servers().mongo.set_of(&node)) {
            (Kind::Mongo, Some(set)) => format!("set {set}"),
            _ => doc.clone(),
        };
        println!("chaos: t={:5.1}s SIGKILL {node} ({} of {target})", secs(started), kind.label());
        sim::timer::sleep(DOWN).await;
        let message = command(data, Request::Restart { node: node.clone() }).await?;
        println!("chaos: t={:5.1}s {message}", secs(started));
        faults.push(FaultRun { kind: *kind, node, killed_at, restarted_at: Instant::now() });
    }
    // Keep typing a while after the last restart, so recovery is seen, then go quiet.
    let typing_end =
        (t0 + opts.duration.mul_f64(0.9)).max(Instant::now() + opts.duration.mul_f64(0.1).max(Duration::from_secs(5)));
    sim::timer::sleep_until(typing_end).await;
    let _ = phase_tx.send(Phase::Quiet);
    println!("chaos: t={:5.1}s typing stopped; waiting for acknowledgements and the store", secs(started));
    let settle_by = Instant::now() + SETTLE;
    let mut stored: BTreeMap<String, Option<Stored>> = BTreeMap::new();
    loop {
        let acked = editors.iter().all(|(_, seen, _)| seen.lock().expect("seen").all_acked());
        stored.clear();
        for doc in &docs {
            let read = read_stored(lbs[0], doc).await;
            if let Err(e) = &read {
                tracing::warn!(%doc, error = %e, "cannot read the stored document yet");
            }
            stored.insert(doc.clone(), read.ok());
        }
        let converged = editors.iter().all(|(spec, seen, _)| {
            let s = seen.lock().expect("seen");
            let sv: BTreeMap<u64, u32> = s.sv.iter().copied().collect();
            stored.get(&spec.doc).and_then(|d| d.as_ref()).is_some_and(|d| d.text == s.text && d.sv == sv)
        });
        if (acked && converged) || Instant::now() >= settle_by {
            break;
        }
        sim::timer::sleep(Duration::from_secs(1)).await;
    }
    let _ = phase_tx.send(Phase::Close);
    let mut ends = Vec::new();
    let last_restart = faults.iter().map(|f| f.restarted_at).max().unwrap_or(t0);
    let mut ack_times = Vec::new();
    for (spec, seen, task) in editors {
        let _ = sim::timer::timeout(Duration::from_secs(10), task).await;
        let s = seen.lock().expect("seen");
        println!(
            "chaos: {} ({}, client {}): {} edits, {} acknowledgements, {} connections",
            spec.name,
            spec.doc,
            spec.client,
            s.edits.len(),
            s.ack_times.len(),
            s.connects
        );
        ack_times.push(s.ack_times.clone());
        ends.push(EditorEnd {
            name: spec.name.clone(),
            doc: spec.doc.clone(),
            client: spec.client,
            text: s.text.clone(),
            sv: s.sv.iter().copied().collect(),
            edits: s.edits.clone(),
            acked: s.acked.clone(),
            acked_after_last_restart: s.ack_times.iter().any(|t| *t > last_restart),
        });
    }
    // Recovery: from each kill until every editor had an edit acknowledged again.
    let mut recovery_max = 0.0f64;
    for f in &faults {
        let per_editor: Vec<Option<f64>> = ack_times
            .iter()
            .map(|times| times.iter().find(|t| **t > f.killed_at).map(|t| (*t - f.killed_at).as_secs_f64()))
            .collect();
        let worst = per_editor.iter().map(|r| r.unwrap_or(f64::INFINITY)).fold(0.0, f64::max);
        recovery_max = recovery_max.max(worst);
        println!(
            "chaos: recovery after {} ({}): every editor acknowledged again within {:.1} s (down {:.1} s)",
            f.kind.label(),
            f.node,
            worst,
            (f.restarted_at - f.killed_at).as_secs_f64()
        );
    }
    let verdict = verdict::judge(&stored, &ends);
    for failure in &verdict.failures {
        println!("chaos: FAIL {failure}");
    }
    println!(
        "chaos seed {}: {} — edits acked {}, lost {}, docs converged {}/{}, faults {}, recovery max {:.1} s (wall {:.0} s)",
        opts.seed,
        if verdict.pass() { "pass" } else { "FAIL" },
        verdict.edits_acked,
        verdict.lost,
        verdict.docs_converged,
        verdict.docs,
        faults.len(),
        recovery_max,
        secs(started)
    );
    Ok(verdict.pass())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

async fn command(data: &DataDir, request: Request) -> anyhow::Result<String> {
    match control::send(data, &request).await {
        Ok(Reply::Done { message }) => Ok(message),
        Ok(other) => bail!("unexpected reply {other:?}"),
        Err(e) => bail!("{request:?}: {e}"),
    }
}

/// One HTTP/1.1 request; status and body bytes.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = sim::timer::timeout(Duration::from_secs(10), exchange).await.context("HTTP timed out")??;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP head")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, response[split + 4..].to_vec()))
}

/// Signs the tenant's admin up and logs in, retrying while the answer is a 5xx.
pub(crate) async fn login(lb: SocketAddr) -> anyhow::Result<String> {
    let creds = serde_json::json!({ "tenant": TENANT, "user": "ada", "password": "correct horse battery" }).to_string();
    for path in ["/auth/signup", "/auth/login"] {
        for attempt in 0.. {
            let (status, body) = http(lb, "POST", path, &creds).await?;
            if status < 500 {
                if status >= 300 {
                    bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
                }
                if path == "/auth/login" {
                    let reply: serde_json::Value = serde_json::from_slice(&body)?;
                    return reply["token"].as_str().map(str::to_string).context("no token");
                }
                break;
            }
            if attempt > 60 {
                bail!("{path} kept failing with {status}");
            }
            sim::timer::sleep(Duration::from_millis(500)).await;
        }
    }
    bail!("unreachable")
}

/// The document as stored (`GET /docs/<doc>/state`): the documents service's durable version (rebuilt from MongoDB, or
/// its cache when that covers the durable vector).
async fn read_stored(lb: SocketAddr, doc: &str) -> anyhow::Result<Stored> {
    let (status, body) = http(lb, "GET", &format!("/docs/{doc}/state"), "").await?;
    if status != 200 {
        bail!("GET /docs/{doc}/state: {status} {}", String::from_utf8_lossy(&body));
    }
    let ydoc = yrs::Doc::with_client_id(1);
    let update = yrs::Update::decode_v1(&body).map_err(|e| anyhow::anyhow!("decoding {doc}: {e}"))?;
    ydoc.transact_mut().apply_update(update)?;
    let text = ydoc.get_or_insert_text("content").get_string(&ydoc.transact());
    let sv = editor::sv_pairs(&ydoc.transact().state_vector()).into_iter().collect();
    Ok(Stored { text, sv })
}
