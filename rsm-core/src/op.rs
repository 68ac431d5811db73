//! The operation table's entries: what a non-blocking operation is while it runs and after
//! it finished ([`OpSlot`]), its public id ([`OpId`]) and outcome ([`Completion`]). A leaf of
//! the module graph: the node's tables hold these, the layers that run operations use them.

use crate::error::RsmResult;

/// Identifies a non-blocking operation until its completion is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub(crate) u64);

impl OpId {
    pub(crate) fn raw(self) -> u64 {
        self.0
    }
    pub(crate) fn from_raw(raw: u64) -> Self {
        OpId(raw)
    }
}

/// The outcome of a putv/getv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// `Ok(())` or the error the blocking call would return.
    pub result: RsmResult<()>,
    /// The `io_residual_count` the blocking call would write (see [`crate::sg`]).
    pub residual: u64,
}

pub(crate) enum OpSlot<R> {
    /// A same-node vector being copied.
    Running,
    /// Finished; the completion waits for [`Rsm::take_completion`].
    Done(Completion),
    /// A vector (or put/get) on a remote segment, driven by the engine.
    Remote(crate::proto::RemoteOp<R>),
    /// A remote connect waiting for its reply.
    Connect(crate::proto::ConnectOp),
    /// A finished remote get of [`Rsm::start_get`] with its bytes (length, data).
    GotData(Completion, usize, [u8; crate::proto::INLINE_MAX]),
    /// A finished connect, waiting for [`Rsm::take_connect`].
    Connected(RsmResult<crate::ImportHandle>),
}
