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
use sim::net::Net;
use sim::NodeCtx;

use crate::rpc::{self, Answer, ChannelOptions, Encoding, Listen};

pub const OBJSTORE_PORT: u16 = 9000;
pub const MAX_KEY_LEN: usize = 200;
const FILE_PREFIX: &str = "obj.";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Requests and responses travel as postcard frames: objects are WAL segments and base
/// backups, bytes that JSON would inflate into number lists.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ObjRequest {
    Put { key: String, body: Vec<u8> },
    Get { key: String },
    List { prefix: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ObjResponse {
    Stored,
    Found { body: Vec<u8> },
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

/// Runs the object store on this node. A connection idle for 10 s is closed.
pub async fn run(ctx: NodeCtx) {
    let listen = Listen::new(OBJSTORE_PORT, Encoding::Postcard).idle_timeout_ms(10_000);
    let disk = ctx.disk.clone();
    let err = rpc::serve(ctx.net.clone(), listen, move |req: ObjRequest| {
        let disk = disk.clone();
        async move { Answer::Reply(handle(&disk, req).await) }
    })
    .await;
    ctx.trace("objstore.listen_failed", json!({ "port": OBJSTORE_PORT, "error": err.to_string() }));
}

async fn handle(disk: &Disk, req: ObjRequest) -> ObjResponse {
    let failed = |e: io::Error| ObjResponse::Failed { reason: e.to_string() };
    match req {
        ObjRequest::Put { key, body } => put(disk, &key, &body).await.map_or_else(failed, |()| ObjResponse::Stored),
        ObjRequest::Get { key } => match get(disk, &key) {
            Ok(Some(body)) => ObjResponse::Found { body },
            Ok(None) => ObjResponse::Missing,
            Err(e) => failed(e),
        },
        ObjRequest::List { prefix } => list(disk, &prefix).map_or_else(failed, |keys| ObjResponse::Keys { keys }),
    }
}

fn bad_key(key: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("invalid key {key:?}"))
}

async fn put(disk: &Disk, key: &str, body: &[u8]) -> io::Result<()> {
    if !valid_key(key) {
        return Err(bad_key(key));
    }
    disk.replace_file(&format!("{FILE_PREFIX}{key}"), body).await
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

/// A client of one object-store node: a connection per request (puts and gets are rare and
/// large; a backup tool opens one per object too), each within [`REQUEST_TIMEOUT`] to connect
/// and twice that in all.
#[derive(Clone)]
pub struct ObjClient {
    net: Net,
    node: String,
}

impl ObjClient {
    pub fn new(net: Net, node: &str) -> Self {
        ObjClient { net, node: node.into() }
    }

    async fn call(&self, req: &ObjRequest) -> io::Result<ObjResponse> {
        let mut options = ChannelOptions::new(OBJSTORE_PORT, Encoding::Postcard);
        options.connect_timeout_ms = REQUEST_TIMEOUT.as_millis() as u64;
        options.write_timeout_ms = REQUEST_TIMEOUT.as_millis() as u64;
        Ok(rpc::call_once(&self.net, &self.node, &options, req, REQUEST_TIMEOUT * 2).await?)
    }

    /// Stores `body` under `key`; Ok once durable.
    pub async fn put(&self, key: &str, body: &[u8]) -> io::Result<()> {
        if !valid_key(key) {
            return Err(bad_key(key));
        }
        match self.call(&ObjRequest::Put { key: key.into(), body: body.to_vec() }).await? {
            ObjResponse::Stored => Ok(()),
            other => Err(io::Error::other(format!("put {key}: {other:?}"))),
        }
    }

    pub async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match self.call(&ObjRequest::Get { key: key.into() }).await? {
            ObjResponse::Found { body } => Ok(Some(body)),
            ObjResponse::Missing => Ok(None),
            other => Err(io::Error::other(format!("get {key}: {other:?}"))),
        }
    }

    /// Keys starting with `prefix`, in order.
    pub async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        match self.call(&ObjRequest::List { prefix: prefix.into() }).await? {
            ObjResponse::Keys { keys } => Ok(keys),
            other => Err(io::Error::other(format!("list {prefix}: {other:?}"))),
        }
    }
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
