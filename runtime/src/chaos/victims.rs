//! Finding each fault's victim at kill time, by asking the stack as its own clients do: the
//! document's owner (the balancers' rendezvous choice over the collaboration instances), the
//! PostgreSQL member the proxy routes writes to, the leader of the document's `doc-updates`
//! partition (Kafka metadata), a MongoDB shard's primary (`hello` to its members), the Redis
//! master (the Sentinels' answer).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::Rng;
use sim::disk::{Disk, RealDisk};
use sim::net::Net;
use sim::NodeCtx;
use system::doc_update::DocId;
use system::kafka::topic::TopicPartition;
use system::mongo::protocol::{
    Command as MongoCommand, Frame as MongoFrame, Reply as MongoReply, ENCODING as MONGO_ENCODING, MONGOD_PORT,
};
use system::postgres::client::PgClient;
use system::postgres::data::Table;
use system::postgres::protocol::Request as PgRequest;
use system::redis::client::{ClientConfig, RedisClient};
use system::rpc::{call_once, ChannelOptions};

use crate::layout::Layout;

/// The kinds of fault a chaos run injects, one victim each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Collab,
    Postgres,
    Kafka,
    Mongo,
    Redis,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Collab, Kind::Postgres, Kind::Kafka, Kind::Mongo, Kind::Redis];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Collab => "collab owner",
            Kind::Postgres => "postgres primary",
            Kind::Kafka => "kafka partition leader",
            Kind::Mongo => "mongo primary",
            Kind::Redis => "redis master",
        }
    }
}

/// The stack's clients, as a node that listens nowhere.
pub struct Finder {
    ctx: NodeCtx,
    layout: Arc<Layout>,
}

const ASK: Duration = Duration::from_secs(2);
/// How long to look for a victim (a store may be between leaders).
const LOOK_FOR: Duration = Duration::from_secs(30);

impl Finder {
    pub fn new(layout: Arc<Layout>, disk_dir: std::path::PathBuf, seed: u64) -> anyhow::Result<Self> {
        let net = Net::tokio("chaos", Arc::new(layout.directory()), None);
        let disk = RealDisk::new(disk_dir).context("the chaos client's data directory")?;
        let ctx = NodeCtx::real("chaos", "", "", net, Disk::Real(disk), seed);
        Ok(Finder { ctx, layout })
    }

    /// The node to kill for `kind`, touching `doc`; retried while the store has no leader.
    pub async fn find(&mut self, kind: Kind, doc: &str, rng: &mut StdRng) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + LOOK_FOR;
        loop {
            match self.once(kind, doc, rng).await {
                Ok(Some(node)) => return Ok(node),
                Ok(None) if tokio::time::Instant::now() < deadline => {}
                Ok(None) => bail!("no {} found within {LOOK_FOR:?}", kind.label()),
                Err(e) => return Err(e),
            }
            sim::timer::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn once(&mut self, kind: Kind, doc: &str, rng: &mut StdRng) -> anyhow::Result<Option<String>> {
        let servers = self.layout.servers().clone();
        Ok(match kind {
            Kind::Collab => self.layout.collab_owner(doc).map(str::to_string),
            Kind::Postgres => {
                let mut pg = PgClient::new(&mut self.ctx, vec![servers.pg.proxy().to_string()]);
                let req = PgRequest::Get { table: Table::Tenants, key: "chaos".into() };
                match sim::timer::timeout(ASK, pg.request(&req)).await {
                    Ok(Ok((Some(node), _))) => Some(node),
                    _ => None,
                }
            }
            Kind::Kafka => {
                let parts = servers.kafka.partitions_of(system::doc_update::TOPIC).len() as u32;
                let id = DocId::parse(doc).map_err(|_| anyhow::anyhow!("bad document {doc}"))?;
                let tp = TopicPartition {
                    topic: system::doc_update::TOPIC.into(),
                    partition: system::collab::durable::partition_for(&id, parts),
                };
                let mut client = servers.kafka.client(&mut self.ctx);
                let mut found = None;
                for _ in 0..3 {
                    if client.refresh_metadata(rng).await {
                        if let Some((_, node, _)) = client.leader(&tp) {
                            found = Some(node);
                            break;
                        }
                    }
                }
                found
            }
            Kind::Mongo => {
                let sets = servers.mongo.shard_sets().into_iter().map(str::to_string).collect::<Vec<_>>();
                let set = &sets[rng.gen_range(0..sets.len())];
                let options = ChannelOptions::new(MONGOD_PORT, MONGO_ENCODING);
                let mut best: Option<(u64, String)> = None;
                for host in servers.mongo.members(set) {
                    let hello = MongoFrame::Command(MongoCommand::Hello);
                    if let Ok(MongoReply::Hello { is_primary: true, term, .. }) =
                        call_once::<_, MongoReply>(&self.ctx.net, &host, &options, &hello, ASK).await
                    {
                        if best.as_ref().is_none_or(|(t, _)| term > *t) {
                            best = Some((term, host));
                        }
                    }
                }
                best.map(|(_, h)| h)
            }
            Kind::Redis => {
                let mut redis =
                    RedisClient::new(&mut self.ctx, ClientConfig::sentinel(servers.redis.sentinels().to_vec()));
                let get = system::redis::protocol::Command::Get { key: "chaos".into() };
                match sim::timer::timeout(ASK, redis.call(&get)).await {
                    Ok(Ok((node, _))) => Some(node),
                    _ => None,
                }
            }
        })
    }
}
