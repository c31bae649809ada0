//! The picture size in `/api/v1/streams` comes from the SPS of the video sequence header, not
//! only from onMetaData: an MPEG-TS publish (no metadata at all), an FLV publish whose
//! metadata was left out, and one whose metadata says another size than the pictures (a
//! bitstream filter cropped them after the muxer wrote it). ffmpeg publishes; what the server
//! relays is read back with curl and checked with ffprobe.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::media::{av_clip, wait_for_stream};
use common::{Server, run_bounded};
use uringcast::media::unit::UnitKind;
use uringcast::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits, parse_on_metadata};

fn stream(server: &Server, name: &str) -> serde_json::Value {
    let body = server.admin_get("/api/v1/streams", &[]).body;
    let json: serde_json::Value = serde_json::from_slice(&body).expect("streams JSON");
    json["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits (at most 10 s) for the API to show a size for `name`; returns (width, height) as
/// shown, null as None.
fn api_size(server: &Server, name: &str) -> (Option<u64>, Option<u64>) {
    let mut last = serde_json::Value::Null;
    common::poll_until(common::in_ms(10_000), || {
        last = stream(server, name);
        !last["width"].is_null() && !last["height"].is_null()
    });
    (last["width"].as_u64(), last["height"].as_u64())
}

fn spawn_ffmpeg(args: &[&str], url: &str) -> std::process::Child {
    Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// Two seconds of the stream as HTTP-FLV, saved to `file` by curl.
fn record_flv(server: &Server, path: &str, file: &Path) {
    let (_, err) = run_bounded(
        Command::new("curl")
            .args(["-s", "-S", "--max-time", "2", "-o"])
            .arg(file)
            .arg(server.url(path)),
        Duration::from_secs(10),
    );
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(len > 1000, "curl saved {len} bytes of {path}: {err}");
}

/// The onMetaData bodies in a saved FLV (the file may end inside a tag).
fn metadata_in(file: &Path) -> Vec<uringcast::proto::flv::StreamMetadata> {
    let bytes = std::fs::read(file).unwrap();
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(&bytes);
    let mut found = Vec::new();
    while let Ok(Some(event)) = demuxer.poll() {
        if let FlvEvent::Unit(unit) = event
            && unit.kind == UnitKind::Script
        {
            found.extend(parse_on_metadata(
                &uringcast::proto::flv::strip_set_data_frame(unit.body.clone()),
            ));
        }
    }
    found
}

/// What ffprobe decodes from a saved FLV: (width, height).
fn decoded_size(file: &Path) -> (u64, u64) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text
        .trim()
        .split(',')
        .map(|v| v.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn an_mpeg_ts_publish_over_http_shows_the_size_from_its_sps() {
    let server = Server::start("resolution-ts", "");
    let clip = av_clip();
    let mut publisher = spawn_ffmpeg(
        &[
            "-re",
            "-i",
            clip.to_str().unwrap(),
            "-t",
            "10",
            "-c",
            "copy",
            "-f",
            "mpegts",
            "-method",
            "POST",
        ],
        &server.url("/live/ts320.ts"),
    );
    wait_for_stream(&server, "ts320");
    assert_eq!(
        api_size(&server, "ts320"),
        (Some(320), Some(240)),
        "{}",
        stream(&server, "ts320")
    );
    assert_eq!(stream(&server, "ts320")["video_codec"], "h264");
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn an_flv_publish_without_metadata_shows_the_size_from_its_sps() {
    let server = Server::start("resolution-nometa", "");
    let clip = av_clip();
    let mut publisher = spawn_ffmpeg(
        &[
            "-re",
            "-i",
            clip.to_str().unwrap(),
            "-t",
            "10",
            "-c",
            "copy",
            "-flvflags",
            "no_metadata",
            "-f",
            "flv",
        ],
        &server.rtmp_url("/live/nometa"),
    );
    wait_for_stream(&server, "nometa");
    assert_eq!(
        api_size(&server, "nometa"),
        (Some(320), Some(240)),
        "{}",
        stream(&server, "nometa")
    );
    // The publisher really sent no onMetaData: a reader gets none.
    let file = server.dir.join("nometa.flv");
    record_flv(&server, "/live/nometa.flv", &file);
    assert!(metadata_in(&file).is_empty());
    assert_eq!(decoded_size(&file), (320, 240));
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn an_flv_publish_whose_metadata_lies_shows_the_size_its_pictures_have() {
    let server = Server::start("resolution-lie", "");
    // The muxer writes onMetaData from the encoder's 320x240; the bitstream filter after it
    // crops the pictures to 256x192 in the SPS.
    let mut publisher = spawn_ffmpeg(
        &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            "h264_metadata=crop_right=64:crop_bottom=48",
            "-f",
            "flv",
            "-method",
            "POST",
        ],
        &server.url("/live/lie.flv"),
    );
    wait_for_stream(&server, "lie");
    assert_eq!(
        api_size(&server, "lie"),
        (Some(256), Some(192)),
        "{}",
        stream(&server, "lie")
    );
    // What a reader gets: metadata saying 320x240, pictures that decode at 256x192.
    let file = server.dir.join("lie.flv");
    record_flv(&server, "/live/lie.flv", &file);
    let metadata = metadata_in(&file);
    assert!(
        metadata
            .iter()
            .any(|m| (m.width, m.height) == (Some(320), Some(240))),
        "{metadata:?}"
    );
    assert_eq!(decoded_size(&file), (256, 192));
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn an_hevc_mpeg_ts_publish_shows_the_cropped_size_from_its_sps() {
    let encoders = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("ffmpeg");
    let missing: Vec<String> = (!String::from_utf8_lossy(&encoders.stdout).contains("libx265"))
        .then(|| "ffmpeg with libx265".to_string())
        .into_iter()
        .collect();
    if !common::required_or_skip("an_hevc_mpeg_ts_publish_shows_the_cropped_size", &missing) {
        return;
    }
    let server = Server::start("resolution-hevc", "");
    // 426 columns: x265 codes 432 and crops 6 with the conformance window.
    let mut publisher = spawn_ffmpeg(
        &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=25",
            "-t",
            "10",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
            "-method",
            "POST",
        ],
        &server.url("/live/hevc426.ts"),
    );
    wait_for_stream(&server, "hevc426");
    assert_eq!(
        api_size(&server, "hevc426"),
        (Some(426), Some(240)),
        "{}",
        stream(&server, "hevc426")
    );
    assert_eq!(stream(&server, "hevc426")["video_codec"], "hevc");
    let _ = publisher.kill();
    let _ = publisher.wait();
}
