//! `user_data` layout: every submission names its connection slot, the slot's generation and
//! the operation, so a completion that arrives after its slot was freed and reused is
//! recognised (generation mismatch) and dropped instead of being applied to a stranger.
//!
//! ```text
//!  63      56 55                    32 31                              0
//! +----------+------------------------+--------------------------------+
//! |  op tag  |  generation (24 bits)  |        slab key (32 bits)      |
//! +----------+------------------------+--------------------------------+
//! ```
//! Worker-internal operations (accept, wake-ups) use tags that have no connection.

/// The operation a completion belongs to; named after the kernel operation it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// IORING_OP_ACCEPT, multishot, on one of the worker's listeners (io_uring_prep_multishot_accept(3));
    /// the key is the listener's index.
    Accept = 1,
    /// IORING_OP_READ of the worker's eventfd (shutdown requests from the main thread).
    EventRead = 3,
    /// IORING_OP_RECV into a slot's receive buffer.
    Recv = 10,
    /// IORING_OP_SEND of bytes a slot owns (a response head, a short body).
    Send = 11,
    /// IORING_OP_SPLICE file → pipe (io_uring_prep_splice(3)).
    SpliceIn = 12,
    /// IORING_OP_SPLICE pipe → socket.
    SpliceOut = 13,
    /// IORING_OP_POLL_ADD waiting for POLLOUT before the next non-blocking send.
    PollOut = 14,
    /// IORING_OP_SENDMSG of iovecs over shared, refcounted memory the slot holds.
    SendMsg = 15,
    /// IORING_OP_MSG_RING sent to another worker's ring (the key names the target worker).
    MsgRingSent = 17,
    /// A MSG_RING posted into this ring by another worker: its mailbox has commands.
    Doorbell = 18,
    /// IORING_OP_OPENAT2 (io_uring_prep_openat2(3)) beneath a directory fd; a non-negative
    /// result is a new descriptor, handed over in [`super::driver::Completion::fd`].
    OpenAt2 = 19,
    /// IORING_OP_STATX (io_uring_prep_statx(3)) into a buffer the slot owns.
    Statx = 20,
    /// IORING_OP_TIMEOUT linked in front of another operation, to delay it (test builds'
    /// fault injection only).
    Timeout = 21,
    /// IORING_OP_CONNECT (io_uring_prep_connect(3)) of an outbound socket to an address the
    /// slot owns ([`super::ops::ConnectAddr`]).
    Connect = 22,
    /// IORING_OP_CLOSE of a released slot's socket (a worker operation: the slot is gone).
    Close = 23,
}

/// Which in-flight count of a slot an operation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Receive,
    Transmit,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Accept,
            3 => Op::EventRead,
            10 => Op::Recv,
            11 => Op::Send,
            12 => Op::SpliceIn,
            13 => Op::SpliceOut,
            14 => Op::PollOut,
            15 => Op::SendMsg,
            17 => Op::MsgRingSent,
            18 => Op::Doorbell,
            19 => Op::OpenAt2,
            20 => Op::Statx,
            21 => Op::Timeout,
            22 => Op::Connect,
            23 => Op::Close,
            _ => return None,
        })
    }

    /// Receives count on the receive side; everything that produces output (sends, splices,
    /// the poll that waits to send, and the open and stat of the file a response is about
    /// to send) on the transmit side.
    pub fn direction(self) -> Direction {
        match self {
            Op::Recv | Op::Accept | Op::EventRead | Op::Doorbell => Direction::Receive,
            Op::Send
            | Op::SpliceIn
            | Op::SpliceOut
            | Op::PollOut
            | Op::SendMsg
            | Op::MsgRingSent
            | Op::OpenAt2
            | Op::Statx
            | Op::Timeout
            | Op::Connect
            | Op::Close => Direction::Transmit,
        }
    }

    /// Whether a non-negative result of this operation is a new file descriptor (which the
    /// driver wraps in an `OwnedFd` as it reaps, so no completion can leak one).
    pub fn yields_fd(self) -> bool {
        matches!(self, Op::Accept | Op::OpenAt2)
    }
}

const GEN_MASK: u32 = 0x00ff_ffff;

/// Decoded `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserData {
    pub op: Op,
    pub generation: u32,
    pub key: u32,
}

impl UserData {
    pub fn new(op: Op, key: usize, generation: u32) -> UserData {
        UserData {
            op,
            generation: generation & GEN_MASK,
            key: key as u32,
        }
    }

    /// An operation that belongs to no connection.
    pub fn worker(op: Op) -> UserData {
        UserData {
            op,
            generation: 0,
            key: u32::MAX,
        }
    }

    pub fn encode(self) -> u64 {
        (u64::from(self.op as u8) << 56)
            | (u64::from(self.generation & GEN_MASK) << 32)
            | u64::from(self.key)
    }

    pub fn decode(raw: u64) -> Option<UserData> {
        let op = Op::from_u8((raw >> 56) as u8)?;
        Some(UserData {
            op,
            generation: ((raw >> 32) as u32) & GEN_MASK,
            key: raw as u32,
        })
    }
}

/// Generations wrap inside 24 bits.
pub fn next_generation(generation: u32) -> u32 {
    generation.wrapping_add(1) & GEN_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for op in [
            Op::Accept,
            Op::Recv,
            Op::SpliceOut,
            Op::Doorbell,
            Op::OpenAt2,
            Op::Statx,
            Op::Timeout,
            Op::Connect,
            Op::Close,
        ] {
            let ud = UserData::new(op, 123_456, 0x00ab_cdef);
            assert_eq!(UserData::decode(ud.encode()), Some(ud));
        }
        let ud = UserData::new(Op::Send, u32::MAX as usize, 0xffff_ffff);
        assert_eq!(UserData::decode(ud.encode()).unwrap().generation, GEN_MASK);
        assert_eq!(UserData::decode(0), None);
        assert_eq!(next_generation(GEN_MASK), 0);
    }

    #[test]
    fn opens_and_stats_count_on_the_transmit_side_and_only_opens_yield_fds() {
        for op in [Op::OpenAt2, Op::Statx, Op::Timeout, Op::Connect] {
            assert_eq!(op.direction(), Direction::Transmit);
        }
        assert!(Op::OpenAt2.yields_fd() && Op::Accept.yields_fd());
        assert!(!Op::Statx.yields_fd() && !Op::Recv.yields_fd() && !Op::EventRead.yields_fd());
        assert!(!Op::Connect.yields_fd());
    }
}
