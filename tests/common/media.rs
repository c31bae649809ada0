//! Test media shared by the live tests: the A/V clip, waiting for a stream, and what ffprobe
//! says of a recording.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::flv::{ClipSpec, clip};
use super::{Server, have, poll_until};

/// 20 s of 320x240 H.264 (25 fps, a keyframe every 2 s, two B-frames) and AAC.
pub fn av_clip() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        assert!(
            have("ffmpeg") && have("ffprobe"),
            "ffmpeg/ffprobe are required (README set-up installs them)"
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rtmp-media");
        clip(
            &dir,
            "rtmp-av-20s",
            &ClipSpec {
                seconds: 20,
                fps: 25,
                gop_frames: 50,
                video_kbps: 400,
                bframes: 2,
                audio: true,
            },
        )
    })
    .clone()
}

/// 30 s of 320x240 H.264 (25 fps, a keyframe every second, two B-frames) and AAC.
pub fn clip_30s() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("live-media");
        clip(
            &dir,
            "av-30s-gop1s",
            &ClipSpec {
                seconds: 30,
                fps: 25,
                gop_frames: 25,
                video_kbps: 300,
                bframes: 2,
                audio: true,
            },
        )
    })
    .clone()
}

pub fn wait_for_stream(server: &Server, name: &str) {
    let ok = poll_until(Instant::now() + Duration::from_secs(15), || {
        let body = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
        body.contains(&format!("\"name\":\"{name}\"")) && !body.contains("\"keyframes\":0")
    });
    let body = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
    assert!(
        ok,
        "stream {name} never appeared: {body}\n{}",
        server.stderr()
    );
}

/// What ffprobe says of a recorded FLV: (codec names, width, height, per-packet
/// (stream, dts, keyframe)).
pub struct Probe {
    pub codecs: Vec<String>,
    pub width: u32,
    pub height: u32,
    pub packets: Vec<(u32, f64, bool)>,
}

pub fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_name,width,height:packet=stream_index,dts_time,flags")
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut probe = Probe {
        codecs: Vec::new(),
        width: 0,
        height: 0,
        packets: Vec::new(),
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        match f.as_slice() {
            [index, dts, flags] if index.parse::<u32>().is_ok() => {
                if let Ok(dts) = dts.parse::<f64>() {
                    probe
                        .packets
                        .push((index.parse().unwrap(), dts, flags.starts_with('K')));
                }
            }
            [codec, w, h] => {
                probe.codecs.push(codec.to_string());
                probe.width = w.parse().unwrap_or(0);
                probe.height = h.parse().unwrap_or(0);
            }
            [codec] | [codec, ..] => probe.codecs.push(codec.to_string()),
            [] => {}
        }
    }
    probe
}

/// The recorded file starts with a keyframe, has H.264 320x240 and AAC, at least
/// `min_seconds` of video, and non-decreasing dts per stream.
pub fn assert_recording(file: &Path, min_seconds: f64, who: &str) {
    let p = probe(file);
    assert!(
        p.codecs.iter().any(|c| c == "h264") && p.codecs.iter().any(|c| c == "aac"),
        "{who}: codecs {:?}",
        p.codecs
    );
    assert_eq!((p.width, p.height), (320, 240), "{who}: resolution");
    let video_index = if p.codecs.first().is_some_and(|c| c == "h264") {
        0
    } else {
        1
    };
    let video: Vec<&(u32, f64, bool)> = p.packets.iter().filter(|x| x.0 == video_index).collect();
    assert!(
        video.first().is_some_and(|x| x.2),
        "{who}: the first video packet is a keyframe"
    );
    let span = video.last().map_or(0.0, |l| l.1) - video.first().map_or(0.0, |f| f.1);
    assert!(span >= min_seconds, "{who}: {span} s of video");
    for stream in 0..2 {
        let dts: Vec<f64> = p
            .packets
            .iter()
            .filter(|x| x.0 == stream)
            .map(|x| x.1)
            .collect();
        assert!(
            dts.windows(2).all(|w| w[1] >= w[0]),
            "{who}: stream {stream} dts go back"
        );
    }
}

/// The clip as FLV (for the GStreamer publishers, which take FLV from a file).
pub fn av_flv() -> PathBuf {
    static FLV: OnceLock<PathBuf> = OnceLock::new();
    FLV.get_or_init(|| {
        let mp4 = av_clip();
        let out = mp4.with_extension("flv");
        if !out.exists() {
            let tmp = mp4.with_extension(format!("{}.tmp.flv", std::process::id()));
            let status = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-i"])
                .arg(&mp4)
                .args(["-c", "copy", "-f", "flv"])
                .arg(&tmp)
                .status()
                .expect("ffmpeg");
            assert!(status.success());
            std::fs::rename(&tmp, &out).unwrap();
        }
        out
    })
    .clone()
}

/// `ffmpeg -re -i clip_30s -t SECONDS -c copy -f FORMAT URL` (HTTP: POST), stderr piped.
pub fn publish_30s(url: &str, format: &str, seconds: u32) -> std::process::Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", &seconds.to_string(), "-c", "copy", "-f", format]);
    if url.starts_with("http") {
        cmd.args(["-method", "POST"]);
    }
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// `body` parsed as an HLS media playlist (m3u8-rs), or a panic that shows it.
pub fn media_playlist(body: &[u8]) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(body) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        other => panic!(
            "not a media playlist: {other:?}\n{}",
            String::from_utf8_lossy(body)
        ),
    }
}
