//! The node's locks: spin locks (no OS underneath), with a hook for hosts where the holder
//! can be preempted.
//!
//! On one core with interrupts, or on bare metal with one thread per core, a contended spin
//! lock is held for microseconds. On a host with more runnable threads than cores, the
//! holder can be descheduled for a whole time slice (milliseconds) while the waiter spins.
//! [`set_contention_hook`] lets such a host give the processor away on contention (the host
//! backend registers `std::thread::yield_now`).

/// The lock type of a node's tables, link and receive path.
pub(crate) type Lock<T> = spin::mutex::Mutex<T, Relax>;

static HOOK: spin::Once<fn()> = spin::Once::new();

/// Register what a thread does while it waits for a node lock another thread holds (once
/// per process; later calls are ignored). Without a hook it spins (`spin_loop`).
pub fn set_contention_hook(hook: fn()) {
    HOOK.call_once(|| hook);
}

/// The relax strategy of [`Lock`]: the contention hook if one is registered, else a spin.
pub(crate) struct Relax;

impl spin::RelaxStrategy for Relax {
    fn relax() {
        match HOOK.get() {
            Some(f) => f(),
            None => core::hint::spin_loop(),
        }
    }
}
