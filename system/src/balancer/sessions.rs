//! The live WebSocket sessions a balancer carries, sans-IO: which document each serves and
//! through which collaboration instance, so that when the healthy set changes the balancer
//! knows which sessions now sit on an instance that no longer owns their document.
//!
//! One instance owns a document's live state. When the owner leaves rotation, its documents'
//! owners change (rendezvous hashing moves exactly those), and when an instance returns, the
//! documents it scores highest on move back to it. Either way a session left on the old owner
//! would keep a second live copy of the room, which the new owner's editors never see until a
//! reload: the balancer closes such sessions, and their editors reconnect, reach the new owner
//! and resync (y-sync step 1/2). `H` is whatever the shell needs to close a session.

use std::collections::BTreeMap;

use super::rendezvous;

/// A session's id, unique within one balancer's life.
pub type SessionId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session<H> {
    pub doc: String,
    pub instance: String,
    pub opened_ms: u64,
    pub handle: H,
}

#[derive(Debug)]
pub struct Sessions<H> {
    next: SessionId,
    live: BTreeMap<SessionId, Session<H>>,
}

impl<H> Default for Sessions<H> {
    fn default() -> Self {
        Sessions { next: 0, live: BTreeMap::new() }
    }
}

impl<H> Sessions<H> {
    /// Records a session routed to `instance`.
    pub fn open(&mut self, doc: &str, instance: &str, opened_ms: u64, handle: H) -> SessionId {
        let id = self.next;
        self.next += 1;
        self.live.insert(id, Session { doc: doc.into(), instance: instance.into(), opened_ms, handle });
        id
    }

    /// Forgets a session (it ended, or is being closed); its record if it was live.
    pub fn close(&mut self, id: SessionId) -> Option<Session<H>> {
        self.live.remove(&id)
    }

    /// The sessions on an instance that is not their document's owner among `healthy`, in id
    /// order. With no healthy instance at all every session is misplaced: its instance left.
    pub fn misplaced(&self, healthy: &[&str]) -> Vec<SessionId> {
        self.live
            .iter()
            .filter(|(_, s)| rendezvous::owner(&s.doc, healthy.iter().copied()) != Some(s.instance.as_str()))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Session<H>)> {
        self.live.iter().map(|(id, s)| (*id, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_of_a_removed_owner_and_of_documents_moving_back_are_misplaced() {
        let all = ["collab-1", "collab-2", "collab-3"];
        let docs: Vec<String> = (0..60).map(|i| format!("t/doc-{i}")).collect();
        let mut sessions = Sessions::default();
        for d in &docs {
            let owner = rendezvous::owner(d, all).unwrap();
            sessions.open(d, owner, 0, ());
            sessions.open(d, owner, 0, ());
        }
        assert!(sessions.misplaced(&all).is_empty(), "every session starts on its owner");
        // collab-2 leaves: exactly its sessions are misplaced.
        let without = ["collab-1", "collab-3"];
        let gone: Vec<SessionId> = sessions.iter().filter(|(_, s)| s.instance == "collab-2").map(|(i, _)| i).collect();
        assert!(!gone.is_empty());
        assert_eq!(sessions.misplaced(&without), gone);
        for id in gone {
            let s = sessions.close(id).unwrap();
            // Its editor reconnects and reaches the new owner.
            let owner = rendezvous::owner(&s.doc, without).unwrap();
            sessions.open(&s.doc, owner, 1, ());
        }
        assert!(sessions.misplaced(&without).is_empty());
        // collab-2 returns: the documents it owned move back, and only those.
        let back = sessions.misplaced(&all);
        assert!(!back.is_empty());
        for id in &back {
            let doc = &sessions.iter().find(|(i, _)| i == id).unwrap().1.doc;
            assert_eq!(rendezvous::owner(doc, all), Some("collab-2"));
        }
        assert_eq!(sessions.misplaced(&[]).len(), sessions.len(), "no healthy instance: all misplaced");
        assert_eq!(sessions.len(), 120);
    }
}
