//! RTMP server side, sans-IO: bytes in ([`ServerSession::receive`]), events and bytes out
//! ([`ServerSession::poll_event`], [`ServerSession::take_output`]); no sockets, no clock.
//!
//! # Why it is written here
//! The crate survey (shared/crates.md) found no maintained sans-IO RTMP crate that fits: the
//! sans-IO ones allocate a `Vec` per call, read the system clock inside, lack Enhanced RTMP
//! or play, or pin old RustCrypto versions; the others are tied to tokio. What we need is
//! narrow and well known (Adobe RTMP 1.0 spec, plus what ffmpeg, librtmp, GStreamer, OBS,
//! nginx-rtmp and SRS do in practice), and the one expensive step, the copy of a media payload
//! into the buffer the server's ring entry is built in, has to be under our control (see
//! [`ServerSession::set_media_room`]). The handshake digest uses RustCrypto `hmac` + `sha2`.
//!
//! # Layout
//! - [`handshake`]: C0/C1/C2 → S0/S1/S2, plain and digest (FP9) forms.
//! - [`chunk`]: the chunk stream decoder (bounded by [`RtmpLimits`]) and encoder.
//! - [`message`]: message type ids, protocol control and user control messages, aggregates.
//! - [`command`]: AMF0 (and AMF3-wrapped) command messages decoded into typed commands.
//! - [`session`]: [`ServerSession`], which ties them together and writes the replies clients
//!   expect.
//! - [`fuzzing`]: the bodies of the cargo-fuzz targets, also run on stable by the unit tests.
//!
//! # Driving a session
//! 1. [`ServerSession::receive`] with every received byte, in order, in any split.
//! 2. [`ServerSession::poll_event`] until `None`; answer each `Connect`/`Publish`/`Play` with
//!    the matching `accept_*`/`reject_*` (in any order and at any later time: replies to
//!    later requests wait in order behind an unanswered one).
//! 3. [`ServerSession::take_output`] and send the bytes whole, between whole media messages.
//!
//! After an error the session is dead: disconnect and count [`RtmpError::reason`].
//!
//! # Checked against real clients
//! Besides the replayed captures (tests/captures/rtmp/README.md), a throwaway std-TCP driver
//! (not kept) ran this session against real clients on 2026-11-26: ffmpeg 5.1 playing (digest
//! handshake, which ffmpeg verifies as a player; 30 frames decoded from media framed with
//! [`write_message_header`]), rtmpdump and GStreamer `rtmp2src` playing, and ffmpeg, GStreamer
//! `rtmp2sink` and `rtmpsink` publishing (all media received, clean unpublish).

pub mod chunk;
pub mod command;
mod error;
pub mod fuzzing;
pub mod handshake;
pub mod message;
mod session;
#[cfg(test)]
mod tests;

pub use chunk::{ChunkDecoder, ChunkEncoder, Message};
pub use error::{ErrorKind, RtmpError};
pub use handshake::{Handshake, HandshakeKind};
pub use session::{Event, MediaMessage, PublishMode, ServerSession};

/// Bounds on what a peer can make one connection hold, and the sizes we announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtmpLimits {
    /// Largest Set Chunk Size accepted from the peer. Default `0xFF_FFFF`: a message is at most
    /// `0xFF_FFFF` bytes long, so every bigger size means the same (one chunk per message) and
    /// is treated as `0xFF_FFFF` before this check. 0 and values with bit 31 set are always
    /// errors (`chunk_size`).
    pub chunk_size_max: u32,
    /// Largest message (any type) accepted; checked on the message header, before any of its
    /// payload is buffered (`message_too_large`). Default 8 MiB.
    pub message_bytes_max: u32,
    /// Total bytes the session holds for the peer (`buffered_too_large` beyond it): the
    /// capacity of every incomplete message over all chunk streams, events not yet polled and
    /// replies waiting behind an unanswered decision. Default 12 MiB.
    ///
    /// A message buffer is reserved at its full declared size (so the payload is copied once,
    /// with no reallocation) only while that reservation fits in this budget; past it, buffers
    /// grow with the bytes that actually arrive, never by the declared length. A 1-byte-chunk
    /// flood claiming 64 × 8 MiB messages therefore costs one reservation that fits plus what
    /// it sends. (Large reservations are mmap'd by the allocator, so their pages are only
    /// committed as payload is written.)
    pub buffered_bytes_max: u32,
    /// Distinct chunk stream ids a connection may use (`chunk_streams`). Default 64.
    pub chunk_streams_max: u32,
    /// Message streams a connection may create with `createStream` (`message_streams`).
    /// Default 8 (an encoder uses one, a player one per play).
    pub message_streams_max: u32,
    /// The Window Acknowledgement Size we announce and the Set Peer Bandwidth we send; also the
    /// window we acknowledge on until the peer announces its own. 0 disables our
    /// acknowledgements. Default 2_500_000.
    pub ack_window: u32,
    /// The Set Chunk Size we send in [`ServerSession::accept_connect`]. Default `0xFF_FFFF`,
    /// so every message we (and the server's media framer) send is one chunk: see
    /// [`write_message_header`].
    pub out_chunk_size: u32,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        Self {
            chunk_size_max: 0xFF_FFFF,
            message_bytes_max: 8 * 1024 * 1024,
            buffered_bytes_max: 12 * 1024 * 1024,
            chunk_streams_max: 64,
            message_streams_max: 8,
            ack_window: 2_500_000,
            out_chunk_size: 0xFF_FFFF,
        }
    }
}

/// Chunk stream ids the server sends on. All below 64, so the basic header is one byte.
pub mod csid {
    /// Protocol control messages (Set Chunk Size, acknowledgements, user control): fixed by
    /// the spec.
    pub const CONTROL: u32 = 2;
    /// Command messages (`_result`, `onStatus`, ...).
    pub const COMMAND: u32 = 3;
    /// Data messages (`onMetaData`, `|RtmpSampleAccess`), as nginx-rtmp.
    pub const DATA: u32 = 5;
    /// Audio messages, as nginx-rtmp.
    pub const AUDIO: u32 = 6;
    /// Video messages, as nginx-rtmp.
    pub const VIDEO: u32 = 7;
}

/// The stream id `createStream` answers first (then 2, 3, ...). The server sends play media on
/// the stream id the play came on.
pub const MEDIA_STREAM_ID: u32 = 1;

/// Longest header [`write_message_header`] writes: 1 (basic) + 11 (type 0) + 4 (extended
/// timestamp).
pub const MESSAGE_HEADER_MAX: usize = 16;

/// Writes the type-0 chunk header of a message sent as ONE chunk, with the 4-byte extended
/// timestamp when `timestamp_ms >= 0xFF_FFFF`; returns its length (12 or 16).
///
/// One chunk is valid because [`ServerSession::accept_connect`] announced
/// [`RtmpLimits::out_chunk_size`], which must be at least `len`. Type 0 every time keeps the
/// framer free of per-connection header state: the session's own replies also use type 0, so
/// interleaving them with media never leaves the peer with stale header state.
///
/// # Panics
/// If `csid` is not in `2..64` (a one-byte basic header) or `len > 0xFF_FFFF`: both are
/// programming errors, the caller picks them from [`csid`] and its own limits.
pub fn write_message_header(
    csid: u32,
    msg_type: u8,
    timestamp_ms: u32,
    len: u32,
    stream_id: u32,
    out: &mut [u8; MESSAGE_HEADER_MAX],
) -> usize {
    assert!(
        (2..64).contains(&csid),
        "csid {csid} needs a one-byte basic header"
    );
    assert!(len <= 0xFF_FFFF, "message of {len} bytes cannot be framed");
    let extended = timestamp_ms >= 0xFF_FFFF;
    let field = if extended { 0xFF_FFFF } else { timestamp_ms };
    out[0] = csid as u8;
    out[1..4].copy_from_slice(&field.to_be_bytes()[1..]);
    out[4..7].copy_from_slice(&len.to_be_bytes()[1..]);
    out[7] = msg_type;
    out[8..12].copy_from_slice(&stream_id.to_le_bytes());
    if extended {
        out[12..16].copy_from_slice(&timestamp_ms.to_be_bytes());
        16
    } else {
        12
    }
}
