//! The sessions against a fake ring: the real worker (HTTP connections, live ingest, live
//! readers, the loop, its timers and mailbox) with its operations performed by
//! [`FakeRing`] against scripted peers and a clock the test moves. No sockets, no threads, no
//! sleeping; every step is deterministic.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::conn::Phase;
use super::worker::{Worker, WorkerSpec};
use super::{Command, Shared};
use crate::config::Config;
use crate::media::unit::{MediaUnit, UnitKind};
use crate::metrics::CloseReason;
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits, write_file_header};
use crate::proto::http::ChunkedDecoder;
use crate::runtime::driver::Completion;
use crate::runtime::fake::FakeRing;

/// Listener keys, as the worker arms them.
const HTTP: u32 = 0;

/// A worker on a fake ring.
struct Harness {
    w: Worker<FakeRing>,
    completions: Vec<Completion>,
    _root: TempDir,
}

/// A media root for the worker, removed at the end.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dev_null() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .expect("open /dev/null")
        .into()
}

impl Harness {
    /// A worker with the default configuration plus `toml`.
    fn new(toml: &str) -> Harness {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "uringcast-session-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).expect("media root");
        let text = format!(
            "[vod]\nroot = {:?}\n[admin]\nlisten = \"\"\n{toml}",
            root.display().to_string()
        );
        let config = Config::from_toml(&text).expect("config");
        config.validate().expect("valid config");
        let http = "127.0.0.1:8080".parse().expect("addr");
        let shared = Arc::new(Shared::new(Arc::new(config), 1, http, None).expect("shared"));
        let spec = WorkerSpec {
            id: 0,
            cpu: None,
            http_listener: dev_null(),
            rtmp_listener: None,
            admin_listener: None,
            wake: dev_null(),
        };
        let mut w = Worker::with_ring(spec, shared, FakeRing::new()).expect("worker");
        w.start();
        let mut h = Harness {
            w,
            completions: Vec::new(),
            _root: TempDir(root),
        };
        h.settle();
        h
    }

    /// Turn the loop until nothing more completes (bounded). Returns true once the worker
    /// is done (a shutdown drained it). What a turn submits after its completions (timers,
    /// live flushes) completes in the next turn, so it takes two quiet turns in a row.
    fn settle(&mut self) -> bool {
        let mut quiet = 0;
        for _ in 0..10_000 {
            let before = self.w.driver.reaped();
            let done = self.w.turn(&mut self.completions).expect("turn");
            if done {
                return true;
            }
            quiet = if self.w.driver.reaped() == before {
                quiet + 1
            } else {
                0
            };
            if quiet == 2 {
                return false;
            }
        }
        panic!("the worker did not settle in 10,000 turns");
    }

    /// Move the clock on by `ms`, a tick at a time, turning the loop at each.
    fn advance(&mut self, ms: u64) {
        let tick = self.w.config.runtime.tick_ms.max(1);
        let mut left = ms;
        while left > 0 {
            let step = left.min(tick);
            self.w.driver.advance(step);
            left -= step;
            self.settle();
        }
    }

    fn connect(&mut self) -> RawFd {
        let fd = self.w.driver.connect(HTTP).expect("connect");
        self.settle();
        fd
    }

    fn send(&mut self, fd: RawFd, bytes: &[u8]) {
        self.w.driver.write(fd, bytes);
        self.settle();
    }

    fn read(&mut self, fd: RawFd) -> Vec<u8> {
        self.w.driver.read(fd)
    }

    fn read_text(&mut self, fd: RawFd) -> String {
        String::from_utf8_lossy(&self.read(fd)).into_owned()
    }

    fn closes(&self) -> Vec<CloseReason> {
        self.w.closed_reasons.clone()
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// Status codes of the responses in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn keep_alive_serves_requests_one_after_another_on_one_connection() {
    let mut h = Harness::new("");
    let c = h.connect();
    h.send(c, &get("/healthz"));
    let first = h.read_text(c);
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    h.send(c, &get("/healthz"));
    assert_eq!(statuses(&h.read_text(c)), [200]);
    assert_eq!(
        h.w.conns.len(),
        1,
        "the connection stays open between requests"
    );
    assert!(h.closes().is_empty());
}

/// The response heads and bodies in `bytes`: (head, the rest).
fn split_head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |i| i + 4);
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[end..],
    )
}

/// A chunked body decoded: (data, whether the last chunk came).
fn dechunk(body: &[u8]) -> (Vec<u8>, bool) {
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut out = Vec::new();
    let progress = decoder
        .decode(body, &mut |data| out.extend_from_slice(data))
        .expect("a well-formed chunked body");
    (out, progress.done)
}

/// The media units of an FLV byte stream (header included).
fn flv_units(bytes: &[u8]) -> Vec<MediaUnit> {
    assert!(
        bytes.starts_with(b"FLV\x01"),
        "an FLV body starts with its header"
    );
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(bytes);
    let mut units = Vec::new();
    while let Some(event) = demuxer.poll().expect("well-formed FLV") {
        if let FlvEvent::Unit(unit) = event {
            units.push(unit);
        }
    }
    units
}

/// The media units of FLV tags that continue a stream already under way (no file header of
/// their own): the project's file header is put in front for the demuxer.
fn flv_units_after_header(tags: &[u8]) -> Vec<MediaUnit> {
    let mut flv = Vec::new();
    write_file_header(true, true, &mut flv);
    flv.extend_from_slice(tags);
    flv_units(&flv)
}

const CLIP: &[u8] = include_bytes!("../../tests/data/h264_aac_2s.flv");

/// The clip's tags (after its header and PreviousTagSize0), their timestamps moved on by
/// `offset_ms`; without its script and sequence-header tags when `media_only`.
fn clip_tags(offset_ms: u32, media_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 13;
    while at + 11 <= CLIP.len() {
        let size = u32::from_be_bytes([0, CLIP[at + 1], CLIP[at + 2], CLIP[at + 3]]) as usize;
        let end = at + 11 + size + 4;
        let tag = &CLIP[at..end];
        let ts = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]) + offset_ms;
        let header = tag[0] == 18 || (tag.len() > 12 && tag[12] == 0 && matches!(tag[0], 8 | 9));
        if !(media_only && header) {
            let mut tag = tag.to_vec();
            tag[4..7].copy_from_slice(&ts.to_be_bytes()[1..]);
            tag[7] = (ts >> 24) as u8;
            out.extend_from_slice(&tag);
        }
        at = end;
    }
    out
}

/// A publish request head for a sized body that does not end during the test.
fn publish_head(stream: &str, expect_continue: bool) -> Vec<u8> {
    let expect = if expect_continue {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    format!(
        "POST /live/{stream}.flv HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n{expect}\r\n"
    )
    .into_bytes()
}

impl Harness {
    /// A publisher of `stream` that has sent the whole clip.
    fn publish(&mut self, stream: &str) -> RawFd {
        let p = self.connect();
        let mut bytes = publish_head(stream, false);
        bytes.extend_from_slice(CLIP);
        self.send(p, &bytes);
        assert!(
            self.w.shared.registry.get("live", stream).is_some(),
            "the publish made the stream live"
        );
        p
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new("");
    let c = h.connect();
    let mut two = get("/healthz");
    two.extend_from_slice(&get("/no/such/thing.flv"));
    two.extend_from_slice(&get("/healthz"));
    h.send(c, &two);
    assert_eq!(statuses(&h.read_text(c)), [200, 404, 200]);
    assert_eq!(h.w.conns.len(), 1);
}

#[test]
fn a_head_that_arrives_a_byte_at_a_time_is_parsed_once_complete() {
    let mut h = Harness::new("");
    let c = h.connect();
    h.w.driver.peer(c).recv_max = 1;
    let head = get("/healthz");
    h.send(c, &head[..head.len() - 1]);
    assert!(
        h.read(c).is_empty(),
        "nothing is answered before the head is complete"
    );
    h.send(c, &head[head.len() - 1..]);
    assert_eq!(statuses(&h.read_text(c)), [200]);
}

#[test]
fn a_head_that_never_completes_is_closed_at_the_header_deadline() {
    let mut h = Harness::new("[http]\nheader_timeout_ms = 2000\n");
    let c = h.connect();
    h.send(c, b"GET /healthz HT");
    h.advance(1900);
    assert!(h.closes().is_empty(), "not before the deadline");
    h.advance(300);
    assert_eq!(h.closes(), [CloseReason::Timeout]);
    assert!(h.w.driver.peer(c).shut, "the socket was shut down");
    assert!(
        h.w.conns.is_empty(),
        "the slot is freed once its receive completed"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_keep_alive_deadline() {
    let mut h = Harness::new("[http]\nkeepalive_timeout_ms = 3000\n");
    let c = h.connect();
    h.send(c, &get("/healthz"));
    assert_eq!(statuses(&h.read_text(c)), [200]);
    h.advance(2900);
    assert_eq!(h.w.conns.len(), 1);
    h.advance(200);
    assert_eq!(h.closes(), [CloseReason::Timeout]);
    assert!(h.w.conns.is_empty());
}

#[test]
fn an_oversized_head_is_answered_then_closed_by_lingering() {
    let mut h = Harness::new(
        "[http]\nheader_bytes_max = 1024\nrequest_line_bytes_max = 512\nlingering_close_ms = 4000\n",
    );
    let c = h.connect();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 2000));
    h.send(c, &head);
    let answer = h.read_text(c);
    assert_eq!(statuses(&answer), [431], "{answer}");
    let peer = h.w.driver.peer(c);
    assert!(
        peer.fin && !peer.shut,
        "a FIN follows the answer; reading goes on"
    );
    // What the client still sends is read and thrown away, not answered.
    h.send(c, &[b'x'; 5000]);
    assert!(h.read(c).is_empty());
    assert_eq!(h.w.conns.len(), 1, "lingering");
    assert!(h.closes().is_empty());
    // The client, having read the answer, closes: the normal end.
    h.w.driver.peer(c).eof = true;
    h.settle();
    assert_eq!(h.closes(), [CloseReason::Peer]);
    assert!(h.w.conns.is_empty());
}

#[test]
fn a_lingering_close_ends_at_its_deadline_when_the_client_keeps_the_connection() {
    let mut h = Harness::new(
        "[http]\nheader_bytes_max = 1024\nrequest_line_bytes_max = 512\nlingering_close_ms = 4000\n",
    );
    let c = h.connect();
    h.send(c, &[b'G'; 2000]);
    assert_eq!(statuses(&h.read_text(c)), [414]);
    h.advance(3900);
    assert_eq!(h.w.conns.len(), 1);
    h.advance(300);
    assert_eq!(h.closes(), [CloseReason::Timeout]);
    assert!(h.w.conns.is_empty());
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_read() {
    let mut h = Harness::new("");
    let p = h.connect();
    h.send(p, &publish_head("cont", true));
    assert_eq!(h.read(p), b"HTTP/1.1 100 Continue\r\n\r\n");
    h.send(p, CLIP);
    let stream = h.w.shared.registry.get("live", "cont").expect("live");
    assert!(
        stream.stats.video_frames.load(Ordering::Relaxed) > 10,
        "the body's media arrived"
    );
    assert!(
        h.read(p).is_empty(),
        "the final answer comes when the body ends"
    );
    assert_eq!(h.w.conns[0].phase, Phase::Ingest);
}

#[test]
fn a_short_send_goes_on_where_the_kernel_stopped() {
    let mut h = Harness::new("");
    let whole = {
        let c = h.connect();
        h.send(c, &get("/healthz"));
        h.read(c)
    };
    let c = h.connect();
    h.w.driver.peer(c).window = 7;
    h.send(c, &get("/healthz"));
    assert_eq!(h.read(c), whole[..7]);
    h.w.driver.peer(c).window = usize::MAX;
    h.settle();
    let rest = h.read(c);
    // The Date header may differ between the two answers only if the clock moved; it did not.
    assert_eq!([&whole[..7], &rest[..]].concat(), whole);
    assert!(h.w.driver.peer(c).sends >= 2);
}

#[test]
fn a_reset_during_a_send_frees_the_slot() {
    let mut h = Harness::new("");
    let c = h.connect();
    h.w.driver.peer(c).window = 0;
    h.send(c, &get("/healthz"));
    assert_eq!(h.w.conns.len(), 1, "the answer waits for the window");
    h.w.driver.peer(c).reset = true;
    h.settle();
    assert_eq!(
        h.closes(),
        [CloseReason::Peer],
        "a reset is the peer's doing"
    );
    assert!(h.w.conns.is_empty());
}

#[test]
fn a_reader_starts_at_the_latest_keyframe_with_the_sequence_headers_first() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 0\n");
    let _p = h.publish("s");
    let r = h.connect();
    h.send(r, &get("/live/s.flv"));
    let bytes = h.read(r);
    let (head, body) = split_head(&bytes);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let (flv, ended) = dechunk(body);
    assert!(
        !ended,
        "a live body does not end while the publisher is there"
    );
    let units = flv_units(&flv);
    let video: Vec<&MediaUnit> = units.iter().filter(|u| u.kind == UnitKind::Video).collect();
    assert!(video[0].config, "the AVC sequence header comes first");
    assert!(
        video[1].keyframe,
        "the first frame is a keyframe (the GOP cache)"
    );
    assert!(
        units.iter().any(|u| u.kind == UnitKind::Audio && u.config),
        "the AAC sequence header is sent"
    );
    let frames: Vec<u32> = video
        .iter()
        .filter(|u| !u.config)
        .map(|u| u.dts_ms)
        .collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "{frames:?}");
    assert!(
        frames.len() >= 10,
        "the GOP in the cache: {} frames",
        frames.len()
    );
}

#[test]
fn a_reader_that_comes_before_its_publisher_gets_the_stream_from_its_first_frame() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 0\nplay_wait_ms = 5000\n");
    let r = h.connect();
    h.send(r, &get("/live/early.flv"));
    assert!(
        h.read(r).is_empty(),
        "the play request waits for its stream"
    );
    assert_eq!(h.w.conns[0].phase, Phase::WaitStream);
    h.advance(1000);
    let p = h.connect();
    let mut bytes = publish_head("early", false);
    bytes.extend_from_slice(CLIP);
    h.send(p, &bytes);
    h.advance(200);
    let out = h.read(r);
    let (head, body) = split_head(&out);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let units = flv_units(&dechunk(body).0);
    let first_frame = units
        .iter()
        .find(|u| u.kind == UnitKind::Video && !u.config)
        .expect("video");
    assert!(first_frame.keyframe);
    let clip_frames = flv_units(CLIP)
        .iter()
        .filter(|u| u.kind == UnitKind::Video && !u.config)
        .count();
    let got_frames = units
        .iter()
        .filter(|u| u.kind == UnitKind::Video && !u.config)
        .count();
    assert_eq!(got_frames, clip_frames, "every frame the publisher sent");
}

#[test]
fn new_tags_wait_for_the_coalescing_window_then_go_out_in_one_send() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 300\n");
    let p = h.publish("co");
    let r = h.connect();
    h.send(r, &get("/live/co.flv"));
    assert!(
        !h.read(r).is_empty(),
        "the joiner's first batch goes at once"
    );
    h.advance(400);
    h.read(r);
    // The next 2 s of media, in eight pieces, all within one window.
    let tags = clip_tags(2000, true);
    let pieces: Vec<&[u8]> = tags.chunks(tags.len() / 8 + 1).collect();
    let sends = h.w.driver.peer(r).sends;
    h.send(p, pieces[0]);
    assert_eq!(
        h.w.driver.peer(r).sends,
        sends + 1,
        "the first news after a quiet window goes at once"
    );
    let mut out = h.read(r);
    for piece in &pieces[1..] {
        h.send(p, piece);
    }
    assert!(h.read(r).is_empty(), "the rest is held within the window");
    assert_eq!(h.w.driver.peer(r).sends, sends + 1);
    h.advance(300);
    assert_eq!(h.w.driver.peer(r).sends, sends + 2, "then sent in one send");
    out.extend_from_slice(&h.read(r));
    let units = flv_units_after_header(&dechunk(&out).0);
    assert!(units.iter().all(|u| u.dts_ms >= 2000), "only the new tags");
    let clip_media = flv_units(CLIP)
        .iter()
        .filter(|u| !u.config && u.kind != UnitKind::Script)
        .count();
    // The last tag's unit completes only when the next tag header arrives.
    assert!(
        units.len() + 1 >= clip_media,
        "{} of {clip_media}",
        units.len()
    );
}

#[test]
fn a_reader_whose_window_stays_shut_is_dropped_at_the_send_deadline() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 0\n[http]\nsend_timeout_ms = 3000\n");
    let p = h.publish("stuck");
    let fast = h.connect();
    h.send(fast, &get("/live/stuck.flv"));
    let stuck = h.connect();
    h.w.driver.peer(stuck).window = 0;
    h.send(stuck, &get("/live/stuck.flv"));
    h.read(fast);
    for round in 1..=2u32 {
        h.send(p, &clip_tags(round * 2000, true));
        h.advance(1400);
    }
    assert!(h.closes().is_empty(), "not before the deadline");
    h.advance(400);
    assert_eq!(h.closes(), [CloseReason::SlowReader]);
    assert_eq!(
        h.w.conns.len(),
        2,
        "the publisher and the other reader stay"
    );
    let last = flv_units_after_header(&dechunk(&h.read(fast)).0)
        .iter()
        .map(|u| u.dts_ms)
        .max()
        .unwrap_or(0);
    assert!(last >= 5500, "the other reader kept up: last dts {last}");
}

#[test]
fn a_reader_that_falls_behind_is_skipped_to_a_keyframe_then_dropped() {
    let mut h = Harness::new(
        "[live]\nsend_coalesce_ms = 0\nmax_lag_ms = 1500\nmax_skips = 2\nskip_window_ms = 60000\n",
    );
    let p = h.publish("lag");
    let r = h.connect();
    h.send(r, &get("/live/lag.flv"));
    let mut out = h.read(r);
    let stream = h.w.shared.registry.get("live", "lag").expect("live");
    // The reader takes a third of what the publisher sends.
    let per_round = CLIP.len() / 3;
    let mut skipped_at = Vec::new();
    for round in 1..=12u32 {
        h.w.driver.peer(r).window = per_round;
        h.send(p, &clip_tags(round * 2000, true));
        h.advance(2000);
        out.extend_from_slice(&h.read(r));
        let skips = stream.stats.skips.load(Ordering::Relaxed);
        if skips as usize > skipped_at.len() {
            skipped_at.push(round);
        }
        if !h.closes().is_empty() {
            break;
        }
    }
    // max_skips = 2: two skips are allowed, the third ends the reader.
    assert_eq!(skipped_at.len(), 3, "skips at rounds {skipped_at:?}");
    assert_eq!(h.closes(), [CloseReason::SlowReader]);
    assert_eq!(h.w.conns.len(), 1, "the publisher goes on");
    assert_eq!(stream.stats.slow_disconnects.load(Ordering::Relaxed), 1);
    // Each skip lands on a keyframe: where the reader's video jumps forward, it resumes
    // with a keyframe.
    let (_, body) = split_head(&out);
    let units = flv_units(&dechunk(body).0);
    let frames: Vec<&MediaUnit> = units
        .iter()
        .filter(|u| u.kind == UnitKind::Video && !u.config)
        .collect();
    let jumps: Vec<&MediaUnit> = frames
        .windows(2)
        .filter(|w| w[1].dts_ms > w[0].dts_ms + 500)
        .map(|w| w[1])
        .collect();
    assert!(jumps.len() >= 2, "the reader's media jumped at the skips");
    assert!(
        jumps.iter().all(|u| u.keyframe),
        "every skip resumes on a keyframe"
    );
}

#[test]
fn shutdown_closes_idle_connections_and_ends_live_bodies_with_the_last_chunk() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 0\n");
    let _p = h.publish("bye");
    let idle = h.connect();
    h.send(idle, &get("/healthz"));
    h.read(idle);
    let r = h.connect();
    h.send(r, &get("/live/bye.flv"));
    h.read(r);
    h.w.shared.shutdown.store(true, Ordering::Release);
    h.w.driver.wake();
    let done = h.settle();
    let tail = h.read(r);
    assert!(
        tail.ends_with(b"0\r\n\r\n"),
        "the viewer's body ends: {tail:?}"
    );
    assert!(h.w.driver.peer(idle).shut, "the idle connection is closed");
    let shutdowns = h
        .closes()
        .iter()
        .filter(|&&c| c == CloseReason::Shutdown)
        .count();
    assert_eq!(
        shutdowns,
        2,
        "the idle one and the publisher: {:?}",
        h.closes()
    );
    assert!(done || h.w.conns.is_empty(), "nothing is left to drain");
    assert!(h.settle(), "the worker is done");
}

#[test]
fn a_kick_posted_to_the_mailbox_closes_that_session_only() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 0\n");
    let _p = h.publish("k");
    let r1 = h.connect();
    h.send(r1, &get("/live/k.flv"));
    let r2 = h.connect();
    h.send(r2, &get("/live/k.flv"));
    let (key, conn) =
        h.w.conns
            .iter()
            .find(|(_, c)| c.phase == Phase::Respond && c.raw_fd() == r1)
            .expect("reader 1");
    let (generation, id) = (conn.generation(), conn.id);
    h.w.post(
        0,
        Command::Kick {
            key,
            generation: generation.wrapping_add(1),
            id,
        },
    );
    h.settle();
    assert!(
        h.closes().is_empty(),
        "a kick for another generation is ignored"
    );
    h.w.post(
        0,
        Command::Kick {
            key,
            generation,
            id,
        },
    );
    h.settle();
    assert_eq!(h.closes(), [CloseReason::Kicked]);
    assert!(h.w.conns.get(key).is_none(), "reader 1 is gone");
    assert!(h.w.driver.peer(r1).closed);
    assert_eq!(h.w.conns.len(), 2, "the publisher and reader 2 stay");
    assert!(!h.w.driver.peer(r2).shut && !h.w.driver.peer(r2).closed);
}

#[test]
fn an_http_1_0_reader_gets_bare_flv_and_the_close_ends_it() {
    let mut h = Harness::new("[live]\nsend_coalesce_ms = 0\n");
    let _p = h.publish("old");
    let r = h.connect();
    h.send(r, b"GET /live/old.flv HTTP/1.0\r\n\r\n");
    let out = h.read(r);
    let (head, body) = split_head(&out);
    assert!(
        head.starts_with("HTTP/1.0 200 ") || head.starts_with("HTTP/1.1 200 "),
        "{head}"
    );
    assert!(!head.contains("chunked"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert!(body.starts_with(b"FLV\x01"));
    assert!(flv_units(body).len() > 10);
}
