//! Per-connection state owned by one worker's slab.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::pipe::Pipe;
use crate::media::ring::Entry;
use crate::media::stream::{Publisher, Stream};
use crate::proto::flv::FlvDemuxer;
use crate::proto::http::ChunkedDecoder;
use std::sync::Arc;

use bytes::Bytes;

/// What the connection is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for (the rest of) a request head.
    ReadHead,
    /// Sending a response (head, then body).
    Respond,
    /// Receiving a live publish (HTTP POST/PUT body of FLV).
    Ingest,
    /// A play request waiting (`live.play_wait_ms`) for its stream to be published.
    WaitStream,
    /// An error answer is out and our side is shut down (SHUT_WR); what the peer still sends
    /// is read and discarded until it closes, `http.lingering_close_bytes` or
    /// `http.lingering_close_ms`. Closing at once with unread bytes would make the kernel
    /// send RST, which destroys an answer the peer has not read yet.
    Lingering,
    /// Closed from our side; the slot lives until its last completion arrives.
    Closing,
}

/// Which deadline is armed; it names the metric when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Keep-alive idle: no byte of a next request yet.
    Idle,
    /// A request head has started but is not complete (slowloris).
    Header,
    /// A response is being sent and the socket makes no progress.
    Send,
    /// A lingering close has run for `http.lingering_close_ms`.
    Linger,
}

impl Deadline {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Deadline::Idle => "idle",
            Deadline::Header => "header",
            Deadline::Send => "send",
            Deadline::Linger => "linger",
        }
    }
}

/// A file body in transit: `remaining` bytes from `offset`, through `pipe` when splicing.
pub(crate) struct FileBody {
    pub file: Rc<File>,
    pub offset: u64,
    pub remaining: u64,
    pub pipe: Option<Pipe>,
    /// Bytes spliced into the pipe and not yet out to the socket.
    pub pipe_fill: usize,
}

/// An HTTP-FLV viewer: a cursor into the stream's chunk ring and the batch under its send.
pub(crate) struct LiveReader {
    pub stream: Arc<Stream>,
    /// Next ring sequence to send; None until the stream has a keyframe to start from.
    pub cursor: Option<u64>,
    /// HTTP/1.1 chunked framing; false for an HTTP/1.0 reader, whose body is the bare FLV
    /// stream ended by closing the connection (RFC 9112 §6.1: no chunked coding for 1.0).
    pub chunked: bool,
    /// The stream's shared FLV preamble while it is under the first batch's send.
    pub preamble: Option<Bytes>,
    /// Entries under the in-flight sendmsg: held (refcounted) until its completion, so the
    /// kernel never reads reclaimed memory.
    pub held: Vec<Arc<Entry>>,
    pub iov: Vec<libc::iovec>,
    /// Boxed: the kernel reads it until the completion and the slab may move `Conn`s.
    pub msg: Box<libc::msghdr>,
    /// HTTP chunk-size lines of the batch in flight: every entry is its own chunk, so a batch
    /// can be cut short at any entry boundary (to skip a lagging reader) and the chunked
    /// framing stays valid. Empty for unframed (HTTP/1.0) readers.
    pub lines: Vec<u8>,
    /// Bytes of the batch (all chunks) and bytes of it the kernel has taken.
    pub batch_bytes: usize,
    pub batch_sent: usize,
    pub skips: u32,
    /// When the last skip happened (worker ms); skips older than `live.skip_window_ms` reset.
    pub last_skip_ms: u64,
    /// The final zero-length chunk has been queued.
    pub finishing: bool,
}

/// A live publisher over HTTP: body decoding and demuxing state.
pub(crate) struct Ingest {
    pub publisher: Publisher,
    pub demuxer: FlvDemuxer,
    pub chunked: Option<ChunkedDecoder>,
    /// Content-Length bytes still to come (None: chunked, or until close).
    pub remaining: Option<u64>,
    pub buf: Box<[u8]>,
    pub units: u64,
}

pub(crate) enum Body {
    None,
    File(FileBody),
    Live(Box<LiveReader>),
    Ingest(Box<Ingest>),
}

pub(crate) struct Conn {
    pub generation: u32,
    pub fd: OwnedFd,
    /// Receive buffer; its length is the request head limit, so a head that does not fit is
    /// exactly the 431 case.
    pub rbuf: Box<[u8]>,
    pub rlen: usize,
    /// Response head (and small bodies); never touched while a send from it is in flight.
    pub wbuf: Vec<u8>,
    pub woff: usize,
    pub body: Body,
    pub phase: Phase,
    /// Operations submitted and not yet completed. The slot is freed only at zero.
    pub inflight: u16,
    /// A non-blocking send hit EAGAIN; arm POLLOUT once the in-flight ops are back.
    pub want_pollout: bool,
    pub keep_alive: bool,
    /// The request being answered is on a media path (`/vod/...` or a live path): every
    /// answer to it carries the CORS headers.
    pub media: bool,
    /// The response being sent is an error answer: if the connection closes after it, it
    /// closes by lingering (see [`Phase::Lingering`]).
    pub linger: bool,
    /// Bytes a lingering close may still read and discard.
    pub linger_bytes_left: u64,
    pub requests: u64,
    pub deadline: Deadline,
    pub deadline_ms: u64,
    /// When the connection's live entry in the timer wheel fires (None: no entry). Entries
    /// with another time are stale and ignored.
    pub wheel_at_ms: Option<u64>,
}

impl Conn {
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
