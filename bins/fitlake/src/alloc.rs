//! The allocator of the fitlake binaries: mimalloc, which Polars recommends; with the system
//! allocator a 10-million-reading run spent a third of its time in malloc and page faults.
//!
//! [`tune`] then keeps the kernel from zeroing the same memory over and over. A step builds
//! and drops column buffers of hundreds of megabytes; by default mimalloc hands freed memory
//! back to the kernel after a second (`purge_delay`) and asks for transparent huge pages for its
//! arenas, so every new buffer faults in fresh 2 MiB pages that the kernel zeroes first: a
//! third of the silver layer's samples were `clear_page_erms` (measured, docs/BENCHMARKS.md).
//! Freed memory is kept for reuse instead (peak RSS is unchanged: it is reached either way)
//! and huge pages are off for the process.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the sys crate names only older options;
/// the test below fails if the index moves).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for reuse and turns transparent huge pages off for this process (see the
/// module documentation). `MIMALLOC_PURGE_DELAY` and `MIMALLOC_ALLOW_THP` in the environment
/// win over either.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option; mimalloc reads it whenever it schedules a purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments and only sets a flag of this
        // process (inherited by children); a kernel without it returns an error, ignored.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_keeps_freed_memory_and_turns_huge_pages_off() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() || std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            panic!("unset MIMALLOC_PURGE_DELAY and MIMALLOC_ALLOW_THP to run this test");
        }
        // SAFETY: reads an integer option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc's documented default purge delay: the index names the right option.
        assert_eq!(get(), 1000);
        tune();
        assert_eq!(get(), -1);
        #[cfg(target_os = "linux")]
        // SAFETY: PR_GET_THP_DISABLE takes no pointer.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }
}
