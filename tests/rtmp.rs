//! RTMP against real peers: ffmpeg publishes and plays, librtmp (rtmpdump, GStreamer's
//! rtmpsink) and GStreamer's own RTMP elements (rtmp2sink, rtmp2src) publish and play, and
//! the same stream plays over HTTP-FLV. Bad input from a raw client is a clean, counted
//! disconnect while another stream keeps playing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::flv::{ReadFlv, enhanced_video, ffmpeg_decode, read_flv};
use common::media::{assert_recording, av_clip, av_flv, wait_for_stream};
use common::rtmp::{RtmpClient, encode_message};
use common::{Server, poll_until, run_bounded};
use uringcast::media::unit::UnitKind;
use uringcast::proto::amf0::Amf0Value;

/// `ffmpeg -re -i clip -c copy -f flv rtmp://...` for `seconds`.
fn publish_rtmp(url: &str, seconds: f64) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(av_clip())
        .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "flv"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

#[test]
fn ffmpeg_publishes_rtmp_and_ffmpeg_plays_it_over_rtmp_and_http_flv() {
    let server = Server::start("rtmp-ffmpeg", "");
    let dir = server.dir.clone();
    let mut publisher = publish_rtmp(&server.rtmp_url("/live/s?key=abc"), 20.0);
    wait_for_stream(&server, "s");
    let rtmp_url = server.rtmp_url("/live/s");
    let http_url = server.url("/live/s.flv");
    // Two decoders and a recorder at once, while the publish runs.
    let decode_rtmp = {
        let url = rtmp_url.clone();
        std::thread::spawn(move || ffmpeg_decode(&url, "error", Some(8.0), Duration::from_secs(30)))
    };
    let decode_http = std::thread::spawn(move || {
        ffmpeg_decode(&http_url, "error", Some(8.0), Duration::from_secs(30))
    });
    let recording = dir.join("rtmp.flv");
    let (ok, err) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i", &rtmp_url, "-t", "6", "-c", "copy"])
            .arg(&recording),
        Duration::from_secs(30),
    );
    assert_eq!(ok, Some(true), "ffmpeg recording over rtmp: {err}");
    let (ok, err) = decode_rtmp.join().unwrap();
    assert!(ok && err.trim().is_empty(), "rtmp decode: {err}");
    let (ok, err) = decode_http.join().unwrap();
    assert!(ok && err.trim().is_empty(), "http-flv decode: {err}");
    assert_recording(&recording, 5.0, "ffmpeg over rtmp");
    // The query never reaches the stream's name; the API counts the RTMP readers.
    let api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
    assert!(api.contains("\"name\":\"s\""), "{api}");
    assert!(api.contains("\"video_codec\":\"h264\""), "{api}");
    let status = publisher.wait().unwrap();
    assert!(status.success(), "the rtmp publisher ended cleanly");
    assert!(
        server.metric_sum("uringcast_rtmp_connections_accepted_total", &[]) >= 3.0,
        "{}",
        server.metrics()
    );
}

#[test]
fn librtmp_and_gstreamer_publish_and_play_against_each_other() {
    for tool in ["rtmpdump", "gst-launch-1.0"] {
        assert!(
            Command::new(tool)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok(),
            "{tool} is required (README set-up installs it)"
        );
    }
    let server = Server::start("rtmp-clients", "");
    let flv = av_flv();
    // GStreamer's rtmp2sink publishes; librtmp (rtmpdump) plays.
    let gst_publish = |sink: &str, name: &str| -> Child {
        // gst-launch takes the pipeline as separate words (one argument with spaces is
        // quoted as one element).
        let pipeline = format!(
            "filesrc location={} ! flvdemux name=d d.video ! queue ! h264parse ! flvmux name=m streamable=true ! {sink} location={} d.audio ! queue ! aacparse ! m.",
            flv.display(),
            server.rtmp_url(&format!("/live/{name}")),
        );
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gst-launch-1.0")
    };
    let mut rtmp2sink = gst_publish("rtmp2sink", "g2");
    wait_for_stream(&server, "g2");
    let by_rtmpdump = server.dir.join("rtmpdump.flv");
    // rtmpdump records until it is stopped (its --stop is ignored for live streams).
    let (_, err) = run_bounded(
        Command::new("rtmpdump")
            .args(["--live", "-q", "-r"])
            .arg(server.rtmp_url("/live/g2"))
            .arg("-o")
            .arg(&by_rtmpdump),
        Duration::from_secs(6),
    );
    assert!(
        by_rtmpdump.metadata().map_or(0, |m| m.len()) > 20_000,
        "rtmpdump recorded nothing: {err}"
    );
    assert_recording(&by_rtmpdump, 3.0, "rtmpdump playing rtmp2sink");
    let _ = rtmp2sink.kill();
    let _ = rtmp2sink.wait();

    // librtmp publishes (GStreamer's rtmpsink); GStreamer's rtmp2src plays.
    let mut rtmpsink = gst_publish("rtmpsink", "lr");
    wait_for_stream(&server, "lr");
    let by_rtmp2src = server.dir.join("rtmp2src.flv");
    let _ = run_bounded(
        Command::new("gst-launch-1.0").arg("-q").args(
            format!(
                "rtmp2src location={} ! filesink location={}",
                server.rtmp_url("/live/lr"),
                by_rtmp2src.display()
            )
            .split_whitespace(),
        ),
        Duration::from_secs(6),
    );
    assert_recording(&by_rtmp2src, 3.0, "rtmp2src playing rtmpsink");
    // And ffmpeg plays the librtmp publish over HTTP-FLV too.
    let r = read_flv(
        server.addr,
        &ReadFlv::new("/live/lr.flv", Duration::from_secs(3)),
    );
    assert!(r.starts_with_keyframe() && r.media(UnitKind::Audio).count() > 20);
    let _ = rtmpsink.kill();
    let _ = rtmpsink.wait();
}

/// connect, createStream; returns the client with the stream id (1).
fn connected(server: &Server, app: &str) -> RtmpClient {
    let mut c = RtmpClient::connect(server.rtmp_addr).expect("handshake");
    c.connect_app(app, &server.rtmp_url(&format!("/{app}")))
        .unwrap();
    let messages = c
        .read_until(Duration::from_secs(5), |m| {
            m.command().is_some_and(|(n, _)| n == "_result")
        })
        .unwrap();
    let (name, code) = messages
        .iter()
        .find_map(|m| m.command())
        .expect("an answer to connect");
    assert_eq!(name, "_result");
    assert_eq!(code.as_deref(), Some("NetConnection.Connect.Success"));
    c.command(0, "createStream", None, &[]).unwrap();
    let messages = c
        .read_until(Duration::from_secs(5), |m| {
            m.command().is_some_and(|(n, _)| n == "_result")
        })
        .unwrap();
    assert!(messages.iter().any(|m| m.command().is_some()));
    c
}

#[test]
fn a_second_publisher_gets_bad_name_and_the_first_keeps_going() {
    let server = Server::start("rtmp-second", "");
    let mut first = publish_rtmp(&server.rtmp_url("/live/one"), 8.0);
    wait_for_stream(&server, "one");
    let mut second = connected(&server, "live");
    second
        .command(
            1,
            "publish",
            None,
            &[Amf0Value::String("one"), Amf0Value::String("live")],
        )
        .unwrap();
    let (name, code) = second.expect_status().expect("an onStatus");
    assert_eq!(name, "onStatus");
    assert_eq!(code.as_deref(), Some("NetStream.Publish.BadName"));
    // The first keeps publishing: a reader gets fresh media.
    let r = read_flv(
        server.addr,
        &ReadFlv::new("/live/one.flv", Duration::from_secs(2)),
    );
    assert!(r.media(UnitKind::Video).count() > 20, "{}", r.tags.len());
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn a_player_that_comes_first_waits_and_ends_with_the_stream() {
    let server = Server::start(
        "rtmp-wait",
        "[live]\nplay_wait_ms = 8000\npublisher_grace_ms = 500\n",
    );
    let mut player = connected(&server, "live");
    player
        .command(1, "play", None, &[Amf0Value::String("later")])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut publisher = publish_rtmp(&server.rtmp_url("/live/later"), 3.0);
    let messages = player
        .read_until(Duration::from_secs(15), |m| {
            m.command()
                .is_some_and(|(_, c)| c.as_deref() == Some("NetStream.Play.UnpublishNotify"))
        })
        .unwrap();
    let codes: Vec<String> = messages
        .iter()
        .filter_map(|m| m.command().and_then(|(_, c)| c))
        .collect();
    let at = |code: &str| codes.iter().position(|c| c == code);
    assert!(at("NetStream.Play.Start").is_some(), "{codes:?}");
    assert!(
        at("NetStream.Play.Start") < at("NetStream.Play.UnpublishNotify"),
        "{codes:?}"
    );
    // Media in between: sequence headers first, then a keyframe, on message stream 1.
    let video: Vec<_> = messages.iter().filter(|m| m.msg_type == 9).collect();
    assert!(video.len() > 30, "{} video messages", video.len());
    assert_eq!(&video[0].payload[..2], &[0x17, 0x00], "AVC sequence header");
    assert_eq!(video[1].payload[0] >> 4, 1, "then a keyframe");
    assert!(video.iter().all(|m| m.stream_id == 1));
    assert!(
        video
            .windows(2)
            .all(|w| w[1].timestamp_ms >= w[0].timestamp_ms),
        "video timestamps go forward"
    );
    assert!(player.closed_within(Duration::from_secs(3)), "then close");
    let _ = publisher.wait();
}

#[test]
fn hevc_av1_and_vp9_over_enhanced_rtmp_play_back_byte_exact_over_rtmp_and_http_flv() {
    let server = Server::start("rtmp-enhanced", "[live]\npublisher_grace_ms = 5000\n");
    for (fourcc, codec) in [(b"hvc1", "hevc"), (b"av01", "av1"), (b"vp09", "vp9")] {
        let name = codec;
        let (seq_start, frames) = enhanced_video(fourcc, 15, 3000);
        let mut publisher = connected(&server, "live");
        publisher
            .command(
                1,
                "publish",
                None,
                &[Amf0Value::String(name), Amf0Value::String("live")],
            )
            .unwrap();
        let (_, code) = publisher.expect_status().unwrap();
        assert_eq!(code.as_deref(), Some("NetStream.Publish.Start"));
        publisher.set_chunk_size(1000).unwrap();
        publisher.write_message(6, 9, 0, 1, &seq_start).unwrap();
        for (n, f) in frames.iter().enumerate() {
            publisher.write_message(6, 9, n as u32 * 40, 1, f).unwrap();
        }
        let api_ok = poll_until(Instant::now() + Duration::from_secs(5), || {
            String::from_utf8(server.admin_get("/api/v1/streams", &[]).body)
                .unwrap()
                .contains(&format!("\"video_codec\":\"{codec}\",\"video_frames\":15"))
        });
        let api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
        assert!(api_ok, "{codec}: {api}");
        // An RTMP player gets the sequence start, then the GOP cache (frames 10..15),
        // byte-exact.
        let mut player = connected(&server, "live");
        player
            .command(1, "play", None, &[Amf0Value::String(name)])
            .unwrap();
        let mut video = Vec::new();
        let _ = player.read_until(Duration::from_secs(5), |m| {
            if m.msg_type == 9 {
                video.push(m.payload.clone());
            }
            video.len() == 6
        });
        assert_eq!(
            video.first(),
            Some(&seq_start),
            "{codec}: sequence start first"
        );
        assert_eq!(
            &video[1..],
            &frames[10..],
            "{codec}: the GOP cache, byte-exact"
        );
        // The same over HTTP-FLV.
        let r = read_flv(
            server.addr,
            &ReadFlv {
                tags_max: 6,
                ..ReadFlv::new(&format!("/live/{name}.flv"), Duration::from_secs(3))
            },
        );
        assert_eq!(r.media(UnitKind::Video).count(), 5, "{codec}: {:?}", r.tags);
    }
}

/// A raw peer's bytes after a good handshake (and, when `connect`, a connect).
fn bad_peer(server: &Server, connect: bool, bytes: &[u8]) -> bool {
    let mut c = RtmpClient::connect(server.rtmp_addr).expect("handshake");
    if connect {
        c.connect_app("live", "rtmp://127.0.0.1/live").unwrap();
        let _ = c.read_until(Duration::from_secs(3), |m| {
            m.command().is_some_and(|(n, _)| n == "_result")
        });
    }
    let _ = std::io::Write::write_all(&mut c.stream, bytes);
    c.closed_within(Duration::from_secs(5))
}

#[test]
fn bad_rtmp_input_is_a_clean_counted_disconnect_while_another_stream_plays() {
    let server = Server::start(
        "rtmp-bad",
        "[rtmp]\nhandshake_timeout_ms = 1000\nmessage_bytes_max = 65536\nbuffered_bytes_max = 131072\nchunk_streams_max = 8\n",
    );
    let mut publisher = publish_rtmp(&server.rtmp_url("/live/good"), 30.0);
    wait_for_stream(&server, "good");
    let reader = {
        let addr = server.addr;
        std::thread::spawn(move || {
            read_flv(
                addr,
                &ReadFlv::new("/live/good.flv", Duration::from_secs(12)),
            )
        })
    };
    let errors = |reason: &str| {
        server.metric_sum(
            "uringcast_rtmp_errors_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    let raw = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(server.rtmp_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = std::io::Write::write_all(&mut s, bytes);
        let mut buf = [0u8; 8192];
        let start = Instant::now();
        loop {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    };
    // Wrong version byte: closed at once.
    let took = raw(&[6u8; 1537]);
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A truncated handshake: closed by the handshake deadline.
    let took = raw(&[3u8; 700]);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let msg = |msg_type: u8, payload: &[u8]| encode_message(2, msg_type, 0, 0, payload, 128);
    // Each case: the server closes the connection and counts it under its reason.
    let case = |what: &str, reason: &str, connect: bool, bytes: &[u8]| {
        let before = errors(reason);
        assert!(bad_peer(&server, connect, bytes), "{what}: not closed");
        assert!(
            poll_until(Instant::now() + Duration::from_secs(2), || errors(reason)
                > before),
            "{what}: not counted as {reason}\n{}",
            server.metrics()
        );
    };
    case(
        "chunk size 0",
        "chunk_size",
        false,
        &msg(1, &0u32.to_be_bytes()),
    );
    case(
        "chunk size 2^31",
        "chunk_size",
        false,
        &msg(1, &(1u32 << 31).to_be_bytes()),
    );
    // A message longer than rtmp.message_bytes_max (only its header and a little of it).
    let mut long = encode_message(4, 9, 0, 1, &vec![0u8; 100_000], 128);
    long.truncate(2000);
    case("a long message", "message_too_large", true, &long);
    case(
        "an unknown message type",
        "unknown_message_type",
        true,
        &msg(0x30, b"hello"),
    );
    case(
        "AMF0 garbage",
        "amf",
        true,
        &encode_message(3, 20, 0, 0, &[0x02, 0xff, 0xff, 1, 2], 128),
    );
    let mut publish = Vec::new();
    uringcast::proto::amf0::write_string(&mut publish, "publish");
    uringcast::proto::amf0::write_number(&mut publish, 5.0);
    uringcast::proto::amf0::write_null(&mut publish);
    uringcast::proto::amf0::write_string(&mut publish, "x");
    case(
        "publish without connect",
        "command_before_connect",
        false,
        &encode_message(3, 20, 0, 1, &publish, 128),
    );
    // A flood of 1-byte chunks over more chunk streams than allowed.
    let mut flood = msg(1, &1u32.to_be_bytes());
    for csid in 3..40u8 {
        flood.extend_from_slice(&encode_message(csid, 9, 0, 1, &[0x17; 50], 1)[..13]);
    }
    case("1-byte chunk flood", "chunk_streams", true, &flood);
    // Every case was counted, and nobody else noticed.
    server.flush_barrier();
    assert!(errors("handshake_version") >= 1.0);
    let deadline = server.metric_sum("uringcast_deadline_expired_total", &["deadline=\"header\""]);
    assert!(deadline >= 1.0, "the truncated handshake hit its deadline");
    let r = reader.join().unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    assert!(
        r.video_span_ms() >= 9000,
        "the good stream kept playing: {} ms",
        r.video_span_ms()
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
    server.assert_closes_add_up();
}

#[test]
fn a_captured_ffmpeg_9_hevc_publish_replays_and_plays_back_byte_exact() {
    use uringcast::proto::rtmp::{Event, RtmpLimits, ServerSession};
    let capture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/captures/rtmp/ffmpeg9_hevc_publish.bin"
    ))
    .unwrap();
    // What the capture carries: its video messages, through our own session.
    let mut session = ServerSession::new(RtmpLimits::default());
    session.receive(&capture).unwrap();
    let mut video = Vec::new();
    while let Some(event) = session.poll_event() {
        match event {
            Event::Connect { .. } => session.accept_connect(),
            Event::Publish { stream_id, .. } => session.accept_publish(stream_id),
            Event::Media(m) if m.msg_type == 9 => video.push(m.payload().to_vec()),
            _ => {}
        }
    }
    assert!(video.len() > 30, "{} video messages", video.len());
    assert_eq!(
        &video[0][..5],
        &[0x90, b'h', b'v', b'c', b'1'],
        "HEVC sequence start"
    );
    let last_key = video
        .iter()
        .rposition(|v| v[0] & 0x70 == 0x10 && v[0] & 0x0f != 0)
        .unwrap();
    // Replay the client's bytes to a server (its handshake answer is not checked by us: C2
    // is not validated), reading what the server sends meanwhile.
    let server = Server::start("rtmp-hevc-capture", "[live]\npublisher_grace_ms = 8000\n");
    let mut s = std::net::TcpStream::connect(server.rtmp_addr).unwrap();
    let mut drain = s.try_clone().unwrap();
    let drainer = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while std::io::Read::read(&mut drain, &mut buf).is_ok_and(|n| n > 0) {}
    });
    std::io::Write::write_all(&mut s, &capture).unwrap();
    let api_ok = poll_until(Instant::now() + Duration::from_secs(5), || {
        String::from_utf8(server.admin_get("/api/v1/streams", &[]).body)
            .unwrap()
            .contains("\"video_codec\":\"hevc\"")
    });
    assert!(api_ok, "{}", server.stderr());
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = drainer.join();
    // An RTMP player within the grace period: the sequence start, then the last GOP.
    let mut player = connected(&server, "live");
    player
        .command(1, "play", None, &[Amf0Value::String("hevc")])
        .unwrap();
    let want = video.len() - last_key;
    let mut got = Vec::new();
    let _ = player.read_until(Duration::from_secs(5), |m| {
        if m.msg_type == 9 {
            got.push(m.payload.clone());
        }
        got.len() > want
    });
    assert_eq!(got.first(), Some(&video[0]), "sequence start, byte-exact");
    assert_eq!(&got[1..], &video[last_key..], "the GOP cache, byte-exact");
    // HTTP-FLV readers get the same bodies.
    let r = read_flv(
        server.addr,
        &ReadFlv::new("/live/hevc.flv", Duration::from_secs(3)),
    );
    assert!(r.starts_with_keyframe());
    assert_eq!(r.media(UnitKind::Video).count(), want, "{:?}", r.tags.len());
}

#[test]
fn an_rtmp_player_stays_across_a_republish_within_the_grace_period() {
    let server = Server::start("rtmp-republish", "[live]\npublisher_grace_ms = 4000\n");
    let mut first = publish_rtmp(&server.rtmp_url("/live/re"), 3.0);
    wait_for_stream(&server, "re");
    let mut player = connected(&server, "live");
    player
        .command(1, "play", None, &[Amf0Value::String("re")])
        .unwrap();
    let _ = first.wait();
    // The publisher is gone; a new one comes within the grace period.
    std::thread::sleep(Duration::from_millis(500));
    let mut second = publish_rtmp(&server.rtmp_url("/live/re"), 3.0);
    let messages = player
        .read_until(Duration::from_secs(12), |m| {
            m.command()
                .is_some_and(|(_, c)| c.as_deref() == Some("NetStream.Play.UnpublishNotify"))
        })
        .unwrap();
    let _ = second.wait();
    let video: Vec<_> = messages
        .iter()
        .filter(|m| m.msg_type == 9 && m.payload.get(1) == Some(&1))
        .collect();
    // Both publishes' frames, on one timeline that never goes back.
    assert!(video.len() > 80, "{} video frames", video.len());
    assert!(
        video
            .windows(2)
            .all(|w| w[1].timestamp_ms >= w[0].timestamp_ms),
        "timestamps go forward across the republish"
    );
    let codes: Vec<String> = messages
        .iter()
        .filter_map(|m| m.command().and_then(|(_, c)| c))
        .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| *c == "NetStream.Play.UnpublishNotify")
            .count(),
        1,
        "one end, after the second publisher: {codes:?}"
    );
    // The second publish's three seconds came after the first's (whose GOP the player joined).
    let span = video.last().unwrap().timestamp_ms - video[0].timestamp_ms;
    assert!(span >= 4000, "{span} ms of video");
}
