//! The bodies of the cargo-fuzz targets `rtmp_handshake`, `rtmp_chunk` and `rtmp_session`
//! (`fuzz/fuzz_targets/`). They live here so that the unit tests run the same code on
//! stable over arbitrary input; each asserts the invariants a run must keep, and a panic is
//! a finding.

use super::handshake::{HANDSHAKE_SIZE, Handshake};
use super::{ChunkDecoder, Event, RtmpLimits, ServerSession};

/// Splits `data` into pieces of 1..=`stride` bytes, cycling through the sizes so that one
/// input exercises several boundaries.
fn pieces(data: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut size = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        size = size % stride.max(1) + 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// Handshake over arbitrary bytes: the first byte picks the split stride, the rest is the
/// client's side. Output is nothing until C0 C1 are in, then exactly S0 S1 S2.
pub fn handshake(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let mut hs = Handshake::new([control; 32]);
    let mut out = Vec::new();
    let mut fed = 0usize;
    for piece in pieces(bytes, usize::from(control % 64) + 1) {
        match hs.receive(piece, &mut out) {
            Ok(used) => {
                assert!(used <= piece.len());
                fed += used;
                if used < piece.len() {
                    assert!(hs.is_done());
                    break;
                }
            }
            Err(e) => {
                assert_eq!(e.reason(), "handshake_version");
                return;
            }
        }
        if fed > HANDSHAKE_SIZE {
            assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
            assert!(hs.kind().is_some());
        } else {
            assert!(out.is_empty());
        }
    }
    assert_eq!(hs.is_done(), fed == 1 + 2 * HANDSHAKE_SIZE);
}

/// The chunk decoder on arbitrary bytes with small limits picked by the first two bytes.
/// Checks the memory bound after every call and the layout of every message.
pub fn chunk(data: &[u8]) {
    let Some((&[a, b], bytes)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = RtmpLimits {
        chunk_size_max: 1 + u32::from(a) * 64,
        message_bytes_max: u32::from(b) * 32,
        buffered_bytes_max: u32::from(a ^ b) * 64 + 64,
        chunk_streams_max: u32::from(b % 8) + 1,
        ..RtmpLimits::default()
    };
    let (before, after) = (usize::from(a % 5), usize::from(b % 3));
    let mut decoder = ChunkDecoder::new(limits);
    decoder.set_room(before, after);
    for piece in pieces(bytes, usize::from(a % 32) + 1) {
        let mut input = piece;
        loop {
            match decoder.decode(&mut input, 0) {
                Ok(Some(message)) => {
                    let len = message.payload.len();
                    assert!(len <= limits.message_bytes_max as usize);
                    assert_eq!(message.payload.start, before);
                    assert_eq!(message.buf.len(), before + len + after);
                    assert!(message.buf[..before].iter().all(|&x| x == 0));
                    assert!(message.buf[before + len..].iter().all(|&x| x == 0));
                    // Let Set Chunk Size messages steer the decoder, as the session does.
                    if message.msg_type == 1
                        && let Ok(size) = super::message::parse_u32(1, message.payload())
                        && decoder.set_chunk_size(size).is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
            assert!(decoder.buffered() <= limits.buffered_bytes_max as usize);
        }
        assert!(
            input.is_empty(),
            "decode returns None only once input is used up"
        );
        assert!(decoder.buffered() <= limits.buffered_bytes_max as usize);
    }
}

/// A session after a valid plain handshake: the first byte picks the split stride and
/// whether requests are accepted or refused, the rest is the chunk stream. Checks that the
/// session keeps its memory bound, that media only comes for accepted publishes, and that an
/// error sticks.
pub fn session(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let limits = RtmpLimits {
        buffered_bytes_max: 256 * 1024,
        message_bytes_max: 64 * 1024,
        ..RtmpLimits::default()
    };
    let mut session = ServerSession::with_seed(limits, [control; 32]);
    session.set_media_room(usize::from(control % 4), usize::from(control % 3));
    let mut handshake = vec![3u8];
    handshake.extend_from_slice(&[0u8; 2 * HANDSHAKE_SIZE]);
    session
        .receive(&handshake)
        .expect("a plain handshake is accepted");
    assert!(session.handshake_done());
    let accept = control & 0x80 == 0;
    let mut accepted_publish = std::collections::HashSet::new();
    for piece in pieces(bytes, usize::from(control % 61) + 1) {
        if let Err(error) = session.receive(piece) {
            assert!(!error.reason().is_empty());
            assert_eq!(session.receive(b"more").unwrap_err(), error);
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connect { .. } if accept => session.accept_connect(),
                Event::Connect { .. } => session.reject_connect("no"),
                Event::Publish { stream_id, .. } if accept => {
                    accepted_publish.insert(stream_id);
                    session.accept_publish(stream_id);
                }
                Event::Publish { stream_id, .. } => {
                    session.reject_publish(stream_id, "NetStream.Publish.BadName", "no")
                }
                Event::Play { stream_id, .. } if accept => session.accept_play(stream_id),
                Event::Play { stream_id, .. } => {
                    session.reject_play(stream_id, "NetStream.Play.StreamNotFound", "no")
                }
                Event::Media(media) => {
                    assert!(accepted_publish.contains(&media.stream_id));
                    assert!(matches!(media.msg_type, 8 | 9 | 18));
                    assert_eq!(
                        media.buf.len(),
                        media.payload.end + usize::from(control % 3)
                    );
                }
                Event::CloseStream { stream_id } => {
                    if accepted_publish.remove(&stream_id) {
                        session.end_publish(stream_id);
                    }
                }
            }
        }
        let _ = session.take_output();
        assert!(session.buffered_bytes() <= limits.buffered_bytes_max as usize);
    }
}
