//! One edit on its way to durability: the record the collaboration service produces to the log
//! and the log consumers persist into the document store.
//!
//! An operation's id is a hash of its document and its bytes, so the same update produced twice
//! (a producer retry after a lost acknowledgement, or an editor resending it after a reconnect)
//! is the same operation, and the store keeps it once. Records come off the log and are
//! validated before use: a record that does not decode, names a malformed document or carries an
//! oversized update is refused, never applied.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::docs::vector::{hex, unhex};

/// A document as the services hold one (the collaboration room, the document service's
/// rebuild): offsets in UTF-16 units, as Yjs counts clocks. With yrs's default (bytes), a delete
/// range that splits a surrogate pair underflows the text's length, which panics in a debug
/// build and wraps in a release one (found by the y-sync fuzz target).
pub fn server_doc(client_id: u64) -> yrs::Doc {
    let mut options = yrs::Options::with_client_id(yrs::ClientID::new(client_id));
    options.offset_kind = yrs::OffsetKind::Utf16;
    yrs::Doc::with_options(options)
}

/// The log topic of document updates, keyed by document id.
pub const TOPIC: &str = "doc-updates";
/// The largest update accepted into the log (a paste of a long text fits; a flood does not).
pub const MAX_UPDATE_BYTES: usize = 1024 * 1024;
/// Longest tenant or document name.
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocUpdateError {
    #[error("document id {0:?} is not `tenant/name` of [a-z0-9-]{{1,64}} each")]
    BadDocId(String),
    #[error("record does not decode: {0}")]
    Undecodable(String),
    #[error("update of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("operation id does not match the record's content")]
    WrongOpId,
}

/// A document's id: `tenant/name`, each part `[a-z0-9-]{1,64}`, so it is safe in a URL path, a
/// log key and a store key alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId {
    tenant: String,
    name: String,
}

impl DocId {
    pub fn parse(s: &str) -> Result<DocId, DocUpdateError> {
        let bad = || DocUpdateError::BadDocId(s.chars().take(2 * MAX_NAME_LEN + 1).collect());
        let (tenant, name) = s.split_once('/').ok_or_else(bad)?;
        if !valid_part(tenant) || !valid_part(name) {
            return Err(bad());
        }
        Ok(DocId { tenant: tenant.into(), name: name.into() })
    }

    pub fn new(tenant: &str, name: &str) -> Result<DocId, DocUpdateError> {
        DocId::parse(&format!("{tenant}/{name}"))
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Whether `s` is a valid tenant, user or document name part.
pub fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.name)
    }
}

impl TryFrom<String> for DocId {
    type Error = DocUpdateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DocId::parse(&s)
    }
}

impl From<DocId> for String {
    fn from(d: DocId) -> String {
        d.to_string()
    }
}

/// One update to one document, as it travels through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocUpdate {
    pub doc: DocId,
    /// Hex of the first 16 bytes of SHA-256 over the document id and the update.
    pub op_id: String,
    /// A yrs update, v1 encoding.
    pub update: Vec<u8>,
}

impl DocUpdate {
    pub fn new(doc: DocId, update: Vec<u8>) -> DocUpdate {
        let op_id = op_id(&doc, &update);
        DocUpdate { doc, op_id, update }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serializing plain data cannot fail")
    }

    /// The log record's value: the model's log values are strings, so the encoding in
    /// lower-case hex.
    pub fn to_record(&self) -> String {
        hex(&self.encode())
    }

    /// Decodes and validates a log record's value (see [`DocUpdate::to_record`]).
    pub fn from_record(value: &str) -> Result<DocUpdate, DocUpdateError> {
        if !value.len().is_multiple_of(2) || value.len() > 2 * (MAX_UPDATE_BYTES + 1024) {
            return Err(DocUpdateError::Undecodable("record value is not hex of a bounded size".into()));
        }
        let bytes = unhex(value).ok_or_else(|| DocUpdateError::Undecodable("record value is not hex".into()))?;
        DocUpdate::decode(&bytes)
    }

    /// Decodes and validates a record from the log.
    pub fn decode(bytes: &[u8]) -> Result<DocUpdate, DocUpdateError> {
        if bytes.len() > MAX_UPDATE_BYTES + 1024 {
            return Err(DocUpdateError::TooLarge(bytes.len()));
        }
        let record: DocUpdate = postcard::from_bytes(bytes).map_err(|e| DocUpdateError::Undecodable(e.to_string()))?;
        if record.update.len() > MAX_UPDATE_BYTES {
            return Err(DocUpdateError::TooLarge(record.update.len()));
        }
        if record.op_id != op_id(&record.doc, &record.update) {
            return Err(DocUpdateError::WrongOpId);
        }
        Ok(record)
    }
}

fn op_id(doc: &DocId, update: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(doc.to_string().as_bytes());
    h.update([0u8]);
    h.update(update);
    hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_are_validated() {
        let d = DocId::parse("acme/notes-1").unwrap();
        assert_eq!((d.tenant(), d.name()), ("acme", "notes-1"));
        assert_eq!(d.to_string(), "acme/notes-1");
        for bad in ["", "acme", "/x", "x/", "a/b/c", "A/b", "a/b c", "a/../b", &format!("a/{}", "x".repeat(65))] {
            assert!(DocId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_same_update_is_the_same_operation() {
        let d = DocId::parse("t/d").unwrap();
        let a = DocUpdate::new(d.clone(), vec![1, 2, 3]);
        assert_eq!(a, DocUpdate::new(d.clone(), vec![1, 2, 3]));
        assert_ne!(a.op_id, DocUpdate::new(d, vec![1, 2, 4]).op_id);
        assert_ne!(a.op_id, DocUpdate::new(DocId::parse("t/e").unwrap(), vec![1, 2, 3]).op_id);
        assert_eq!(DocUpdate::decode(&a.encode()).unwrap(), a);
        assert_eq!(DocUpdate::from_record(&a.to_record()).unwrap(), a);
        let not_hex = Err(DocUpdateError::Undecodable("record value is not hex".into()));
        assert_eq!(DocUpdate::from_record("zz"), not_hex);
        assert_eq!(DocUpdate::from_record("+f"), not_hex, "a sign is no hex digit");
        let unbounded = Err(DocUpdateError::Undecodable("record value is not hex of a bounded size".into()));
        assert_eq!(DocUpdate::from_record("abc"), unbounded);
        assert_eq!(DocUpdate::from_record(&"00".repeat(MAX_UPDATE_BYTES + 1025)), unbounded);
        assert_eq!(a.op_id.len(), 32);
    }

    #[test]
    fn bad_records_are_refused() {
        let mut a = DocUpdate::new(DocId::parse("t/d").unwrap(), vec![1, 2, 3]);
        assert!(matches!(DocUpdate::decode(&[0xff, 0xff]), Err(DocUpdateError::Undecodable(_))));
        a.update.push(9);
        assert_eq!(DocUpdate::decode(&a.encode()), Err(DocUpdateError::WrongOpId));
        let mut bytes = postcard::to_allocvec(&("x", "y", vec![1u8])).unwrap();
        bytes.truncate(3);
        assert!(DocUpdate::decode(&bytes).is_err());
    }
}
