//! Session tests: a scripted client over the chunk encoder, replays of captured real
//! sessions (tests/captures/rtmp/README.md), chunk round-trip properties and the stable runs
//! of the fuzz entry points.

use proptest::prelude::*;

use super::chunk::{ChunkDecoder, ChunkEncoder};
use super::handshake::{self, DigestScheme, HANDSHAKE_SIZE};
use super::message::msg_type;
use super::*;
use crate::proto::amf0::{self, Amf0Value};

// ---- a scripted client ----

/// Builds what a client sends: a plain handshake, then messages.
struct Client {
    encoder: ChunkEncoder,
    bytes: Vec<u8>,
}

impl Client {
    fn new() -> Self {
        let mut bytes = vec![3u8];
        bytes.extend_from_slice(&[0u8; 2 * HANDSHAKE_SIZE]);
        Self {
            encoder: ChunkEncoder::new(),
            bytes,
        }
    }

    /// Without a handshake (for sessions that already did one).
    fn chunks_only() -> Self {
        Self {
            encoder: ChunkEncoder::new(),
            bytes: Vec::new(),
        }
    }

    fn message(&mut self, csid: u32, t: u8, ts: u32, stream: u32, payload: &[u8]) -> &mut Self {
        self.encoder
            .write_message(csid, t, ts, stream, payload, &mut self.bytes);
        self
    }

    fn command(&mut self, stream: u32, name: &str, txn: f64, args: &[Amf0Value<'_>]) -> &mut Self {
        let mut body = Vec::new();
        amf0::write_string(&mut body, name);
        amf0::write_number(&mut body, txn);
        for a in args {
            amf0::write_value(&mut body, a);
        }
        self.message(3, msg_type::COMMAND_AMF0, 0, stream, &body)
    }

    fn connect(&mut self, app: &str) -> &mut Self {
        self.command(
            0,
            "connect",
            1.0,
            &[Amf0Value::Object(vec![
                ("app", Amf0Value::String(app)),
                ("tcUrl", Amf0Value::String("rtmp://h/live")),
            ])],
        )
    }

    fn create_stream(&mut self, txn: f64) -> &mut Self {
        self.command(0, "createStream", txn, &[Amf0Value::Null])
    }

    fn publish(&mut self, stream: u32, name: &str) -> &mut Self {
        self.command(
            stream,
            "publish",
            5.0,
            &[
                Amf0Value::Null,
                Amf0Value::String(name),
                Amf0Value::String("live"),
            ],
        )
    }

    fn play(&mut self, stream: u32, name: &str) -> &mut Self {
        self.command(
            stream,
            "play",
            4.0,
            &[
                Amf0Value::Null,
                Amf0Value::String(name),
                Amf0Value::Number(-1000.0),
            ],
        )
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// What the client sees of the server's output: messages, with AMF bodies summarised.
struct Peer {
    handshake_left: usize,
    decoder: ChunkDecoder,
}

#[derive(Debug, PartialEq)]
struct Seen {
    msg_type: u8,
    stream_id: u32,
    csid: u32,
    /// Command/data name and, for statuses, the code; for control messages the payload.
    summary: String,
}

impl Peer {
    fn new() -> Self {
        Self {
            handshake_left: 1 + 2 * HANDSHAKE_SIZE,
            decoder: ChunkDecoder::new(RtmpLimits::default()),
        }
    }

    fn read(&mut self, session: &mut ServerSession) -> Vec<Seen> {
        let Some(out) = session.take_output() else {
            return Vec::new();
        };
        let skip = self.handshake_left.min(out.len());
        self.handshake_left -= skip;
        let mut input = &out[skip..];
        let mut seen = Vec::new();
        while let Some(m) = self.decoder.decode(&mut input, 0).unwrap() {
            if m.msg_type == msg_type::SET_CHUNK_SIZE {
                let size = message::parse_u32(1, m.payload()).unwrap();
                self.decoder.set_chunk_size(size).unwrap();
            }
            seen.push(Seen {
                msg_type: m.msg_type,
                stream_id: m.stream_id,
                csid: m.csid,
                summary: summarise(m.msg_type, m.payload()),
            });
        }
        assert!(input.is_empty());
        seen
    }
}

fn summarise(t: u8, payload: &[u8]) -> String {
    if t != msg_type::COMMAND_AMF0 && t != msg_type::DATA_AMF0 {
        return format!("{payload:02x?}");
    }
    let values = amf0::decode_all(payload).unwrap();
    let mut parts = vec![values[0].as_str().unwrap().to_owned()];
    for v in &values[1..] {
        if let Some(code) = v.get("code").and_then(|c| c.as_str()) {
            parts.push(code.to_owned());
        }
        if let Some(n) = v.as_number() {
            parts.push(n.to_string());
        }
    }
    parts.join(" ")
}

fn summaries(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.summary.as_str()).collect()
}

fn session() -> ServerSession {
    ServerSession::with_seed(RtmpLimits::default(), [9; 32])
}

fn events(session: &mut ServerSession) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// A session that has done the handshake, connect and createStream, publishing `name` on
/// stream 1 (accepted); the peer has read everything.
fn publishing(name: &str) -> (ServerSession, Peer) {
    let mut s = session();
    let mut peer = Peer::new();
    let mut c = Client::new();
    c.connect("live").create_stream(2.0).publish(1, name);
    s.receive(&c.take()).unwrap();
    for e in events(&mut s) {
        match e {
            Event::Connect { .. } => s.accept_connect(),
            Event::Publish { stream_id, .. } => s.accept_publish(stream_id),
            other => panic!("{other:?}"),
        }
    }
    peer.read(&mut s);
    (s, peer)
}

// ---- sessions ----

#[test]
fn publish_flow_answers_what_encoders_wait_for() {
    let mut s = session();
    let mut peer = Peer::new();
    let mut c = Client::new();
    c.connect("live?token=1")
        .command(
            0,
            "releaseStream",
            2.0,
            &[Amf0Value::Null, Amf0Value::String("s?k=v")],
        )
        .command(
            0,
            "FCPublish",
            3.0,
            &[Amf0Value::Null, Amf0Value::String("s?k=v")],
        )
        .create_stream(4.0)
        .publish(1, "s?k=v");
    s.receive(&c.take()).unwrap();
    assert!(s.handshake_done());
    assert_eq!(s.handshake_kind(), Some(HandshakeKind::Plain));

    let got = events(&mut s);
    assert_eq!(
        got,
        [
            Event::Connect {
                app: "live".into(),
                app_query: Some("token=1".into()),
                tc_url: Some("rtmp://h/live".into()),
                object_encoding: 0.0
            },
            Event::Publish {
                stream_id: 1,
                name: "s".into(),
                query: Some("k=v".into()),
                mode: PublishMode::Live
            }
        ]
    );
    // Until the connect is answered only the handshake goes out.
    let out = s.take_output().unwrap();
    assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    peer.handshake_left = 0;
    s.accept_connect();
    let seen = peer.read(&mut s);
    assert_eq!(
        summaries(&seen),
        [
            "[00, 26, 25, a0]",
            "[00, 26, 25, a0, 02]",
            "[00, ff, ff, ff]",
            "_result 1 NetConnection.Connect.Success",
            "onBWDone 0",
            "_result 2",
            "onFCPublish 0 NetStream.Publish.Start",
            "_result 4 1",
        ]
    );
    assert_eq!(
        seen.iter().map(|m| m.msg_type).collect::<Vec<_>>(),
        [5, 6, 1, 20, 20, 20, 20, 20]
    );
    s.accept_publish(1);
    let seen = peer.read(&mut s);
    assert_eq!(
        summaries(&seen),
        [
            "[00, 00, 00, 00, 00, 01]",
            "onStatus 0 NetStream.Publish.Start"
        ]
    );
    assert_eq!((seen[1].stream_id, seen[1].csid), (1, csid::COMMAND));

    // Media now flows, in buffers with the room the caller asked for.
    s.set_media_room(11, 4);
    let video = [0x17, 0, 0, 0, 0, 1, 2, 3];
    c.message(7, msg_type::VIDEO, 40, 1, &video);
    s.receive(&c.take()).unwrap();
    let Some(Event::Media(m)) = s.poll_event() else {
        panic!("expected media")
    };
    assert_eq!((m.msg_type, m.timestamp_ms, m.stream_id), (9, 40, 1));
    assert_eq!(m.payload, 11..19);
    assert_eq!(m.payload(), video);
    assert_eq!(m.buf.len(), 11 + 8 + 4);
    assert!(m.buf[..11].iter().chain(&m.buf[19..]).all(|&b| b == 0));
}

#[test]
fn replies_wait_behind_an_unanswered_request() {
    let mut s = session();
    let mut peer = Peer::new();
    let mut c = Client::new();
    c.connect("live")
        .create_stream(2.0)
        .play(1, "a")
        .create_stream(3.0);
    s.receive(&c.take()).unwrap();
    assert_eq!(peer.read(&mut s), []);
    let got = events(&mut s);
    assert_eq!(got.len(), 2);
    s.accept_connect();
    let seen = peer.read(&mut s);
    assert_eq!(
        summaries(&seen)[3..],
        [
            "_result 1 NetConnection.Connect.Success",
            "onBWDone 0",
            "_result 2 1"
        ],
        "the second createStream waits for the play"
    );
    // The play is answered later; the reply to what came after it follows.
    s.accept_play(1);
    let seen = peer.read(&mut s);
    assert_eq!(
        summaries(&seen),
        [
            "[00, 00, 00, 00, 00, 01]",
            "onStatus 0 NetStream.Play.Reset",
            "onStatus 0 NetStream.Play.Start",
            "|RtmpSampleAccess",
            "onStatus NetStream.Data.Start",
            "_result 3 2",
        ]
    );
    assert_eq!(seen[3].msg_type, msg_type::DATA_AMF0);
    assert!(seen[1..5].iter().all(|m| m.stream_id == 1));
    s.end_play(1);
    assert_eq!(
        summaries(&peer.read(&mut s)),
        [
            "[00, 01, 00, 00, 00, 01]",
            "onStatus 0 NetStream.Play.UnpublishNotify",
            "onStatus 0 NetStream.Play.Stop"
        ]
    );
}

#[test]
fn replies_longer_than_128_bytes_are_chunked_at_the_size_in_force() {
    // Before our Set Chunk Size the peer reads 128-byte chunks; after it, one chunk.
    let limits = RtmpLimits {
        out_chunk_size: 4096,
        ..RtmpLimits::default()
    };
    let mut s = ServerSession::with_seed(limits, [1; 32]);
    let mut peer = Peer::new();
    let mut c = Client::new();
    let long = "x".repeat(300);
    c.connect("live").create_stream(2.0).publish(1, &long);
    s.receive(&c.take()).unwrap();
    events(&mut s);
    s.reject_publish(1, "NetStream.Publish.BadName", &long);
    s.accept_connect();
    let seen = peer.read(&mut s);
    assert_eq!(
        seen.last().unwrap().summary,
        "onStatus 0 NetStream.Publish.BadName"
    );
}

#[test]
fn peer_names_are_echoed_short() {
    // A 10 MiB publish name (allowed in by a large message_bytes_max) must not make replies
    // anywhere near the 16 MiB a message can carry.
    let limits = RtmpLimits {
        message_bytes_max: 16 * 1024 * 1024,
        buffered_bytes_max: 64 * 1024 * 1024,
        ..RtmpLimits::default()
    };
    let mut s = ServerSession::with_seed(limits, [1; 32]);
    let mut c = Client::new();
    let huge = "é".repeat(5 * 1024 * 1024);
    c.connect("live")
        .create_stream(2.0)
        .command(
            0,
            "FCPublish",
            3.0,
            &[Amf0Value::Null, Amf0Value::String(&huge)],
        )
        .publish(1, &huge);
    s.receive(&c.take()).unwrap();
    for e in events(&mut s) {
        match e {
            Event::Connect { .. } => s.accept_connect(),
            Event::Publish {
                stream_id, name, ..
            } => {
                assert_eq!(name.len(), huge.len(), "the event carries the whole name");
                s.accept_publish(stream_id);
            }
            other => panic!("{other:?}"),
        }
    }
    s.end_play(1);
    let out = s.take_output().unwrap();
    assert!(out.len() < 1 + 2 * HANDSHAKE_SIZE + 4000, "{}", out.len());
}

#[test]
fn rejected_connect_drops_what_followed_and_ignores_input() {
    let mut s = session();
    let mut peer = Peer::new();
    let mut c = Client::new();
    c.connect("live").create_stream(2.0).publish(1, "s");
    s.receive(&c.take()).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connect { .. })));
    s.reject_connect("go away");
    assert_eq!(s.poll_event(), None, "the publish died with the connect");
    let seen = peer.read(&mut s);
    assert_eq!(
        summaries(&seen),
        ["_error 1 NetConnection.Connect.Rejected"]
    );
    c.message(8, msg_type::AUDIO, 0, 1, &[0xAF]);
    s.receive(&c.take()).unwrap();
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.take_output(), None);
}

#[test]
fn rejected_publish_drops_its_queued_media_and_later_media_is_an_error() {
    let mut s = session();
    let mut c = Client::new();
    c.connect("live").create_stream(2.0).publish(1, "s");
    c.message(6, msg_type::AUDIO, 0, 1, &[0xAF, 0]);
    c.message(6, msg_type::AUDIO, 23, 1, &[0xAF, 1]);
    s.receive(&c.take()).unwrap();
    let got = events(&mut s);
    assert!(matches!(got[0], Event::Connect { .. }));
    assert!(matches!(got[1], Event::Publish { .. }));
    assert_eq!(got.len(), 4, "media behind a pending publish is queued");
    assert!(
        s.buffered_bytes() > 0,
        "queued media counts against the budget"
    );

    let mut s = session();
    let mut peer = Peer::new();
    c = Client::new();
    c.connect("live").create_stream(2.0).publish(1, "s");
    c.message(6, msg_type::AUDIO, 0, 1, &[0xAF, 0]);
    s.receive(&c.take()).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connect { .. })));
    s.accept_connect();
    assert!(matches!(s.poll_event(), Some(Event::Publish { .. })));
    s.reject_publish(1, "NetStream.Publish.BadName", "taken");
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.buffered_bytes(), 0);
    let seen = peer.read(&mut s);
    assert_eq!(
        seen.last().unwrap().summary,
        "onStatus 0 NetStream.Publish.BadName"
    );
    c.message(6, msg_type::AUDIO, 46, 1, &[0xAF, 1]);
    let err = s.receive(&c.take()).unwrap_err();
    assert_eq!(err.reason(), "media_before_publish");
    assert_eq!(s.receive(&[]).unwrap_err(), err, "the session stays dead");
}

#[test]
fn requests_out_of_order_are_errors() {
    type Build = Box<dyn Fn(&mut Client)>;
    let cases: Vec<(Build, &str)> = vec![
        (
            Box::new(|c| {
                c.create_stream(2.0);
            }),
            "command_before_connect",
        ),
        (
            Box::new(|c| {
                c.publish(1, "s");
            }),
            "command_before_connect",
        ),
        (
            Box::new(|c| {
                c.connect("a").connect("b");
            }),
            "connect_twice",
        ),
        (
            Box::new(|c| {
                c.connect("a").publish(1, "s");
            }),
            "bad_stream_id",
        ),
        (
            Box::new(|c| {
                c.connect("a")
                    .create_stream(2.0)
                    .publish(1, "s")
                    .play(1, "t");
            }),
            "stream_busy",
        ),
        (
            Box::new(|c| {
                c.connect("a")
                    .create_stream(2.0)
                    .message(6, 8, 0, 1, &[0xAF]);
            }),
            "media_before_publish",
        ),
        (
            Box::new(|c| {
                c.connect("a").create_stream(2.0).message(4, 22, 0, 1, &[]);
            }),
            "media_before_publish",
        ),
        (
            Box::new(|c| {
                c.message(3, 7, 0, 0, &[1]);
            }),
            "unknown_message_type",
        ),
        (
            Box::new(|c| {
                c.message(3, 23, 0, 0, &[1]);
            }),
            "unknown_message_type",
        ),
        (
            Box::new(|c| {
                c.message(2, 1, 0, 0, &[0, 0, 0, 0]);
            }),
            "chunk_size",
        ),
        (
            Box::new(|c| {
                c.message(2, 1, 0, 0, &[0x80, 0, 0, 1]);
            }),
            "chunk_size",
        ),
        (
            Box::new(|c| {
                c.message(2, 1, 0, 0, &[0, 0]);
            }),
            "bad_control",
        ),
        (
            Box::new(|c| {
                c.message(2, 4, 0, 0, &[0, 6, 0]);
            }),
            "bad_control",
        ),
        (
            Box::new(|c| {
                c.message(3, 20, 0, 0, &[0x02, 0, 9, b'x']);
            }),
            "amf",
        ),
        (
            Box::new(|c| {
                c.message(3, 17, 0, 0, &[0x11, 0x06]);
            }),
            "amf",
        ),
        (
            Box::new(|c| {
                c.message(3, 20, 0, 0, &[0x05]);
            }),
            "bad_command",
        ),
    ];
    for (build, reason) in cases {
        let mut s = session();
        let mut c = Client::new();
        build(&mut c);
        // Answer connects as they come, so ordering errors are about the request itself.
        let bytes = c.take();
        let mut result = Ok(());
        for piece in bytes.chunks(97) {
            result = s.receive(piece);
            while let Some(e) = s.poll_event() {
                if let Event::Connect { .. } = e {
                    s.accept_connect();
                }
            }
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.map_err(|e| e.reason()), Err(reason));
    }
}

#[test]
fn ignored_messages_and_pings() {
    let (mut s, mut peer) = publishing("s");
    let mut c = Client::chunks_only();
    c.message(3, msg_type::SHARED_OBJECT_AMF0, 0, 0, &[1, 2, 3])
        .message(3, msg_type::SHARED_OBJECT_AMF3, 0, 0, &[1, 2, 3])
        .message(2, msg_type::ACKNOWLEDGEMENT, 0, 0, &[0, 0, 0, 9])
        .message(2, msg_type::SET_PEER_BANDWIDTH, 0, 0, &[0, 0, 0, 9, 2])
        .message(
            2,
            msg_type::USER_CONTROL,
            0,
            0,
            &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
        )
        .message(
            2,
            msg_type::USER_CONTROL,
            0,
            0,
            &[0, 6, 0xDE, 0xAD, 0xBE, 0xEF],
        )
        .command(0, "someCustomCall", 9.0, &[Amf0Value::Null])
        .command(
            0,
            "getStreamLength",
            10.0,
            &[Amf0Value::Null, Amf0Value::String("s")],
        )
        .command(0, "_checkbw", 11.0, &[Amf0Value::Null]);
    s.receive(&c.take()).unwrap();
    assert_eq!(s.poll_event(), None);
    let seen = peer.read(&mut s);
    assert_eq!(
        summaries(&seen),
        ["[00, 07, de, ad, be, ef]", "_result 10 0", "_result 11"],
        "ping answered, unknown call ignored, getStreamLength and _checkbw answered"
    );
}

#[test]
fn acknowledgements_follow_the_window() {
    let limits = RtmpLimits {
        ack_window: 5000,
        ..RtmpLimits::default()
    };
    let mut s = ServerSession::with_seed(limits, [1; 32]);
    let mut peer = Peer::new();
    let mut c = Client::new();
    c.connect("live");
    let first = c.take();
    s.receive(&first).unwrap();
    events(&mut s);
    s.accept_connect();
    let seen = peer.read(&mut s);
    assert!(
        seen.iter().all(|m| m.msg_type != msg_type::ACKNOWLEDGEMENT),
        "the handshake and connect are under the window"
    );
    assert_eq!(
        seen[0].summary, "[00, 00, 13, 88]",
        "we announce our window"
    );
    // Enough bytes to pass 5000 in total: one acknowledgement of everything received.
    c.message(3, msg_type::SHARED_OBJECT_AMF0, 0, 0, &[0; 1990]);
    let second = c.take();
    s.receive(&second).unwrap();
    let seen = peer.read(&mut s);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].msg_type, msg_type::ACKNOWLEDGEMENT);
    let value = message::parse_u32(3, &hex_bytes(&seen[0].summary)).unwrap();
    assert_eq!(value as usize, first.len() + second.len());
    // Not again until another window has arrived.
    c.message(3, msg_type::SHARED_OBJECT_AMF0, 0, 0, &[0; 100]);
    s.receive(&c.take()).unwrap();
    assert_eq!(peer.read(&mut s), []);
    // The peer's own window takes over once announced.
    c.message(2, msg_type::WINDOW_ACK_SIZE, 0, 0, &[0, 0, 0, 100]);
    s.receive(&c.take()).unwrap();
    peer.read(&mut s);
    c.message(3, msg_type::SHARED_OBJECT_AMF0, 0, 0, &[0; 120]);
    s.receive(&c.take()).unwrap();
    assert_eq!(peer.read(&mut s)[0].msg_type, msg_type::ACKNOWLEDGEMENT);
}

fn hex_bytes(summary: &str) -> Vec<u8> {
    summary
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

#[test]
fn close_stream_events_come_once() {
    let (mut s, mut peer) = publishing("s?key=1");
    let mut c = Client::chunks_only();
    c.command(
        0,
        "FCUnpublish",
        6.0,
        &[Amf0Value::Null, Amf0Value::String("s?key=1")],
    )
    .command(
        0,
        "deleteStream",
        7.0,
        &[Amf0Value::Null, Amf0Value::Number(1.0)],
    );
    s.receive(&c.take()).unwrap();
    assert_eq!(events(&mut s), [Event::CloseStream { stream_id: 1 }]);
    s.end_publish(1);
    assert_eq!(
        summaries(&peer.read(&mut s)),
        ["onStatus 0 NetStream.Unpublish.Success"]
    );
    // The stream is gone: media on it is an error.
    c.message(6, msg_type::AUDIO, 0, 1, &[0xAF]);
    assert_eq!(
        s.receive(&c.take()).unwrap_err().reason(),
        "media_before_publish"
    );

    // closeStream on the stream itself, then deleteStream by name (GStreamer's rtmp2sink).
    let (mut s, _) = publishing("g2");
    let mut c = Client::chunks_only();
    c.command(1, "closeStream", 0.0, &[Amf0Value::Null])
        .command(
            0,
            "deleteStream",
            0.0,
            &[Amf0Value::Null, Amf0Value::String("g2")],
        );
    s.receive(&c.take()).unwrap();
    assert_eq!(events(&mut s), [Event::CloseStream { stream_id: 1 }]);
    let (mut s, _) = publishing("g2");
    let mut c = Client::chunks_only();
    c.command(
        0,
        "deleteStream",
        0.0,
        &[Amf0Value::Null, Amf0Value::String("g2?x")],
    );
    s.receive(&c.take()).unwrap();
    assert_eq!(events(&mut s), [], "an unknown name closes nothing");
}

#[test]
fn amf3_messages_are_read_as_amf0() {
    let (mut s, _) = publishing("s");
    s.set_media_room(3, 2);
    let mut data = vec![0u8];
    amf0::write_string(&mut data, "@setDataFrame");
    amf0::write_string(&mut data, "onMetaData");
    amf0::write_ecma_array(&mut data, &[("width", Amf0Value::Number(160.0))]);
    let mut c = Client::chunks_only();
    c.message(5, msg_type::DATA_AMF3, 0, 1, &data);
    let mut cmd = vec![0u8];
    amf0::write_string(&mut cmd, "getStreamLength");
    amf0::write_number(&mut cmd, 3.0);
    amf0::write_null(&mut cmd);
    c.message(3, msg_type::COMMAND_AMF3, 0, 0, &cmd);
    s.receive(&c.take()).unwrap();
    let Some(Event::Media(m)) = s.poll_event() else {
        panic!()
    };
    assert_eq!(m.msg_type, msg_type::DATA_AMF0);
    assert_eq!(m.payload(), &data[1..]);
    assert_eq!(m.payload, 3..3 + data.len() - 1);
    assert_eq!(m.buf.len(), 3 + data.len() - 1 + 2);
    assert_eq!(&m.buf[m.buf.len() - 2..], &[0, 0]);
    assert!(s.take_output().is_some(), "the AMF3 command was answered");
}

#[test]
fn aggregates_split_into_media_events() {
    let (mut s, _) = publishing("s");
    s.set_media_room(2, 1);
    let mut body = Vec::new();
    for (t, ts, data) in [
        (9u8, 1000u32, &[0x17u8, 1][..]),
        (8, 1010, &[0xAF, 1]),
        (9, 1040, &[0x27, 1]),
    ] {
        body.push(t);
        body.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        body.extend_from_slice(&ts.to_be_bytes()[1..]);
        body.push(0);
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(data);
        body.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
    }
    let mut c = Client::chunks_only();
    c.message(4, msg_type::AGGREGATE, 5000, 1, &body);
    s.receive(&c.take()).unwrap();
    let media: Vec<_> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Media(m) => (
                m.msg_type,
                m.timestamp_ms,
                m.payload().to_vec(),
                m.buf.len(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        media,
        [
            (9, 5000, vec![0x17, 1], 5),
            (8, 5010, vec![0xAF, 1], 5),
            (9, 5040, vec![0x27, 1], 5)
        ]
    );
    c.message(4, msg_type::AGGREGATE, 0, 1, &body[..body.len() - 1]);
    assert_eq!(s.receive(&c.take()).unwrap_err().reason(), "aggregate");
}

#[test]
fn connect_echoes_object_encoding_and_four_cc_list() {
    let mut s = session();
    let mut peer = Peer::new();
    let mut c = Client::new();
    c.command(
        0,
        "connect",
        1.0,
        &[Amf0Value::Object(vec![
            ("app", Amf0Value::String("live")),
            ("objectEncoding", Amf0Value::Number(3.0)),
            (
                "fourCcList",
                Amf0Value::StrictArray(vec![Amf0Value::String("hvc1"), Amf0Value::String("av01")]),
            ),
        ])],
    );
    s.receive(&c.take()).unwrap();
    let Some(Event::Connect {
        object_encoding,
        tc_url,
        ..
    }) = s.poll_event()
    else {
        panic!()
    };
    assert_eq!((object_encoding, tc_url), (3.0, None));
    s.accept_connect();
    let out = s.take_output().unwrap();
    let mut input = &out[1 + 2 * HANDSHAKE_SIZE..];
    let mut found = false;
    while let Some(m) = peer.decoder.decode(&mut input, 0).unwrap() {
        if m.msg_type == msg_type::SET_CHUNK_SIZE {
            peer.decoder
                .set_chunk_size(message::parse_u32(1, m.payload()).unwrap())
                .unwrap();
        }
        if m.msg_type == msg_type::COMMAND_AMF0 {
            let v = amf0::decode_all(m.payload()).unwrap();
            if v[0].as_str() == Some("_result") {
                let list = v[2].get("fourCcList").unwrap();
                assert_eq!(
                    list,
                    &Amf0Value::StrictArray(vec![
                        Amf0Value::String("hvc1"),
                        Amf0Value::String("av01")
                    ])
                );
                assert_eq!(v[3].get("objectEncoding").unwrap().as_number(), Some(3.0));
                found = true;
            }
        }
    }
    assert!(found);
}

#[test]
fn enhanced_rtmp_video_passes_untouched() {
    let (mut s, _) = publishing("s");
    // ExHeader bit set, PacketType SequenceStart, FourCC hvc1.
    let body = [0x90, b'h', b'v', b'c', b'1', 1, 2, 3];
    let mut c = Client::chunks_only();
    c.message(7, msg_type::VIDEO, 0, 1, &body);
    s.receive(&c.take()).unwrap();
    let Some(Event::Media(m)) = s.poll_event() else {
        panic!()
    };
    assert_eq!(m.payload(), body);
}

// ---- the chunk decoder ----

fn decode_all(decoder: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<Message>, RtmpError> {
    let mut input = bytes;
    let mut out = Vec::new();
    while let Some(m) = decoder.decode(&mut input, 0)? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn header_types_and_timestamp_deltas() {
    // Hand-written chunks: type 0 at 1000, type 2 delta 20, type 3 new message (delta again),
    // type 1 with a new length, type 3 again; a type 3 after a type 0 adds the type-0 field.
    let mut bytes = vec![];
    bytes.extend_from_slice(&[0x04, 0, 0x03, 0xE8, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]);
    bytes.extend_from_slice(&[0x84, 0, 0, 20, 0xBB]);
    bytes.extend_from_slice(&[0xC4, 0xCC]);
    bytes.extend_from_slice(&[0x44, 0, 0, 5, 0, 0, 2, 9, 0xDD, 0xDE]);
    bytes.extend_from_slice(&[0xC4, 0xEE, 0xEF]);
    bytes.extend_from_slice(&[0x05, 0, 0, 40, 0, 0, 1, 8, 1, 0, 0, 0, 0x01]);
    bytes.extend_from_slice(&[0xC5, 0x02]);
    let mut d = ChunkDecoder::new(RtmpLimits::default());
    let got: Vec<_> = decode_all(&mut d, &bytes)
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.csid,
                m.msg_type,
                m.timestamp,
                m.stream_id,
                m.payload().to_vec(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (4, 8, 1000, 1, vec![0xAA]),
            (4, 8, 1020, 1, vec![0xBB]),
            (4, 8, 1040, 1, vec![0xCC]),
            (4, 9, 1045, 1, vec![0xDD, 0xDE]),
            (4, 9, 1050, 1, vec![0xEE, 0xEF]),
            (5, 8, 40, 1, vec![0x01]),
            (5, 8, 80, 1, vec![0x02]),
        ]
    );
}

#[test]
fn chunk_sequence_errors() {
    // Type 2 and type 3 on a fresh chunk stream; a type 1 after the first 128-byte chunk of
    // a 200-byte message.
    let mut interrupted = vec![0x04, 0, 0, 0, 0, 0, 200, 8, 0, 0, 0, 0];
    interrupted.extend_from_slice(&[1; 128]);
    interrupted.extend_from_slice(&[0x44, 0, 0, 0, 0, 0, 1, 8]);
    for bytes in [&[0x84u8, 0, 0, 1][..], &[0xC4], &interrupted] {
        let mut d = ChunkDecoder::new(RtmpLimits::default());
        let err = decode_all(&mut d, bytes).unwrap_err();
        assert_eq!(err.reason(), "chunk_sequence", "{bytes:02x?}");
    }
    // A type 1 on a fresh chunk stream is accepted (librtmp's first ping).
    let mut d = ChunkDecoder::new(RtmpLimits::default());
    let got = decode_all(&mut d, &[0x42, 0, 0, 0, 0, 0, 6, 4, 0, 6, 0, 0, 0, 1]).unwrap();
    assert_eq!((got[0].csid, got[0].msg_type, got[0].stream_id), (2, 4, 0));
}

#[test]
fn basic_header_forms() {
    for csid in [2u32, 63, 64, 319, 320, 1000, 65599] {
        let mut e = ChunkEncoder::new();
        let mut bytes = Vec::new();
        e.write_message(csid, 8, 7, 1, &[1, 2, 3], &mut bytes);
        let expected_basic = if csid < 64 {
            1
        } else if csid < 320 {
            2
        } else {
            3
        };
        assert_eq!(bytes.len(), expected_basic + 11 + 3);
        let mut d = ChunkDecoder::new(RtmpLimits::default());
        let got = decode_all(&mut d, &bytes).unwrap();
        assert_eq!(got[0].csid, csid);
        assert_eq!(got[0].payload(), [1, 2, 3]);
    }
    // The 3-byte form may carry small ids too.
    let mut d = ChunkDecoder::new(RtmpLimits::default());
    let got = decode_all(&mut d, &[0x01, 0, 0, 0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 9]).unwrap();
    assert_eq!(got[0].csid, 64);
}

#[test]
fn extended_timestamps_with_and_without_repetition() {
    for repeat in [true, false] {
        let mut e = ChunkEncoder::new();
        e.set_repeat_extended(repeat);
        let mut bytes = Vec::new();
        let payload: Vec<u8> = (0..300).map(|i| (i % 251) as u8).collect();
        e.write_message(6, 9, 0x0100_0000, 1, &payload, &mut bytes);
        // A type 0 "delta" is its timestamp, so 0x0250_0000 needs a type 2 (extended delta
        // 0x0150_0000) and 0x03A0_0000 repeats that delta as a type 3.
        e.write_message(6, 9, 0x0250_0000, 1, &payload, &mut bytes);
        e.write_message(6, 9, 0x03A0_0000, 1, &payload, &mut bytes);
        for split in [1, 3, 5, 128, bytes.len()] {
            let mut d = ChunkDecoder::new(RtmpLimits::default());
            let mut got = Vec::new();
            for piece in bytes.chunks(split) {
                got.extend(decode_all(&mut d, piece).unwrap());
            }
            let ts: Vec<_> = got.iter().map(|m| m.timestamp).collect();
            assert_eq!(
                ts,
                [0x0100_0000, 0x0250_0000, 0x03A0_0000],
                "repeat {repeat} split {split}"
            );
            assert!(got.iter().all(|m| m.payload() == payload));
            let (repeated, omitted) = d.extended_type3_counts();
            if repeat {
                assert_eq!((repeated, omitted), (7, 0));
            } else {
                // Only the type-3 chunk that starts the third message carries it.
                assert_eq!((repeated, omitted), (1, 6));
            }
        }
    }
}

#[test]
fn payload_that_looks_like_a_repeated_extended_timestamp_is_payload_once_the_peer_omits_it() {
    // Found by the round-trip property test: a peer that omits the extended timestamp on
    // continuation chunks, and a later chunk whose payload starts with the timestamp's bytes.
    // The first continuation tells the convention; later ones are not peeked.
    let mut e = ChunkEncoder::new();
    e.set_repeat_extended(false);
    let mut payload: Vec<u8> = (0..300).map(|i| (i % 251) as u8 | 0x80).collect();
    payload[256..260].copy_from_slice(&0x0100_0000u32.to_be_bytes());
    let mut bytes = Vec::new();
    e.write_message(6, 9, 0x0100_0000, 1, &payload, &mut bytes);
    for split in [1, 7, bytes.len()] {
        let mut d = ChunkDecoder::new(RtmpLimits::default());
        let mut got = Vec::new();
        for piece in bytes.chunks(split) {
            got.extend(decode_all(&mut d, piece).unwrap());
        }
        assert_eq!(got.len(), 1, "split {split}");
        assert_eq!(got[0].payload(), &payload[..], "split {split}");
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn short_final_chunk_after_extended_timestamp_does_not_wait() {
    // 130 bytes at chunk size 128: the last chunk has 2 bytes and no repeated timestamp.
    let mut e = ChunkEncoder::new();
    e.set_repeat_extended(false);
    let mut bytes = Vec::new();
    e.write_message(6, 9, 0x0100_0000, 1, &[0x55; 130], &mut bytes);
    let mut d = ChunkDecoder::new(RtmpLimits::default());
    let got = decode_all(&mut d, &bytes).unwrap();
    assert_eq!(got.len(), 1, "completes without more input");
}

#[test]
fn limits_on_chunk_size_message_size_and_streams() {
    let limits = RtmpLimits {
        chunk_size_max: 4096,
        message_bytes_max: 1000,
        chunk_streams_max: 3,
        ..RtmpLimits::default()
    };
    let mut d = ChunkDecoder::new(limits);
    assert!(d.set_chunk_size(4096).is_ok());
    assert_eq!(d.set_chunk_size(4097).unwrap_err().reason(), "chunk_size");
    assert_eq!(d.set_chunk_size(0).unwrap_err().reason(), "chunk_size");
    assert_eq!(
        d.set_chunk_size(0x8000_0080).unwrap_err().reason(),
        "chunk_size"
    );
    let mut d = ChunkDecoder::new(RtmpLimits::default());
    d.set_chunk_size(0x7FFF_FFFF).unwrap();
    assert_eq!(
        d.chunk_size(),
        0xFF_FFFF,
        "bigger sizes mean one chunk per message"
    );

    let mut d = ChunkDecoder::new(limits);
    let header = [0x04, 0, 0, 0, 0, 0x03, 0xE9, 8, 1, 0, 0, 0];
    assert_eq!(
        decode_all(&mut d, &header).unwrap_err().reason(),
        "message_too_large"
    );
    assert_eq!(d.buffered(), 0, "refused from the header");

    let mut d = ChunkDecoder::new(limits);
    let mut e = ChunkEncoder::new();
    let mut bytes = Vec::new();
    for csid in 2..=5 {
        e.write_message(csid, 8, 0, 1, &[1], &mut bytes);
    }
    assert_eq!(
        decode_all(&mut d, &bytes).unwrap_err().reason(),
        "chunk_streams"
    );
}

#[test]
fn a_flood_of_claims_costs_what_it_sends() {
    // 64 chunk streams each announce an 8 MiB message and send one byte of it.
    let limits = RtmpLimits::default();
    let mut d = ChunkDecoder::new(limits);
    d.set_chunk_size(1).unwrap();
    let mut bytes2 = Vec::new();
    for csid in 3..67u32 {
        if csid < 64 {
            bytes2.push(csid as u8);
        } else {
            bytes2.extend_from_slice(&[0, (csid - 64) as u8]);
        }
        let len = 8 * 1024 * 1024u32;
        bytes2.extend_from_slice(&[0, 0, 0]);
        bytes2.extend_from_slice(&len.to_be_bytes()[1..]);
        bytes2.extend_from_slice(&[9, 1, 0, 0, 0, 0xAB]);
    }
    assert!(decode_all(&mut d, &bytes2).unwrap().is_empty());
    // One reservation fits the budget; the other 63 hold what arrived.
    assert!(
        d.buffered() <= 8 * 1024 * 1024 + 63 * 64,
        "buffered {}",
        d.buffered()
    );
    // Bytes that do arrive count: a limit of 1 KiB is hit by sending more than that.
    let small = RtmpLimits {
        buffered_bytes_max: 1024,
        ..RtmpLimits::default()
    };
    let mut d = ChunkDecoder::new(small);
    let mut e = ChunkEncoder::new();
    let mut bytes = Vec::new();
    e.write_message(4, 9, 0, 1, &[7; 5000], &mut bytes);
    assert_eq!(
        decode_all(&mut d, &bytes[..2000]).unwrap_err().reason(),
        "buffered_too_large"
    );
}

#[test]
fn abort_drops_a_partial_message() {
    let mut e = ChunkEncoder::new();
    let mut bytes = Vec::new();
    let chunks = e.message_chunks(6, 8, 0, 1, &[1; 300]);
    bytes.extend_from_slice(&chunks[0]);
    let (mut s, _) = publishing("s");
    let mut c = Client::chunks_only();
    c.bytes = bytes;
    c.message(2, msg_type::ABORT, 0, 0, &[0, 0, 0, 6]);
    s.receive(&c.take()).unwrap();
    let held = s.buffered_bytes();
    assert_eq!(held, 0, "the partial message was dropped");
    // A new message on the same chunk stream starts cleanly.
    let mut e = ChunkEncoder::new();
    let mut bytes = Vec::new();
    e.write_message(6, 8, 0, 1, &[2; 10], &mut bytes);
    s.receive(&bytes).unwrap();
    let Some(Event::Media(m)) = s.poll_event() else {
        panic!()
    };
    assert_eq!(m.payload(), [2; 10]);
}

#[test]
fn write_message_header_is_one_decodable_chunk() {
    for ts in [0u32, 1234, 0xFF_FFFE, 0xFF_FFFF, 0x1234_5678] {
        let mut header = [0u8; MESSAGE_HEADER_MAX];
        let len = write_message_header(csid::VIDEO, 9, ts, 5000, 1, &mut header);
        assert_eq!(len, if ts >= 0xFF_FFFF { 16 } else { 12 });
        let mut bytes = header[..len].to_vec();
        bytes.extend_from_slice(&[0x27; 5000]);
        let mut d = ChunkDecoder::new(RtmpLimits::default());
        d.set_chunk_size(0xFF_FFFF).unwrap();
        let got = decode_all(&mut d, &bytes).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].csid,
                got[0].msg_type,
                got[0].timestamp,
                got[0].stream_id
            ),
            (7, 9, ts, 1)
        );
        assert_eq!(got[0].payload().len(), 5000);
    }
}

#[test]
fn error_reasons_are_distinct() {
    use crate::proto::amf0::Amf0Error;
    let all = [
        ErrorKind::HandshakeVersion(6),
        ErrorKind::ChunkSize(0),
        ErrorKind::MessageTooLarge { len: 1, max: 0 },
        ErrorKind::BufferedTooLarge { held: 1, max: 0 },
        ErrorKind::ChunkStreams { max: 1 },
        ErrorKind::ChunkSequence { csid: 3, fmt: 2 },
        ErrorKind::Amf(Amf0Error::Truncated),
        ErrorKind::BadCommand("x"),
        ErrorKind::BadControl {
            msg_type: 1,
            len: 0,
        },
        ErrorKind::Aggregate,
        ErrorKind::CommandBeforeConnect("play".into()),
        ErrorKind::ConnectTwice,
        ErrorKind::MediaBeforePublish {
            stream_id: 1,
            msg_type: 9,
        },
        ErrorKind::BadStreamId(3),
        ErrorKind::StreamBusy(1),
        ErrorKind::MessageStreams { max: 8 },
        ErrorKind::UnknownMessageType(7),
    ];
    let reasons: std::collections::HashSet<_> = all
        .iter()
        .map(|k| RtmpError::from(k.clone()).reason())
        .collect();
    assert_eq!(reasons.len(), all.len());
    assert_eq!(RtmpError::from(ErrorKind::Amf3).reason(), "amf");
    assert_eq!(
        RtmpError::from(ErrorKind::MediaBeforePublish {
            stream_id: 1,
            msg_type: 9
        })
        .to_string(),
        "message type 9 on stream 1, which is not publishing"
    );
}

#[test]
fn create_stream_is_bounded() {
    let mut s = session();
    let mut c = Client::new();
    c.connect("live");
    for txn in 0..8 {
        c.create_stream(2.0 + f64::from(txn));
    }
    s.receive(&c.take()).unwrap();
    c.create_stream(20.0);
    assert_eq!(
        s.receive(&c.take()).unwrap_err().reason(),
        "message_streams"
    );
}

#[test]
fn digest_handshake_is_answered_in_kind() {
    for scheme in [DigestScheme::Block772, DigestScheme::Block8] {
        let mut s = session();
        let mut input = vec![3u8];
        input.extend_from_slice(&handshake::client_c1(scheme, 0x33));
        s.receive(&input).unwrap();
        assert_eq!(s.handshake_kind(), Some(HandshakeKind::Digest(scheme)));
        let out = s.take_output().unwrap();
        let s1: [u8; HANDSHAKE_SIZE] = out[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
        assert!(handshake::server_digest_valid(&s1, scheme));
        assert!(!s.handshake_done());
        s.receive(&[0; HANDSHAKE_SIZE]).unwrap();
        assert!(s.handshake_done());
    }
}

// ---- captured real sessions ----

const CAPTURES: &[(&str, &[u8])] = &[
    (
        "ffmpeg_publish",
        include_bytes!("../../../tests/captures/rtmp/ffmpeg_publish.bin"),
    ),
    (
        "ffmpeg_publish_extts",
        include_bytes!("../../../tests/captures/rtmp/ffmpeg_publish_extts.bin"),
    ),
    (
        "gst_rtmp2sink_publish",
        include_bytes!("../../../tests/captures/rtmp/gst_rtmp2sink_publish.bin"),
    ),
    (
        "gst_rtmpsink_publish",
        include_bytes!("../../../tests/captures/rtmp/gst_rtmpsink_publish.bin"),
    ),
    (
        "rtmpdump_play",
        include_bytes!("../../../tests/captures/rtmp/rtmpdump_play.bin"),
    ),
    (
        "ffmpeg_play",
        include_bytes!("../../../tests/captures/rtmp/ffmpeg_play.bin"),
    ),
];

fn capture(name: &str) -> &'static [u8] {
    CAPTURES.iter().find(|(n, _)| *n == name).unwrap().1
}

/// A media event, with a short payload summary so that a failing comparison prints small.
#[derive(PartialEq)]
struct Media(u8, u32, Vec<u8>);

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sum: u64 = self
            .2
            .iter()
            .enumerate()
            .map(|(i, &b)| (i as u64 + 1) * u64::from(b))
            .sum();
        write!(
            f,
            "({}, {}, {} bytes {:02x?}.. sum {sum})",
            self.0,
            self.1,
            self.2.len(),
            &self.2[..self.2.len().min(4)]
        )
    }
}

/// Everything a replay produced.
#[derive(Debug, PartialEq)]
struct Replay {
    kind: Option<HandshakeKind>,
    connect: Option<Event>,
    publishes: Vec<Event>,
    plays: Vec<Event>,
    media: Vec<Media>,
    closes: Vec<u32>,
    extended_type3: (u64, u64),
    output_len: usize,
}

/// Replays a client→server stream, accepting every request, in the given pieces.
fn replay<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Replay {
    let mut s = session();
    s.set_media_room(11, 4);
    let mut r = Replay {
        kind: None,
        connect: None,
        publishes: vec![],
        plays: vec![],
        media: vec![],
        closes: vec![],
        extended_type3: (0, 0),
        output_len: 0,
    };
    for piece in pieces {
        s.receive(piece).unwrap();
        while let Some(e) = s.poll_event() {
            match e {
                Event::Connect { .. } => {
                    assert!(r.connect.is_none());
                    r.connect = Some(e);
                    s.accept_connect();
                }
                Event::Publish { stream_id, .. } => {
                    r.publishes.push(e);
                    s.accept_publish(stream_id);
                }
                Event::Play { stream_id, .. } => {
                    r.plays.push(e);
                    s.accept_play(stream_id);
                }
                Event::Media(m) => {
                    assert_eq!(m.payload.start, 11);
                    assert_eq!(m.buf.len(), m.payload.end + 4);
                    r.media
                        .push(Media(m.msg_type, m.timestamp_ms, m.payload().to_vec()));
                }
                Event::CloseStream { stream_id } => {
                    r.closes.push(stream_id);
                    s.end_publish(stream_id);
                }
            }
        }
        r.output_len += s.take_output().map_or(0, |b| b.len());
        assert!(s.buffered_bytes() <= RtmpLimits::default().buffered_bytes_max as usize);
    }
    r.kind = s.handshake_kind();
    r.extended_type3 = s.extended_type3_counts();
    r
}

/// Pieces of pseudo-random sizes 1..=max (a fixed LCG, so failures reproduce).
fn random_pieces(bytes: &[u8], seed: u64, max: usize) -> Vec<&[u8]> {
    let mut state = seed;
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = ((state >> 33) as usize % max + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// The same replay whole, byte by byte and in random pieces must give the same result.
fn replay_all_ways(name: &str) -> Replay {
    let bytes = capture(name);
    let whole = replay([bytes]);
    assert_same(
        &replay(bytes.chunks(1)),
        &whole,
        &format!("{name} byte by byte"),
    );
    for (seed, max) in [(1, 7), (2, 300), (3, 5000)] {
        assert_same(
            &replay(random_pieces(bytes, seed, max)),
            &whole,
            &format!("{name} seed {seed}"),
        );
    }
    whole
}

/// Field by field, so that a failure names what differs.
fn assert_same(got: &Replay, want: &Replay, what: &str) {
    assert_eq!(got.kind, want.kind, "{what}");
    assert_eq!(got.connect, want.connect, "{what}");
    assert_eq!(got.publishes, want.publishes, "{what}");
    assert_eq!(got.plays, want.plays, "{what}");
    assert_eq!(got.media.len(), want.media.len(), "{what}");
    for (i, (g, w)) in got.media.iter().zip(&want.media).enumerate() {
        assert_eq!(g, w, "{what}: media {i}");
    }
    assert_eq!(got.closes, want.closes, "{what}");
    assert_eq!(got.extended_type3, want.extended_type3, "{what}");
    assert_eq!(got.output_len, want.output_len, "{what}");
}

fn count(r: &Replay, t: u8) -> usize {
    r.media.iter().filter(|m| m.0 == t).count()
}

fn check_publisher_media(r: &Replay) {
    let video: Vec<_> = r.media.iter().filter(|m| m.0 == 9).collect();
    assert_eq!(&video[0].2[..2], &[0x17, 0x00], "AVC sequence header first");
    let audio: Vec<_> = r.media.iter().filter(|m| m.0 == 8).collect();
    assert_eq!(&audio[0].2[..2], &[0xAF, 0x00], "AAC sequence header first");
    for t in [8, 9] {
        let ts: Vec<_> = r.media.iter().filter(|m| m.0 == t).map(|m| m.1).collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "type {t} timestamps go back"
        );
    }
    let data: Vec<_> = r.media.iter().filter(|m| m.0 == 18).collect();
    let (first, _) = amf0::decode(&data[0].2).unwrap();
    assert_eq!(
        first.as_str(),
        Some("@setDataFrame"),
        "metadata comes as @setDataFrame"
    );
    assert_eq!(r.closes, [1], "the publisher closed its stream once");
    assert!(r.output_len > 1 + 2 * HANDSHAKE_SIZE);
}

fn connect_app(r: &Replay) -> (&str, Option<&str>) {
    match r.connect.as_ref().unwrap() {
        Event::Connect { app, tc_url, .. } => (app, tc_url.as_deref()),
        _ => unreachable!(),
    }
}

#[test]
fn replay_ffmpeg_publish() {
    let r = replay_all_ways("ffmpeg_publish");
    assert_eq!(r.kind, Some(HandshakeKind::Digest(DigestScheme::Block8)));
    assert_eq!(
        connect_app(&r),
        ("live", Some("rtmp://127.0.0.1:19351/live"))
    );
    assert_eq!(
        r.publishes,
        [Event::Publish {
            stream_id: 1,
            name: "s".into(),
            query: Some("key=abc".into()),
            mode: PublishMode::Live
        }]
    );
    // 2 s at 15 fps: the sequence header, 30 frames and ffmpeg's end-of-sequence; 1024-sample
    // AAC frames at 44.1 kHz and the AudioSpecificConfig.
    assert_eq!((count(&r, 9), count(&r, 8), count(&r, 18)), (32, 89, 1));
    check_publisher_media(&r);
    assert_eq!(r.extended_type3, (0, 0));
}

#[test]
fn replay_ffmpeg_publish_with_extended_timestamps() {
    let r = replay_all_ways("ffmpeg_publish_extts");
    let Event::Publish { name, .. } = &r.publishes[0] else {
        unreachable!()
    };
    assert_eq!(name, "ext");
    assert_eq!((count(&r, 9), count(&r, 8)), (32, 89));
    check_publisher_media(&r);
    // -output_ts_offset 16790 s puts frames past 0xFFFFFF ms (the first DTS is 133 ms early
    // for the B-frames); ffmpeg repeats the extended timestamp on its type-3 chunks.
    let frames: Vec<_> = r
        .media
        .iter()
        .filter(|m| m.0 == 9)
        .skip(1)
        .map(|m| m.1)
        .collect();
    assert_eq!(frames.len(), 31);
    assert_eq!(frames[0], 16_789_867);
    assert!(
        frames.iter().all(|&ts| ts > 0xFF_FFFF && ts < 16_793_000),
        "{frames:?}"
    );
    let (repeated, omitted) = r.extended_type3;
    assert!(repeated > 0);
    assert_eq!(omitted, 0);
}

#[test]
fn replay_gstreamer_rtmp2sink_publish() {
    let r = replay_all_ways("gst_rtmp2sink_publish");
    assert_eq!(r.kind, Some(HandshakeKind::Plain));
    assert_eq!(connect_app(&r).0, "live");
    assert_eq!(
        r.publishes,
        [Event::Publish {
            stream_id: 1,
            name: "g2".into(),
            query: Some("key=def".into()),
            mode: PublishMode::Live
        }]
    );
    assert_eq!((count(&r, 9), count(&r, 8)), (32, 89));
    assert!(count(&r, 18) >= 1);
    check_publisher_media(&r);
}

#[test]
fn replay_gstreamer_librtmp_publish() {
    let r = replay_all_ways("gst_rtmpsink_publish");
    // librtmp only uses the digest form for RTMPE or SWF verification.
    assert_eq!(r.kind, Some(HandshakeKind::Plain));
    assert_eq!(
        r.publishes,
        [Event::Publish {
            stream_id: 1,
            name: "g1".into(),
            query: None,
            mode: PublishMode::Live
        }]
    );
    assert_eq!((count(&r, 9), count(&r, 8)), (32, 89));
    check_publisher_media(&r);
}

#[test]
fn replay_players() {
    for name in ["rtmpdump_play", "ffmpeg_play"] {
        let r = replay_all_ways(name);
        assert_eq!(connect_app(&r).0, "live", "{name}");
        assert_eq!(
            r.plays,
            [Event::Play {
                stream_id: 1,
                name: "p".into(),
                query: None
            }],
            "{name}"
        );
        assert!(r.publishes.is_empty() && r.media.is_empty(), "{name}");
        assert_eq!(r.closes, [1], "{name} deleted its stream");
        let expected = match name {
            "ffmpeg_play" => HandshakeKind::Digest(DigestScheme::Block8),
            _ => HandshakeKind::Plain, // librtmp
        };
        assert_eq!(r.kind, Some(expected), "{name}");
    }
}

// ---- properties ----

/// One message for the round trip: chunk stream id, type, timestamp, stream id, payload.
fn message_strategy() -> impl Strategy<Value = (u32, u8, u32, u32, Vec<u8>)> {
    (
        prop_oneof![2u32..8, Just(63u32), 64u32..330, Just(65599u32)],
        prop_oneof![Just(8u8), Just(9u8), Just(18u8), Just(20u8)],
        prop_oneof![0u32..100_000, 0xFF_FF00u32..0x0100_0100, any::<u32>()],
        prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..700),
    )
}

proptest! {
    #[test]
    fn chunks_round_trip_at_any_size_interleaving_and_split(
        messages in prop::collection::vec(message_strategy(), 1..24),
        chunk_size in prop_oneof![1u32..16, 16u32..600, Just(0xFF_FFFFu32)],
        repeat_extended in any::<bool>(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        room in (0usize..20, 0usize..20),
        compress in any::<bool>(),
    ) {
        // Timestamps per chunk stream as the decoder will report them.
        let mut encoder = if compress { ChunkEncoder::new() } else { ChunkEncoder::uncompressed() };
        encoder.set_chunk_size(chunk_size);
        encoder.set_repeat_extended(repeat_extended);
        let mut queues: Vec<(u32, std::collections::VecDeque<Vec<u8>>)> = Vec::new();
        for (csid, t, ts, stream, payload) in &messages {
            let chunks = encoder.message_chunks(*csid, *t, *ts, *stream, payload);
            match queues.iter_mut().find(|(c, _)| c == csid) {
                Some((_, q)) => q.extend(chunks),
                None => queues.push((*csid, chunks.into())),
            }
        }
        // Interleave chunks of different chunk streams as `picks` says, then the rest.
        let mut bytes = Vec::new();
        let mut picks = picks.into_iter();
        loop {
            let open: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].1.is_empty()).collect();
            if open.is_empty() {
                break;
            }
            let i = picks.next().map_or(open[0], |p| open[p.index(open.len())]);
            bytes.extend(queues[i].1.pop_front().unwrap());
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();

        let mut decoder = ChunkDecoder::new(RtmpLimits::default());
        decoder.set_chunk_size(chunk_size).unwrap();
        decoder.set_room(room.0, room.1);
        let mut got = Vec::new();
        for w in points.windows(2) {
            let mut input = &bytes[w[0]..w[1]];
            while let Some(m) = decoder.decode(&mut input, 0).unwrap() {
                prop_assert_eq!(m.payload.clone(), room.0..room.0 + m.payload().len());
                prop_assert_eq!(m.buf.len(), m.payload.end + room.1);
                got.push(m);
            }
        }
        prop_assert_eq!(decoder.buffered(), 0);
        for (csid, _) in &queues {
            let sent: Vec<_> = messages.iter().filter(|m| m.0 == *csid)
                .map(|(_, t, ts, stream, payload)| (*t, *ts, *stream, payload.clone())).collect();
            let received: Vec<_> = got.iter().filter(|m| m.csid == *csid)
                .map(|m| (m.msg_type, m.timestamp, m.stream_id, m.payload().to_vec())).collect();
            prop_assert_eq!(received, sent, "chunk stream {}", csid);
        }
    }

    #[test]
    fn captures_at_random_splits_match_one_shot(seed in any::<u64>(), max in 1usize..3000) {
        for name in ["ffmpeg_publish", "gst_rtmp2sink_publish"] {
            let bytes = capture(name);
            prop_assert_eq!(replay(random_pieces(bytes, seed, max)), replay([bytes]));
        }
    }

    // Stable runs of the fuzz entry points (fuzz/fuzz_targets/rtmp_*.rs).

    #[test]
    fn fuzz_rtmp_handshake_stable(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
        fuzzing::handshake(&bytes);
    }

    #[test]
    fn fuzz_rtmp_handshake_stable_valid_version(
        mut bytes in prop::collection::vec(any::<u8>(), 2..4000),
    ) {
        bytes[1] = 3;
        fuzzing::handshake(&bytes);
    }

    #[test]
    fn fuzz_rtmp_chunk_stable(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        fuzzing::chunk(&bytes);
    }

    #[test]
    fn fuzz_rtmp_session_stable(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        fuzzing::session(&bytes);
    }

    #[test]
    fn fuzz_rtmp_session_stable_on_corrupted_captures(
        which in 0usize..6,
        control in any::<u8>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        // The chunk stream of a real session (handshake cut off), with a few bytes changed.
        let mut bytes = vec![control];
        let capture = CAPTURES[which].1;
        bytes.extend_from_slice(&capture[1 + 2 * HANDSHAKE_SIZE..capture.len().min(12_000)]);
        for (index, value) in &flips {
            let i = 1 + index.index(bytes.len() - 1);
            bytes[i] = *value;
        }
        fuzzing::session(&bytes);
    }
}

#[test]
fn fuzz_session_entry_point_reaches_media_on_a_capture() {
    // The stable-run test must be able to fail: the entry point really drives publishes.
    let capture = capture("ffmpeg_publish");
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&capture[1 + 2 * HANDSHAKE_SIZE..]);
    fuzzing::session(&bytes);
    let mut s = ServerSession::with_seed(RtmpLimits::default(), [0; 32]);
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
    s.receive(&hs).unwrap();
    s.receive(&bytes[1..]).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connect { .. })));
}
