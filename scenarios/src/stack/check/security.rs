//! Security, judged from what the attackers saw and what survived:
//! - no attack was accepted (a bad token opened a session or passed an admin call, a
//!   malformed frame was taken as a write);
//! - no attacker byte (the [`ATTACK_MARK`] character, which no editor types) is in any copy of
//!   any document, live or recovered;
//! - writes a revoked user sent later than `revocation_bound_ms` after the revocation took
//!   effect are absent from the recovered document (its state vector stops before them);
//! - a malformed frame closes its own connection, and, away from faults, no editor of that
//!   document was dropped at that moment.

use std::collections::BTreeMap;

use sim::Outcome;
use system::collab::observe::{SessionAdmitted, SessionClosed};

use crate::scenario::{Checker, Verdict};
use crate::stack::observe::{Attack, Dropped, EditorFinal, MalformedSent, Revoked, RevokedWrite, Verified};

/// The character attackers put in everything they try to write.
pub const ATTACK_MARK: char = '\u{2620}';

/// Why the collaboration service closes a session for a cause of the session's own.
const OWN_CAUSE_CLOSES: &[&str] = &["expired", "revoked"];

/// Whether `editor`'s session on `doc` open at `t_ms` (its latest admitted) was closed by the
/// server for a cause of its own.
fn own_cause_close(
    admitted: &[sim::observation::Seen<'_, SessionAdmitted>],
    closed: &BTreeMap<(&str, u64), String>,
    editor: &str,
    doc: &str,
    t_ms: u64,
) -> bool {
    let latest = admitted.iter().rev().find(|a| a.value.user == editor && a.value.doc == doc && a.t_ms <= t_ms);
    latest.and_then(|a| closed.get(&(a.node, a.value.session))).is_some_and(|r| OWN_CAUSE_CLOSES.contains(&r.as_str()))
}

pub struct SecurityChecker {
    pub revocation_bound_ms: u64,
    /// A drop this close to a malformed frame, with no fault within `quiet_ms`, is collateral.
    pub collateral_window_ms: u64,
    pub quiet_ms: u64,
}

impl Checker for SecurityChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let mut bad = Vec::new();
        let mut marked = Vec::new();
        let mut revoked_late = Vec::new();
        let mut collateral = Vec::new();
        outcome.observations(|o| {
            let mut attacks = 0;
            let revoked_at: Vec<u64> = o.of::<Revoked>().map(|r| r.t_ms).collect();
            for a in o.of::<Attack>() {
                attacks += 1;
                // A revoked user's reconnect is refused only once the revocation's bound passed.
                let due = a.value.attack != "revoked" || revoked_at.iter().any(|r| r + self.revocation_bound_ms < a.t_ms);
                if a.value.accepted && due {
                    bad.push(format!("{} at {} ms by {}: {}", a.value.attack, a.t_ms, a.node, a.value.detail));
                }
            }
            verdict.metric("attacks", attacks as f64);
            for f in o.of::<EditorFinal>() {
                let room = f.value.room.iter().map(|r| &r.text);
                if std::iter::once(&f.value.state.text).chain(room).any(|t| t.contains(ATTACK_MARK)) {
                    marked.push(format!("{}: the copy of {} holds attacker bytes", f.value.doc, f.node));
                }
            }
            let verified: Vec<_> = o.of::<Verified>().collect();
            for v in &verified {
                for read in [&v.value.front_door, &v.value.mongo].into_iter().flatten() {
                    if read.text.contains(ATTACK_MARK) {
                        marked.push(format!("{}: the recovered document holds attacker bytes", v.value.doc));
                    }
                }
            }
            for r in o.of::<Revoked>() {
                let deadline = r.t_ms + self.revocation_bound_ms;
                let first_late = o.of::<RevokedWrite>().filter(|w| w.value.doc == r.value.doc && w.t_ms > deadline).map(|w| w.value.range).min_by_key(|x| x.start);
                let Some(late) = first_late else { continue };
                for v in verified.iter().filter(|v| v.value.doc == r.value.doc) {
                    for read in [&v.value.front_door, &v.value.mongo].into_iter().flatten() {
                        let have = read.sv.get(&late.client).copied().unwrap_or(0);
                        if have > late.start {
                            revoked_late.push(format!(
                                "{}: {} revoked at {} ms, yet its write of clocks {}..{} sent after {deadline} ms is stored (state vector {have})",
                                r.value.doc, r.value.user, r.t_ms, late.start, late.end
                            ));
                        }
                    }
                }
            }
            let faults: Vec<u64> = o.faults().map(|f| f.t_ms).collect();
            let admitted: Vec<_> = o.of::<SessionAdmitted>().collect();
            let closed: BTreeMap<(&str, u64), String> =
                o.of::<SessionClosed>().map(|c| ((c.node, c.value.session), c.value.reason)).collect();
            for m in o.of::<MalformedSent>() {
                if !m.value.closed {
                    bad.push(format!("malformed frame at {} ms on {}: the connection stayed open", m.t_ms, m.value.doc));
                }
                if faults.iter().any(|f| f.abs_diff(m.t_ms) < self.quiet_ms) {
                    continue;
                }
                for d in o.of::<Dropped>() {
                    // A session the server closed for its own token's expiry or its user's
                    // revocation is not collateral, however close to the attacker's frame (the
                    // editor may see the close frame, or only a reset while it was sending).
                    let own_cause = own_cause_close(&admitted, &closed, d.node, &d.value.doc, d.t_ms);
                    let near = d.t_ms >= m.t_ms && d.t_ms <= m.t_ms + self.collateral_window_ms;
                    if d.value.doc == m.value.doc && near && !own_cause {
                        collateral.push(format!("{} dropped at {} ms, {} ms after a malformed frame on {}", d.node, d.t_ms, d.t_ms - m.t_ms, d.value.doc));
                    }
                }
            }
        });
        verdict.violations_upto("attack accepted", bad, 10);
        verdict.violations_upto("attacker byte", marked, 10);
        verdict.violations_upto("write after revocation", revoked_late, 10);
        verdict.violations_upto("collateral close", collateral, 10);
    }
}
