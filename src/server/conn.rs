//! Per-connection state owned by one worker's slab.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::media::framing::Framing;
use crate::media::stream::{Publisher, Stream};
use crate::proto::flv::FlvDemuxer;
use crate::proto::http::{ChunkedDecoder, RequestHead};
use crate::proto::ts::demux::TsDemuxer;
use crate::runtime::driver::SlotIo;
use crate::runtime::ops::{OpenAt2Args, SendBatch, StatxBuf};
use crate::runtime::pipe::Pipe;
use crate::runtime::timer::Timers;

/// What the connection is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for (the rest of) a request head.
    ReadHead,
    /// A VOD request parked while its file is opened and statted through the ring
    /// ([`Body::Opening`]); no receive is posted, the send deadline runs.
    Opening,
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
    /// An RTMP connection (handshake, commands, publishing or playing: see
    /// [`Conn::rtmp`]); a receive is posted all along.
    Rtmp,
    /// A request (HTTP) parked until the auth service decides (`auth` mode `http`): nothing
    /// is in flight; the decision routes its head again ([`super::callout`]).
    WaitAuth,
    /// Not a client: an outbound request to the auth service ([`Body::Callout`]).
    Callout,
    /// Closed from our side; the slot lives until its last completion arrives.
    Closing,
}

/// A connection's timers (indexes into its [`Timers`]); each names the metric when it
/// expires.
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
    /// An auth service callout has run for `auth.http_timeout_ms` (and, a little later, the
    /// backstop of the request waiting for it).
    Callout,
}

/// Number of [`Deadline`]s.
pub(crate) const DEADLINES: usize = 5;

impl Deadline {
    pub(crate) const ALL: [Deadline; DEADLINES] = [
        Deadline::Idle,
        Deadline::Header,
        Deadline::Send,
        Deadline::Linger,
        Deadline::Callout,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Deadline::Idle => "idle",
            Deadline::Header => "header",
            Deadline::Send => "send",
            Deadline::Linger => "linger",
            Deadline::Callout => "callout",
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

/// A VOD request waiting for its file: IORING_OP_OPENAT2 of `args` beneath the media root,
/// then IORING_OP_STATX of the new fd into `statx`. The box is the slot's: the kernel reads
/// `args` and writes `statx` until the completions, and the slot is freed only when nothing
/// is in flight, so both outlive their operations even if the connection is closed meanwhile
/// (an open that completes for a closing slot has its fd closed by the driver's
/// `Completion`; a stat's fd, `file`, closes when the slot is released).
pub(crate) struct VodOpen {
    /// The request being answered: planning needs its method, Range and validators.
    pub head: RequestHead,
    /// The normalised path beneath the media root (the file cache's key).
    pub rel: PathBuf,
    pub args: OpenAt2Args,
    pub statx: StatxBuf,
    /// The new fd, from the open's completion until the stat's.
    pub file: Option<File>,
    /// `EAGAIN`/`EINTR` retries of the open left (a rename race under RESOLVE_BENEATH).
    pub retries: usize,
}

/// A live viewer (HTTP-FLV, or RTMP play): a cursor into its worker's hub window of the
/// stream and the batch under its send.
pub(crate) struct LiveReader {
    pub stream: Arc<Stream>,
    /// Next ring sequence to send; None until the stream has a keyframe to start from.
    pub cursor: Option<u64>,
    /// HTTP/1.1 chunked (one chunk per entry), raw for an HTTP/1.0 reader, whose body is
    /// the bare FLV stream ended by closing the connection (RFC 9112 §6.1), or RTMP messages.
    pub framing: Framing,
    /// The stream's shared, framed FLV preamble while it is under the first batch's send.
    pub preamble: Option<Bytes>,
    /// The vectored send: one iovec per entry (two for RTMP: chunk header and body), plus the
    /// preamble in the first batch. The entries are held by the hub while the reader's
    /// cursor is at or before them.
    pub batch: SendBatch,
    /// Entries in the batch (the preamble not counted).
    pub batch_entries: usize,
    /// Where each entry of the batch ends, in bytes from the batch's start (preamble
    /// included): how a short send maps to entries, and where a batch may be cut.
    pub entry_ends: Vec<usize>,
    /// The batch stopped short of the head (bytes or IOV_MAX): send the rest at once.
    pub capped: bool,
    pub skips: u32,
    /// When the last skip happened (worker ms); skips older than `live.skip_window_ms` reset.
    pub last_skip_ms: u64,
    /// The final zero-length chunk has been queued.
    pub finishing: bool,
    /// Shutdown asked for the body's end: no new batch; the end follows the one in flight.
    pub end_requested: bool,
}

impl LiveReader {
    pub(crate) fn new(stream: Arc<Stream>, framing: Framing) -> LiveReader {
        LiveReader {
            stream,
            cursor: None,
            framing,
            preamble: None,
            batch: SendBatch::new(),
            batch_entries: 0,
            entry_ends: Vec::new(),
            capped: false,
            skips: 0,
            last_skip_ms: 0,
            finishing: false,
            end_requested: false,
        }
    }
}

/// A live publisher over HTTP: body decoding and demuxing state.
pub(crate) struct Ingest {
    pub publisher: Publisher,
    pub demuxer: Demuxer,
    pub body: RequestBody,
    pub buf: Box<[u8]>,
    pub units: u64,
}

/// The container an HTTP publisher pushes.
pub(crate) enum Demuxer {
    Flv(FlvDemuxer),
    Ts(Box<TsDemuxer>),
}

/// A request body's transfer framing: chunked, or sized by Content-Length.
pub(crate) struct RequestBody {
    pub chunked: Option<ChunkedDecoder>,
    /// Content-Length bytes still to come (None: chunked).
    pub remaining: Option<u64>,
}

impl RequestBody {
    /// Decode `data` (bytes as received) into `sink`; returns whether the body is complete.
    pub fn feed(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<bool, String> {
        match &mut self.chunked {
            Some(decoder) => decoder
                .decode(data, &mut |b: &[u8]| sink(b))
                .map(|progress| progress.done)
                .map_err(|e| format!("bad chunked body: {e}")),
            None => {
                let take = self
                    .remaining
                    .map_or(data.len() as u64, |r| r.min(data.len() as u64))
                    as usize;
                sink(&data[..take]);
                Ok(match &mut self.remaining {
                    Some(r) => {
                        *r -= take as u64;
                        *r == 0
                    }
                    None => false,
                })
            }
        }
    }
}

/// A file uploaded with PUT (HLS push): held whole in memory and stored only once complete,
/// so an interrupted upload never replaces what was there.
pub(crate) struct Upload {
    pub app: String,
    pub name: String,
    pub file: String,
    pub body: RequestBody,
    pub data: Vec<u8>,
    /// `hls.push_object_bytes_max`.
    pub limit: usize,
    pub buf: Box<[u8]>,
}

/// A response body in memory (API, status, metrics; later HLS playlists and segments): sent
/// from its own shared bytes with the head by one sendmsg, never copied into the connection.
pub(crate) struct MemoryBody {
    pub bytes: Bytes,
    pub batch: SendBatch,
    /// The batch (head + body) has been laid out.
    pub started: bool,
}

pub(crate) enum Body {
    None,
    /// Not a body yet: the file of a VOD response is being opened ([`Phase::Opening`]).
    Opening(Box<VodOpen>),
    Memory(Box<MemoryBody>),
    File(FileBody),
    Live(Box<LiveReader>),
    Ingest(Box<Ingest>),
    Upload(Box<Upload>),
    /// The request and state of an auth service callout ([`Phase::Callout`]): its address is
    /// read by the kernel until the connect completes, so it lives here until the release.
    Callout(Box<super::callout::Callout>),
}

impl Body {
    /// The buffer a request body (ingest or upload) is received into.
    pub fn recv_buffer(&mut self) -> Option<&mut [u8]> {
        match self {
            Body::Ingest(ingest) => Some(&mut ingest.buf),
            Body::Upload(upload) => Some(&mut upload.buf),
            _ => None,
        }
    }
}

pub(crate) struct Conn {
    /// Generation and receive/transmit in-flight counts (the slot is freed only when idle).
    pub io: SlotIo,
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
    pub timers: Timers<DEADLINES>,
    /// The RTMP session of a connection accepted on the RTMP listener.
    pub rtmp: Option<Box<super::rtmp::RtmpConn>>,
    /// Process-wide connection id (`Shared::next_conn_id`): the session id the API lists and
    /// kicks, and the one auth callbacks and logs name. Never reused while the process runs.
    pub id: u64,
    /// The client's address, read once at accept (None if the socket was already gone).
    pub peer: Option<std::net::SocketAddr>,
    /// When the connection was accepted (worker ms).
    pub opened_ms: u64,
    /// Bytes received from and sent to the peer (every receive and send completion of the
    /// slot; worker-local, no atomics).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Accepted on the admin listener: routed to the operator's pages, never to media.
    pub admin: bool,
    /// The live session (publish or play) this connection is, as the API lists it
    /// ([`super::sessions`]); None for anything else.
    pub session: Option<Arc<super::sessions::Session>>,
    /// What the last authorised publish or play of this connection was (set when
    /// `auth.http_notify` is on): what its publish_done or play_done names. Taken when sent.
    pub auth_subject: Option<Box<super::callout::Subject>>,
    /// The access log's record of the request or session in progress (None when the access
    /// log is off, or between requests).
    pub log: Option<Box<super::access::RequestLog>>,
    /// Why `close` was called (the access log's close field).
    pub close_reason: Option<crate::metrics::CloseReason>,
}

impl Conn {
    /// A new connection in `phase`, receiving into `rbuf`, with nothing sent, no body and no
    /// timer armed.
    pub(crate) fn new(generation: u32, fd: OwnedFd, rbuf: Box<[u8]>, phase: Phase) -> Conn {
        Conn {
            io: SlotIo::new(generation),
            fd,
            rbuf,
            rlen: 0,
            wbuf: Vec::new(),
            woff: 0,
            body: Body::None,
            phase,
            want_pollout: false,
            keep_alive: false,
            media: false,
            linger: false,
            linger_bytes_left: 0,
            requests: 0,
            timers: Timers::default(),
            rtmp: None,
            id: 0,
            peer: None,
            opened_ms: 0,
            bytes_in: 0,
            bytes_out: 0,
            admin: false,
            session: None,
            auth_subject: None,
            log: None,
            close_reason: None,
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn generation(&self) -> u32 {
        self.io.generation()
    }

    /// Operations in flight in either direction.
    pub(crate) fn busy(&self) -> bool {
        !self.io.is_idle()
    }
}
