//! Generation-tagged, non-zero handles (spec §3.7, §9.7).
//!
//! A handle is a `u64` that packs, from the low bits up: the table index (16 bits), the slot's
//! generation (24 bits), the handle kind (8 bits) and the tag of the [`Rsm`](crate::Rsm)
//! instance that made it (16 bits). A freed slot gets a new generation, so a stale or
//! double-freed handle no longer matches; a handle of another kind or from another node
//! instance does not match either. The all-zero value is the C `NULL` handle and is never
//! handed out. A generation wraps after 2^24 − 1 reuses of one slot; a handle kept that long
//! past its free could alias a new one (documented limit, as with any finite tag).

use core::sync::atomic::{AtomicU16, Ordering};

/// The kinds of handle; part of the encoding so that a handle of one kind passed where another
/// is expected is rejected (spec §9.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Controller = 1,
    LocalMem = 2,
    Export = 3,
    Import = 4,
    /// A non-blocking operation id (not an RSMAPI handle).
    Op = 5,
}

/// Largest generation value; generations run 1..=GEN_MAX and then wrap to 1.
pub(crate) const GEN_MAX: u32 = (1 << 24) - 1;

/// The decoded parts of a raw handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    pub(crate) instance: u16,
    pub(crate) kind: u8,
    pub(crate) gen: u32,
    pub(crate) index: u16,
}

pub(crate) const fn encode(instance: u16, kind: Kind, gen: u32, index: u16) -> u64 {
    ((instance as u64) << 48)
        | ((kind as u64) << 40)
        | (((gen & GEN_MAX) as u64) << 16)
        | index as u64
}

pub(crate) const fn decode(raw: u64) -> Parts {
    Parts {
        instance: (raw >> 48) as u16,
        kind: (raw >> 40) as u8,
        gen: ((raw >> 16) as u32) & GEN_MAX,
        index: raw as u16,
    }
}

static NEXT_INSTANCE: AtomicU16 = AtomicU16::new(1);

/// A fresh, non-zero instance tag (wraps after 65535 instances, skipping 0).
pub(crate) fn next_instance() -> u16 {
    loop {
        let t = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        if t != 0 {
            return t;
        }
    }
}

macro_rules! handle_type {
    ($(#[$doc:meta])* $name:ident, $c:literal) => {
        $(#[$doc])*
        ///
        /// `Copy` and pointer-sized. [`Self::NULL`] (all zero) is the C `NULL` handle; the API
        #[doc = concat!("never returns it and rejects it like any other invalid `", $c, "`.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// The C `NULL` handle: never valid.
            pub const NULL: Self = Self(0);

            /// Rebuild a handle from its raw value (e.g. from a C caller). Any value is accepted;
            /// an invalid one is rejected by the API with the spec's error code.
            pub const fn from_raw(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw value, for a C layer or logging.
            pub const fn into_raw(self) -> u64 {
                self.0
            }

            /// `true` for the `NULL` handle.
            pub const fn is_null(self) -> bool {
                self.0 == 0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}

handle_type!(
    /// A controller handle (`rsmapi_controller_handle_t`), from
    /// [`Rsm::get_controller`](crate::Rsm::get_controller).
    ControllerHandle, "rsmapi_controller_handle_t"
);
handle_type!(
    /// A local memory handle (`rsm_localmemory_handle_t`), from
    /// [`Rsm::create_localmemory_handle`](crate::Rsm::create_localmemory_handle).
    LocalMemHandle, "rsm_localmemory_handle_t"
);
handle_type!(
    /// An export segment handle (`rsm_memseg_export_handle_t`), from
    /// [`Rsm::export_create`](crate::Rsm::export_create).
    ExportHandle, "rsm_memseg_export_handle_t"
);
handle_type!(
    /// An import segment handle (`rsm_memseg_import_handle_t`), from
    /// [`Rsm::import_connect`](crate::Rsm::import_connect).
    ImportHandle, "rsm_memseg_import_handle_t"
);

/// Either kind of segment handle, for the calls that take both (C's `void *memseg`:
/// `rsm_intr_signal_post`, `rsm_intr_signal_wait`, `rsm_memseg_get_pollfd`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentRef {
    /// An import segment.
    Import(ImportHandle),
    /// An export segment.
    Export(ExportHandle),
}

impl SegmentRef {
    /// Classify a raw handle value by its kind bits (for a C caller's `void *`). A value that
    /// is neither kind becomes an `Import` that no lookup accepts (`RSMERR_BAD_SEG_HNDL`).
    pub const fn from_raw(raw: u64) -> Self {
        if decode(raw).kind == Kind::Export as u8 {
            SegmentRef::Export(ExportHandle::from_raw(raw))
        } else {
            SegmentRef::Import(ImportHandle::from_raw(raw))
        }
    }

    /// The raw handle value.
    pub const fn into_raw(self) -> u64 {
        match self {
            SegmentRef::Import(h) => h.into_raw(),
            SegmentRef::Export(h) => h.into_raw(),
        }
    }
}

impl From<ImportHandle> for SegmentRef {
    fn from(h: ImportHandle) -> Self {
        SegmentRef::Import(h)
    }
}

impl From<ExportHandle> for SegmentRef {
    fn from(h: ExportHandle) -> Self {
        SegmentRef::Export(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let raw = encode(0xBEEF, Kind::Import, 0x12_3456, 0xFFFE);
        assert_eq!(
            decode(raw),
            Parts {
                instance: 0xBEEF,
                kind: Kind::Import as u8,
                gen: 0x12_3456,
                index: 0xFFFE
            }
        );
        assert_ne!(encode(1, Kind::Controller, 1, 0), 0);
    }

    #[test]
    fn instances_are_distinct_and_non_zero() {
        let a = next_instance();
        let b = next_instance();
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_ne!(b, 0);
    }
}
