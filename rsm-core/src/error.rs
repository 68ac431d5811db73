//! RSMAPI error codes (spec §2.2, `rsm_common.h`).
//!
//! Every function of the C API returns `int`: [`RSM_SUCCESS`] (0) or one of the `RSMERR_*`
//! codes. In Rust the failure side is the exhaustive enum [`RsmError`], whose discriminants are
//! exactly the C values, and operations return [`RsmResult`].
//!
//! The enum covers both the public RSMAPI range (1..=45) and the RSMPI driver range (100..=134):
//! some RSMPI codes leak through the public API (`RSMERR_BAD_ARGS_ERRORS` from
//! `rsm_intr_signal_wait_pollfd`, `RSMERR_INTERNAL_ERROR` and `RSMERR_BAD_DRIVER_VERSION` from
//! `rsm_memseg_import_connect`; spec §9.21), and rsm-rs never returns a raw errno value
//! (spec §9.20).

use core::fmt;

/// The value every RSMAPI function returns on success (`RSM_SUCCESS`, spec §2.2).
pub const RSM_SUCCESS: i32 = 0;

/// Result of an RSMAPI operation: `Ok` corresponds to [`RSM_SUCCESS`], `Err` to an `RSMERR_*`
/// code (spec §2.2).
pub type RsmResult<T> = Result<T, RsmError>;

/// Generates [`RsmError`] and its table-driven methods from one table of
/// `Variant = value, "C name", "meaning";` rows, so the numbers, names and messages cannot drift
/// apart.
macro_rules! rsm_errors {
    (
        $count:literal;
        $( $(#[$attr:meta])* $variant:ident = $code:literal, $cname:literal, $meaning:literal; )*
    ) => {
        /// An RSMAPI error code (spec §2.2).
        ///
        /// The discriminant of each variant is the numeric value of the C `RSMERR_*` constant
        /// (`#[repr(i32)]`), so `err as i32` / [`RsmError::code`] yields exactly what the C
        /// function would return. Variant names are the C names without the `RSMERR_` prefix,
        /// in UpperCamelCase. The enum is exhaustive over the codes of `rsm_common.h`:
        /// 1..=45 (public RSMAPI range) and 100..=134 (RSMPI driver range).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum RsmError {
            $(
                #[doc = concat!("`", $cname, "` (", stringify!($code), "): ", $meaning, ".")]
                $(#[$attr])*
                $variant = $code,
            )*
        }

        impl RsmError {
            /// Every error code, in increasing numeric order (spec §2.2).
            pub const ALL: [RsmError; $count] = [ $( RsmError::$variant, )* ];

            /// The numeric C value of this error (what the C API returns).
            #[must_use]
            pub const fn code(self) -> i32 {
                self as i32
            }

            /// The error for a numeric C value, or `None` for [`RSM_SUCCESS`] (0) and for any
            /// value that is not an `RSMERR_*` code of spec §2.2.
            #[must_use]
            pub const fn from_code(code: i32) -> Option<RsmError> {
                match code {
                    $( $code => Some(RsmError::$variant), )*
                    _ => None,
                }
            }

            /// The exact C name of this error, e.g. `"RSMERR_BAD_CTLR_HNDL"`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $( RsmError::$variant => $cname, )*
                }
            }

            /// A short human-readable description of this error (the meaning column of
            /// spec §2.2).
            #[must_use]
            pub const fn meaning(self) -> &'static str {
                match self {
                    $( RsmError::$variant => $meaning, )*
                }
            }
        }
    };
}

rsm_errors! {
    80;
    // ---- Public RSMAPI range (1..=45) ----
    BadLibraryVersion = 1, "RSMERR_BAD_LIBRARY_VERSION",
        "plugin reports a different RSM_LIB_VERSION";
    BadTopologyPtr = 2, "RSMERR_BAD_TOPOLOGY_PTR", "NULL topology out-pointer";
    BadCtlrHndl = 3, "RSMERR_BAD_CTLR_HNDL", "invalid controller handle";
    CtlrNotPresent = 4, "RSMERR_CTLR_NOT_PRESENT", "no such controller / adapter";
    BadSegHndl = 5, "RSMERR_BAD_SEG_HNDL", "invalid segment handle or handle in wrong state";
    SegAlreadyPublished = 6, "RSMERR_SEG_ALREADY_PUBLISHED", "publish on a published segment";
    SegNotPublished = 7, "RSMERR_SEG_NOT_PUBLISHED", "segment not published (at all / any more)";
    SegNotPublishedToNode = 8, "RSMERR_SEG_NOT_PUBLISHED_TO_NODE",
        "ACL excludes the importing node";
    SegAlreadyMapped = 9, "RSMERR_SEG_ALREADY_MAPPED", "second map of the same import handle";
    SegStillMapped = 10, "RSMERR_SEG_STILL_MAPPED", "disconnect while explicitly mapped";
    SegNotMapped = 11, "RSMERR_SEG_NOT_MAPPED", "unmap when not mapped";
    NotCreator = 12, "RSMERR_NOT_CREATOR",
        "caller process did not create the export segment";
    BadBarrierPtr = 13, "RSMERR_BAD_BARRIER_PTR", "NULL barrier pointer";
    BadSgio = 14, "RSMERR_BAD_SGIO", "bad scatter-gather structure / count / entry";
    BadLocalmemHndl = 15, "RSMERR_BAD_LOCALMEM_HNDL",
        "bad local memory handle (or NULL out-pointer)";
    #[doc = ""]
    /// The seed man page spells this `RSMERR_BAD_ADDRESS`; see [`RSMERR_BAD_ADDRESS`].
    BadAddr = 16, "RSMERR_BAD_ADDR", "bad (NULL/unmapped/misaligned) address";
    BadMemAlignment = 17, "RSMERR_BAD_MEM_ALIGNMENT", "address/offset/length not aligned";
    BadOffset = 18, "RSMERR_BAD_OFFSET", "offset outside the accessible range";
    MisalignedOffset = 19, "RSMERR_MISALIGNED_OFFSET",
        "misaligned offset (defined, never produced by illumos)";
    BadLength = 20, "RSMERR_BAD_LENGTH", "zero/oversized/out-of-range length";
    BadAcl = 21, "RSMERR_BAD_ACL", "bad access control list";
    BadSegid = 22, "RSMERR_BAD_SEGID", "bad segment-id argument";
    ReservedSegid = 23, "RSMERR_RESERVED_SEGID", "segment id in a reserved range";
    SegidInUse = 24, "RSMERR_SEGID_IN_USE", "segment id already published on this node";
    BadMode = 25, "RSMERR_BAD_MODE", "invalid barrier mode";
    BadPerms = 26, "RSMERR_BAD_PERMS", "invalid permission value";
    PermDenied = 27, "RSMERR_PERM_DENIED", "access denied";
    LocksNotSupported = 28, "RSMERR_LOCKS_NOT_SUPPORTED",
        "locks not supported (documented for publish; never produced)";
    LocksNotEnabled = 29, "RSMERR_LOCKS_NOT_ENABLED", "locks not enabled (never produced)";
    RebindNotAllowed = 30, "RSMERR_REBIND_NOT_ALLOWED", "rebind without RSM_ALLOW_REBIND";
    InsufficientResources = 31, "RSMERR_INSUFFICIENT_RESOURCES",
        "out of descriptors/IDs/slots/DVMA";
    InsufficientMem = 32, "RSMERR_INSUFFICIENT_MEM", "out of memory / pinned-page quota";
    MapFailed = 33, "RSMERR_MAP_FAILED", "mapping failed";
    PollfdInUse = 34, "RSMERR_POLLFD_IN_USE",
        "destroy/disconnect with outstanding poll descriptors";
    BarrierUninitialized = 35, "RSMERR_BARRIER_UNINITIALIZED",
        "barrier never initialised (or implicit mode without a barrier)";
    BarrierOpenFailed = 36, "RSMERR_BARRIER_OPEN_FAILED", "open barrier failed";
    BarrierNotOpened = 37, "RSMERR_BARRIER_NOT_OPENED", "close/order without open";
    BarrierFailure = 38, "RSMERR_BARRIER_FAILURE",
        "an access inside the barrier scope failed";
    RemoteNodeUnreachable = 39, "RSMERR_REMOTE_NODE_UNREACHABLE", "no path to node";
    ConnAborted = 40, "RSMERR_CONN_ABORTED",
        "connection torn down (forced disconnect, generation changed)";
    Interrupted = 41, "RSMERR_INTERRUPTED", "interrupted by a signal";
    Timeout = 42, "RSMERR_TIMEOUT", "wait timed out";
    BadAppid = 43, "RSMERR_BAD_APPID", "appid not in the segment-id configuration";
    BadConf = 44, "RSMERR_BAD_CONF",
        "segment-id configuration missing/unreadable/malformed";
    SegNotConnected = 45, "RSMERR_SEG_NOT_CONNECTED",
        "segment not connected (documented for map; never produced)";
    // ---- RSMPI (driver) range (100..=134) ----
    InternalError = 100, "RSMERR_INTERNAL_ERROR", "internal error";
    BadDriverVersion = 101, "RSMERR_BAD_DRIVER_VERSION", "bad driver version";
    UnsupportedVersion = 102, "RSMERR_UNSUPPORTED_VERSION", "unsupported version";
    DriverNameInUse = 103, "RSMERR_DRIVER_NAME_IN_USE", "driver name already in use";
    DriverNotRegistered = 104, "RSMERR_DRIVER_NOT_REGISTERED", "driver not registered";
    DriverThreadRunning = 105, "RSMERR_DRIVER_THREAD_RUNNING", "driver thread running";
    NeedThreadInit = 106, "RSMERR_NEED_THREAD_INIT", "thread initialisation needed";
    ThreadNotInited = 107, "RSMERR_THREAD_NOT_INITED", "thread not initialised";
    CtlrsRegistered = 108, "RSMERR_CTLRS_REGISTERED", "controllers still registered";
    CtlrNotRegistered = 109, "RSMERR_CTLR_NOT_REGISTERED", "controller not registered";
    CtlrAlreadyRegistered = 110, "RSMERR_CTLR_ALREADY_REGISTERED",
        "controller already registered";
    CtlrInUse = 111, "RSMERR_CTLR_IN_USE", "controller in use";
    NameTooLong = 112, "RSMERR_NAME_TOO_LONG", "name too long";
    SegPublished = 113, "RSMERR_SEG_PUBLISHED", "segment is published";
    SegNotPublishedToRsmAddr = 114, "RSMERR_SEG_NOT_PUBLISHED_TO_RSM_ADDR",
        "segment not published to this RSM address";
    SegInUse = 115, "RSMERR_SEG_IN_USE", "segment in use";
    BadSendqHndl = 116, "RSMERR_BAD_SENDQ_HNDL", "bad send queue handle";
    BadArgsErrors = 117, "RSMERR_BAD_ARGS_ERRORS", "bad arguments";
    BadMstype = 118, "RSMERR_BAD_MSTYPE", "bad memory-segment type";
    NoBackingMem = 119, "RSMERR_NO_BACKING_MEM", "no backing memory";
    NotMem = 120, "RSMERR_NOT_MEM", "not memory";
    MemAlreadyBound = 121, "RSMERR_MEM_ALREADY_BOUND", "memory already bound";
    MemNotBound = 122, "RSMERR_MEM_NOT_BOUND", "memory not bound";
    HandlerNotRegistered = 123, "RSMERR_HANDLER_NOT_REGISTERED", "handler not registered";
    NoHandler = 124, "RSMERR_NO_HANDLER", "no handler";
    UnbindRebindNotAllowed = 125, "RSMERR_UNBIND_REBIND_NOT_ALLOWED",
        "unbind/rebind not allowed";
    CallbacksNotSupported = 126, "RSMERR_CALLBACKS_NOT_SUPPORTED", "callbacks not supported";
    UnsupportedOperation = 127, "RSMERR_UNSUPPORTED_OPERATION", "unsupported operation";
    RsmAddrUnreachable = 128, "RSMERR_RSM_ADDR_UNREACHABLE", "RSM address unreachable";
    UnknownRsmAddr = 129, "RSMERR_UNKNOWN_RSM_ADDR", "unknown RSM address";
    BadBarrierHndl = 130, "RSMERR_BAD_BARRIER_HNDL", "bad barrier handle";
    CommErrMaybeDelivered = 131, "RSMERR_COMM_ERR_MAYBE_DELIVERED",
        "communication error, message may have been delivered";
    CommErrNotDelivered = 132, "RSMERR_COMM_ERR_NOT_DELIVERED",
        "communication error, message not delivered";
    QueueFenceUp = 133, "RSMERR_QUEUE_FENCE_UP", "queue fence is up";
    QueueFull = 134, "RSMERR_QUEUE_FULL", "queue full";
}

/// Man-page spelling of [`RsmError::BadAddr`]: the seed man page of
/// `rsm_create_localmemory_handle` says `RSMERR_BAD_ADDRESS`, which no header defines
/// (spec §9.4).
pub const RSMERR_BAD_ADDRESS: RsmError = RsmError::BadAddr;

impl From<RsmError> for i32 {
    /// The numeric C value of the error (same as [`RsmError::code`]).
    fn from(e: RsmError) -> i32 {
        e.code()
    }
}

impl fmt::Display for RsmError {
    /// Formats as `NAME (code): meaning`, e.g.
    /// `RSMERR_BAD_CTLR_HNDL (3): invalid controller handle`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name(), self.code(), self.meaning())
    }
}

impl core::error::Error for RsmError {}

#[cfg(feature = "defmt")]
impl defmt::Format for RsmError {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=str}({=i32})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent transcription of spec §2.2 (C name, value); must not be generated from the
    /// macro table.
    const SPEC: [(&str, i32); 80] = [
        ("RSMERR_BAD_LIBRARY_VERSION", 1),
        ("RSMERR_BAD_TOPOLOGY_PTR", 2),
        ("RSMERR_BAD_CTLR_HNDL", 3),
        ("RSMERR_CTLR_NOT_PRESENT", 4),
        ("RSMERR_BAD_SEG_HNDL", 5),
        ("RSMERR_SEG_ALREADY_PUBLISHED", 6),
        ("RSMERR_SEG_NOT_PUBLISHED", 7),
        ("RSMERR_SEG_NOT_PUBLISHED_TO_NODE", 8),
        ("RSMERR_SEG_ALREADY_MAPPED", 9),
        ("RSMERR_SEG_STILL_MAPPED", 10),
        ("RSMERR_SEG_NOT_MAPPED", 11),
        ("RSMERR_NOT_CREATOR", 12),
        ("RSMERR_BAD_BARRIER_PTR", 13),
        ("RSMERR_BAD_SGIO", 14),
        ("RSMERR_BAD_LOCALMEM_HNDL", 15),
        ("RSMERR_BAD_ADDR", 16),
        ("RSMERR_BAD_MEM_ALIGNMENT", 17),
        ("RSMERR_BAD_OFFSET", 18),
        ("RSMERR_MISALIGNED_OFFSET", 19),
        ("RSMERR_BAD_LENGTH", 20),
        ("RSMERR_BAD_ACL", 21),
        ("RSMERR_BAD_SEGID", 22),
        ("RSMERR_RESERVED_SEGID", 23),
        ("RSMERR_SEGID_IN_USE", 24),
        ("RSMERR_BAD_MODE", 25),
        ("RSMERR_BAD_PERMS", 26),
        ("RSMERR_PERM_DENIED", 27),
        ("RSMERR_LOCKS_NOT_SUPPORTED", 28),
        ("RSMERR_LOCKS_NOT_ENABLED", 29),
        ("RSMERR_REBIND_NOT_ALLOWED", 30),
        ("RSMERR_INSUFFICIENT_RESOURCES", 31),
        ("RSMERR_INSUFFICIENT_MEM", 32),
        ("RSMERR_MAP_FAILED", 33),
        ("RSMERR_POLLFD_IN_USE", 34),
        ("RSMERR_BARRIER_UNINITIALIZED", 35),
        ("RSMERR_BARRIER_OPEN_FAILED", 36),
        ("RSMERR_BARRIER_NOT_OPENED", 37),
        ("RSMERR_BARRIER_FAILURE", 38),
        ("RSMERR_REMOTE_NODE_UNREACHABLE", 39),
        ("RSMERR_CONN_ABORTED", 40),
        ("RSMERR_INTERRUPTED", 41),
        ("RSMERR_TIMEOUT", 42),
        ("RSMERR_BAD_APPID", 43),
        ("RSMERR_BAD_CONF", 44),
        ("RSMERR_SEG_NOT_CONNECTED", 45),
        ("RSMERR_INTERNAL_ERROR", 100),
        ("RSMERR_BAD_DRIVER_VERSION", 101),
        ("RSMERR_UNSUPPORTED_VERSION", 102),
        ("RSMERR_DRIVER_NAME_IN_USE", 103),
        ("RSMERR_DRIVER_NOT_REGISTERED", 104),
        ("RSMERR_DRIVER_THREAD_RUNNING", 105),
        ("RSMERR_NEED_THREAD_INIT", 106),
        ("RSMERR_THREAD_NOT_INITED", 107),
        ("RSMERR_CTLRS_REGISTERED", 108),
        ("RSMERR_CTLR_NOT_REGISTERED", 109),
        ("RSMERR_CTLR_ALREADY_REGISTERED", 110),
        ("RSMERR_CTLR_IN_USE", 111),
        ("RSMERR_NAME_TOO_LONG", 112),
        ("RSMERR_SEG_PUBLISHED", 113),
        ("RSMERR_SEG_NOT_PUBLISHED_TO_RSM_ADDR", 114),
        ("RSMERR_SEG_IN_USE", 115),
        ("RSMERR_BAD_SENDQ_HNDL", 116),
        ("RSMERR_BAD_ARGS_ERRORS", 117),
        ("RSMERR_BAD_MSTYPE", 118),
        ("RSMERR_NO_BACKING_MEM", 119),
        ("RSMERR_NOT_MEM", 120),
        ("RSMERR_MEM_ALREADY_BOUND", 121),
        ("RSMERR_MEM_NOT_BOUND", 122),
        ("RSMERR_HANDLER_NOT_REGISTERED", 123),
        ("RSMERR_NO_HANDLER", 124),
        ("RSMERR_UNBIND_REBIND_NOT_ALLOWED", 125),
        ("RSMERR_CALLBACKS_NOT_SUPPORTED", 126),
        ("RSMERR_UNSUPPORTED_OPERATION", 127),
        ("RSMERR_RSM_ADDR_UNREACHABLE", 128),
        ("RSMERR_UNKNOWN_RSM_ADDR", 129),
        ("RSMERR_BAD_BARRIER_HNDL", 130),
        ("RSMERR_COMM_ERR_MAYBE_DELIVERED", 131),
        ("RSMERR_COMM_ERR_NOT_DELIVERED", 132),
        ("RSMERR_QUEUE_FENCE_UP", 133),
        ("RSMERR_QUEUE_FULL", 134),
    ];

    #[test]
    fn every_code_matches_the_spec_table() {
        assert_eq!(RsmError::ALL.len(), SPEC.len());
        for (e, &(name, code)) in RsmError::ALL.iter().zip(SPEC.iter()) {
            assert_eq!(e.name(), name);
            assert_eq!(e.code(), code, "{name}");
            assert_eq!(*e as i32, code, "{name}");
            assert_eq!(i32::from(*e), code, "{name}");
        }
        // And the other direction: every spec value maps to the error of that name.
        for &(name, code) in SPEC.iter() {
            let e = RsmError::from_code(code).expect(name);
            assert_eq!(e.name(), name);
        }
    }

    #[test]
    fn selected_variants_have_the_documented_values() {
        assert_eq!(RsmError::BadLibraryVersion.code(), 1);
        assert_eq!(RsmError::BadCtlrHndl.code(), 3);
        assert_eq!(RsmError::BadAddr.code(), 16);
        assert_eq!(RsmError::InsufficientMem.code(), 32);
        assert_eq!(RsmError::SegNotConnected.code(), 45);
        assert_eq!(RsmError::InternalError.code(), 100);
        assert_eq!(RsmError::SegNotPublishedToRsmAddr.code(), 114);
        assert_eq!(RsmError::BadArgsErrors.code(), 117);
        assert_eq!(RsmError::QueueFull.code(), 134);
        assert_eq!(RSMERR_BAD_ADDRESS, RsmError::BadAddr);
        assert_eq!(RSM_SUCCESS, 0);
    }

    #[test]
    fn from_code_round_trips() {
        for e in RsmError::ALL {
            assert_eq!(RsmError::from_code(e.code()), Some(e));
        }
    }

    #[test]
    fn from_code_rejects_non_error_values() {
        for v in [0, -1, 46, 99, 135, i32::MIN, i32::MAX] {
            assert_eq!(RsmError::from_code(v), None, "{v}");
        }
        // Exhaustively over the neighbourhood: exactly the 80 codes are accepted.
        let accepted = (-1000..1000)
            .filter(|&v| RsmError::from_code(v).is_some())
            .count();
        assert_eq!(accepted, 80);
    }

    #[test]
    fn names_are_unique_and_codes_strictly_increasing() {
        for (i, a) in RsmError::ALL.iter().enumerate() {
            assert!(a.name().starts_with("RSMERR_"));
            assert!(!a.meaning().is_empty());
            for b in &RsmError::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a, b);
            }
        }
        for w in RsmError::ALL.windows(2) {
            assert!(w[0].code() < w[1].code(), "{:?} !< {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn display_format() {
        use core::fmt::Write;

        /// Fixed-size formatting buffer (rsm-core has no `alloc`).
        struct Buf {
            data: [u8; 128],
            len: usize,
        }
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.len + s.len();
                if end > self.data.len() {
                    return Err(fmt::Error);
                }
                self.data[self.len..end].copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        fn render(e: RsmError) -> Buf {
            let mut b = Buf {
                data: [0; 128],
                len: 0,
            };
            write!(b, "{e}").unwrap();
            b
        }

        let b = render(RsmError::BadCtlrHndl);
        assert_eq!(
            core::str::from_utf8(&b.data[..b.len]).unwrap(),
            "RSMERR_BAD_CTLR_HNDL (3): invalid controller handle"
        );
        let b = render(RsmError::QueueFull);
        assert_eq!(
            core::str::from_utf8(&b.data[..b.len]).unwrap(),
            "RSMERR_QUEUE_FULL (134): queue full"
        );
        // Every message fits and starts with the C name.
        for e in RsmError::ALL {
            let b = render(e);
            assert!(core::str::from_utf8(&b.data[..b.len])
                .unwrap()
                .starts_with(e.name()));
        }
    }

    #[test]
    fn is_a_core_error() {
        fn takes_error(_: &dyn core::error::Error) {}
        takes_error(&RsmError::Timeout);
    }
}
