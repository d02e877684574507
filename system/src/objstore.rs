//! An S3-like object store node: whole objects put, got and listed by key, durable once a put is
//! acknowledged (written to a temporary file, fsynced, renamed into place).
//!
//! Models: read-after-write consistency for a single node (S3 is strongly consistent since
//! 2020), durability on acknowledgement, listing by prefix in key order. Leaves out: buckets,
//! multipart uploads, versioning, metadata, replication inside the store (one node stands for
//! the service; lose its region and the backups are gone, as with a single-region bucket).
//!
//! Keys are flat (`[a-z0-9._-]`, no `..`), so each maps to one file of the disk seam.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::disk::Disk;
use sim::net::{Conn, Net};
use sim::NodeCtx;

use crate::wire;

pub const OBJSTORE_PORT: u16 = 9000;
pub const MAX_KEY_LEN: usize = 200;
const FILE_PREFIX: &str = "obj.";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ObjRequest {
    /// Followed by one raw frame holding the object.
    Put { key: String },
    Get { key: String },
    List { prefix: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ObjResponse {
    Stored,
    /// Followed by one raw frame holding the object.
    Found,
    Missing,
    Keys { keys: Vec<String> },
    Failed { reason: String },
}

/// Whether `key` is acceptable (flat, short, no path tricks, no temp-file suffix).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && !key.contains("..")
        && !key.ends_with(".tmp")
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Runs the object store on this node.
pub async fn run(ctx: NodeCtx) {
    let Ok(listener) = ctx.net.bind(OBJSTORE_PORT).await else {
        ctx.trace("objstore.bind_failed", json!({ "port": OBJSTORE_PORT }));
        return;
    };
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(session(ctx.disk.clone(), conn));
    }
}

async fn session(disk: Disk, mut conn: Conn) {
    while let Ok(Ok(req)) = tokio::time::timeout(Duration::from_secs(10), wire::recv::<_, ObjRequest>(&mut conn)).await {
        let ok = match req {
            ObjRequest::Put { key } => {
                let Ok(Ok(body)) = tokio::time::timeout(REQUEST_TIMEOUT, wire::read_frame(&mut conn)).await else { return };
                let resp = match put(&disk, &key, &body).await {
                    Ok(()) => ObjResponse::Stored,
                    Err(e) => ObjResponse::Failed { reason: e.to_string() },
                };
                wire::send(&mut conn, &resp).await.is_ok()
            }
            ObjRequest::Get { key } => match get(&disk, &key) {
                Ok(Some(body)) => wire::send(&mut conn, &ObjResponse::Found).await.is_ok() && wire::write_frame(&mut conn, &body).await.is_ok(),
                Ok(None) => wire::send(&mut conn, &ObjResponse::Missing).await.is_ok(),
                Err(e) => wire::send(&mut conn, &ObjResponse::Failed { reason: e.to_string() }).await.is_ok(),
            },
            ObjRequest::List { prefix } => {
                let resp = match list(&disk, &prefix) {
                    Ok(keys) => ObjResponse::Keys { keys },
                    Err(e) => ObjResponse::Failed { reason: e.to_string() },
                };
                wire::send(&mut conn, &resp).await.is_ok()
            }
        };
        if !ok {
            return;
        }
    }
}

fn bad_key(key: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("invalid key {key:?}"))
}

async fn put(disk: &Disk, key: &str, body: &[u8]) -> io::Result<()> {
    if !valid_key(key) {
        return Err(bad_key(key));
    }
    crate::consensus::replace_file(disk, &format!("{FILE_PREFIX}{key}"), body).await
}

fn get(disk: &Disk, key: &str) -> io::Result<Option<Vec<u8>>> {
    if !valid_key(key) {
        return Err(bad_key(key));
    }
    match disk.read(&format!("{FILE_PREFIX}{key}")) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn list(disk: &Disk, prefix: &str) -> io::Result<Vec<String>> {
    let full = format!("{FILE_PREFIX}{prefix}");
    Ok(disk
        .list()?
        .into_iter()
        .filter(|f| f.starts_with(&full) && !f.ends_with(".tmp"))
        .map(|f| f[FILE_PREFIX.len()..].to_string())
        .collect())
}

/// A client of one object-store node.
#[derive(Clone)]
pub struct ObjClient {
    net: Net,
    node: String,
}

impl ObjClient {
    pub fn new(net: Net, node: &str) -> Self {
        ObjClient { net, node: node.into() }
    }

    async fn connect(&self) -> io::Result<Conn> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.net.connect(&self.node, OBJSTORE_PORT))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Stores `body` under `key`; Ok once durable.
    pub async fn put(&self, key: &str, body: &[u8]) -> io::Result<()> {
        if !valid_key(key) {
            return Err(bad_key(key));
        }
        let exchange = async {
            let mut conn = self.connect().await?;
            wire::send(&mut conn, &ObjRequest::Put { key: key.into() }).await?;
            wire::write_frame(&mut conn, body).await?;
            match wire::recv(&mut conn).await? {
                ObjResponse::Stored => Ok(()),
                other => Err(io::Error::other(format!("put {key}: {other:?}"))),
            }
        };
        timed(exchange).await
    }

    pub async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let exchange = async {
            let mut conn = self.connect().await?;
            wire::send(&mut conn, &ObjRequest::Get { key: key.into() }).await?;
            match wire::recv(&mut conn).await? {
                ObjResponse::Found => Ok(Some(wire::read_frame(&mut conn).await?)),
                ObjResponse::Missing => Ok(None),
                other => Err(io::Error::other(format!("get {key}: {other:?}"))),
            }
        };
        timed(exchange).await
    }

    /// Keys starting with `prefix`, in order.
    pub async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let exchange = async {
            let mut conn = self.connect().await?;
            wire::send(&mut conn, &ObjRequest::List { prefix: prefix.into() }).await?;
            match wire::recv(&mut conn).await? {
                ObjResponse::Keys { keys } => Ok(keys),
                other => Err(io::Error::other(format!("list {prefix}: {other:?}"))),
            }
        };
        timed(exchange).await
    }
}

async fn timed<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(REQUEST_TIMEOUT * 2, f).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_flat_and_safe() {
        assert!(valid_key("wal.0000000002.000000000010.000000000020"));
        for bad in ["", "a..b", "A", "a/b", "x.tmp", &"k".repeat(MAX_KEY_LEN + 1)] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
