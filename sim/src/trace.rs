//! Structured trace events and the running trace hash.
//!
//! Everything that happens in a run and could differ between two runs of one seed goes through
//! here: faults, node starts, workload operations and their outcomes, protocol milestones. The hash
//! folds every event in order, so two runs agree on the hash only if they agree on every event,
//! its simulated time and its fields. FNV-1a is used because it is stable across Rust versions and
//! platforms, unlike std's `DefaultHasher`.

use serde::Serialize;
use serde_json::value::RawValue;
use std::io::Write;

/// One thing that happened at a simulated time on a node.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub t_ms: u64,
    pub node: String,
    pub kind: String,
    /// The event's own fields as the JSON text they serialized to, once: the trace line embeds
    /// it as it is and checkers decode their types straight from it. (A `serde_json::Value`
    /// tree here cost a run tens of MB and a deep copy for every reader.)
    pub fields: Box<RawValue>,
}

impl Event {
    pub fn new(t_ms: u64, node: &str, kind: &str, fields: &impl Serialize) -> Self {
        let fields = serde_json::value::to_raw_value(fields).expect("trace fields serialize");
        Event { t_ms, node: node.into(), kind: kind.into(), fields }
    }
}

/// The trace of one run: hash and count always, the events themselves when asked.
pub struct Trace {
    hash: u64,
    events: u64,
    sink: Option<Box<dyn Write + Send>>,
    keep: bool,
    kept: Vec<Event>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, folding `bytes` into `hash`.
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    pub fn new() -> Self {
        Trace { hash: FNV_OFFSET, events: 0, sink: None, keep: false, kept: Vec::new() }
    }

    /// Also write each event as one JSON line to `sink`.
    pub fn with_sink(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Also keep each event in memory (for checkers and reports that read the trace back).
    pub fn keeping_events(mut self) -> Self {
        self.keep = true;
        self
    }

    pub fn record(&mut self, event: &Event) {
        let line = serde_json::to_string(event).expect("trace events serialize");
        self.hash = fnv1a(self.hash, line.as_bytes());
        self.hash = fnv1a(self.hash, b"\n");
        self.events += 1;
        if let Some(sink) = self.sink.as_mut() {
            // A trace file that cannot be written is reported once at the end by the caller's
            // flush; losing the file must not change the run itself.
            let _ = writeln!(sink, "{line}");
        }
        if self.keep {
            self.kept.push(event.clone());
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The hash as the 16-hex-digit string printed in results.
    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn kept(&self) -> &[Event] {
        &self.kept
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.sink.as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(t: u64, kind: &str) -> Event {
        Event::new(t, "n", kind, &json!({"x": 1}))
    }

    #[test]
    fn same_events_same_hash_and_any_difference_changes_it() {
        let mut a = Trace::new();
        let mut b = Trace::new();
        let mut c = Trace::new();
        for t in 0..10 {
            a.record(&ev(t, "k"));
            b.record(&ev(t, "k"));
            c.record(&ev(if t == 5 { 6 } else { t }, "k"));
        }
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.events(), 10);
    }
}
