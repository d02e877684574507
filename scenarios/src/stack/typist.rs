//! What an editor types next, sans-IO: a share of the paper trace, one agent of the concurrent
//! trace, seeded synthetic edits, or nothing (a watcher). The shell asks for the next burst at
//! human intervals ([`Pace`]); a burst is one `yrs` transaction (one update frame), as an editor
//! that sends on a short debounce does.

use std::sync::Arc;

use rand::Rng;

use super::editor_core::{lacks, EditorCore};
use super::trace::{self, Chunk, ConcurrentReplay};

/// How fast a person types: a burst of `1..=burst_max` keystrokes every `gap_ms.0..=gap_ms.1`.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub burst_max: usize,
    pub gap_ms: (u64, u64),
}

impl Pace {
    pub fn human() -> Self {
        Pace { burst_max: 6, gap_ms: (300, 1_200) }
    }

    pub fn gap(&self, rng: &mut impl Rng) -> u64 {
        rng.gen_range(self.gap_ms.0..=self.gap_ms.1)
    }
}

#[derive(Clone, Debug)]
pub enum Script {
    Watch,
    Synthetic,
    /// A share of the paper trace, typed once the copy holds exactly `starts_from`.
    Paper {
        chunk: Chunk,
        starts_from: Arc<String>,
    },
    /// One agent of the concurrent replay.
    Friends {
        replay: Arc<ConcurrentReplay>,
        agent: usize,
    },
}

impl Script {
    /// As recorded in [`super::observe::EditorFinal::script`].
    pub fn label(&self) -> String {
        match self {
            Script::Watch => "watch".into(),
            Script::Synthetic => "synthetic".into(),
            Script::Paper { chunk, .. } => format!("paper:{}..{}", chunk.from, chunk.to),
            Script::Friends { agent, .. } => format!("friends:{agent}"),
        }
    }
}

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Burst {
    /// Patches `(pos, del, ins)` on the current text, in order, as one transaction.
    Patches(Vec<(u32, u32, String)>),
    /// Precomputed updates of this editor, in order.
    Updates(Vec<Vec<u8>>),
    /// Not ready (waiting to see what the next edit builds on).
    Wait,
    Done,
}

pub struct Typist {
    script: Script,
    /// Units typed: trace transactions, or synthetic bursts.
    typed: u64,
    started: bool,
    /// Where a synthetic typist's next edit goes, unless it jumps (UTF-16 units).
    cursor: u32,
}

const WORDS: &[&str] =
    &["the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog ", "and ", "a ", "b", "c", "\n"];

impl Typist {
    pub fn new(script: Script) -> Self {
        Typist { script, typed: 0, started: false, cursor: 0 }
    }

    pub fn typed(&self) -> u64 {
        self.typed
    }

    pub fn label(&self) -> String {
        self.script.label()
    }

    pub fn is_done(&self) -> bool {
        match &self.script {
            Script::Watch => true,
            Script::Synthetic => false,
            Script::Paper { chunk, .. } => self.typed as usize >= chunk.to - chunk.from,
            Script::Friends { replay, agent } => self.typed as usize >= replay.steps_of(*agent).count(),
        }
    }

    /// The next burst for an editor whose copy is `core`.
    pub fn next(&mut self, core: &EditorCore, pace: &Pace, rng: &mut impl Rng) -> Burst {
        if self.is_done() {
            return Burst::Done;
        }
        let n = rng.gen_range(1..=pace.burst_max.max(1));
        match &self.script {
            Script::Watch => Burst::Done,
            Script::Synthetic => {
                self.typed += 1;
                Burst::Patches(vec![synthetic(&mut self.cursor, core.text_len(), rng)])
            }
            Script::Paper { chunk, starts_from } => {
                if !self.started {
                    // The length first: reading the whole text is a pass over it.
                    if core.text_len() as usize != starts_from.len() || core.text() != **starts_from {
                        return Burst::Wait;
                    }
                    self.started = true;
                }
                let from = chunk.from + self.typed as usize;
                let to = (from + n).min(chunk.to);
                self.typed += (to - from) as u64;
                Burst::Patches(trace::paper().txns[from..to].iter().flat_map(|t| t.patches.iter().cloned()).collect())
            }
            Script::Friends { replay, agent } => {
                let sv = core.sv();
                let ready: Vec<Vec<u8>> = replay
                    .steps_of(*agent)
                    .skip(self.typed as usize)
                    .take(n)
                    .take_while(|s| !lacks(&sv, &s.needs))
                    .map(|s| s.update.clone())
                    .collect();
                if ready.is_empty() {
                    return Burst::Wait;
                }
                self.typed += ready.len() as u64;
                Burst::Updates(ready)
            }
        }
    }
}

/// How often a synthetic typist moves elsewhere before an edit: one edit in this many.
const JUMP_ONE_IN: u32 = 8;

/// One synthetic edit of a text of `len` UTF-16 units, as a person makes them: a word typed at
/// the cursor, which then follows it, sometimes a few characters backspaced, and now and then a
/// jump to a random place first (a click). Any index is a position: the texts hold only Basic
/// Multilingual Plane characters (see [`super::ydoc::new_doc`]). Typing on at one place also
/// keeps the document's item list short, as real typing does (yrs merges a run of one client's
/// adjacent inserts into one item), where a word at a random place every time splits an item
/// on each edit and makes every later position lookup walk further.
fn synthetic(cursor: &mut u32, len: u32, rng: &mut impl Rng) -> (u32, u32, String) {
    let mut pos = (*cursor).min(len);
    if rng.gen_ratio(1, JUMP_ONE_IN) {
        pos = rng.gen_range(0..=len);
    }
    if len > 40 && rng.gen_ratio(1, 5) {
        let del = rng.gen_range(1..=5).min(pos);
        if del > 0 {
            *cursor = pos - del;
            return (pos - del, del, String::new());
        }
    }
    let word = WORDS[rng.gen_range(0..WORDS.len())];
    *cursor = pos + word.len() as u32;
    (pos, 0, word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn paper_share_waits_for_its_start_then_types_in_order() {
        let starts_from = Arc::new(trace::content_after(trace::paper(), 10));
        let mut t = Typist::new(Script::Paper { chunk: Chunk { from: 10, to: 20 }, starts_from: starts_from.clone() });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut core = EditorCore::new(4);
        assert_eq!(t.next(&core, &Pace::human(), &mut rng), Burst::Wait);
        core.type_patch(0, 0, &starts_from);
        while let Burst::Patches(ps) = t.next(&core, &Pace::human(), &mut rng) {
            for (pos, del, ins) in ps {
                core.type_patch(pos, del, &ins);
            }
        }
        assert!(t.is_done());
        assert_eq!(core.text(), trace::content_after(trace::paper(), 20));
    }

    #[test]
    fn friends_agent_waits_for_what_it_builds_on() {
        let replay = Arc::new(trace::replay_concurrent(trace::friends(), 400, &[31, 32]));
        let mut cores = [EditorCore::new(31), EditorCore::new(32)];
        let mut typists = [0, 1].map(|a| Typist::new(Script::Friends { replay: replay.clone(), agent: a }));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut waits = 0;
        // Each agent delivers its updates to the other only when the other asks (a slow link).
        let mut sent: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        while !(typists[0].is_done() && typists[1].is_done()) {
            for a in 0..2 {
                match typists[a].next(&cores[a], &Pace::human(), &mut rng) {
                    Burst::Updates(us) => {
                        for u in us {
                            cores[a].type_update(&u).unwrap();
                            sent[a].push(u);
                        }
                    }
                    Burst::Wait => {
                        waits += 1;
                        for u in sent[1 - a].drain(..) {
                            cores[a].type_update(&u).unwrap();
                        }
                    }
                    _ => {}
                }
            }
        }
        for a in 0..2 {
            for u in sent[1 - a].drain(..) {
                cores[a].type_update(&u).unwrap();
            }
        }
        assert!(waits > 0);
        assert_eq!(cores[0].text(), replay.text);
        assert_eq!(cores[1].text(), replay.text);
    }

    #[test]
    fn synthetic_edits_type_on_at_a_cursor_that_jumps_now_and_then_in_a_text_with_wide_characters() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut core = EditorCore::new(1);
        core.type_patch(0, 0, "\u{2620}\u{2620}abc\u{2620} and more text to make it long enough to delete from");
        let mut mirror: Vec<u16> = core.text().encode_utf16().collect();
        let (mut cursor, mut on_cursor, mut deletes) = (0, 0, 0);
        for _ in 0..500 {
            let before = cursor;
            let (pos, del, ins) = synthetic(&mut cursor, core.text_len(), &mut rng);
            on_cursor += u32::from(pos == before || pos + del == before);
            deletes += u32::from(del > 0);
            assert_eq!(cursor, if ins.is_empty() { pos } else { pos + ins.len() as u32 });
            core.type_patch(pos, del, &ins);
            mirror.splice(pos as usize..(pos + del) as usize, ins.encode_utf16());
            assert_eq!(core.text_len() as usize, mirror.len());
        }
        assert_eq!(core.text(), String::from_utf16(&mirror).unwrap());
        assert!((380..480).contains(&on_cursor), "most edits at the cursor, some jumps: {on_cursor}");
        assert!(deletes > 50, "{deletes}");
    }
}
