//! Before `main`: a process started as a worker or as a serving MPI rank becomes one here and
//! never returns to `main`; every other process returns at once.

use std::sync::atomic::{AtomicBool, Ordering};

/// Becomes a worker if this process was started as one by a decor pool, or a serving rank of an
/// MPI job; otherwise returns.
///
/// Called before `main` by the constructor `#[parallel_chunks]` generates; there is nothing to
/// call by hand.
pub fn worker_main() {
    static ONCE: AtomicBool = AtomicBool::new(false);
    if ONCE.swap(true, Ordering::SeqCst) {
        return;
    }
    // Not a worker process: perhaps a rank of an MPI job, which serves from here on.
    #[cfg(feature = "mpi")]
    if !super::processes::worker::take_over() {
        super::mpi::enter();
    }
    #[cfg(not(feature = "mpi"))]
    super::processes::worker::take_over();
}

// Before `main` in every program that links decor, whatever it calls: `Plan::map_remote` needs
// no attribute. (`#[used]` statics of a library are always linked; the attributes add one of
// their own in the user's crate as well, which `ONCE` makes a no-op.)
#[used]
#[cfg_attr(
    any(target_os = "linux", target_os = "android"),
    unsafe(link_section = ".init_array")
)]
static TAKE_OVER: extern "C" fn() = {
    extern "C" fn take_over() {
        worker_main();
    }
    take_over
};
