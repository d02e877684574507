//! The document service's HTTP API (on [`HTTP_PORT`], behind the balancers' `/docs/...`):
//!
//! - `GET /docs/<tenant>/<doc>/state` → 200, body the whole document as one yrs v1 update
//!   (an empty document if nothing was stored), header `x-state-vector` the hex of its v1 state
//!   vector, `x-source` `cache` or `mongo`; 503 when MongoDB cannot be read.
//! - `GET /docs/<tenant>/<doc>` → JSON metadata: the durable version vector, the latest
//!   snapshot's version, the number of stored operations.
//! - `GET /docs/<tenant>/<doc>/history` → JSON list of the snapshots (version, vector, token,
//!   digest...), oldest first.
//!
//! Loading a state: read the durable version vector (one small majority read); if the cache
//! holds a copy whose vector covers it, serve that; otherwise rebuild from the latest snapshot
//! plus the operations after it ([`super::store::DocStore::rebuild`]) and fill the cache. The
//! collaboration service loads a room's document here when the room opens, which is the
//! design's Kafka failure recovery: operations are read from MongoDB directly, whatever the
//! log's state.
//!
//! Authorization is the balancer's and the collaboration service's concern: the document
//! service sits on the internal network (the front door forwards `/docs/...` only to callers
//! it lets through). Left out: conditional requests and range reads of the state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sim::NodeCtx;

use super::breaker::Transition;
use super::cache::{Cache, CachedDoc, Lookup};
use super::observe::{CacheEvent, CacheObserved, Source, StateServed};
use super::store::DocStore;
use super::vector::VersionVector;
use crate::doc_update::DocId;
use crate::http::{read_request, write_response, Request, Response};

pub use crate::http::HTTP_PORT;
/// How long one request may take on the serving side (a rebuild through a MongoDB failover
/// gives up before this, with a 503).
const SERVE_TIMEOUT_MS: u64 = 15_000;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    State(DocId),
    Meta(DocId),
    History(DocId),
}

/// Parses a request's path; Err is the response to send.
pub fn route(req: &Request) -> Result<Route, Response> {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let (tenant, name, rest) = match parts.as_slice() {
        ["docs", t, n] => (*t, *n, None),
        ["docs", t, n, r] => (*t, *n, Some(*r)),
        _ => return Err(Response::error(404, "no such route")),
    };
    let doc = DocId::new(tenant, name).map_err(|e| Response::error(400, &e.to_string()))?;
    if req.method != "GET" {
        return Err(Response::error(405, "only GET"));
    }
    match rest {
        None => Ok(Route::Meta(doc)),
        Some("state") => Ok(Route::State(doc)),
        Some("history") => Ok(Route::History(doc)),
        Some(_) => Err(Response::error(404, "no such route")),
    }
}

/// The service of one node. Clones share everything.
#[derive(Clone)]
pub struct Service {
    ctx: Arc<Mutex<NodeCtx>>,
    store: DocStore,
    cache: Cache,
}

impl Service {
    pub fn new(ctx: NodeCtx, store: DocStore, cache: Cache) -> Self {
        Service { ctx: Arc::new(Mutex::new(ctx)), store, cache }
    }

    fn ctx(&self) -> std::sync::MutexGuard<'_, NodeCtx> {
        self.ctx.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache_event(&self, doc: &str, event: CacheEvent) {
        self.ctx().observe(&CacheObserved { doc: doc.into(), event });
    }

    fn breaker(&self, doc: &str, t: Transition) {
        match t {
            Transition::Opened => self.cache_event(doc, CacheEvent::BreakerOpened),
            Transition::Closed => self.cache_event(doc, CacheEvent::BreakerClosed),
            Transition::None => {}
        }
    }

    pub async fn handle(&self, req: &Request) -> Response {
        match route(req) {
            Ok(Route::State(doc)) => self.state(&doc.to_string()).await,
            Ok(Route::Meta(doc)) => self.meta(&doc.to_string()).await,
            Ok(Route::History(doc)) => self.history(&doc.to_string()).await,
            Err(resp) => resp,
        }
    }

    async fn state(&self, doc: &str) -> Response {
        let durable = match self.store.version_vector(doc).await {
            Ok(v) => v,
            Err(e) => return Response::error(503, &format!("version vector: {e}")),
        };
        let (lookup, t) = self.cache.get(doc).await;
        self.breaker(doc, t);
        match lookup {
            Lookup::Found(c) if c.vector.covers(&durable) => {
                self.cache_event(doc, CacheEvent::Hit);
                return self.served(doc, Source::Cache, &c.vector, &durable, c.state, 0, 0);
            }
            Lookup::Found(_) => self.cache_event(doc, CacheEvent::Stale),
            Lookup::Absent => self.cache_event(doc, CacheEvent::Miss),
            Lookup::Unavailable => self.cache_event(doc, CacheEvent::Unavailable),
        }
        let (rebuilt, _, ops_read) = match self.store.rebuild(doc).await {
            Ok(r) => r,
            Err(e) => return Response::error(503, &format!("rebuild: {e}")),
        };
        self.ctx().sometimes("docs.loaded_from_mongo");
        let state = rebuilt.encode_state();
        if !rebuilt.state.covers(&durable) {
            // The stored operations do not reach the vector the consumers wrote: should not
            // happen (the vector is written with its operations); say so, serve what is stored.
            self.ctx().trace(
                "docs.behind_vector",
                json!({ "doc": doc, "rebuilt": rebuilt.state.to_hex(), "durable": durable.to_hex() }),
            );
        } else if rebuilt.is_complete() {
            let cached = CachedDoc { vector: rebuilt.state.clone(), state: state.clone() };
            let (ok, t) = self.cache.put(doc, &cached).await;
            self.breaker(doc, t);
            self.cache_event(doc, if ok { CacheEvent::Fill } else { CacheEvent::FillFailed });
        }
        let pending = rebuilt.pending.len() as u64;
        self.served(doc, Source::Mongo, &rebuilt.state, &durable, state, ops_read as u64, pending)
    }

    #[allow(clippy::too_many_arguments)]
    fn served(
        &self,
        doc: &str,
        source: Source,
        vector: &VersionVector,
        durable: &VersionVector,
        state: Vec<u8>,
        ops_read: u64,
        pending: u64,
    ) -> Response {
        let hex = vector.to_hex();
        self.ctx().observe(&StateServed {
            doc: doc.into(),
            source,
            state_vector: hex.clone(),
            durable_vector: durable.to_hex(),
            ops_read,
            pending,
        });
        let source = match source {
            Source::Cache => "cache",
            Source::Mongo => "mongo",
        };
        Response::new(200, state)
            .header("content-type", "application/octet-stream")
            .header("x-state-vector", &hex)
            .header("x-source", source)
    }

    async fn meta(&self, doc: &str) -> Response {
        let result = async {
            let vector = self.store.version_vector(doc).await?;
            let version = self.store.latest_version(doc).await?;
            let ops = self.store.ops(doc).await?.len();
            Ok::<_, super::store::LoadError>((vector, version, ops))
        };
        match result.await {
            Ok((vector, version, ops)) => Response::json(
                200,
                &json!({ "doc": doc, "state_vector": vector.to_json(), "state_vector_hex": vector.to_hex(),
                         "latest_snapshot_version": version, "op_count": ops }),
            ),
            Err(e) => Response::error(503, &e.to_string()),
        }
    }

    async fn history(&self, doc: &str) -> Response {
        match self.store.history(doc).await {
            Ok(list) => Response::json(200, &list),
            Err(e) => Response::error(503, &e.to_string()),
        }
    }

    /// Serves HTTP on [`HTTP_PORT`] until the node dies.
    pub async fn serve(self) -> std::io::Result<()> {
        let net = self.ctx().net.clone();
        let listener = net.bind(HTTP_PORT).await?;
        loop {
            let (mut conn, _peer) = listener.accept().await?;
            let this = self.clone();
            tokio::spawn(async move {
                let exchange = async {
                    let response = match read_request(&mut conn).await {
                        Ok(req) => this.handle(&req).await,
                        Err(e) => Response::error(400, &e.to_string()),
                    };
                    let _ = write_response(&mut conn, &response).await;
                };
                let _ = sim::timer::timeout(Duration::from_millis(SERVE_TIMEOUT_MS), exchange).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_bad_names_are_refused() {
        let r = |m: &str, p: &str| route(&Request::new(m, p));
        let doc = DocId::parse("acme/plan").unwrap();
        assert_eq!(r("GET", "/docs/acme/plan/state").unwrap(), Route::State(doc.clone()));
        assert_eq!(r("GET", "/docs/acme/plan").unwrap(), Route::Meta(doc.clone()));
        assert_eq!(r("GET", "/docs/acme/plan/history").unwrap(), Route::History(doc));
        assert_eq!(r("GET", "/docs/ACME/plan/state").unwrap_err().status, 400);
        assert_eq!(r("GET", "/docs/acme/../state").unwrap_err().status, 400);
        assert_eq!(r("GET", "/docs/acme/plan/other").unwrap_err().status, 404);
        assert_eq!(r("GET", "/auth/keys").unwrap_err().status, 404);
        assert_eq!(r("POST", "/docs/acme/plan/state").unwrap_err().status, 405);
    }
}
