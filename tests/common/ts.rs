//! An MPEG-TS reader for tests, written from ISO/IEC 13818-1 independently of the server's
//! muxer and demuxer (so the tests do not only check that uringcast agrees with itself), and a
//! plain HTTP body reader (sized, chunked or close-delimited) with its own chunked decoding.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const PACKET: usize = 188;

/// What an HTTP GET returned within a time limit.
#[derive(Debug, Default)]
pub struct HttpBody {
    pub status: u16,
    /// The response head, lower-cased.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body ended (last chunk, Content-Length reached, or close of an unframed body).
    pub ended: bool,
    pub first_byte: Option<Duration>,
}

impl HttpBody {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = format!("\r\n{}:", name.to_ascii_lowercase());
        let at = self.head.find(&name)? + name.len();
        let rest = &self.head[at..];
        Some(rest[..rest.find("\r\n").unwrap_or(rest.len())].trim())
    }
}

/// GET `path` over `version` ("HTTP/1.1" or "HTTP/1.0") and read for at most `duration`.
pub fn http_get(addr: SocketAddr, path: &str, version: &str, duration: Duration) -> HttpBody {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    write!(s, "GET {path} {version}\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut out = HttpBody::default();
    let mut closed = false;
    while started.elapsed() < duration {
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                out.first_byte.get_or_insert(started.elapsed());
                raw.extend_from_slice(&buf[..n]);
                if let Some((_, true)) = parse(&raw, &mut HttpBody::default()) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let first_byte = out.first_byte;
    if let Some((_, ended)) = parse(&raw, &mut out) {
        out.ended = ended || (closed && !out.head.contains("transfer-encoding: chunked"));
    }
    out.first_byte = first_byte;
    out
}

/// Parse head and body so far into `out`; returns (head length, body complete).
fn parse(raw: &[u8], out: &mut HttpBody) -> Option<(usize, bool)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    out.head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    out.status = out.head.split(' ').nth(1)?.parse().ok()?;
    let body = &raw[end..];
    out.body.clear();
    if out.head.contains("transfer-encoding: chunked") {
        let mut at = 0;
        loop {
            let Some(line_end) = body[at..].windows(2).position(|w| w == b"\r\n") else {
                return Some((end, false));
            };
            let line = std::str::from_utf8(&body[at..at + line_end]).expect("chunk size line");
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .expect("chunk size");
            let data = at + line_end + 2;
            if size == 0 {
                return Some((end, body.len() >= data + 2));
            }
            if body.len() < data + size + 2 {
                // A partial chunk: keep what arrived.
                out.body
                    .extend_from_slice(&body[data..body.len().min(data + size)]);
                return Some((end, false));
            }
            assert_eq!(&body[data + size..data + size + 2], b"\r\n", "chunk CRLF");
            out.body.extend_from_slice(&body[data..data + size]);
            at = data + size + 2;
        }
    }
    out.body.extend_from_slice(body);
    let length = out
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    Some((end, length.is_some_and(|l| body.len() >= l)))
}

/// One transport packet.
#[derive(Clone, Debug)]
pub struct Packet {
    pub pid: u16,
    pub pusi: bool,
    pub cc: u8,
    pub has_payload: bool,
    pub discontinuity: bool,
    pub random_access: bool,
    pub pcr: Option<u64>,
    pub payload: Vec<u8>,
}

/// Split whole packets (a trailing partial packet is ignored); panics on a lost sync byte.
pub fn packets(ts: &[u8]) -> Vec<Packet> {
    ts.chunks_exact(PACKET)
        .enumerate()
        .map(|(i, p)| {
            assert_eq!(p[0], 0x47, "sync byte of packet {i}");
            let control = (p[3] >> 4) & 3;
            let mut at = 4;
            let (mut discontinuity, mut random_access, mut pcr) = (false, false, None);
            if control & 2 != 0 {
                let len = usize::from(p[4]);
                if len > 0 {
                    let flags = p[5];
                    discontinuity = flags & 0x80 != 0;
                    random_access = flags & 0x40 != 0;
                    if flags & 0x10 != 0 {
                        let b = &p[6..12];
                        let base = (u64::from(b[0]) << 25)
                            | (u64::from(b[1]) << 17)
                            | (u64::from(b[2]) << 9)
                            | (u64::from(b[3]) << 1)
                            | (u64::from(b[4]) >> 7);
                        pcr = Some(base);
                    }
                }
                at = 5 + len;
            }
            Packet {
                pid: (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]),
                pusi: p[1] & 0x40 != 0,
                cc: p[3] & 0x0f,
                has_payload: control & 1 != 0,
                discontinuity,
                random_access,
                pcr,
                payload: if control & 1 != 0 && at <= PACKET {
                    p[at..].to_vec()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// The program as the PAT and PMT describe it: PMT PID, and (stream type, PID) per stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Program {
    pub pmt_pid: u16,
    pub streams: Vec<(u8, u16)>,
    pub pcr_pid: u16,
}

fn section(payload: &[u8]) -> &[u8] {
    let pointer = usize::from(payload[0]);
    &payload[1 + pointer..]
}

/// The first PAT and the PMT it points to.
pub fn program(packets: &[Packet]) -> Option<Program> {
    let pat = packets.iter().find(|p| p.pid == 0 && p.pusi)?;
    let s = section(&pat.payload);
    assert_eq!(s[0], 0x00, "PAT table id");
    let pmt_pid = (u16::from(s[10] & 0x1f) << 8) | u16::from(s[11]);
    let pmt = packets.iter().find(|p| p.pid == pmt_pid && p.pusi)?;
    let s = section(&pmt.payload);
    assert_eq!(s[0], 0x02, "PMT table id");
    let section_len = (usize::from(s[1] & 0x0f) << 8) | usize::from(s[2]);
    let pcr_pid = (u16::from(s[8] & 0x1f) << 8) | u16::from(s[9]);
    let info_len = (usize::from(s[10] & 0x0f) << 8) | usize::from(s[11]);
    let mut at = 12 + info_len;
    let end = 3 + section_len - 4;
    let mut streams = Vec::new();
    while at + 5 <= end {
        let pid = (u16::from(s[at + 1] & 0x1f) << 8) | u16::from(s[at + 2]);
        streams.push((s[at], pid));
        let es_info = (usize::from(s[at + 3] & 0x0f) << 8) | usize::from(s[at + 4]);
        at += 5 + es_info;
    }
    Some(Program {
        pmt_pid,
        streams,
        pcr_pid,
    })
}

/// Continuity counters: every PID's counter advances by one per packet with payload (a
/// repeated packet or a flagged discontinuity excepted). Returns the breaks found.
pub fn continuity_breaks(packets: &[Packet]) -> Vec<String> {
    let mut last = std::collections::HashMap::new();
    let mut breaks = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if p.pid == 0x1fff {
            continue;
        }
        if let Some(&prev) = last.get(&p.pid) {
            let expected = if p.has_payload {
                (prev + 1) & 0x0f
            } else {
                prev
            };
            if p.cc != expected && !(p.has_payload && p.cc == prev) && !p.discontinuity {
                breaks.push(format!(
                    "packet {i} pid {:#x}: cc {} after {prev}",
                    p.pid, p.cc
                ));
            }
        }
        last.insert(p.pid, p.cc);
    }
    breaks
}

/// One PES start on `pid`: (pts, dts) in 90 kHz, and the packet's random access flag.
#[derive(Debug, Clone, Copy)]
pub struct PesStart {
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    pub random_access: bool,
}

fn timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// The PES starts on `pid`, in order.
pub fn pes_starts(packets: &[Packet], pid: u16) -> Vec<PesStart> {
    packets
        .iter()
        .filter(|p| p.pid == pid && p.pusi && p.payload.len() >= 14)
        .map(|p| {
            let h = &p.payload;
            assert_eq!(&h[..3], &[0, 0, 1], "PES start code");
            let flags = h[7] >> 6;
            let pts = (flags & 2 != 0).then(|| timestamp(&h[9..14]));
            let dts = if flags == 3 {
                Some(timestamp(&h[14..19]))
            } else {
                pts
            };
            PesStart {
                pts,
                dts,
                random_access: p.random_access,
            }
        })
        .collect()
}
