//! RSMAPI scalar types, constants, flags, enumerations, limits and plain structs
//! (spec §2.1 and §2.3–§2.8, §3.3, §3.4).
//!
//! Raw constants keep their exact C names and values so that code ported from C reads the
//! same; the typed wrappers ([`Permission`], [`CreateFlags`], [`MapAttr`], …) are what the
//! Rust API takes.

use bitflags::bitflags;

// ---------------------------------------------------------------------------------------------
// §2.1 Scalar types
// ---------------------------------------------------------------------------------------------

/// A cluster node identifier (`rsm_node_id_t`, `uint32_t`; spec §2.1).
pub type NodeId = u32;

/// A segment identifier, unique per exporting node (`rsm_memseg_id_t`, `uint32_t`; spec §2.1).
pub type SegmentId = u32;

/// The page size used for every alignment check and reported in
/// [`ControllerAttr::attr_page_size`] for every controller (spec §2.7, §9.5).
pub use rsm_hal::PAGE_SIZE;

// ---------------------------------------------------------------------------------------------
// §2.3 Segment-ID ranges
// ---------------------------------------------------------------------------------------------

/// First segment id reserved for interconnect drivers (spec §2.3).
pub const RSM_DRIVER_PRIVATE_ID_BASE: u32 = 0x0000_0000;
/// Last segment id reserved for interconnect drivers (spec §2.3).
pub const RSM_DRIVER_PRIVATE_ID_END: u32 = 0x000F_FFFF;

/// First segment id reserved for the cluster transport (spec §2.3).
pub const RSM_CLUSTER_TRANSPORT_ID_BASE: u32 = 0x0010_0000;
/// Last segment id reserved for the cluster transport (spec §2.3).
pub const RSM_CLUSTER_TRANSPORT_ID_END: u32 = 0x001F_FFFF;

/// First segment id reserved for the base and NDI libraries (spec §2.3).
pub const RSM_RSMLIB_ID_BASE: u32 = 0x0020_0000;
/// Last segment id reserved for the base and NDI libraries (spec §2.3).
pub const RSM_RSMLIB_ID_END: u32 = 0x002F_FFFF;

/// First segment id reserved for DLPI (spec §2.3).
pub const RSM_DLPI_ID_BASE: u32 = 0x0030_0000;
/// Last segment id reserved for DLPI (spec §2.3).
pub const RSM_DLPI_ID_END: u32 = 0x003F_FFFF;

/// First segment id of the HPC range, usable by applications (spec §2.3).
pub const RSM_HPC_ID_BASE: u32 = 0x0040_0000;
/// Last segment id of the HPC range, usable by applications (spec §2.3).
pub const RSM_HPC_ID_END: u32 = 0x004F_FFFF;

/// First segment id of the OPS range, usable by applications (spec §2.3).
pub const RSM_OPS_ID_BASE: u32 = 0x0050_0000;
/// Last segment id of the OPS range, usable by applications (spec §2.3).
pub const RSM_OPS_ID_END: u32 = 0x005F_FFFF;

/// First system-assigned segment id: publishing with id 0 assigns ids from here upward
/// (spec §2.3, §9.15). Callers may not request ids in this range themselves.
pub const RSM_USER_APP_ID_BASE: u32 = 0x8000_0000;
/// Last system-assigned segment id (spec §2.3).
pub const RSM_USER_APP_ID_END: u32 = 0xFFFF_FFFF;

/// Lowest segment id a caller may request on publish (spec §9.15).
///
/// rsm-rs policy: a caller-supplied id must lie in
/// `FIRST_USER_SEGID..=LAST_USER_SEGID` (0x400000..=0x7FFFFFFF), otherwise publish fails with
/// `RSMERR_RESERVED_SEGID`; id 0 asks for an automatic id, assigned from
/// [`RSM_USER_APP_ID_BASE`] (0x80000000) upward.
pub const FIRST_USER_SEGID: u32 = 0x0040_0000;
/// Highest segment id a caller may request on publish (spec §9.15); see [`FIRST_USER_SEGID`].
pub const LAST_USER_SEGID: u32 = 0x7FFF_FFFF;

// ---------------------------------------------------------------------------------------------
// §2.4 Permissions
// ---------------------------------------------------------------------------------------------

/// No access (`RSM_PERM_NONE`, spec §2.4).
pub const RSM_PERM_NONE: u32 = 0;
/// Read access requested on connect / map (`RSM_PERM_READ`, octal 0400, spec §2.4).
pub const RSM_PERM_READ: u32 = 0o400;
/// Write access requested on connect / map (`RSM_PERM_WRITE`, octal 0200, spec §2.4).
pub const RSM_PERM_WRITE: u32 = 0o200;
/// Read and write access, `RSM_PERM_READ | RSM_PERM_WRITE` (octal 0600, spec §2.4).
pub const RSM_PERM_RDWR: u32 = 0o600;

/// Read permission expanded to owner, group and other (KA-internal, octal 0444, spec §2.4).
pub const RSM_ACCESS_READ: u32 = 0o444;
/// Write permission expanded to owner, group and other (KA-internal, octal 0222, spec §2.4).
pub const RSM_ACCESS_WRITE: u32 = 0o222;
/// Read and write for owner, group and other: the maximum ACL permission (KA-internal,
/// octal 0666, spec §2.4).
pub const RSM_ACCESS_TRUSTED: u32 = 0o666;

bitflags! {
    /// The permission requested when connecting to or mapping an import segment
    /// (`rsm_permission_t`, spec §2.4).
    ///
    /// Unknown bits are kept (build them with [`Permission::from_bits_retain`], e.g.
    /// `Permission::from_bits_retain(0o700)`) so that `rsm-core` can validate raw caller
    /// values and report the spec's error code instead of silently dropping bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Permission: u32 {
        /// Read access ([`RSM_PERM_READ`], octal 0400).
        const READ = 0o400;
        /// Write access ([`RSM_PERM_WRITE`], octal 0200).
        const WRITE = 0o200;
        /// Read and write access ([`RSM_PERM_RDWR`], octal 0600).
        const RDWR = 0o600;
    }
}

// ---------------------------------------------------------------------------------------------
// §2.5 Flags
// ---------------------------------------------------------------------------------------------

/// `rsm_memseg_export_create` flag: the segment may later be rebound (spec §2.5).
pub const RSM_ALLOW_REBIND: u32 = 0x01;
/// `rsm_memseg_export_create` flag: create/publish must not block for resources but fail
/// with `RSMERR_INSUFFICIENT_RESOURCES` (spec §2.5).
pub const RSM_CREATE_SEG_DONTWAIT: u32 = 0x02;

bitflags! {
    /// Flags of `rsm_memseg_export_create` (spec §2.5).
    ///
    /// Other bits are ignored, as illumos does; the documented `RSM_LOCK_OPS` is not defined
    /// (spec §9.25).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CreateFlags: u32 {
        /// The segment may later be rebound ([`RSM_ALLOW_REBIND`]).
        const ALLOW_REBIND = 0x01;
        /// Do not block for resources ([`RSM_CREATE_SEG_DONTWAIT`]).
        const CREATE_SEG_DONTWAIT = 0x02;
    }
}

/// `rsm_scat_gath_t.flags`: post a signal to the exporter after the whole vector succeeded
/// (spec §2.5, §9.28).
pub const RSM_IMPLICIT_SIGPOST: u32 = 0x01;
/// `rsm_intr_signal_post` flag (may also be OR-ed into `rsm_scat_gath_t.flags`): do not add
/// an event if one is already pending at the target (spec §2.5, §9.3).
pub const RSM_SIGPOST_NO_ACCUMULATE: u32 = 0x02;
/// Man-page spelling of [`RSM_SIGPOST_NO_ACCUMULATE`] (putv man page; spec §2.5, §9.4).
pub const RSM_SIG_POST_NO_ACCUMULATE: u32 = RSM_SIGPOST_NO_ACCUMULATE;

bitflags! {
    /// Flags of a scatter-gather request (`rsm_scat_gath_t.flags`, spec §2.5, §3.2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SgFlags: u32 {
        /// Signal the exporter once the whole vector succeeded ([`RSM_IMPLICIT_SIGPOST`]).
        const IMPLICIT_SIGPOST = 0x01;
        /// The implicit signal does not accumulate ([`RSM_SIGPOST_NO_ACCUMULATE`]).
        const SIGPOST_NO_ACCUMULATE = 0x02;
    }
}

bitflags! {
    /// Flags of `rsm_intr_signal_post` (spec §2.5, §4.9).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SigpostFlags: u32 {
        /// Drop the event if one is already pending at the target
        /// ([`RSM_SIGPOST_NO_ACCUMULATE`], spec §9.3).
        const NO_ACCUMULATE = 0x02;
    }
}

/// `rsm_iovec_t.io_type`: the local side is a local memory handle (spec §2.5, §3.1).
pub const RSM_HANDLE_TYPE: i32 = 1;
/// `rsm_iovec_t.io_type`: the local side is a virtual address (spec §2.5, §3.1).
pub const RSM_VA_TYPE: i32 = 2;

// ---------------------------------------------------------------------------------------------
// §2.6 Enumerations
// ---------------------------------------------------------------------------------------------

/// `rsm_attribute_t` value `RSM_MAP_NONE` (spec §2.6).
pub const RSM_MAP_NONE: u32 = 0x0;
/// `rsm_attribute_t` value `RSM_MAP_FIXED` (spec §2.6).
pub const RSM_MAP_FIXED: u32 = 0x1;
/// `rsm_attribute_t` value `RSM_MAP_RESERVED` (spec §2.6).
pub const RSM_MAP_RESERVED: u32 = 0x2;

/// Mapping attribute of `rsm_memseg_import_map` (`rsm_attribute_t`, spec §2.6, §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum MapAttr {
    /// Let the system choose the address ([`RSM_MAP_NONE`]).
    #[default]
    None = 0,
    /// Map at exactly the given address ([`RSM_MAP_FIXED`]).
    Fixed = 1,
    /// [`RSM_MAP_RESERVED`]; ignored by the implementation (spec §2.6).
    Reserved = 2,
}

impl MapAttr {
    /// The attribute for a raw C value, or `None` if it is not one of §2.6.
    #[must_use]
    pub const fn from_raw(v: u32) -> Option<MapAttr> {
        match v {
            RSM_MAP_NONE => Some(MapAttr::None),
            RSM_MAP_FIXED => Some(MapAttr::Fixed),
            RSM_MAP_RESERVED => Some(MapAttr::Reserved),
            _ => None,
        }
    }
}

/// `rsm_access_size_t` value `RSM_DAS8`: 1-byte accesses (spec §2.6).
pub const RSM_DAS8: u32 = 1;
/// `rsm_access_size_t` value `RSM_DAS16`: 2-byte accesses (spec §2.6).
pub const RSM_DAS16: u32 = 2;
/// `rsm_access_size_t` value `RSM_DAS32`: 4-byte accesses (spec §2.6).
pub const RSM_DAS32: u32 = 4;
/// `rsm_access_size_t` value `RSM_DAS64`: 8-byte accesses (spec §2.6).
pub const RSM_DAS64: u32 = 8;

/// Access width (`rsm_access_size_t`, spec §2.6). The value is both the width in bytes (and
/// the alignment put/get require) and the bit used in
/// [`ControllerAttr::attr_direct_access_sizes`] / [`ControllerAttr::attr_atomic_sizes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum AccessSize {
    /// 8-bit accesses ([`RSM_DAS8`]).
    Das8 = 1,
    /// 16-bit accesses ([`RSM_DAS16`]).
    Das16 = 2,
    /// 32-bit accesses ([`RSM_DAS32`]).
    Das32 = 4,
    /// 64-bit accesses ([`RSM_DAS64`]).
    Das64 = 8,
}

impl AccessSize {
    /// Width of one access in bytes (1, 2, 4 or 8).
    #[must_use]
    pub const fn bytes(self) -> usize {
        self as usize
    }

    /// The access size for a raw C value, or `None` if it is not one of §2.6.
    #[must_use]
    pub const fn from_raw(v: u32) -> Option<AccessSize> {
        match v {
            RSM_DAS8 => Some(AccessSize::Das8),
            RSM_DAS16 => Some(AccessSize::Das16),
            RSM_DAS32 => Some(AccessSize::Das32),
            RSM_DAS64 => Some(AccessSize::Das64),
            _ => None,
        }
    }
}

/// `rsm_barrier_type_t` value `RSM_BARRIER_SEGMENT` (spec §2.6).
pub const RSM_BARRIER_SEGMENT: u32 = 0x01;
/// `rsm_barrier_type_t` value `RSM_BARRIER_NODE` (spec §2.6).
pub const RSM_BARRIER_NODE: u32 = 0x02;
/// `rsm_barrier_type_t` value `RSM_BARRIER_SEGMENT_THREAD` (spec §2.6).
pub const RSM_BARRIER_SEGMENT_THREAD: u32 = 0x11;
/// `rsm_barrier_type_t` value `RSM_BARRIER_NODE_THREAD` (spec §2.6).
pub const RSM_BARRIER_NODE_THREAD: u32 = 0x12;

/// Barrier type passed to `rsm_memseg_import_init_barrier` (`rsm_barrier_type_t`, spec §2.6).
///
/// Any value is accepted and ignored; every barrier is a segment-scope barrier (spec §9.24).
/// The documented `RSM_BAR_DEFAULT` does not exist in any header and is not defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BarrierType(pub u32);

impl BarrierType {
    /// `RSM_BARRIER_SEGMENT` (0x01).
    pub const SEGMENT: BarrierType = BarrierType(RSM_BARRIER_SEGMENT);
    /// `RSM_BARRIER_NODE` (0x02).
    pub const NODE: BarrierType = BarrierType(RSM_BARRIER_NODE);
    /// `RSM_BARRIER_SEGMENT_THREAD` (0x11).
    pub const SEGMENT_THREAD: BarrierType = BarrierType(RSM_BARRIER_SEGMENT_THREAD);
    /// `RSM_BARRIER_NODE_THREAD` (0x12).
    pub const NODE_THREAD: BarrierType = BarrierType(RSM_BARRIER_NODE_THREAD);
}

/// `rsm_barrier_mode_t` value `RSM_BARRIER_MODE_EXPLICIT` (spec §2.6).
pub const RSM_BARRIER_MODE_EXPLICIT: u32 = 0;
/// `rsm_barrier_mode_t` value `RSM_BARRIER_MODE_IMPLICIT` (spec §2.6).
pub const RSM_BARRIER_MODE_IMPLICIT: u32 = 1;

/// Barrier mode of an import segment (`rsm_barrier_mode_t`, spec §2.6, §4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum BarrierMode {
    /// The application opens and closes barriers itself ([`RSM_BARRIER_MODE_EXPLICIT`]).
    Explicit = 0,
    /// Each put/get (and each putv/getv entry) runs in its own barrier scope
    /// ([`RSM_BARRIER_MODE_IMPLICIT`]); the default for new import segments (spec §2.6).
    #[default]
    Implicit = 1,
}

impl BarrierMode {
    /// The mode for a raw C value, or `None` if it is neither 0 nor 1 (the caller reports
    /// `RSMERR_BAD_MODE`).
    #[must_use]
    pub const fn from_raw(v: u32) -> Option<BarrierMode> {
        match v {
            RSM_BARRIER_MODE_EXPLICIT => Some(BarrierMode::Explicit),
            RSM_BARRIER_MODE_IMPLICIT => Some(BarrierMode::Implicit),
            _ => None,
        }
    }
}

/// Topology `connection_state` of a usable connection (`RSM_CONNECTION_ACTIVE`; spec §2.6,
/// §3.6). Other path states: 1 down, 2 up, 4 going down.
pub const RSM_CONNECTION_ACTIVE: u32 = 3;

// ---------------------------------------------------------------------------------------------
// §2.7 Limits
// ---------------------------------------------------------------------------------------------

/// Maximum `io_request_count` of one putv/getv call; 0 is invalid too (spec §2.7).
pub const RSM_MAX_SGIOREQS: usize = 16;
/// Number of iovec entries illumos stages on the stack; internal, not an API limit
/// (spec §2.7).
pub const RSM_MAX_IOVLEN: usize = 4;
/// Local memory handles longer than this (8 KiB) are not pre-registered with the
/// interconnect driver (spec §2.7, §5).
pub const RSM_MAX_HANDLE_DVMA: usize = 0x2000;
/// Node-id limit of the KA: ACL node ids must be ≤ 64 (spec §2.7).
pub const MAX_NODES: u32 = 64;
/// Same limit as [`MAX_NODES`] under its other C name (spec §2.7).
pub const RSM_MAX_NODE: u32 = 64;
/// Maximum number of controllers per node (topology sizing; spec §2.7).
pub const RSM_MAX_CTRL: usize = 32;
/// Default maximum number of export + import segments (including local-memory-handle
/// surrogates) per node (`max-segments`; spec §2.7).
pub const RSM_MAX_NUM_SEG: usize = 4095;
/// Internal stack threshold for event lists in illumos (spec §2.7).
pub const RSM_MAX_POLLFDS: usize = 4;
/// Size of controller name buffers, including the terminating NUL (spec §2.7); names
/// longer than 255 bytes are not present (spec §9.22).
pub const MAXNAMELEN: usize = 256;
/// Maximum number of entries in an access list; longer lists are `RSMERR_BAD_ACL`
/// (rsm-rs name for the [`MAX_NODES`] limit; spec §2.7, §9.16).
pub const RSM_MAX_ACL_ENTRIES: usize = 64;
/// Largest valid `ae_permission` of an access-list entry ([`RSM_ACCESS_TRUSTED`], octal
/// 0666); larger values are `RSMERR_BAD_ACL` (rsm-rs name; spec §2.4, §9.16).
pub const RSM_MAX_ACL_PERMISSION: u32 = 0o666;

// ---------------------------------------------------------------------------------------------
// §2.8 Versions
// ---------------------------------------------------------------------------------------------

/// KA / wire protocol version (`RSM_VERSION`, spec §2.8).
pub const RSM_VERSION: u32 = 5;
/// Plugin interface version (`rsm_segops_t.rsm_version`, `RSM_LIB_VERSION`, spec §2.8).
pub const RSM_LIB_VERSION: u32 = 1;
/// Library function-table version (`RSM_LIB_FUNCS_VERSION`, spec §2.8).
pub const RSM_LIB_FUNCS_VERSION: u32 = 1;

// ---------------------------------------------------------------------------------------------
// §3.3 / §3.4 Structs
// ---------------------------------------------------------------------------------------------

/// One access-list entry of publish / republish (`rsmapi_access_entry_t`, spec §3.4).
///
/// `#[repr(C)]`: same layout as the C struct (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct AccessEntry {
    /// The node allowed access (node ids ≤ [`MAX_NODES`]).
    pub ae_node: NodeId,
    /// Three octal digits owner/group/other, each 2 = write, 4 = read, 6 = read+write
    /// (at most [`RSM_MAX_ACL_PERMISSION`], spec §2.4).
    pub ae_permission: u32,
}

impl AccessEntry {
    /// An entry granting `perm` (octal owner/group/other digits) to `node`.
    #[must_use]
    pub const fn new(node: NodeId, perm: u32) -> Self {
        AccessEntry {
            ae_node: node,
            ae_permission: perm,
        }
    }
}

/// Controller attributes returned by `rsm_get_controller_attr` (`rsmapi_controller_attr_t`,
/// spec §3.3).
///
/// `#[repr(C)]`: same layout as the C struct on LP64 (64 bytes). rsm-rs reports
/// [`PAGE_SIZE`] in `attr_page_size` for every controller, including loopback (spec §9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ControllerAttr {
    /// Bitmask of supported direct access sizes ([`RSM_DAS8`] | … | [`RSM_DAS64`]).
    pub attr_direct_access_sizes: u32,
    /// Bitmask of supported atomic access sizes ([`RSM_DAS8`] | … | [`RSM_DAS64`]).
    pub attr_atomic_sizes: u32,
    /// Page size, the alignment unit for export and map (bytes).
    pub attr_page_size: usize,
    /// Largest single export segment (bytes).
    pub attr_max_export_segment_size: usize,
    /// Total size of all export segments (bytes).
    pub attr_tot_export_segment_size: usize,
    /// Maximum number of export segments.
    pub attr_max_export_segments: u64,
    /// Largest single import mapping (bytes).
    pub attr_max_import_map_size: usize,
    /// Total size of all import mappings (bytes).
    pub attr_tot_import_map_size: usize,
    /// Maximum number of import segments.
    pub attr_max_import_segments: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `CONST == value` for each row, naming the constant on failure.
    macro_rules! spec_values {
        ($($name:ident = $value:expr),* $(,)?) => {
            $( assert_eq!($name, $value, stringify!($name)); )*
        };
    }

    #[test]
    fn constants_match_the_spec() {
        // Transcribed from spec §2.3–§2.8 (hex where the spec gives hex).
        spec_values! {
            RSM_DRIVER_PRIVATE_ID_BASE = 0x000000,
            RSM_DRIVER_PRIVATE_ID_END = 0x0FFFFF,
            RSM_CLUSTER_TRANSPORT_ID_BASE = 0x100000,
            RSM_CLUSTER_TRANSPORT_ID_END = 0x1FFFFF,
            RSM_RSMLIB_ID_BASE = 0x200000,
            RSM_RSMLIB_ID_END = 0x2FFFFF,
            RSM_DLPI_ID_BASE = 0x300000,
            RSM_DLPI_ID_END = 0x3FFFFF,
            RSM_HPC_ID_BASE = 0x400000,
            RSM_HPC_ID_END = 0x4FFFFF,
            RSM_OPS_ID_BASE = 0x500000,
            RSM_OPS_ID_END = 0x5FFFFF,
            RSM_USER_APP_ID_BASE = 0x80000000,
            RSM_USER_APP_ID_END = 0xFFFFFFFF,
            FIRST_USER_SEGID = 0x400000,
            LAST_USER_SEGID = 0x7FFFFFFF,
            RSM_PERM_NONE = 0,
            RSM_PERM_READ = 0x100,
            RSM_PERM_WRITE = 0x080,
            RSM_PERM_RDWR = 0x180,
            RSM_ACCESS_READ = 0x124,
            RSM_ACCESS_WRITE = 0x092,
            RSM_ACCESS_TRUSTED = 0x1B6,
            RSM_ALLOW_REBIND = 0x01,
            RSM_CREATE_SEG_DONTWAIT = 0x02,
            RSM_IMPLICIT_SIGPOST = 0x01,
            RSM_SIGPOST_NO_ACCUMULATE = 0x02,
            RSM_SIG_POST_NO_ACCUMULATE = 0x02,
            RSM_MAP_NONE = 0,
            RSM_MAP_FIXED = 1,
            RSM_MAP_RESERVED = 2,
            RSM_DAS8 = 1,
            RSM_DAS16 = 2,
            RSM_DAS32 = 4,
            RSM_DAS64 = 8,
            RSM_BARRIER_SEGMENT = 0x01,
            RSM_BARRIER_NODE = 0x02,
            RSM_BARRIER_SEGMENT_THREAD = 0x11,
            RSM_BARRIER_NODE_THREAD = 0x12,
            RSM_BARRIER_MODE_EXPLICIT = 0,
            RSM_BARRIER_MODE_IMPLICIT = 1,
            RSM_CONNECTION_ACTIVE = 3,
            MAX_NODES = 64,
            RSM_MAX_NODE = 64,
            RSM_MAX_ACL_PERMISSION = 0x1B6,
            RSM_VERSION = 5,
            RSM_LIB_VERSION = 1,
            RSM_LIB_FUNCS_VERSION = 1,
            PAGE_SIZE = 4096,
            RSM_MAX_SGIOREQS = 16,
            RSM_MAX_IOVLEN = 4,
            RSM_MAX_HANDLE_DVMA = 8192,
            RSM_MAX_CTRL = 32,
            RSM_MAX_NUM_SEG = 4095,
            RSM_MAX_POLLFDS = 4,
            MAXNAMELEN = 256,
            RSM_MAX_ACL_ENTRIES = 64,
            RSM_HANDLE_TYPE = 1,
            RSM_VA_TYPE = 2,
        }
    }

    #[test]
    fn segment_id_ranges_are_contiguous_and_policy_is_consistent() {
        let ranges = [
            (RSM_DRIVER_PRIVATE_ID_BASE, RSM_DRIVER_PRIVATE_ID_END),
            (RSM_CLUSTER_TRANSPORT_ID_BASE, RSM_CLUSTER_TRANSPORT_ID_END),
            (RSM_RSMLIB_ID_BASE, RSM_RSMLIB_ID_END),
            (RSM_DLPI_ID_BASE, RSM_DLPI_ID_END),
            (RSM_HPC_ID_BASE, RSM_HPC_ID_END),
            (RSM_OPS_ID_BASE, RSM_OPS_ID_END),
        ];
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        assert_eq!(FIRST_USER_SEGID, RSM_HPC_ID_BASE);
        assert_eq!(LAST_USER_SEGID + 1, RSM_USER_APP_ID_BASE);
    }

    #[test]
    fn permission_flags() {
        assert_eq!(Permission::READ.bits(), RSM_PERM_READ);
        assert_eq!(Permission::WRITE.bits(), RSM_PERM_WRITE);
        assert_eq!(Permission::RDWR.bits(), RSM_PERM_RDWR);
        assert_eq!(Permission::READ | Permission::WRITE, Permission::RDWR);
        assert_eq!(Permission::empty().bits(), RSM_PERM_NONE);
        // Unknown bits stay representable so rsm-core can reject them.
        let p = Permission::from_bits_retain(0o700);
        assert_eq!(p.bits(), 0o700);
        assert!(p.contains(Permission::RDWR));
        assert_ne!(p, Permission::RDWR);
        assert_eq!(Permission::from_bits(0o700), None);
        assert_eq!(RSM_PERM_READ | RSM_PERM_WRITE, RSM_PERM_RDWR);
        assert_eq!(RSM_ACCESS_READ | RSM_ACCESS_WRITE, RSM_ACCESS_TRUSTED);
    }

    #[test]
    fn flag_types() {
        assert_eq!(CreateFlags::ALLOW_REBIND.bits(), RSM_ALLOW_REBIND);
        assert_eq!(
            CreateFlags::CREATE_SEG_DONTWAIT.bits(),
            RSM_CREATE_SEG_DONTWAIT
        );
        assert_eq!(CreateFlags::from_bits_truncate(0xFF).bits(), 0x03);
        assert_eq!(SgFlags::IMPLICIT_SIGPOST.bits(), RSM_IMPLICIT_SIGPOST);
        assert_eq!(
            SgFlags::SIGPOST_NO_ACCUMULATE.bits(),
            RSM_SIGPOST_NO_ACCUMULATE
        );
        assert_eq!(
            SigpostFlags::NO_ACCUMULATE.bits(),
            RSM_SIGPOST_NO_ACCUMULATE
        );
    }

    #[test]
    fn enums() {
        assert_eq!(MapAttr::None as u32, 0);
        assert_eq!(MapAttr::Fixed as u32, 1);
        assert_eq!(MapAttr::Reserved as u32, 2);
        assert_eq!(MapAttr::default(), MapAttr::None);
        for m in [MapAttr::None, MapAttr::Fixed, MapAttr::Reserved] {
            assert_eq!(MapAttr::from_raw(m as u32), Some(m));
        }
        assert_eq!(MapAttr::from_raw(3), None);

        let sizes = [
            (AccessSize::Das8, 1),
            (AccessSize::Das16, 2),
            (AccessSize::Das32, 4),
            (AccessSize::Das64, 8),
        ];
        for (s, n) in sizes {
            assert_eq!(s.bytes(), n);
            assert_eq!(s as u32, n as u32);
            assert_eq!(AccessSize::from_raw(n as u32), Some(s));
        }
        for v in [0, 3, 5, 6, 7, 9, 16] {
            assert_eq!(AccessSize::from_raw(v), None);
        }

        assert_eq!(BarrierType::SEGMENT.0, 0x01);
        assert_eq!(BarrierType::NODE.0, 0x02);
        assert_eq!(BarrierType::SEGMENT_THREAD.0, 0x11);
        assert_eq!(BarrierType::NODE_THREAD.0, 0x12);

        assert_eq!(BarrierMode::Explicit as u32, 0);
        assert_eq!(BarrierMode::Implicit as u32, 1);
        assert_eq!(BarrierMode::default(), BarrierMode::Implicit);
        assert_eq!(BarrierMode::from_raw(0), Some(BarrierMode::Explicit));
        assert_eq!(BarrierMode::from_raw(1), Some(BarrierMode::Implicit));
        assert_eq!(BarrierMode::from_raw(2), None);
        assert_eq!(BarrierMode::from_raw(u32::MAX), None);
    }

    #[test]
    fn structs() {
        let e = AccessEntry::new(3, 0o624);
        assert_eq!(e.ae_node, 3);
        assert_eq!(e.ae_permission, 0o624);
        assert_eq!(AccessEntry::default(), AccessEntry::new(0, 0));
        assert_eq!(core::mem::size_of::<AccessEntry>(), 8);

        let a = ControllerAttr::default();
        assert_eq!(a.attr_page_size, 0);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(core::mem::size_of::<ControllerAttr>(), 64);
    }
}
