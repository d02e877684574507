//! A stored document: its JSON text, shared, and parsed only when something reads its fields.
//!
//! MongoDB keeps a document as BSON bytes from the wire through the oplog and the storage
//! engine, and only a query that looks inside one decodes its fields. A [`Document`] does the
//! same with JSON text: a write is serialized once by the client, and the primary, its oplog
//! file, every secondary's fetch and every reply carry those bytes as they are (the binary
//! encodings, [`crate::wire::Encoding::Postcard`], write them as one string). A member
//! rebuilding its store from the oplog at a restart keeps the text of every version and parses
//! none of them; most are never read again.
//!
//! Untrusted input is validated where it enters: deserializing checks that the text is one
//! well-formed JSON value, so [`Document::value`] never meets bad text. Human-readable formats
//! (JSON traces, rollback files) see the document itself, not a string holding it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Clone)]
pub struct Document(Arc<Inner>);

struct Inner {
    text: Box<str>,
    value: OnceLock<Value>,
}

impl Document {
    /// The document `value`, serialized once here.
    pub fn new(value: Value) -> Self {
        let text = value.to_string().into_boxed_str();
        Document(Arc::new(Inner { text, value: OnceLock::from(value) }))
    }

    /// A document from its JSON text, which must be one well-formed JSON value.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<IgnoredAny>(text)?;
        Ok(Document(Arc::new(Inner { text: text.into(), value: OnceLock::new() })))
    }

    /// The document, parsed on the first call.
    pub fn value(&self) -> &Value {
        self.0.value.get_or_init(|| serde_json::from_str(&self.0.text).expect("a document's text was validated"))
    }

    /// The JSON text, as written.
    pub fn text(&self) -> &str {
        &self.0.text
    }

    /// Field `key` of an object document.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value().get(key)
    }
}

impl From<Value> for Document {
    fn from(value: Value) -> Self {
        Document::new(value)
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.text() == other.text() || self.value() == other.value()
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.value().serialize(s)
        } else {
            s.serialize_str(self.text())
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Value::deserialize(d).map(Document::new)
        } else {
            d.deserialize_str(TextVisitor)
        }
    }
}

/// Takes the text borrowed or owned, whichever the format has.
struct TextVisitor;

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a document's JSON text")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Document, E> {
        Document::parse(text).map_err(|e| E::custom(format!("document is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binary_encodings_carry_the_text_and_json_carries_the_document() {
        let doc = Document::new(json!({"doc": "d1", "update": "00ff", "n": 3}));
        let bytes = postcard::to_stdvec(&doc).unwrap();
        let back: Document = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.text(), doc.text());
        assert_eq!(back.get("n"), Some(&json!(3)));
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(json, doc.text(), "JSON sees the document, not a string holding it");
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
    }

    #[test]
    fn text_that_is_not_one_json_value_is_refused() {
        for bad in ["", "{", "{\"a\":1} trailing", "nul", "\"unterminated"] {
            assert!(Document::parse(bad).is_err(), "{bad:?}");
            let bytes = postcard::to_stdvec(bad).unwrap();
            assert!(postcard::from_bytes::<Document>(&bytes).is_err(), "{bad:?}");
        }
        assert_eq!(Document::parse(" [1, 2] ").unwrap().value(), &json!([1, 2]));
    }
}
