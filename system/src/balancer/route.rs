//! Routing by path, sans-IO: which pool a request goes to, and whether a request may be sent
//! again to another instance.
//!
//! The front door's contract:
//! - `/auth` and `/auth/...` go to a healthy auth instance, `/docs/...` to a healthy document
//!   service instance (any one: they hold no per-document state);
//! - `GET /collab/<tenant>/<doc>` with a WebSocket upgrade goes to the document's owner among the
//!   healthy collaboration instances ([`super::rendezvous`]); the document id is validated here
//!   (`[a-z0-9-]{1,64}` each part), so an attacker's path never reaches the hash or a log line
//!   unchecked;
//! - anything else is answered by the balancer itself (404, or 400 for a collab path that is not
//!   a WebSocket upgrade or names no valid document).

use serde::{Deserialize, Serialize};

use crate::doc_update::DocId;

/// A group of interchangeable upstream instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    Auth,
    Docs,
    Collab,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Auth => "auth",
            Pool::Docs => "docs",
            Pool::Collab => "collab",
        }
    }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Any healthy instance of an HTTP pool.
    Any(Pool),
    /// The rendezvous owner of `doc` (`tenant/name`) among healthy collaboration instances.
    Collab { doc: DocId },
    /// Answered by the balancer with this status and reason.
    Reject { status: u16, reason: &'static str },
}

/// The route of a request, from its method, its path (without the query) and whether it asks
/// for a WebSocket upgrade (`Upgrade: websocket` with `Connection: upgrade`).
pub fn route(method: &str, path: &str, websocket_upgrade: bool) -> Route {
    if path == "/auth" || path.starts_with("/auth/") {
        return Route::Any(Pool::Auth);
    }
    if path.starts_with("/docs/") {
        return Route::Any(Pool::Docs);
    }
    if let Some(rest) = path.strip_prefix("/collab/") {
        let Ok(doc) = DocId::parse(rest) else {
            return Route::Reject {
                status: 400,
                reason: "a collab path is /collab/<tenant>/<doc>, [a-z0-9-]{1,64} each",
            };
        };
        if method != "GET" || !websocket_upgrade {
            return Route::Reject { status: 400, reason: "collab needs a WebSocket upgrade" };
        }
        return Route::Collab { doc };
    }
    Route::Reject { status: 404, reason: "no such route" }
}

/// Whether a request that may already have reached an instance (its connection failed after the
/// request was written, before any response byte came back) may be sent to another: only for
/// idempotent methods (RFC 9110 §9.2.2), as HAProxy's `retry-on` does by default. A request whose
/// connection was never established reached no one and may always go elsewhere.
pub fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc_update::MAX_NAME_LEN;

    #[test]
    fn paths_go_to_their_pools() {
        let reject = |status| move |r: Route| matches!(r, Route::Reject { status: s, .. } if s == status);
        let cases: &[(&str, &str, bool, Route)] = &[
            ("POST", "/auth/login", false, Route::Any(Pool::Auth)),
            ("GET", "/auth/keys", false, Route::Any(Pool::Auth)),
            ("GET", "/auth", false, Route::Any(Pool::Auth)),
            ("GET", "/docs/acme/plan/state", false, Route::Any(Pool::Docs)),
            ("GET", "/collab/acme/plan", true, Route::Collab { doc: DocId::new("acme", "plan").unwrap() }),
            ("GET", "/collab/a-1/b-2", true, Route::Collab { doc: DocId::new("a-1", "b-2").unwrap() }),
        ];
        for (method, path, upgrade, want) in cases {
            assert_eq!(route(method, path, *upgrade), *want, "{method} {path}");
        }
        let rejected: &[(&str, &str, bool, u16)] = &[
            ("GET", "/authx", false, 404),
            ("GET", "/docs", false, 404),
            ("GET", "/", false, 404),
            ("GET", "/collab/acme/plan", false, 400),
            ("POST", "/collab/acme/plan", true, 400),
            ("GET", "/collab/acme", true, 400),
            ("GET", "/collab/acme/plan/x", true, 400),
            ("GET", "/collab/Acme/plan", true, 400),
            ("GET", "/collab/acme/", true, 400),
            ("GET", "/collab//plan", true, 400),
            ("GET", "/collab/acme/pl%2Fan", true, 400),
            ("GET", "/collab/acme/../x", true, 400),
        ];
        for (method, path, upgrade, status) in rejected {
            assert!(reject(*status)(route(method, path, *upgrade)), "{method} {path}");
        }
        let long = format!("/collab/{}/doc", "a".repeat(MAX_NAME_LEN + 1));
        assert!(reject(400)(route("GET", &long, true)));
        let longest = format!("/collab/{}/doc", "a".repeat(MAX_NAME_LEN));
        assert!(matches!(route("GET", &longest, true), Route::Collab { .. }));
    }

    #[test]
    fn only_idempotent_methods_are_resent() {
        assert!(idempotent("GET") && idempotent("PUT") && idempotent("DELETE"));
        assert!(!idempotent("POST") && !idempotent("PATCH") && !idempotent("get"));
    }
}
