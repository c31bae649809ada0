//! A small RTMP client for tests: a plain handshake, commands and media written as chunks of
//! any size, and a chunk reader that reassembles what the server sends. Written from the
//! spec (Adobe RTMP 1.0), independently of the server's decoder, so the two check each other.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use uringcast::proto::amf0::{self, Amf0Value};

/// One message as received.
#[derive(Debug, Clone)]
pub struct Message {
    pub csid: u32,
    pub msg_type: u8,
    pub timestamp_ms: u32,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

impl Message {
    /// For command messages (type 20): the command name and the first string property of the
    /// info object (an onStatus `code`), if any.
    pub fn command(&self) -> Option<(String, Option<String>)> {
        if self.msg_type != 20 {
            return None;
        }
        let values = amf0::decode_all(&self.payload).ok()?;
        let name = values.first()?.as_str()?.to_string();
        let code = values
            .iter()
            .skip(2)
            .find_map(|v| v.get("code").and_then(|c| c.as_str()))
            .map(str::to_string);
        Some((name, code))
    }
}

struct ChunkState {
    msg_type: u8,
    stream_id: u32,
    len: u32,
    timestamp: u32,
    delta: u32,
    extended: bool,
    buf: Vec<u8>,
}

pub struct RtmpClient {
    pub stream: TcpStream,
    in_chunk_size: usize,
    out_chunk_size: usize,
    pending: Vec<u8>,
    chunks: HashMap<u32, ChunkState>,
    transaction: f64,
    pub received_bytes: u64,
}

impl RtmpClient {
    /// Connect and do the plain handshake.
    pub fn connect(addr: SocketAddr) -> std::io::Result<RtmpClient> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; 8]);
        c0c1.extend((0..1528u32).map(|i| (i * 7) as u8));
        stream.write_all(&c0c1)?;
        let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
        stream.read_exact(&mut s0s1s2)?;
        if s0s1s2[0] != 3 {
            return Err(std::io::Error::other("S0 is not version 3"));
        }
        // C2 echoes S1.
        stream.write_all(&s0s1s2[1..1537])?;
        Ok(RtmpClient {
            stream,
            in_chunk_size: 128,
            out_chunk_size: 128,
            pending: Vec::new(),
            chunks: HashMap::new(),
            transaction: 1.0,
            received_bytes: 0,
        })
    }

    /// Write one message as chunks of the current outgoing chunk size (fmt 0, then fmt 3).
    pub fn write_message(
        &mut self,
        csid: u8,
        msg_type: u8,
        timestamp_ms: u32,
        stream_id: u32,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let out = encode_message(
            csid,
            msg_type,
            timestamp_ms,
            stream_id,
            payload,
            self.out_chunk_size,
        );
        self.stream.write_all(&out)
    }

    /// Set Chunk Size for what we send.
    pub fn set_chunk_size(&mut self, size: u32) -> std::io::Result<()> {
        self.write_message(2, 1, 0, 0, &size.to_be_bytes())?;
        self.out_chunk_size = size as usize;
        Ok(())
    }

    /// An AMF0 command: name, transaction id, command object (null when None), arguments.
    pub fn command(
        &mut self,
        stream_id: u32,
        name: &str,
        object: Option<&[(&str, Amf0Value<'_>)]>,
        args: &[Amf0Value<'_>],
    ) -> std::io::Result<f64> {
        let transaction = self.transaction;
        self.transaction += 1.0;
        let mut body = Vec::new();
        amf0::write_string(&mut body, name);
        amf0::write_number(&mut body, transaction);
        match object {
            Some(props) => amf0::write_object(&mut body, props),
            None => amf0::write_null(&mut body),
        }
        for arg in args {
            amf0::write_value(&mut body, arg);
        }
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.write_message(csid, 20, 0, stream_id, &body)?;
        Ok(transaction)
    }

    /// connect(app) with a tcUrl.
    pub fn connect_app(&mut self, app: &str, tc_url: &str) -> std::io::Result<()> {
        self.command(
            0,
            "connect",
            Some(&[
                ("app", Amf0Value::String(app)),
                ("type", Amf0Value::String("nonprivate")),
                ("flashVer", Amf0Value::String("FMLE/3.0 (compatible; test)")),
                ("tcUrl", Amf0Value::String(tc_url)),
            ]),
            &[],
        )?;
        Ok(())
    }

    /// Read messages until `done` says so (or the deadline); returns them all.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Message) -> bool,
    ) -> std::io::Result<Vec<Message>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            while let Some(message) = self.next_buffered()? {
                let stop = done(&message);
                out.push(message);
                if stop {
                    return Ok(out);
                }
            }
            if Instant::now() > deadline {
                return Ok(out);
            }
            let mut buf = [0u8; 65536];
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Ok(out);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(out),
                Err(e) => return Err(e),
            };
            self.received_bytes += n as u64;
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Read until an onStatus/_result/_error arrives; returns (name, code).
    pub fn expect_status(&mut self) -> Option<(String, Option<String>)> {
        let messages = self
            .read_until(Duration::from_secs(10), |m| {
                m.command()
                    .is_some_and(|(name, _)| name == "onStatus" || name == "_error")
            })
            .ok()?;
        messages
            .iter()
            .rev()
            .find_map(|m| m.command())
            .filter(|(n, _)| n == "onStatus" || n == "_error")
    }

    /// Whether the server closed the connection (reads until EOF or `timeout`).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// One whole message from what is buffered, if there is one.
    fn next_buffered(&mut self) -> std::io::Result<Option<Message>> {
        loop {
            let Some((message, used)) = self.parse_chunk()? else {
                return Ok(None);
            };
            self.pending.drain(..used);
            if let Some(message) = message {
                if message.msg_type == 1 && message.payload.len() >= 4 {
                    let size = u32::from_be_bytes([
                        message.payload[0],
                        message.payload[1],
                        message.payload[2],
                        message.payload[3],
                    ]);
                    self.in_chunk_size = (size & 0x7FFF_FFFF) as usize;
                }
                return Ok(Some(message));
            }
        }
    }

    /// Parse one chunk at the start of `pending`: (a completed message, bytes used).
    fn parse_chunk(&mut self) -> std::io::Result<Option<(Option<Message>, usize)>> {
        let p = &self.pending;
        let bad = |what: &str| std::io::Error::other(format!("bad chunk from server: {what}"));
        if p.is_empty() {
            return Ok(None);
        }
        let fmt = p[0] >> 6;
        let (csid, mut at) = match p[0] & 0x3f {
            0 if p.len() >= 2 => (64 + u32::from(p[1]), 2),
            1 if p.len() >= 3 => (64 + u32::from(p[1]) + 256 * u32::from(p[2]), 3),
            0 | 1 => return Ok(None),
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        if p.len() < at + header_len {
            return Ok(None);
        }
        let h = &p[at..at + header_len];
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let state = self.chunks.get(&csid);
        if fmt != 0 && state.is_none() {
            return Err(bad("fmt 1-3 on a new chunk stream"));
        }
        let field = if fmt < 3 { u24(&h[0..3]) } else { 0 };
        let extended = if fmt < 3 {
            field == 0xFF_FFFF
        } else {
            state.is_some_and(|s| s.extended)
        };
        at += header_len;
        let ext = if extended {
            if p.len() < at + 4 {
                return Ok(None);
            }
            let v = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
            at += 4;
            Some(v)
        } else {
            None
        };
        let continuing = state.is_some_and(|s| !s.buf.is_empty());
        let (msg_type, stream_id, len, timestamp, delta) = match (fmt, state) {
            (0, _) => (
                h[6],
                u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
                u24(&h[3..6]),
                ext.unwrap_or(field),
                0,
            ),
            (1, Some(s)) => {
                let d = ext.unwrap_or(field);
                (
                    h[6],
                    s.stream_id,
                    u24(&h[3..6]),
                    s.timestamp.wrapping_add(d),
                    d,
                )
            }
            (2, Some(s)) => {
                let d = ext.unwrap_or(field);
                (
                    s.msg_type,
                    s.stream_id,
                    s.len,
                    s.timestamp.wrapping_add(d),
                    d,
                )
            }
            (_, Some(s)) if continuing => (s.msg_type, s.stream_id, s.len, s.timestamp, s.delta),
            (_, Some(s)) => (
                s.msg_type,
                s.stream_id,
                s.len,
                s.timestamp.wrapping_add(s.delta),
                s.delta,
            ),
            _ => return Err(bad("no state")),
        };
        let have = state.map_or(0, |s| if continuing { s.buf.len() } else { 0 });
        let take = (len as usize - have).min(self.in_chunk_size);
        if p.len() < at + take {
            return Ok(None);
        }
        let data = p[at..at + take].to_vec();
        let mut buf = if continuing {
            self.chunks.remove(&csid).map(|s| s.buf).unwrap_or_default()
        } else {
            Vec::with_capacity(len as usize)
        };
        buf.extend_from_slice(&data);
        let complete = buf.len() >= len as usize;
        let message = complete.then(|| Message {
            csid,
            msg_type,
            timestamp_ms: timestamp,
            stream_id,
            payload: std::mem::take(&mut buf),
        });
        self.chunks.insert(
            csid,
            ChunkState {
                msg_type,
                stream_id,
                len,
                timestamp,
                delta,
                extended,
                buf,
            },
        );
        Ok(Some((message, at + take)))
    }
}

/// One message as chunks of `chunk_size` (fmt 0, then fmt 3 continuations).
pub fn encode_message(
    csid: u8,
    msg_type: u8,
    timestamp_ms: u32,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16 + payload.len() / chunk_size.max(1));
    let extended = timestamp_ms >= 0xFF_FFFF;
    out.push(csid & 0x3f);
    out.extend_from_slice(&timestamp_ms.min(0xFF_FFFF).to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(msg_type);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
    }
    for (i, piece) in payload.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            out.push(0xC0 | (csid & 0x3f));
            if extended {
                out.extend_from_slice(&timestamp_ms.to_be_bytes());
            }
        }
        out.extend_from_slice(piece);
    }
    out
}
