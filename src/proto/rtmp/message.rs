//! Message types (RTMP spec 5.4, 6, 7), protocol control and user control messages, and the
//! aggregate message format.

use super::error::{ErrorKind, RtmpError};

/// Message type ids.
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User control event types (spec 7.1.7).
pub mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Set Peer Bandwidth limit type "dynamic".
pub const PEER_BANDWIDTH_DYNAMIC: u8 = 2;

/// A user control message from the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserControl {
    /// The four bytes of a ping request, to send back in the response.
    PingRequest(u32),
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    /// Any other event (stream begin/EOF/dry, ping response, ...); nothing to do.
    Other(u16),
}

/// Reads the 4-byte value of Set Chunk Size, Abort, Acknowledgement or Window Ack Size.
pub fn parse_u32(msg_type: u8, payload: &[u8]) -> Result<u32, RtmpError> {
    payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| {
            ErrorKind::BadControl {
                msg_type,
                len: payload.len(),
            }
            .into()
        })
}

/// Parses a user control message.
pub fn parse_user_control(payload: &[u8]) -> Result<UserControl, RtmpError> {
    let bad = || -> RtmpError {
        ErrorKind::BadControl {
            msg_type: msg_type::USER_CONTROL,
            len: payload.len(),
        }
        .into()
    };
    let event = payload
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(bad)?;
    let data = payload.get(2..).unwrap_or_default();
    let word = |at: usize| -> Result<u32, RtmpError> {
        data.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(bad)
    };
    Ok(match event {
        user_control::PING_REQUEST => UserControl::PingRequest(word(0)?),
        user_control::SET_BUFFER_LENGTH => UserControl::SetBufferLength {
            stream_id: word(0)?,
            buffer_ms: word(4)?,
        },
        other => UserControl::Other(other),
    })
}

/// Payload of a 4-byte protocol control message.
pub fn u32_payload(value: u32) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// Payload of Set Peer Bandwidth.
pub fn peer_bandwidth_payload(window: u32, limit_type: u8) -> Vec<u8> {
    let mut payload = window.to_be_bytes().to_vec();
    payload.push(limit_type);
    payload
}

/// Payload of a user control event with one 4-byte argument.
pub fn user_control_payload(event: u16, value: u32) -> Vec<u8> {
    let mut payload = event.to_be_bytes().to_vec();
    payload.extend_from_slice(&value.to_be_bytes());
    payload
}

/// One sub-message of an aggregate message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubMessage<'a> {
    pub msg_type: u8,
    /// The sub-message's own timestamp (FLV tag layout: 24 bits + 8 extension bits).
    pub timestamp: u32,
    pub body: &'a [u8],
}

/// Splits an aggregate message body: FLV tags (11-byte header, body, 4-byte back pointer)
/// back to back. The back pointer is not checked (encoders disagree on it).
pub fn parse_aggregate(payload: &[u8]) -> Result<Vec<SubMessage<'_>>, RtmpError> {
    let mut subs = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let header = rest.get(..11).ok_or(ErrorKind::Aggregate)?;
        let size =
            (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let body = rest.get(11..11 + size).ok_or(ErrorKind::Aggregate)?;
        subs.push(SubMessage {
            msg_type: header[0],
            timestamp,
            body,
        });
        rest = rest.get(11 + size + 4..).ok_or(ErrorKind::Aggregate)?;
    }
    Ok(subs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_control_messages_parse() {
        assert_eq!(
            parse_user_control(&[0, 6, 0, 0, 1, 2]).unwrap(),
            UserControl::PingRequest(0x102)
        );
        assert_eq!(
            parse_user_control(&[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8]).unwrap(),
            UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000
            }
        );
        assert_eq!(
            parse_user_control(&[0, 0, 0, 0, 0, 1]).unwrap(),
            UserControl::Other(0)
        );
        for short in [&[][..], &[0], &[0, 6, 0, 0, 1], &[0, 3, 0, 0, 0, 1, 0]] {
            assert_eq!(
                parse_user_control(short).unwrap_err().reason(),
                "bad_control"
            );
        }
        assert_eq!(parse_u32(1, &[0, 0, 16, 0]).unwrap(), 4096);
        assert_eq!(
            parse_u32(1, &[0, 0, 16]).unwrap_err().reason(),
            "bad_control"
        );
    }

    #[test]
    fn aggregate_splits_into_tags() {
        let mut body = Vec::new();
        for (t, ts, data) in [(9u8, 0x0100_0010u32, &b"abc"[..]), (8, 20, &b""[..])] {
            body.push(t);
            body.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            body.extend_from_slice(&ts.to_be_bytes()[1..]);
            body.push((ts >> 24) as u8);
            body.extend_from_slice(&[0, 0, 0]);
            body.extend_from_slice(data);
            body.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
        }
        let subs = parse_aggregate(&body).unwrap();
        assert_eq!(
            subs,
            [
                SubMessage {
                    msg_type: 9,
                    timestamp: 0x0100_0010,
                    body: b"abc"
                },
                SubMessage {
                    msg_type: 8,
                    timestamp: 20,
                    body: b""
                },
            ]
        );
        for len in 1..body.len() {
            if len == 18 {
                continue; // exactly one whole tag
            }
            assert!(parse_aggregate(&body[..len]).is_err(), "len {len}");
        }
    }
}
