//! A global allocator that meters each thread's heap, so a fuzz target can require bounded
//! memory per input: a length or count field claiming gigabytes must not get them, whether the
//! decoder would touch the memory or only reserve it.
//!
//! Each test binary that uses it installs it with
//! `#[global_allocator] static METER: alloc_meter::Meter = alloc_meter::Meter;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts live bytes per thread (frees on another thread make the counts relative, which is
/// fine: [`measure`] reports differences on the calling thread).
pub struct Meter;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    // `try_with`: the allocator also runs while a thread's locals are being torn down.
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + size as isize);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live.get())));
    });
}

fn on_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - size as isize));
}

// SAFETY: every call forwards to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A refused request counts as asked for: asking is the bug.
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        on_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

/// What a closure cost on this thread's heap.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Most bytes live at once beyond what was live before.
    pub peak_bytes: usize,
    /// The largest single allocation asked for (granted or not).
    pub largest_bytes: usize,
}

/// Runs `f`, measuring its heap use on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    LARGEST.with(|l| l.set(0));
    let out = f();
    let peak = PEAK.with(Cell::get);
    let usage = Usage { peak_bytes: (peak - start).max(0) as usize, largest_bytes: LARGEST.with(Cell::get) };
    (out, usage)
}
