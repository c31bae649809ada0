//! [`ServerSession`]: the handshake, the chunk stream and the NetConnection/NetStream
//! commands of one server connection, and the replies clients expect (modelled on what
//! nginx-rtmp and SRS send, which every client is tested against).
//!
//! Requests that need the server's decision (`connect`, `publish`, `play`) become events and
//! leave a hole in the output: replies to later requests queue behind it, so the client sees
//! answers in request order even when it pipelines (or a capture is replayed in one piece),
//! and the server may decide later. Media that arrives for a publish awaiting its answer is
//! queued as events behind the `Publish` event and dropped if the publish is refused.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::RtmpLimits;
use super::chunk::{ChunkDecoder, ChunkEncoder, Message};
use super::command::{self, Command, on_status, write_call};
use super::csid;
use super::error::{ErrorKind, RtmpError};
use super::handshake::{Handshake, HandshakeKind};
use super::message::{
    self, PEER_BANDWIDTH_DYNAMIC, UserControl, msg_type, u32_payload, user_control,
    user_control_payload,
};
use crate::proto::amf0::{self, Amf0Value};

/// What the server has to act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Answer with [`ServerSession::accept_connect`] or [`ServerSession::reject_connect`].
    Connect {
        /// `app` up to the first `?`.
        app: String,
        /// What follows the first `?` of `app`, if anything.
        app_query: Option<String>,
        tc_url: Option<String>,
        object_encoding: f64,
    },
    /// Answer with [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    Publish {
        stream_id: u32,
        /// The publish name up to the first `?`.
        name: String,
        /// What follows the first `?` (`"stream?key=x"` → `Some("key=x")`).
        query: Option<String>,
        mode: PublishMode,
    },
    /// Answer with [`ServerSession::accept_play`] or [`ServerSession::reject_play`].
    Play {
        stream_id: u32,
        name: String,
        query: Option<String>,
    },
    /// Audio (8), video (9) or data (18; AMF3 data 15 is converted) on a publishing stream.
    Media(MediaMessage),
    /// `deleteStream`, `closeStream` or `FCUnpublish` of a publishing or playing stream; once
    /// per stream. For a publisher, answer with [`ServerSession::end_publish`].
    CloseStream { stream_id: u32 },
}

/// The `publish` type argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishMode {
    /// `"live"`, and anything we do not know.
    Live,
    Record,
    Append,
}

/// One media message, in a buffer laid out for the server's ring entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaMessage {
    /// 8, 9 or 18 (FLV tag types).
    pub msg_type: u8,
    /// Absolute message timestamp: 32 bits, deltas added wrapping, extended timestamps
    /// resolved.
    pub timestamp_ms: u32,
    /// Message stream id.
    pub stream_id: u32,
    /// Exactly `before + payload length + after` bytes (see
    /// [`ServerSession::set_media_room`]); the room bytes are zero.
    pub buf: BytesMut,
    /// Where the payload sits in `buf` (`before..before + len`).
    pub payload: Range<usize>,
}

impl MediaMessage {
    /// The message payload.
    pub fn payload(&self) -> &[u8] {
        self.buf.get(self.payload.clone()).unwrap_or_default()
    }
}

/// A request waiting for the server's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Connect,
    Publish(u32),
    Play(u32),
}

struct OutMessage {
    csid: u32,
    msg_type: u8,
    stream_id: u32,
    payload: Vec<u8>,
}

enum OutItem {
    Message(OutMessage),
    Decision {
        key: Decision,
        /// The stream name of a publish/play, as it was when the request came: the stream
        /// may be deleted before the answer.
        name: String,
        answer: Option<Vec<OutMessage>>,
    },
}

/// Replies in wire order. Messages are chunked only when everything before them is known,
/// so the chunk size in force (our Set Chunk Size is part of the connect answer) is the one
/// the peer will apply.
struct Output {
    ready: Vec<u8>,
    encoder: ChunkEncoder,
    queue: VecDeque<OutItem>,
    /// Payload bytes of the messages in `queue`.
    deferred_bytes: usize,
}

impl Output {
    fn encode(&mut self, message: &OutMessage) {
        self.encoder.write_message(
            message.csid,
            message.msg_type,
            0,
            message.stream_id,
            &message.payload,
            &mut self.ready,
        );
        if message.msg_type == msg_type::SET_CHUNK_SIZE
            && let Ok(size) = message::parse_u32(msg_type::SET_CHUNK_SIZE, &message.payload)
        {
            self.encoder.set_chunk_size(size.max(1));
        }
    }

    fn push(&mut self, message: OutMessage) {
        if self.queue.is_empty() {
            self.encode(&message);
        } else {
            self.deferred_bytes += message.payload.len();
            self.queue.push_back(OutItem::Message(message));
        }
    }

    fn open(&mut self, key: Decision, name: &str) {
        self.queue.push_back(OutItem::Decision {
            key,
            name: name.to_owned(),
            answer: None,
        });
    }

    /// The name recorded with the unanswered request `key`.
    fn pending_name(&self, key: Decision) -> Option<&str> {
        let index = self.position(key)?;
        match self.queue.get(index) {
            Some(OutItem::Decision { name, .. }) => Some(name),
            _ => None,
        }
    }

    fn position(&self, wanted: Decision) -> Option<usize> {
        self.queue.iter().position(
            |item| matches!(item, OutItem::Decision { key, answer: None, .. } if *key == wanted),
        )
    }

    /// Fills the hole left for `key` (or appends, if there is none) and sends what it
    /// unblocks.
    fn answer(&mut self, key: Decision, messages: Vec<OutMessage>) {
        match self.position(key) {
            Some(index) => {
                if let Some(OutItem::Decision { answer, .. }) = self.queue.get_mut(index) {
                    *answer = Some(messages);
                }
                self.flush();
            }
            None => {
                for message in messages {
                    self.push(message);
                }
            }
        }
    }

    /// Answers `key` and drops everything queued after it.
    fn answer_last(&mut self, key: Decision, messages: Vec<OutMessage>) {
        if let Some(index) = self.position(key) {
            self.queue.truncate(index + 1);
            self.deferred_bytes = self
                .queue
                .iter()
                .map(|item| match item {
                    OutItem::Message(m) => m.payload.len(),
                    OutItem::Decision { .. } => 0,
                })
                .sum();
        }
        self.answer(key, messages);
    }

    fn flush(&mut self) {
        loop {
            match self.queue.front() {
                Some(OutItem::Decision { answer: None, .. }) | None => return,
                Some(_) => {}
            }
            match self.queue.pop_front() {
                Some(OutItem::Message(message)) => {
                    self.deferred_bytes -= message.payload.len();
                    self.encode(&message);
                }
                Some(OutItem::Decision {
                    answer: Some(messages),
                    ..
                }) => {
                    for message in &messages {
                        self.encode(message);
                    }
                }
                _ => return,
            }
        }
    }
}

enum ConnectState {
    Expect,
    Pending,
    Accepted,
    /// Refused: input is discarded until the server closes the connection.
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum StreamState {
    Idle,
    PublishPending,
    Publishing,
    PlayPending,
    Playing,
}

struct MessageStream {
    id: u32,
    state: StreamState,
    /// The last publish/play name, for status descriptions and `FCUnpublish`.
    name: String,
    /// The name as sent (query included), which `FCUnpublish` repeats.
    full_name: String,
}

impl MessageStream {
    fn publishing(&self) -> bool {
        matches!(
            self.state,
            StreamState::PublishPending | StreamState::Publishing
        )
    }

    fn active(&self) -> bool {
        self.state != StreamState::Idle
    }
}

fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((name, query)) => (name.to_owned(), Some(query.to_owned())),
        None => (s.to_owned(), None),
    }
}

/// Longest peer-supplied name we repeat in a reply: replies stay far below the 16 MiB a
/// message can carry whatever `message_bytes_max` allows in.
const ECHO_BYTES_MAX: usize = 256;
/// Most FourCCs of a connect's `fourCcList` echoed back.
const ECHO_FOUR_CC_MAX: usize = 32;

/// `s` cut to at most [`ECHO_BYTES_MAX`] bytes, on a character boundary.
fn short(s: &str) -> &str {
    let mut end = s.len().min(ECHO_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn stream_id_from(n: f64) -> Option<u32> {
    (n.is_finite() && n >= 0.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0).then_some(n as u32)
}

fn control(msg_type: u8, payload: Vec<u8>) -> OutMessage {
    OutMessage {
        csid: csid::CONTROL,
        msg_type,
        stream_id: 0,
        payload,
    }
}

fn command_message(stream_id: u32, payload: Vec<u8>) -> OutMessage {
    OutMessage {
        csid: csid::COMMAND,
        msg_type: msg_type::COMMAND_AMF0,
        stream_id,
        payload,
    }
}

fn data_message(stream_id: u32, payload: Vec<u8>) -> OutMessage {
    OutMessage {
        csid: csid::DATA,
        msg_type: msg_type::DATA_AMF0,
        stream_id,
        payload,
    }
}

/// The server side of one RTMP connection. See the [module docs](super) for the call order.
pub struct ServerSession {
    limits: RtmpLimits,
    handshake: Handshake,
    decoder: ChunkDecoder,
    output: Output,
    events: VecDeque<Event>,
    /// Buffer capacity of the media events in `events`.
    event_bytes: usize,
    connect: ConnectState,
    connect_txn: f64,
    object_encoding: f64,
    four_cc_list: Vec<String>,
    streams: Vec<MessageStream>,
    next_stream_id: u32,
    /// Bytes received, wrapping (the acknowledgement sequence number).
    received: u32,
    received_since_ack: u64,
    peer_window: Option<u32>,
    room: (usize, usize),
    dead: Option<RtmpError>,
}

impl ServerSession {
    /// A session whose handshake filler is seeded from the OS (`getrandom`). If the OS has
    /// no randomness to give, the filler is fixed: S1's random bytes carry no secret.
    pub fn new(limits: RtmpLimits) -> Self {
        let mut seed = [0u8; 32];
        let _ = getrandom::fill(&mut seed);
        Self::with_seed(limits, seed)
    }

    /// A session with a fixed handshake seed (reproducible output for tests and fuzzing).
    pub fn with_seed(limits: RtmpLimits, seed: [u8; 32]) -> Self {
        Self {
            limits,
            handshake: Handshake::new(seed),
            decoder: ChunkDecoder::new(limits),
            output: Output {
                ready: Vec::new(),
                encoder: ChunkEncoder::uncompressed(),
                queue: VecDeque::new(),
                deferred_bytes: 0,
            },
            events: VecDeque::new(),
            event_bytes: 0,
            connect: ConnectState::Expect,
            connect_txn: 1.0,
            object_encoding: 0.0,
            four_cc_list: Vec::new(),
            streams: Vec::new(),
            next_stream_id: super::MEDIA_STREAM_ID,
            received: 0,
            received_since_ack: 0,
            peer_window: None,
            room: (0, 0),
            dead: None,
        }
    }

    /// Feed bytes as received (any split, handshake included). Appends anything to send to
    /// the output and queues events. After an `Err` the session is dead and returns the same
    /// error again; the server disconnects and counts `err.reason()`. After
    /// [`ServerSession::reject_connect`] input is discarded.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if let Some(error) = &self.dead {
            return Err(error.clone());
        }
        if matches!(self.connect, ConnectState::Rejected) {
            return Ok(());
        }
        let result = self.receive_inner(data);
        if let Err(error) = &result {
            self.dead = Some(error.clone());
        }
        result
    }

    fn receive_inner(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.received = self.received.wrapping_add(data.len() as u32);
        self.received_since_ack += data.len() as u64;
        let mut rest = data;
        if !self.handshake.is_done() {
            let used = self.handshake.receive(rest, &mut self.output.ready)?;
            rest = rest.get(used..).unwrap_or_default();
            if !self.handshake.is_done() {
                return Ok(());
            }
        }
        while let Some(message) = self.decoder.decode(&mut rest, self.held())? {
            self.handle_message(message)?;
            if matches!(self.connect, ConnectState::Rejected) {
                return Ok(());
            }
        }
        self.acknowledge();
        Ok(())
    }

    /// The next event, in the order the requests arrived.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Media(media) = &event {
            self.event_bytes -= media.buf.capacity();
        }
        Some(event)
    }

    /// Bytes to send, if any (handshake, acknowledgements, ping responses, command answers).
    /// Send them whole and in order, between whole media messages.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.output.ready.is_empty() {
            return None;
        }
        Some(Bytes::from(std::mem::take(&mut self.output.ready)))
    }

    /// The handshake form the client used, once C1 has arrived.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake.kind()
    }

    /// Type-3 chunks on chunk streams with an extended timestamp: how many repeated it and
    /// how many did not (see [`ChunkDecoder::extended_type3_counts`]).
    pub fn extended_type3_counts(&self) -> (u64, u64) {
        self.decoder.extended_type3_counts()
    }

    /// Whether the handshake (C2 included) is complete.
    pub fn handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// Room around the payload of media buffers that start from now on: `buf` is
    /// `[before][payload][after]`, so the caller can write its framing in place. Default 0/0.
    pub fn set_media_room(&mut self, before: usize, after: usize) {
        self.room = (before, after);
        self.decoder.set_room(before, after);
    }

    /// Accepts the connect: Window Acknowledgement Size, Set Peer Bandwidth (dynamic), Set
    /// Chunk Size, `_result` with NetConnection.Connect.Success (echoing objectEncoding and
    /// an Enhanced RTMP fourCcList), then `onBWDone`.
    pub fn accept_connect(&mut self) {
        if matches!(self.connect, ConnectState::Pending) {
            self.connect = ConnectState::Accepted;
        }
        let chunk_size = self.limits.out_chunk_size.clamp(1, 0xFF_FFFF);
        let four_cc: Vec<Amf0Value<'_>> = self
            .four_cc_list
            .iter()
            .map(|s| Amf0Value::String(s))
            .collect();
        let mut properties = vec![
            ("fmsVer", Amf0Value::String("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
        ];
        if !four_cc.is_empty() {
            properties.push(("fourCcList", Amf0Value::StrictArray(four_cc)));
        }
        let mut result = Vec::new();
        amf0::write_string(&mut result, "_result");
        amf0::write_number(&mut result, self.connect_txn);
        amf0::write_object(&mut result, &properties);
        amf0::write_object(
            &mut result,
            &[
                ("level", Amf0Value::String("status")),
                ("code", Amf0Value::String("NetConnection.Connect.Success")),
                ("description", Amf0Value::String("Connection succeeded.")),
                ("objectEncoding", Amf0Value::Number(self.object_encoding)),
            ],
        );
        let messages = vec![
            control(
                msg_type::WINDOW_ACK_SIZE,
                u32_payload(self.limits.ack_window),
            ),
            control(
                msg_type::SET_PEER_BANDWIDTH,
                message::peer_bandwidth_payload(self.limits.ack_window, PEER_BANDWIDTH_DYNAMIC),
            ),
            control(msg_type::SET_CHUNK_SIZE, u32_payload(chunk_size)),
            command_message(0, result),
            command_message(0, write_call("onBWDone", 0.0, &[])),
        ];
        self.output.answer(Decision::Connect, messages);
    }

    /// Refuses the connect with `_error` NetConnection.Connect.Rejected. Requests queued after
    /// it are dropped, and input is discarded from now on: close the connection once the
    /// output is sent.
    pub fn reject_connect(&mut self, description: &str) {
        self.connect = ConnectState::Rejected;
        self.events.clear();
        self.event_bytes = 0;
        let mut error = Vec::new();
        amf0::write_string(&mut error, "_error");
        amf0::write_number(&mut error, self.connect_txn);
        amf0::write_null(&mut error);
        amf0::write_object(
            &mut error,
            &[
                ("level", Amf0Value::String("error")),
                ("code", Amf0Value::String("NetConnection.Connect.Rejected")),
                ("description", Amf0Value::String(description)),
            ],
        );
        self.output
            .answer_last(Decision::Connect, vec![command_message(0, error)]);
    }

    /// Accepts a publish: User Control Stream Begin, onStatus NetStream.Publish.Start.
    pub fn accept_publish(&mut self, stream_id: u32) {
        let name = self.decision_name(Decision::Publish(stream_id));
        self.set_state(stream_id, StreamState::Publishing);
        let messages = vec![
            control(
                msg_type::USER_CONTROL,
                user_control_payload(user_control::STREAM_BEGIN, stream_id),
            ),
            command_message(
                stream_id,
                on_status(
                    "status",
                    "NetStream.Publish.Start",
                    &format!("{name} is now published."),
                ),
            ),
        ];
        self.output.answer(Decision::Publish(stream_id), messages);
    }

    /// Refuses a publish with an error-level onStatus (e.g. `NetStream.Publish.BadName`).
    /// Media and close events already queued for the stream are dropped.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        self.reject(Decision::Publish(stream_id), stream_id, code, description);
    }

    /// A refused publish or play: the stream is idle again, its queued events are dropped,
    /// and the answer is an error-level onStatus.
    fn reject(&mut self, decision: Decision, stream_id: u32, code: &str, description: &str) {
        self.set_state(stream_id, StreamState::Idle);
        self.drop_stream_events(stream_id);
        let messages = vec![command_message(
            stream_id,
            on_status("error", code, description),
        )];
        self.output.answer(decision, messages);
    }

    /// Accepts a play: Stream Begin, onStatus NetStream.Play.Reset and NetStream.Play.Start,
    /// `|RtmpSampleAccess`, and NetStream.Data.Start (as nginx-rtmp and SRS send them).
    pub fn accept_play(&mut self, stream_id: u32) {
        let name = self.decision_name(Decision::Play(stream_id));
        self.set_state(stream_id, StreamState::Playing);
        let mut sample_access = Vec::new();
        amf0::write_string(&mut sample_access, "|RtmpSampleAccess");
        amf0::write_bool(&mut sample_access, true);
        amf0::write_bool(&mut sample_access, true);
        let mut data_start = Vec::new();
        amf0::write_string(&mut data_start, "onStatus");
        amf0::write_object(
            &mut data_start,
            &[("code", Amf0Value::String("NetStream.Data.Start"))],
        );
        let messages = vec![
            control(
                msg_type::USER_CONTROL,
                user_control_payload(user_control::STREAM_BEGIN, stream_id),
            ),
            command_message(
                stream_id,
                on_status(
                    "status",
                    "NetStream.Play.Reset",
                    &format!("Playing and resetting {name}."),
                ),
            ),
            command_message(
                stream_id,
                on_status(
                    "status",
                    "NetStream.Play.Start",
                    &format!("Started playing {name}."),
                ),
            ),
            data_message(stream_id, sample_access),
            data_message(stream_id, data_start),
        ];
        self.output.answer(Decision::Play(stream_id), messages);
    }

    /// Refuses a play with an error-level onStatus (e.g. `NetStream.Play.StreamNotFound`).
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        self.reject(Decision::Play(stream_id), stream_id, code, description);
    }

    /// The publisher of a played stream is gone: Stream EOF, onStatus
    /// NetStream.Play.UnpublishNotify and NetStream.Play.Stop.
    pub fn end_play(&mut self, stream_id: u32) {
        let name = self.stream_name(stream_id);
        self.output.push(control(
            msg_type::USER_CONTROL,
            user_control_payload(user_control::STREAM_EOF, stream_id),
        ));
        self.output.push(command_message(
            stream_id,
            on_status(
                "status",
                "NetStream.Play.UnpublishNotify",
                &format!("{name} is now unpublished."),
            ),
        ));
        self.output.push(command_message(
            stream_id,
            on_status(
                "status",
                "NetStream.Play.Stop",
                &format!("Stopped playing {name}."),
            ),
        ));
    }

    /// Answers the end of a publish (`FCUnpublish`, `closeStream`, `deleteStream`): onStatus
    /// NetStream.Unpublish.Success.
    pub fn end_publish(&mut self, stream_id: u32) {
        if self
            .streams
            .iter()
            .any(|s| s.id == stream_id && s.publishing())
        {
            self.set_state(stream_id, StreamState::Idle);
        }
        // No name in the text: the stream may already be deleted (and its name with it).
        self.output.push(command_message(
            stream_id,
            on_status(
                "status",
                "NetStream.Unpublish.Success",
                "Stream is now unpublished.",
            ),
        ));
    }

    fn set_state(&mut self, stream_id: u32, state: StreamState) {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.id == stream_id) {
            stream.state = state;
        }
    }

    /// The name a publish/play was requested with (query stripped).
    fn decision_name(&self, key: Decision) -> String {
        let full = self.output.pending_name(key).unwrap_or_default();
        let name = full.split_once('?').map_or(full, |(name, _)| name);
        short(name).to_owned()
    }

    fn stream_name(&self, stream_id: u32) -> String {
        self.streams
            .iter()
            .find(|s| s.id == stream_id)
            .map(|s| short(&s.name).to_owned())
            .unwrap_or_default()
    }

    fn drop_stream_events(&mut self, stream_id: u32) {
        let mut freed = 0;
        self.events.retain(|event| match event {
            Event::Media(media) if media.stream_id == stream_id => {
                freed += media.buf.capacity();
                false
            }
            Event::CloseStream { stream_id: id } => *id != stream_id,
            _ => true,
        });
        self.event_bytes -= freed;
    }

    fn held(&self) -> usize {
        self.event_bytes + self.output.deferred_bytes
    }

    /// Bytes the session holds for the peer: incomplete messages, unpolled media events and
    /// replies waiting behind an unanswered request. Never above
    /// [`RtmpLimits::buffered_bytes_max`].
    pub fn buffered_bytes(&self) -> usize {
        self.held() + self.decoder.buffered()
    }

    fn push_event(&mut self, event: Event) -> Result<(), RtmpError> {
        if let Event::Media(media) = &event {
            self.event_bytes += media.buf.capacity();
        }
        self.events.push_back(event);
        self.check_held()
    }

    fn push_output(&mut self, message: OutMessage) -> Result<(), RtmpError> {
        self.output.push(message);
        self.check_held()
    }

    /// Everything the session holds for the peer (incomplete messages, events, replies) must
    /// stay within `buffered_bytes_max`.
    fn check_held(&self) -> Result<(), RtmpError> {
        let held = self.buffered_bytes();
        if held > self.limits.buffered_bytes_max as usize {
            return Err(ErrorKind::BufferedTooLarge {
                held,
                max: self.limits.buffered_bytes_max,
            }
            .into());
        }
        Ok(())
    }

    /// Sends an Acknowledgement once a window's worth of bytes has arrived: the peer's
    /// window if it announced one, else ours.
    fn acknowledge(&mut self) {
        let window = self
            .peer_window
            .filter(|&w| w > 0)
            .unwrap_or(self.limits.ack_window);
        if window > 0 && self.received_since_ack >= u64::from(window) {
            self.received_since_ack = 0;
            self.output.push(control(
                msg_type::ACKNOWLEDGEMENT,
                u32_payload(self.received),
            ));
        }
    }

    fn handle_message(&mut self, message: Message) -> Result<(), RtmpError> {
        match message.msg_type {
            msg_type::SET_CHUNK_SIZE => {
                let size = message::parse_u32(message.msg_type, message.payload())?;
                self.decoder.set_chunk_size(size)
            }
            msg_type::ABORT => {
                let csid = message::parse_u32(message.msg_type, message.payload())?;
                self.decoder.abort(csid);
                Ok(())
            }
            msg_type::WINDOW_ACK_SIZE => {
                self.peer_window = Some(message::parse_u32(message.msg_type, message.payload())?);
                Ok(())
            }
            // We neither throttle on the peer's bandwidth nor check its acknowledgements.
            msg_type::ACKNOWLEDGEMENT | msg_type::SET_PEER_BANDWIDTH => Ok(()),
            msg_type::USER_CONTROL => match message::parse_user_control(message.payload())? {
                UserControl::PingRequest(value) => self.push_output(control(
                    msg_type::USER_CONTROL,
                    user_control_payload(user_control::PING_RESPONSE, value),
                )),
                UserControl::SetBufferLength { .. } | UserControl::Other(_) => Ok(()),
            },
            msg_type::AUDIO | msg_type::VIDEO => {
                self.require_publishing(&message)?;
                self.push_media(message)
            }
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => self.handle_data(message),
            msg_type::SHARED_OBJECT_AMF0 | msg_type::SHARED_OBJECT_AMF3 => Ok(()),
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let payload = message.payload();
                let skip = if message.msg_type == msg_type::COMMAND_AMF3 {
                    command::strip_amf3_format(payload)?
                } else {
                    0
                };
                let command = command::parse_command(payload.get(skip..).unwrap_or_default())?;
                self.handle_command(command, message.stream_id)
            }
            msg_type::AGGREGATE => self.handle_aggregate(&message),
            other => Err(ErrorKind::UnknownMessageType(other).into()),
        }
    }

    fn require_publishing(&self, message: &Message) -> Result<(), RtmpError> {
        if self
            .streams
            .iter()
            .any(|s| s.id == message.stream_id && s.publishing())
        {
            return Ok(());
        }
        Err(ErrorKind::MediaBeforePublish {
            stream_id: message.stream_id,
            msg_type: message.msg_type,
        }
        .into())
    }

    fn push_media(&mut self, message: Message) -> Result<(), RtmpError> {
        self.push_event(Event::Media(MediaMessage {
            msg_type: message.msg_type,
            timestamp_ms: message.timestamp,
            stream_id: message.stream_id,
            buf: message.buf,
            payload: message.payload,
        }))
    }

    /// Data messages on a publishing stream are media (`@setDataFrame onMetaData`, cue
    /// points); elsewhere they have no receiver and are dropped.
    fn handle_data(&mut self, mut message: Message) -> Result<(), RtmpError> {
        if message.msg_type == msg_type::DATA_AMF3 {
            let skip = command::strip_amf3_format(message.payload())?;
            if skip == 1 {
                // Close the gap left by the format byte; the room after moves up with it.
                let start = message.payload.start;
                let len = message.buf.len();
                message.buf.copy_within(start + 1..len, start);
                message.buf.truncate(len - 1);
                message.payload = start..message.payload.end - 1;
            }
            message.msg_type = msg_type::DATA_AMF0;
        }
        if self.require_publishing(&message).is_err() {
            return Ok(());
        }
        self.push_media(message)
    }

    /// Splits an aggregate into media events. Sub-message timestamps are moved so that the
    /// first one lands on the aggregate's timestamp (as nginx-rtmp does); sub-messages of
    /// other types are skipped.
    fn handle_aggregate(&mut self, message: &Message) -> Result<(), RtmpError> {
        self.require_publishing(message)?;
        let subs = message::parse_aggregate(message.payload())?;
        let Some(first) = subs.first() else {
            return Ok(());
        };
        let shift = message.timestamp.wrapping_sub(first.timestamp);
        let (before, after) = self.room;
        for sub in subs {
            if !matches!(
                sub.msg_type,
                msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0
            ) {
                continue;
            }
            let mut buf = BytesMut::with_capacity(before + sub.body.len() + after);
            buf.resize(before, 0);
            buf.extend_from_slice(sub.body);
            buf.resize(before + sub.body.len() + after, 0);
            self.push_event(Event::Media(MediaMessage {
                msg_type: sub.msg_type,
                timestamp_ms: sub.timestamp.wrapping_add(shift),
                stream_id: message.stream_id,
                buf,
                payload: before..before + sub.body.len(),
            }))?;
        }
        Ok(())
    }

    /// A publish or play request on an idle stream: the stream waits for the decision (a
    /// hole in the output until it is answered); returns the name without its query, and
    /// the query.
    fn request(
        &mut self,
        stream_id: u32,
        decision: Decision,
        pending: StreamState,
        name: &str,
    ) -> Result<(String, Option<String>), RtmpError> {
        let stream = self.stream_mut(stream_id)?;
        if stream.active() {
            return Err(ErrorKind::StreamBusy(stream_id).into());
        }
        let (short, query) = split_query(name);
        stream.state = pending;
        stream.name = short.clone();
        stream.full_name = name.to_owned();
        self.output.open(decision, name);
        Ok((short, query))
    }

    fn stream_mut(&mut self, stream_id: u32) -> Result<&mut MessageStream, RtmpError> {
        self.streams
            .iter_mut()
            .find(|s| s.id == stream_id)
            .ok_or_else(|| ErrorKind::BadStreamId(stream_id).into())
    }

    fn handle_command(&mut self, command: Command<'_>, stream_id: u32) -> Result<(), RtmpError> {
        match (&self.connect, &command) {
            (ConnectState::Expect, Command::Connect { .. }) => {}
            (_, Command::Connect { .. }) => return Err(ErrorKind::ConnectTwice.into()),
            (ConnectState::Expect, _) => {
                return Err(ErrorKind::CommandBeforeConnect(command.name().to_owned()).into());
            }
            _ => {}
        }
        match command {
            Command::Connect {
                txn,
                app,
                tc_url,
                object_encoding,
                four_cc_list,
            } => {
                self.connect = ConnectState::Pending;
                self.connect_txn = txn;
                self.object_encoding = object_encoding;
                // FourCCs are four characters; anything else is not echoed.
                self.four_cc_list = four_cc_list
                    .into_iter()
                    .filter(|s| s.len() <= 8)
                    .take(ECHO_FOUR_CC_MAX)
                    .map(str::to_owned)
                    .collect();
                self.output.open(Decision::Connect, "");
                let (app, app_query) = split_query(app);
                self.push_event(Event::Connect {
                    app,
                    app_query,
                    tc_url: tc_url.map(str::to_owned),
                    object_encoding,
                })
            }
            Command::CreateStream { txn } => {
                if self.streams.len() >= self.limits.message_streams_max as usize {
                    return Err(ErrorKind::MessageStreams {
                        max: self.limits.message_streams_max,
                    }
                    .into());
                }
                let id = self.next_stream_id;
                self.next_stream_id = id.checked_add(1).ok_or(ErrorKind::MessageStreams {
                    max: self.limits.message_streams_max,
                })?;
                self.streams.push(MessageStream {
                    id,
                    state: StreamState::Idle,
                    name: String::new(),
                    full_name: String::new(),
                });
                self.push_output(command_message(
                    0,
                    write_call("_result", txn, &[Amf0Value::Number(f64::from(id))]),
                ))
            }
            Command::Publish { name, mode, .. } => {
                let decision = Decision::Publish(stream_id);
                let pending = StreamState::PublishPending;
                let (name, query) = self.request(stream_id, decision, pending, name)?;
                self.push_event(Event::Publish {
                    stream_id,
                    name,
                    query,
                    mode,
                })
            }
            Command::Play { name, .. } => {
                let decision = Decision::Play(stream_id);
                let pending = StreamState::PlayPending;
                let (name, query) = self.request(stream_id, decision, pending, name)?;
                self.push_event(Event::Play {
                    stream_id,
                    name,
                    query,
                })
            }
            Command::DeleteStream {
                stream_id: id,
                name,
                ..
            } => {
                let index = match (id.and_then(stream_id_from), name) {
                    (Some(id), _) => self.streams.iter().position(|s| s.id == id),
                    (None, Some(name)) => self
                        .streams
                        .iter()
                        .position(|s| s.active() && (s.full_name == name || s.name == name)),
                    (None, None) => None,
                };
                let Some(index) = index else {
                    return Ok(());
                };
                let stream = self.streams.remove(index);
                if stream.active() {
                    self.push_event(Event::CloseStream {
                        stream_id: stream.id,
                    })?;
                }
                Ok(())
            }
            Command::CloseStream => {
                let stream = self.stream_mut(stream_id)?;
                if stream.active() {
                    stream.state = StreamState::Idle;
                    self.push_event(Event::CloseStream { stream_id })?;
                }
                Ok(())
            }
            Command::FcUnpublish { name, .. } => {
                let found = self
                    .streams
                    .iter_mut()
                    .find(|s| s.publishing() && (s.full_name == name || s.name == name));
                if let Some(stream) = found {
                    stream.state = StreamState::Idle;
                    let id = stream.id;
                    self.push_event(Event::CloseStream { stream_id: id })?;
                }
                Ok(())
            }
            Command::FcPublish { name, .. } => self.push_output(command_message(
                0,
                write_call(
                    "onFCPublish",
                    0.0,
                    &[Amf0Value::Object(vec![
                        ("code", Amf0Value::String("NetStream.Publish.Start")),
                        ("description", Amf0Value::String(short(name))),
                    ])],
                ),
            )),
            Command::ReleaseStream { txn }
            | Command::CheckBandwidth { txn }
            | Command::GetStreamLength { txn } => {
                if txn <= 0.0 {
                    return Ok(());
                }
                let value = match command {
                    Command::GetStreamLength { .. } => Amf0Value::Number(0.0),
                    _ => Amf0Value::Undefined,
                };
                self.push_output(command_message(
                    stream_id,
                    write_call("_result", txn, &[value]),
                ))
            }
            // Unknown calls are ignored, as nginx-rtmp does: an `_error` makes ffmpeg give up
            // on any call it does not expect to fail.
            Command::Other { .. } => Ok(()),
        }
    }
}
