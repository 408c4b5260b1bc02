//! The allocator of a gate component: a bump arena that never grows memory.
//!
//! A gate instance lives for one decision and is then thrown away whole, so
//! nothing it allocates needs freeing. Rust's default allocator grows linear
//! memory on the first allocation of every fresh instance, which costs the
//! host a page-protection change on each instantiation and another when the
//! slot is reset. This arena lives in the module's zero-initialised data, so
//! it is part of the initial memory; only when it is exhausted does an
//! allocation grow memory (and meet the host's memory cap).

#[cfg(target_feature = "atomics")]
compile_error!("the gate arena assumes a single-threaded instance: build gates without wasm threads");

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

/// Bytes of the arena: far more than a reference gate uses per decision.
const ARENA_BYTES: usize = 64 << 10;
const WASM_PAGE: usize = 64 << 10;

#[repr(C, align(16))]
struct Arena {
    bytes: UnsafeCell<[u8; ARENA_BYTES]>,
    used: UnsafeCell<usize>,
}

// SAFETY: a gate instance is single-threaded (wasm32 without threads), so
// the arena is never touched from two threads.
#[allow(unsafe_code, reason = "a gate instance is single-threaded")]
unsafe impl Sync for Arena {}

/// The global allocator of a gate component.
pub struct BumpArena;

static ARENA: Arena = Arena {
    bytes: UnsafeCell::new([0; ARENA_BYTES]),
    used: UnsafeCell::new(0),
};

#[allow(unsafe_code, reason = "implementing a global allocator is unsafe by definition")]
// SAFETY: every block returned is aligned as asked, lies within memory the
// instance owns, and is never handed out twice (the arena only moves forward).
unsafe impl GlobalAlloc for BumpArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = ARENA.bytes.get() as usize;
        // SAFETY: single-threaded, and no reference to `used` outlives this call.
        let used = unsafe { &mut *ARENA.used.get() };
        let start = (base + *used).next_multiple_of(layout.align());
        match start.checked_add(layout.size()) {
            Some(end) if end <= base + ARENA_BYTES => {
                *used = end - base;
                start as *mut u8
            }
            _ => grow(layout),
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
        // The whole instance is discarded after one decision.
    }
}

/// Fresh pages for a block the arena cannot hold; null when the host refuses.
fn grow(layout: Layout) -> *mut u8 {
    if layout.align() > WASM_PAGE {
        return core::ptr::null_mut();
    }
    let pages = layout.size().div_ceil(WASM_PAGE).max(1);
    match core::arch::wasm32::memory_grow(0, pages) {
        usize::MAX => core::ptr::null_mut(),
        previous => (previous * WASM_PAGE) as *mut u8,
    }
}

/// The canonical ABI's allocation entry point, through which the host
/// copies a request into the gate. The standard library defines it for
/// `wasm32-wasip2`; a `no_std` gate gets it here.
///
/// # Safety
/// Called only by the host's canonical ABI, with the arguments it defines:
/// a block previously returned here (or none) and a valid power-of-two alignment.
#[cfg(not(feature = "std"))]
#[allow(unsafe_code, reason = "the canonical ABI's allocator export")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_len, align) else {
        core::arch::wasm32::unreachable()
    };
    // SAFETY: the layout is valid (checked above); `old`, when given, came
    // from this allocator with `old_len` bytes, as the canonical ABI guarantees.
    let block = unsafe {
        if old_len == 0 {
            BumpArena.alloc(layout)
        } else {
            BumpArena.realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if block.is_null() {
        core::arch::wasm32::unreachable()
    }
    block
}
