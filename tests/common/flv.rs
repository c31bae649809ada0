//! HTTP-FLV test clients: a reader that parses what the server sends (HTTP/1.1 chunked or
//! HTTP/1.0 unframed), clips made with ffmpeg, and publishers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uringcast::media::unit::UnitKind;
use uringcast::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits};
use uringcast::proto::http::ChunkedDecoder;

/// One tag as a reader received it.
#[derive(Debug, Clone)]
pub struct Tag {
    /// When it was parsed, from the reader's connect.
    pub at: Duration,
    pub kind: UnitKind,
    pub keyframe: bool,
    pub config: bool,
    /// The 32-bit FLV timestamp.
    pub dts_ms: u32,
    pub cts_ms: i32,
}

/// What an HTTP-FLV reader saw.
#[derive(Debug, Default)]
pub struct FlvRead {
    pub status: u16,
    /// The response head, lower-cased.
    pub head: String,
    /// Bytes of the body as they arrived (before any chunked decoding).
    pub raw_body_prefix: Vec<u8>,
    pub tags: Vec<Tag>,
    pub first_byte: Option<Duration>,
    /// The body ended: the last chunk (chunked) or the server's close (unframed).
    pub ended: bool,
    pub error: Option<String>,
}

/// Options of [`read_flv`].
pub struct ReadFlv<'a> {
    pub path: &'a str,
    /// "HTTP/1.1" (chunked) or "HTTP/1.0" (unframed).
    pub version: &'a str,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop once this many tags have arrived.
    pub tags_max: usize,
}

impl<'a> ReadFlv<'a> {
    pub fn new(path: &'a str, duration: Duration) -> Self {
        ReadFlv {
            path,
            version: "HTTP/1.1",
            duration,
            tags_max: usize::MAX,
        }
    }
}

/// Read an HTTP-FLV stream and parse every tag (panics on malformed FLV or framing).
pub fn read_flv(addr: SocketAddr, options: &ReadFlv<'_>) -> FlvRead {
    let started = Instant::now();
    let mut out = FlvRead::default();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "GET {} {}\r\nHost: test\r\n\r\n",
        options.path, options.version
    )
    .unwrap();
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut head_done = false;
    let mut chunked: Option<ChunkedDecoder> = None;
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    while started.elapsed() < options.duration && out.tags.len() < options.tags_max {
        let n = match s.read(&mut buf) {
            Ok(0) => {
                // The server closed: the end of an unframed body, an error for a chunked one.
                out.ended = head_done && chunked.is_none();
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        };
        out.first_byte.get_or_insert(started.elapsed());
        pending.extend_from_slice(&buf[..n]);
        if !head_done {
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            out.head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            out.status = out
                .head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            head_done = true;
            if out.head.contains("transfer-encoding: chunked") {
                chunked = Some(ChunkedDecoder::new(64 << 20));
            }
            pending.drain(..end + 4);
            if out.status != 200 {
                break;
            }
        }
        if out.raw_body_prefix.len() < 64 {
            let take = (64 - out.raw_body_prefix.len()).min(pending.len());
            out.raw_body_prefix.extend_from_slice(&pending[..take]);
        }
        let mut done = false;
        match &mut chunked {
            Some(decoder) => {
                let progress = decoder
                    .decode(&pending, &mut |b: &[u8]| demuxer.push(b))
                    .expect("valid chunked body");
                done = progress.done;
            }
            None => demuxer.push(&pending),
        }
        pending.clear();
        loop {
            match demuxer.poll() {
                Ok(Some(FlvEvent::Unit(u))) => out.tags.push(Tag {
                    at: started.elapsed(),
                    kind: u.kind,
                    keyframe: u.keyframe,
                    config: u.config,
                    dts_ms: u.dts_ms,
                    cts_ms: u.cts_ms,
                }),
                Ok(Some(FlvEvent::Header { .. })) => {}
                Ok(None) => break,
                Err(e) => panic!("reader got malformed FLV: {e}"),
            }
        }
        if done {
            out.ended = true;
            break;
        }
    }
    out
}

impl FlvRead {
    /// Media (not sequence-header) tags of one kind.
    pub fn media(&self, kind: UnitKind) -> impl Iterator<Item = &Tag> {
        self.tags
            .iter()
            .filter(move |t| t.kind == kind && !t.config)
    }

    /// The first video frame after the headers is a keyframe.
    pub fn starts_with_keyframe(&self) -> bool {
        self.media(UnitKind::Video)
            .next()
            .is_some_and(|t| t.keyframe)
    }

    /// Media time covered by the video frames received, in ms (32-bit wrap aware).
    pub fn video_span_ms(&self) -> u64 {
        let mut video = self.media(UnitKind::Video);
        let Some(first) = video.next() else { return 0 };
        let mut span = 0u64;
        let mut last = first.dts_ms;
        for t in video {
            span += u64::from(t.dts_ms.wrapping_sub(last));
            last = t.dts_ms;
        }
        span
    }
}

/// How a test clip is encoded.
pub struct ClipSpec {
    pub seconds: u32,
    pub fps: u32,
    /// A keyframe every this many frames (and no scene-cut keyframes).
    pub gop_frames: u32,
    pub video_kbps: u32,
    /// Consecutive B-frames (0: none).
    pub bframes: u32,
    /// AAC audio beside the video.
    pub audio: bool,
}

/// A 320x240 H.264 (x264 veryfast) test clip made once per `name` with ffmpeg.
pub fn clip(dir: &Path, name: &str, spec: &ClipSpec) -> PathBuf {
    let out = dir.join(format!("{name}.mp4"));
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!("{name}.{}.tmp.mp4", std::process::id()));
    let rate = format!("{}k", spec.video_kbps);
    let gop = spec.gop_frames.to_string();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate={}", spec.fps));
    if spec.audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
    }
    cmd.args(["-t", &spec.seconds.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args(["-bf", &spec.bframes.to_string()])
        .args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate]);
    if spec.audio {
        cmd.args(["-c:a", "aac", "-b:a", "48k"]);
    }
    let status = cmd.arg(&tmp).status().expect("ffmpeg");
    assert!(status.success(), "ffmpeg could not make clip {name}");
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// `ffmpeg -re -i clip -c copy -f flv -method POST url` (the whole clip, or `seconds` of it).
pub fn publish_clip(url: &str, clip: &Path, seconds: Option<f64>) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-i"]).arg(clip);
    if let Some(s) = seconds {
        cmd.args(["-t", &s.to_string()]);
    }
    cmd.args(["-c", "copy", "-f", "flv", "-method", "POST"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// `ffmpeg -v LEVEL -i url [-t seconds] -f null -`: decodes what the server sends; returns
/// (success, everything ffmpeg printed at `level` or worse).
pub fn ffmpeg_decode(
    url: &str,
    level: &str,
    seconds: Option<f64>,
    timeout: Duration,
) -> (bool, String) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", level, "-rw_timeout", "5000000", "-i", url]);
    if let Some(s) = seconds {
        cmd.args(["-t", &s.to_string()]);
    }
    let (ok, text) = super::run_bounded(cmd.args(["-f", "null", "-"]), timeout);
    match ok {
        Some(ok) => (ok, text),
        None => (false, format!("timed out after {timeout:?}\n{text}")),
    }
}

/// Enhanced RTMP/FLV video bodies (IsExHeader | frame type << 4 | packet type, then the
/// `fourcc`): a sequence start and `frames` coded frames of `frame_bytes` filler bytes each, a
/// keyframe every fifth. Debian's ffmpeg 5.1 cannot produce them.
pub fn enhanced_video(fourcc: &[u8; 4], frames: u8, frame_bytes: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let seq_start: Vec<u8> = [&[0x80 | 0x10][..], fourcc, &[1, 2, 3, 4, 5, 6, 7]].concat();
    // HEVC's coded frames carry a 3-byte composition time; AV1's and VP9's do not.
    let cts: &[u8] = if fourcc == b"hvc1" { &[0, 0, 0] } else { &[] };
    let frames = (0..frames)
        .map(|n| {
            let frame_type = if n % 5 == 0 { 0x10 } else { 0x20 };
            [
                &[0x80 | frame_type | 1][..],
                fourcc,
                cts,
                &vec![n; frame_bytes][..],
            ]
            .concat()
        })
        .collect();
    (seq_start, frames)
}

/// [`enhanced_video`] with FourCC `hvc1`.
pub fn enhanced_hevc(frames: u8, frame_bytes: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    enhanced_video(b"hvc1", frames, frame_bytes)
}
