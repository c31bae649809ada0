//! Why a session ended. Every error is the peer's fault (the API has no fallible calls for
//! the server to misuse); the server disconnects and counts [`RtmpError::reason`].

use std::fmt;

use crate::proto::amf0::Amf0Error;

/// What went wrong, with the details the log line needs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// C0 is not 3 (6 and 8 are RTMPE, which we do not support).
    HandshakeVersion(u8),
    /// Set Chunk Size of 0, with bit 31 set, or above [`super::RtmpLimits::chunk_size_max`].
    ChunkSize(u32),
    /// A message header declares more than [`super::RtmpLimits::message_bytes_max`].
    MessageTooLarge { len: u32, max: u32 },
    /// Held bytes would pass [`super::RtmpLimits::buffered_bytes_max`].
    BufferedTooLarge { held: usize, max: u32 },
    /// More distinct chunk stream ids than [`super::RtmpLimits::chunk_streams_max`].
    ChunkStreams { max: u32 },
    /// A chunk header that cannot follow what came before on its chunk stream: type 2/3 on a
    /// chunk stream never used, or type 0/1/2 in the middle of a message.
    ChunkSequence { csid: u32, fmt: u8 },
    /// An AMF0 value in a command or data message does not decode.
    Amf(Amf0Error),
    /// An AMF3 message (type 15/17) whose body is not AMF0 behind a 0 format byte.
    Amf3,
    /// A command that decodes but lacks a field it cannot do without.
    BadCommand(&'static str),
    /// A control message with a payload of the wrong size.
    BadControl { msg_type: u8, len: usize },
    /// A malformed aggregate message (type 22).
    Aggregate,
    /// A command other than `connect` before `connect`, or after a refused one.
    CommandBeforeConnect(String),
    /// A second `connect`.
    ConnectTwice,
    /// Audio, video or an aggregate on a stream with no publish accepted or awaiting an answer.
    MediaBeforePublish { stream_id: u32, msg_type: u8 },
    /// `publish`/`play`/`closeStream` on a stream id `createStream` did not give out.
    BadStreamId(u32),
    /// `publish`/`play` on a stream that is already publishing or playing.
    StreamBusy(u32),
    /// More `createStream`s than [`super::RtmpLimits::message_streams_max`].
    MessageStreams { max: u32 },
    /// A message type RTMP does not define (or one we refuse, such as 7).
    UnknownMessageType(u8),
}

/// A fatal protocol error; see [`ErrorKind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpError {
    kind: ErrorKind,
}

impl RtmpError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Short stable snake_case label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorKind::HandshakeVersion(_) => "handshake_version",
            ErrorKind::ChunkSize(_) => "chunk_size",
            ErrorKind::MessageTooLarge { .. } => "message_too_large",
            ErrorKind::BufferedTooLarge { .. } => "buffered_too_large",
            ErrorKind::ChunkStreams { .. } => "chunk_streams",
            ErrorKind::ChunkSequence { .. } => "chunk_sequence",
            ErrorKind::Amf(_) | ErrorKind::Amf3 => "amf",
            ErrorKind::BadCommand(_) => "bad_command",
            ErrorKind::BadControl { .. } => "bad_control",
            ErrorKind::Aggregate => "aggregate",
            ErrorKind::CommandBeforeConnect(_) => "command_before_connect",
            ErrorKind::ConnectTwice => "connect_twice",
            ErrorKind::MediaBeforePublish { .. } => "media_before_publish",
            ErrorKind::BadStreamId(_) => "bad_stream_id",
            ErrorKind::StreamBusy(_) => "stream_busy",
            ErrorKind::MessageStreams { .. } => "message_streams",
            ErrorKind::UnknownMessageType(_) => "unknown_message_type",
        }
    }
}

impl From<ErrorKind> for RtmpError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl From<Amf0Error> for RtmpError {
    fn from(e: Amf0Error) -> Self {
        Self::new(ErrorKind::Amf(e))
    }
}

impl fmt::Display for RtmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::HandshakeVersion(v) => {
                write!(f, "RTMP version {v} in C0 (only 3 is supported)")
            }
            ErrorKind::ChunkSize(size) => write!(f, "Set Chunk Size {size} refused"),
            ErrorKind::MessageTooLarge { len, max } => {
                write!(f, "message of {len} bytes (max {max})")
            }
            ErrorKind::BufferedTooLarge { held, max } => {
                write!(f, "{held} bytes held for the peer (max {max})")
            }
            ErrorKind::ChunkStreams { max } => write!(f, "more than {max} chunk streams"),
            ErrorKind::ChunkSequence { csid, fmt } => {
                write!(f, "chunk type {fmt} out of sequence on chunk stream {csid}")
            }
            ErrorKind::Amf(e) => write!(f, "AMF0: {e}"),
            ErrorKind::Amf3 => f.write_str("AMF3 message without the AMF0 format byte"),
            ErrorKind::BadCommand(what) => write!(f, "bad command: {what}"),
            ErrorKind::BadControl { msg_type, len } => {
                write!(
                    f,
                    "control message type {msg_type} with {len} payload bytes"
                )
            }
            ErrorKind::Aggregate => f.write_str("malformed aggregate message"),
            ErrorKind::CommandBeforeConnect(name) => {
                write!(f, "command {name:?} without an accepted connect")
            }
            ErrorKind::ConnectTwice => f.write_str("second connect"),
            ErrorKind::MediaBeforePublish {
                stream_id,
                msg_type,
            } => write!(
                f,
                "message type {msg_type} on stream {stream_id}, which is not publishing"
            ),
            ErrorKind::BadStreamId(id) => write!(f, "stream id {id} was never created"),
            ErrorKind::StreamBusy(id) => write!(f, "stream {id} is already in use"),
            ErrorKind::MessageStreams { max } => write!(f, "more than {max} createStream"),
            ErrorKind::UnknownMessageType(t) => write!(f, "unknown message type {t}"),
        }
    }
}

impl std::error::Error for RtmpError {}
