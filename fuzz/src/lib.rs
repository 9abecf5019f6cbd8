//! What the fuzz targets share: an allocator that counts, so that each input's heap use is
//! checked by the target itself.
//!
//! libFuzzer's `-malloc_limit_mb` only works when a sanitizer's allocator is linked in (its
//! malloc hooks come from the sanitizer runtime); `tests/fuzz.sh` builds without one to keep
//! the build short. This allocator holds every target to a tighter rule whatever the build:
//! one input may not make the heap grow by more than [`budget`] at any moment, and what it
//! allocates must be freed when it is done.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The largest text frame the server accepts (`--ws-max-frame-bytes`' default, 64 KiB) and
/// its JSON body limit (`--max-body-bytes`, the same): `-max_len` in `tests/fuzz.sh`.
pub const MAX_INPUT: usize = 64 * 1024;

/// The system allocator, counting the bytes live and their peak.
pub struct Counting;

/// Bytes allocated through [`Counting`] and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most [`LIVE`] has been since [`checked`] last reset it.
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are only bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System.alloc_zeroed`'s.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `System.realloc`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if the new block came before the old one went: a copy's true peak.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Whether [`checked`] prints each input's heap growth (`TERTULIA_FUZZ_PEAK` set).
static SHOW_PEAK: OnceLock<bool> = OnceLock::new();

/// The most one input of `len` bytes may make the heap grow: 32 bytes per input byte (the
/// parsed strings, serde's buffered values, the error message and the answer built from
/// them are each a small multiple of the input) plus 256 KiB. For the largest frame that is
/// 2.25 MiB: far below `-malloc_limit_mb=64`, and still a failure for anything that grows
/// with the input faster than linearly or allocates by a length the input claims.
pub fn budget(len: usize) -> usize {
    32 * len + 256 * 1024
}

/// Runs `work` on one input of `len` bytes and panics (a crash libFuzzer keeps as a
/// reproducer) if the heap grew by more than [`budget`] at any moment, or if `work` did not
/// free all it allocated. A run that leaves memory behind is run once more: a value built
/// once and kept (a lazily initialised static) passes; a leak leaves memory behind again.
///
/// With `TERTULIA_FUZZ_PEAK` set, each input's growth is printed (to see how close inputs
/// come to the budget: `ws_frame -runs=0 <files>` runs just those files).
pub fn checked<R>(len: usize, mut work: impl FnMut() -> R) {
    let show = *SHOW_PEAK.get_or_init(|| std::env::var_os("TERTULIA_FUZZ_PEAK").is_some());
    for attempt in 0..2 {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        drop(work());
        let peak = PEAK.load(Ordering::Relaxed) - before;
        if show && attempt == 0 {
            eprintln!("heap growth: {peak} bytes for {len} input bytes");
        }
        assert!(
            peak <= budget(len),
            "an input of {len} bytes made the heap grow by {peak} bytes (budget {})",
            budget(len)
        );
        let after = LIVE.load(Ordering::Relaxed);
        if after <= before {
            return;
        }
        assert!(
            attempt == 0,
            "an input of {len} bytes leaked {} bytes, twice",
            after - before
        );
    }
}
