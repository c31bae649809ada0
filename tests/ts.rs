//! MPEG-TS and HLS against real peers: what uringcast serves as HTTP-TS is read back with an
//! independent TS parser (tests/common/ts.rs) and decoded by ffmpeg/ffprobe.

mod common;

use std::process::Command;
use std::time::Duration;

use common::flv::{ffmpeg_decode, publish_clip};
use common::media::{assert_recording, av_clip, wait_for_stream};
use common::ts::{PACKET, continuity_breaks, http_get, packets, pes_starts, program};
use common::{Server, run_bounded};

const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_AAC: u8 = 0x0f;

/// The bytes of a TS body joined at the latest keyframe: PAT, then PMT, then a video PES that
/// is a random access point carrying a PCR; whole packets with continuous counters; video and
/// audio timestamps that never go back.
fn assert_ts_joins_at_a_keyframe(body: &[u8], who: &str) {
    assert!(
        body.len() >= 100 * PACKET,
        "{who}: only {} bytes",
        body.len()
    );
    let packets = packets(&body[..body.len() / PACKET * PACKET]);
    let program = program(&packets).unwrap_or_else(|| panic!("{who}: no PAT/PMT"));
    assert_eq!(packets[0].pid, 0, "{who}: the first packet is the PAT");
    assert_eq!(packets[1].pid, program.pmt_pid, "{who}: then the PMT");
    let video = program
        .streams
        .iter()
        .find(|s| s.0 == STREAM_TYPE_H264)
        .unwrap_or_else(|| panic!("{who}: no H.264 in {program:?}"))
        .1;
    let audio = program
        .streams
        .iter()
        .find(|s| s.0 == STREAM_TYPE_AAC)
        .unwrap_or_else(|| panic!("{who}: no AAC in {program:?}"))
        .1;
    assert_eq!(program.pcr_pid, video, "{who}: PCR on the video PID");
    let first_media = packets
        .iter()
        .find(|p| p.pid == video || p.pid == audio)
        .unwrap();
    assert_eq!(first_media.pid, video, "{who}: video first");
    assert!(
        first_media.pusi && first_media.random_access && first_media.pcr.is_some(),
        "{who}: the first video packet starts a keyframe PES with a PCR"
    );
    let breaks = continuity_breaks(&packets);
    assert!(breaks.is_empty(), "{who}: continuity: {breaks:?}");
    for pid in [video, audio] {
        let dts: Vec<u64> = pes_starts(&packets, pid)
            .iter()
            .filter_map(|p| p.dts)
            .collect();
        assert!(dts.len() > 10, "{who}: {} PES on pid {pid:#x}", dts.len());
        assert!(
            dts.windows(2).all(|w| w[1] >= w[0]),
            "{who}: dts go back on pid {pid:#x}"
        );
    }
    let starts = pes_starts(&packets, video);
    let keyframes = starts.iter().filter(|p| p.random_access).count();
    assert!(
        keyframes >= 1 && keyframes < starts.len(),
        "{who}: {keyframes} keyframes"
    );
    // PCR never ahead of the DTS of the PES it rides on.
    for p in packets.iter().filter(|p| p.pid == video && p.pusi) {
        if let (Some(pcr), Some(dts)) = (p.pcr, pes_starts(std::slice::from_ref(p), video)[0].dts) {
            assert!(pcr <= dts, "{who}: PCR {pcr} after DTS {dts}");
        }
    }
}

#[test]
fn a_flv_publish_plays_as_http_ts_in_both_http_versions_and_decodes() {
    let server = Server::start("ts-play", "");
    let mut publisher = publish_clip(&server.url("/live/t.flv"), &av_clip(), Some(20.0));
    wait_for_stream(&server, "t");

    // HTTP/1.1: chunked; HTTP/1.0: the bare stream. Both start at the latest keyframe.
    let chunked = http_get(
        server.addr,
        "/live/t.ts",
        "HTTP/1.1",
        Duration::from_secs(3),
    );
    assert_eq!(chunked.status, 200, "{}", chunked.head);
    assert_eq!(chunked.header("content-type"), Some("video/mp2t"));
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert!(chunked.header("access-control-allow-origin").is_some());
    assert_ts_joins_at_a_keyframe(&chunked.body, "HTTP/1.1");
    let bare = http_get(
        server.addr,
        "/live/t.ts",
        "HTTP/1.0",
        Duration::from_secs(3),
    );
    assert_eq!(bare.status, 200, "{}", bare.head);
    assert!(bare.header("transfer-encoding").is_none());
    assert_ts_joins_at_a_keyframe(&bare.body, "HTTP/1.0");

    // ffmpeg decodes it with no error line, and a recording has the published streams.
    let url = server.url("/live/t.ts");
    let decode = {
        let url = url.clone();
        std::thread::spawn(move || ffmpeg_decode(&url, "error", Some(6.0), Duration::from_secs(30)))
    };
    let recording = server.dir.join("t.ts");
    let (ok, err) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i", &url, "-t", "6", "-c", "copy"])
            .arg(&recording),
        Duration::from_secs(30),
    );
    assert_eq!(ok, Some(true), "ffmpeg recording of http-ts: {err}");
    assert_recording(&recording, 4.0, "http-ts recording");
    let (ok, err) = decode.join().unwrap();
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg decode of http-ts: {err}"
    );
    // The TS readers that left are no longer counted (a reader is noticed gone at its next
    // send).
    server.wait_metric("uringcast_stream_readers", &["protocol=\"ts\""], |v| {
        v == 0.0
    });
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn an_http_ts_publish_plays_over_flv_rtmp_and_ts() {
    let server = Server::start("ts-ingest", "");
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(av_clip())
        .args(["-t", "15", "-c", "copy", "-f", "mpegts", "-method", "POST"])
        .arg(server.url("/live/m.ts"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    wait_for_stream(&server, "m");
    // The API knows the codecs from the configurations built from in-band data.
    let mut api = String::new();
    let known = common::poll_until(common::in_ms(5000), || {
        api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
        api.contains("\"video_codec\":\"h264\"") && api.contains("\"audio_codec\":\"aac\"")
    });
    assert!(known, "{api}");
    // Every output decodes with no error line: FLV (the AVC configuration record built from
    // the SPS/PPS), RTMP, and TS.
    let urls = [
        server.url("/live/m.flv"),
        server.rtmp_url("/live/m"),
        server.url("/live/m.ts"),
    ];
    let decoders: Vec<_> = urls
        .iter()
        .cloned()
        .map(|url| {
            std::thread::spawn(move || {
                let r = ffmpeg_decode(&url, "error", Some(5.0), Duration::from_secs(30));
                (url, r)
            })
        })
        .collect();
    let recording = server.dir.join("m.flv");
    let (ok, err) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i", &urls[0], "-t", "5", "-c", "copy"])
            .arg(&recording),
        Duration::from_secs(30),
    );
    assert_eq!(ok, Some(true), "ffmpeg recording of http-flv: {err}");
    assert_recording(&recording, 3.0, "flv of a ts publish");
    for decoder in decoders {
        let (url, (ok, err)) = decoder.join().unwrap();
        assert!(ok && err.trim().is_empty(), "ffmpeg decode of {url}: {err}");
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn a_ts_publish_that_never_sends_a_program_ends_with_a_clear_error() {
    let server = Server::start("ts-garbage", "");
    // 5 MiB of packets that are not a program (PID 0x42 only): past the bound of input
    // without a PAT/PMT, the publish ends with 400 and the name is free again.
    let mut packet = [0xffu8; 188];
    packet[..4].copy_from_slice(&[0x47, 0x00, 0x42, 0x10]);
    let body: Vec<u8> = packet.iter().copied().cycle().take(188 * 28_000).collect();
    let mut s = server.connect();
    use std::io::Write;
    write!(
        s,
        "POST /live/g.ts HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(&body);
    let r = common::read_response(&mut s, false).expect("response");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&r.body).to_lowercase();
    assert!(text.contains("mpeg-ts"), "{text}");
    eprintln!("refused with: {text}");
}

#[test]
fn an_audio_only_stream_plays_as_http_ts_and_hls() {
    let server = Server::start("ts-audio", "[hls]\nsegment_target_ms = 1000\n");
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=44100")
        .args(["-t", "12", "-c:a", "aac", "-f", "flv", "-method", "POST"])
        .arg(server.url("/live/a.flv"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    // Audio only: no keyframe to wait for, the first audio frames will do.
    let live = common::poll_until(common::in_ms(10_000), || {
        let api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
        api.contains("\"name\":\"a\"") && !api.contains("\"audio_frames\":0")
    });
    assert!(live, "{}", server.stderr());
    // A joiner of a stream without video gets PAT and PMT first (there is no keyframe entry
    // to carry them), then the audio.
    let read = http_get(
        server.addr,
        "/live/a.ts",
        "HTTP/1.1",
        Duration::from_secs(2),
    );
    assert_eq!(read.status, 200);
    let packets = packets(&read.body[..read.body.len() / PACKET * PACKET]);
    let program = program(&packets).expect("PAT/PMT");
    assert_eq!(packets[0].pid, 0, "the PAT first");
    assert_eq!(packets[1].pid, program.pmt_pid, "then the PMT");
    assert_eq!(program.streams.len(), 1);
    assert_eq!(program.streams[0].0, STREAM_TYPE_AAC);
    assert_eq!(
        program.pcr_pid, program.streams[0].1,
        "PCR on the audio PID"
    );
    for path in ["/live/a.ts", "/live/a/index.m3u8"] {
        let (ok, err) = ffmpeg_decode(
            &server.url(path),
            "error",
            Some(3.0),
            Duration::from_secs(30),
        );
        assert!(
            ok && err.trim().is_empty(),
            "ffmpeg decode of {path}: {err}"
        );
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}
