//! The allocator of the fitlake binaries: mimalloc, which Polars recommends; with the system
//! allocator a 10-million-reading run spent a third of its time in malloc and page faults.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
