//! A queue bounded in bytes rather than in items: what a producer's `buffer.memory` or a
//! server's per-connection send buffer bounds. Updates and frames range from tens of bytes (a
//! keystroke) to a megabyte (a paste, a whole document's sync step 2), so a count bounds
//! neither memory nor bursts well: 1,600 keystrokes in flight must fit where one large frame
//! does.
//!
//! The sender refuses an item that would take the queue past its bound, except into an empty
//! queue (an item larger than the whole bound still goes, alone), so the bound never wedges a
//! queue. Taking an item out gives its bytes back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// A new queue of at most `capacity_bytes` (see the module doc for an oversized item).
pub fn byte_queue<T>(capacity_bytes: usize) -> (ByteSender<T>, ByteReceiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (ByteSender { tx, queued: queued.clone(), capacity_bytes }, ByteReceiver { rx, queued })
}

pub struct ByteSender<T> {
    tx: mpsc::UnboundedSender<(T, usize)>,
    queued: Arc<AtomicUsize>,
    capacity_bytes: usize,
}

impl<T> Clone for ByteSender<T> {
    fn clone(&self) -> Self {
        ByteSender { tx: self.tx.clone(), queued: self.queued.clone(), capacity_bytes: self.capacity_bytes }
    }
}

impl<T> ByteSender<T> {
    /// Queues `item`, counted as `len` bytes; gives it back when it does not fit or the
    /// receiver is gone.
    pub fn try_send(&self, item: T, len: usize) -> Result<(), T> {
        // Checked and counted in one step, so senders on other threads cannot both pass the
        // check and together go past the bound; counted before it is sent, so the receiver
        // never gives back bytes not yet counted.
        let fits = |queued: usize| (queued == 0 || queued + len <= self.capacity_bytes).then_some(queued + len);
        if self.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits).is_err() {
            return Err(item);
        }
        self.tx.send((item, len)).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            e.0 .0
        })
    }

    /// The receiver is gone: a refusal then means nobody listens, not a full queue.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

pub struct ByteReceiver<T> {
    rx: mpsc::UnboundedReceiver<(T, usize)>,
    queued: Arc<AtomicUsize>,
}

impl<T> ByteReceiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        let (item, len) = self.rx.recv().await?;
        self.queued.fetch_sub(len, Ordering::AcqRel);
        Some(item)
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        let (item, len) = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(len, Ordering::AcqRel);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes_and_freed_when_taken() {
        let (tx, mut rx) = byte_queue::<u32>(10);
        assert!(tx.try_send(0, 6).is_ok());
        assert_eq!(tx.try_send(1, 6), Err(1), "12 bytes over a bound of 10");
        assert!(tx.try_send(2, 4).is_ok(), "10 bytes fit exactly");
        assert_eq!(rx.try_recv(), Some(0));
        assert!(tx.try_send(3, 6).is_ok(), "the taken item's bytes are free again");
        assert_eq!((rx.try_recv(), rx.try_recv(), rx.try_recv()), (Some(2), Some(3), None));
        assert!(tx.try_send(4, 64).is_ok(), "an item over the whole bound goes into an empty queue");
        assert_eq!(tx.try_send(5, 0), Err(5), "nothing more while it is over");
        drop(rx);
        assert_eq!(tx.try_send(6, 1), Err(6), "the receiver is gone");
    }
}
