//! [`HostPlatform`]: pinning with `mlock`, memmove copies, a monotonic clock and an event count.

use crate::error::HostError;
use crate::pages::{self, lock, PinError, GLOBAL};
use crate::region::MemRegion;
use crate::shared;
use core::fmt;
use rsm_hal::{Checksum, Clock, ErrorKind, Instant, Memory, Region, Wait, WaitToken};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Source of platform ids, so a [`HostPin`] is only ever released by the platform that made it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Proof that a range of pages is pinned by a [`HostPlatform`]; give it back to
/// [`Memory::unpin`] of the same platform exactly once.
#[derive(Debug)]
#[must_use = "a pin that is never unpinned keeps its pages locked"]
pub struct HostPin {
    platform: u64,
    first_page: usize,
    pages: usize,
}

impl HostPin {
    /// The number of (system) pages this pin covers.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// The std host platform: [`Memory`] with `mlock` pinning, [`Clock`] from
/// [`std::time::Instant`], and [`Wait`] with a mutex and condition variable.
///
/// # Pinning
/// Pins are counted per page (the system page, 4096 bytes on x86_64): [`Memory::pin`] pins
/// every page the region touches, whole pages even for a partial first or last page, and
/// [`Memory::unpin`] releases them. A page is `mlock`ed when it becomes pinned and `munlock`ed
/// when its last pin goes, so two handles on one page do not unlock each other. Consecutive
/// pages are locked and unlocked with one system call per run. The `mlock` state is counted
/// process-wide, so several platforms in one process (e.g. several nodes in one test) may pin
/// the same page safely; the page counts and the quota below are per platform.
///
/// The counts are kept per interval of pages with one count, in one process-wide table behind
/// one mutex: a pin or unpin takes one lock, and its cost depends on the number of pinned
/// intervals it overlaps, not on its number of pages.
///
/// Pinning is all-or-nothing: on any error no count changes and nothing stays locked.
/// Errors: a NULL, empty or wrapping region → [`ErrorKind::BadAddress`]; over the quota →
/// [`ErrorKind::QuotaExceeded`]; `mlock` failing with `ENOMEM`/`EAGAIN` (over
/// `RLIMIT_MEMLOCK` or out of memory) → [`ErrorKind::OutOfMemory`], but `ENOMEM` because part
/// of the range is not mapped → [`ErrorKind::BadAddress`]; `EPERM` →
/// [`ErrorKind::PermissionDenied`]; any other `errno` → [`ErrorKind::BadAddress`].
///
/// # Quota
/// [`HostPlatform::with_pin_quota`] limits the bytes this platform keeps pinned, counting
/// each distinct page once (two regions on one page cost one page). By default there is none.
///
/// # Without `mlock`
/// [`HostPlatform::without_mlock`] keeps the same page counts and quota but makes no system
/// calls, so a benchmark measures the table work alone. It does not validate addresses beyond
/// NULL and wrap-around, and the memory is not locked.
///
/// # Copies
/// [`Memory::copy`], [`Memory::write`] and [`Memory::read`] take no lock; they access region
/// memory with relaxed atomic loads and stores only (whole aligned 8-byte words with one
/// access each), so transfers racing with each other or with the application's
/// [`MemRegion`]/[`PinnedBuf`](crate::PinnedBuf) accessors are not data races. `copy` has
/// memmove semantics. They rely on the [`MemRegion`] contract for the validity of the memory.
pub struct HostPlatform {
    id: u64,
    mlock: bool,
    /// The quota in pages, if any.
    quota_pages: Option<usize>,
    /// This platform's slot in the process-wide pin table ([`GLOBAL`]).
    slot: usize,
    origin: std::time::Instant,
    events: Mutex<Events>,
    cv: Condvar,
    /// The socket of a link the waiting callers drive themselves (-1: none): a waiter then
    /// sleeps in `poll` on it and on its thread's wake-up eventfd, so a frame wakes it
    /// directly ([`HostPlatform::set_link_fd`]).
    link_fd: AtomicI32,
    /// Blocking calls whose callers watch the link socket (from their first `poll` wait
    /// until [`Wait::wait_over`]).
    socket_pollers: AtomicUsize,
    /// The driver thread sleeps without the socket (a waiter polls it); the last waiter to
    /// leave kicks it.
    driver_blind: AtomicBool,
    /// Written by [`Wait::kick`]: the driver thread of a [`crate::runtime::HostNode`] sleeps
    /// on it with its socket.
    kick: Option<std::sync::Arc<crate::runtime::Kicker>>,
}

impl Default for HostPlatform {
    fn default() -> Self {
        HostPlatform::new()
    }
}

impl fmt::Debug for HostPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPlatform")
            .field("id", &self.id)
            .field("mlock", &self.mlock)
            .field("pin_quota", &self.pin_quota())
            .field("pinned_pages", &self.pinned_pages())
            .finish_non_exhaustive()
    }
}

impl HostPlatform {
    /// A platform that `mlock`s pinned pages, with no quota.
    pub fn new() -> HostPlatform {
        // A node lock's holder can be preempted here: waiters yield instead of spinning.
        rsm_core::set_contention_hook(std::thread::yield_now);
        HostPlatform {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            mlock: true,
            quota_pages: None,
            slot: lock(&GLOBAL).register(),
            origin: std::time::Instant::now(),
            events: Mutex::new(Events::default()),
            cv: Condvar::new(),
            link_fd: AtomicI32::new(-1),
            socket_pollers: AtomicUsize::new(0),
            driver_blind: AtomicBool::new(false),
            kick: None,
        }
    }

    /// Let waiters sleep in `poll` on socket `fd` (and their own wake-up eventfd) instead of
    /// the condition variable: a node whose blocking callers drive its attached link
    /// ([`rsm_core::Rsm::attach_link`]) then wakes on the frame that completes their call
    /// with no hand-off through another thread. `-1` returns to the condition variable
    /// (set it before the socket is closed; waiters already in `poll` are woken).
    pub fn set_link_fd(&self, fd: std::os::fd::RawFd) {
        self.link_fd.store(fd, Ordering::SeqCst);
        if fd < 0 {
            self.wake();
        }
    }

    /// This platform, with [`Wait::kick`] signalling `kicker` (the runtime's eventfd).
    pub fn with_kicker(mut self, kicker: std::sync::Arc<crate::runtime::Kicker>) -> HostPlatform {
        self.kick = Some(kicker);
        self
    }

    /// A platform that `mlock`s pinned pages and keeps at most `bytes` pinned (rounded down
    /// to whole pages), counting each distinct page once.
    pub fn with_pin_quota(bytes: usize) -> HostPlatform {
        HostPlatform::new().limit_pins(bytes)
    }

    /// A platform that counts pins per page and enforces a quota like [`HostPlatform::new`],
    /// but makes no `mlock`/`munlock` system calls (for benchmarks of the table work alone, or
    /// where locking memory is not permitted). Memory is not actually locked.
    pub fn without_mlock() -> HostPlatform {
        HostPlatform::new().skip_mlock()
    }

    /// This platform with a pinned-bytes quota of `bytes` (rounded down to whole pages).
    pub fn limit_pins(mut self, bytes: usize) -> HostPlatform {
        self.quota_pages = Some(bytes >> pages::page_shift());
        self
    }

    /// This platform without `mlock` system calls (see [`HostPlatform::without_mlock`]).
    pub fn skip_mlock(mut self) -> HostPlatform {
        self.mlock = false;
        self
    }

    /// `true` if pinning `mlock`s the pages.
    pub fn uses_mlock(&self) -> bool {
        self.mlock
    }

    /// The pinned-bytes quota (a whole number of pages), if any.
    pub fn pin_quota(&self) -> Option<usize> {
        self.quota_pages.map(|p| p << pages::page_shift())
    }

    /// The page size in which pins are counted and the quota is charged (the system page).
    pub fn page_size(&self) -> usize {
        pages::page_size()
    }

    /// The number of distinct pages this platform has pinned now.
    pub fn pinned_pages(&self) -> usize {
        lock(&GLOBAL).pinned_pages(self.slot)
    }

    /// The bytes this platform has pinned now (distinct pages × page size).
    pub fn pinned_bytes(&self) -> usize {
        self.pinned_pages() << pages::page_shift()
    }

    /// Map a failed `mlock` of the pages `run` to an error.
    fn mlock_error(run: core::ops::Range<usize>, errno: i32) -> HostError {
        let kind = match errno {
            libc::ENOMEM if !pages::mapped(run) => ErrorKind::BadAddress,
            libc::ENOMEM | libc::EAGAIN => ErrorKind::OutOfMemory,
            libc::EPERM => ErrorKind::PermissionDenied,
            _ => ErrorKind::BadAddress,
        };
        HostError::from_errno(kind, errno)
    }
}

impl Drop for HostPlatform {
    /// Release every pin still held, so pages of a dropped platform do not stay locked.
    fn drop(&mut self) {
        lock(&GLOBAL).unregister(self.slot, self.mlock, pages::munlock);
    }
}

impl Memory for HostPlatform {
    type Region = MemRegion;
    type Pin = HostPin;
    type Error = HostError;

    fn pin(&self, region: &MemRegion) -> Result<HostPin, HostError> {
        let span = pages::page_span(region.addr(), region.len())
            .ok_or(HostError::new(ErrorKind::BadAddress))?;
        let pinned = lock(&GLOBAL).pin(
            self.slot,
            span.clone(),
            self.mlock,
            self.quota_pages,
            pages::mlock,
            pages::munlock,
        );
        match pinned {
            Ok(()) => Ok(HostPin {
                platform: self.id,
                first_page: span.start,
                pages: span.len(),
            }),
            Err(PinError::Quota) => Err(HostError::new(ErrorKind::QuotaExceeded)),
            Err(PinError::Limit) => Err(HostError::new(ErrorKind::Other)),
            Err(PinError::Lock { run, err }) => Err(HostPlatform::mlock_error(run, err)),
        }
    }

    fn unpin(&self, pin: HostPin) {
        if pin.platform != self.id {
            debug_assert!(false, "rsm-host: unpin of a pin made by another platform");
            return;
        }
        let span = pin.first_page..pin.first_page + pin.pages;
        lock(&GLOBAL).unpin(self.slot, span, self.mlock, pages::munlock);
    }

    fn copy(
        &self,
        dst: &MemRegion,
        dst_off: usize,
        src: &MemRegion,
        src_off: usize,
        len: usize,
    ) -> Result<(), HostError> {
        let (d, s) = (dst.target(dst_off, len)?, src.target(src_off, len)?);
        let (Some(d), Some(s)) = (d, s) else {
            return Ok(()); // nothing to copy
        };
        // SAFETY: both ranges were checked to lie inside their regions, which are valid for
        // reads and writes by the MemRegion contract (a live or shared PinnedBuf allocation,
        // static memory, or the `from_raw_parts` promise) and lie in their spans; all accesses
        // to region memory are atomic on the span's grid. `shared::copy` has memmove semantics.
        unsafe { shared::copy(dst.span(), d, src.span(), s, len) };
        Ok(())
    }

    fn write(&self, dst: &MemRegion, dst_off: usize, src: &[u8]) -> Result<(), HostError> {
        dst.write(dst_off, src)
    }

    fn read(&self, src: &MemRegion, src_off: usize, dst: &mut [u8]) -> Result<(), HostError> {
        src.read(src_off, dst)
    }
}

/// The frame checksum on the host: the `crc32c` crate, which uses the SSE4.2 `crc32`
/// instruction (three interleaved streams) when the CPU has it and its own tables otherwise —
/// measured several times faster than the software default (`cargo bench -p rsm-core --bench
/// engine` compares both).
impl Checksum for HostPlatform {
    fn crc32c_append(&self, crc: u32, bytes: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, bytes)
    }
}

impl Clock for HostPlatform {
    fn now(&self) -> Instant {
        Instant(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// The event count of [`Wait`], and the wake-up eventfds of the threads sleeping in `poll`.
#[derive(Debug, Default)]
struct Events {
    count: u64,
    pollers: Vec<std::os::fd::RawFd>,
}

/// A `poll` wait that returns within this found the socket readable "at once".
const SPIN_NS: u64 = 20_000;
/// How long a waiter that found the socket readable at once twice watches only its eventfd.
const BACKOFF_NS: u64 = 50_000;

thread_local! {
    /// Consecutive `poll` waits of this thread that found the link socket readable at once.
    static SPINS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// The platform (its id) whose blocking call this thread is in and counted in its
    /// `socket_pollers` (0: none), from its first `poll` wait until `wait_over`.
    static IN_CALL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };

    /// This thread's wake-up eventfd for [`HostPlatform::set_link_fd`] waits (`None` if the
    /// system gave none: the thread then waits on the condition variable).
    static WAKE_FD: Option<std::os::fd::OwnedFd> = {
        use std::os::fd::FromRawFd;
        // SAFETY: `eventfd` takes no pointers; a negative result is an error, else a new
        // descriptor owned by nobody else.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        // SAFETY: `fd` is fresh and owned by no one else (see above).
        (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    };
}

impl HostPlatform {
    /// [`Wait::wait`] in `poll` on the link socket and this thread's eventfd; `false` if this
    /// thread has no eventfd (the caller waits on the condition variable instead).
    fn poll_wait(&self, token: WaitToken, deadline: Option<Instant>, link: i32) -> bool {
        use std::os::fd::AsRawFd;
        WAKE_FD.with(|w| {
            let Some(w) = w.as_ref() else {
                return false;
            };
            let me = w.as_raw_fd();
            {
                let mut ev = lock(&self.events);
                if ev.count != token.0 {
                    return true;
                }
                ev.pollers.push(me);
            }
            let left = deadline.map(|d| d.nanos_since(self.now()));
            // Count this blocking call once, until `wait_over`.
            if IN_CALL.with(|c| c.replace(self.id)) != self.id {
                self.socket_pollers.fetch_add(1, Ordering::SeqCst);
            }
            // The socket was readable at once the last times: someone else is draining it
            // (holding the link); do not spin against it — watch only the wake-up eventfd
            // for a moment (the holder wakes us if it completes our call).
            let backoff = SPINS.with(|c| c.get()) >= 2;
            if left != Some(0) {
                let mut fds = [
                    libc::pollfd {
                        fd: me,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: link,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                let ns = match (left, backoff) {
                    (l, true) => Some(l.unwrap_or(u64::MAX).min(BACKOFF_NS)),
                    (l, false) => l,
                };
                let ts = ns.map(|n| libc::timespec {
                    tv_sec: (n / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: (n % 1_000_000_000) as libc::c_long,
                });
                let tsp = ts
                    .as_ref()
                    .map_or(core::ptr::null(), |t| t as *const libc::timespec);
                let n = if backoff { 1 } else { 2 };
                let t0 = std::time::Instant::now();
                // SAFETY: `fds` holds two live `pollfd`s and `n` ≤ 2 of them are passed; `tsp`
                // is null or points to a live `timespec`; no signal mask is changed (null).
                let _ = unsafe { libc::ppoll(fds.as_mut_ptr(), n, tsp, core::ptr::null()) };
                let at_once =
                    !backoff && fds[1].revents != 0 && t0.elapsed() < Duration::from_nanos(SPIN_NS);
                SPINS.with(|c| c.set(if at_once { c.get() + 1 } else { 0 }));
            } else {
                // The engine's next timer is due but this caller could not run it: another
                // thread holds the link (or the node's lock) — let it run rather than spin
                // against it (on a host with more threads than cores it may be preempted).
                std::thread::yield_now();
            }
            {
                let mut ev = lock(&self.events);
                if let Some(i) = ev.pollers.iter().position(|&f| f == me) {
                    ev.pollers.swap_remove(i);
                }
            }
            let mut v: u64 = 0;
            // SAFETY: reads at most 8 bytes into a live `u64` from this thread's non-blocking
            // eventfd (reset; `EAGAIN` if it was not signalled).
            let _ = unsafe { libc::read(me, (&mut v as *mut u64).cast(), 8) };
            true
        })
    }
}

impl HostPlatform {
    /// For the runtime's driver thread, before it sleeps: `true` if a waiter polls the
    /// socket now, so the driver sleeps without it (and is kicked when the last waiter
    /// leaves); `false`: the driver polls the socket itself.
    pub(crate) fn driver_may_skip_socket(&self) -> bool {
        if self.socket_pollers.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.driver_blind.store(true, Ordering::SeqCst);
        if self.socket_pollers.load(Ordering::SeqCst) == 0 {
            self.driver_blind.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// For the driver thread, after it woke.
    pub(crate) fn driver_awake(&self) {
        self.driver_blind.store(false, Ordering::SeqCst);
    }
}

impl Wait for HostPlatform {
    fn prepare_wait(&self) -> WaitToken {
        WaitToken(lock(&self.events).count)
    }

    fn wait(&self, token: WaitToken, deadline: Option<Instant>) {
        let link = self.link_fd.load(Ordering::SeqCst);
        if link >= 0 && self.poll_wait(token, deadline, link) {
            return;
        }
        let mut events = lock(&self.events);
        while events.count == token.0 {
            match deadline {
                None => events = self.cv.wait(events).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.nanos_since(self.now());
                    if left == 0 {
                        return;
                    }
                    events = self
                        .cv
                        .wait_timeout(events, Duration::from_nanos(left))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    fn wake(&self) {
        {
            let mut events = lock(&self.events);
            events.count = events.count.wrapping_add(1);
            let one: u64 = 1;
            for &fd in &events.pollers {
                // SAFETY: writes 8 bytes from a live `u64` to the eventfd of a thread that is
                // registered while it sleeps in `poll` (it unregisters under this lock before
                // its descriptor can close: the descriptor lives as long as its thread).
                let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            }
        }
        self.cv.notify_all();
    }

    fn wait_over(&self) {
        SPINS.with(|c| c.set(0));
        if IN_CALL.with(|c| c.get()) != self.id {
            return;
        }
        IN_CALL.with(|c| c.set(0));
        if self.socket_pollers.fetch_sub(1, Ordering::SeqCst) == 1
            && self.driver_blind.swap(false, Ordering::SeqCst)
        {
            // Nobody watches the socket now: the driver goes back to it.
            self.kick();
        }
    }

    fn kick(&self) {
        if let Some(k) = &self.kick {
            k.kick();
        }
        // A caller that watches the socket drives the link (the driver leaves it alone
        // then): wake it so the new work goes out now, not at its next timer.
        let events = lock(&self.events);
        let one: u64 = 1;
        for &fd in &events.pollers {
            // SAFETY: as in `wake`: the eventfd of a thread registered while it sleeps.
            let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        }
    }
}
