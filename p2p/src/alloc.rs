//! The native processes' memory allocator settings.
//!
//! A transfer cycles through buffers of a few hundred KiB to a few MiB (shards, frames,
//! chunks, stripes) on several threads. With glibc's defaults such a buffer is often mapped
//! fresh from the kernel and unmapped when freed (the mmap threshold starts at 128 KiB), or
//! the freed memory is handed back (trimmed) and faulted in again, zeroed, for the next one:
//! page faults, page clearing and unmapping were about a tenth of a get's CPU time. Serving
//! every block under [`MMAP_THRESHOLD`] from malloc's heaps, and trimming them only past
//! [`TRIM_THRESHOLD`] free, keeps that memory in use. Measured side by side in the network
//! benchmark (docs/benchmarks.md): get about 20% faster (296 against 243 MB/s), put about 5%.

/// Blocks at least this large are mapped on their own (glibc's default starts at 128 KiB).
pub const MMAP_THRESHOLD: usize = 4 << 20;
/// Free memory at the top of a heap above this is returned to the kernel.
pub const TRIM_THRESHOLD: usize = 32 << 20;

/// Applies the settings above; call first thing in `main`, before other threads start.
/// Returns whether the allocator took them (only glibc on Linux has them; elsewhere this
/// does nothing and returns false).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune() -> bool {
    let set = |param, value: usize| {
        let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes malloc's tuning parameters, under malloc's own lock.
        // Its one thread-safety caveat is malloc's first initialisation, which has happened
        // by the time any Rust code runs (the runtime allocates before `main`). The values
        // are within the ranges glibc documents (the mmap threshold at most 32 MiB).
        unsafe { libc::mallopt(param, value) == 1 }
    };
    set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) & set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)
}

/// See the glibc version: other allocators are left as they are.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert!(super::tune(), "mallopt refused the thresholds");
    }
}
