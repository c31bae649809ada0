//! HLS recording (`hls.record_apps`): a writer thread of its own puts each completed segment
//! of a recorded stream into `vod.root/{app}/{stream}-{start}/`, so a worker never waits for
//! a disk. Every file is written under a temporary name and renamed into place, so /vod/
//! never serves half a segment or half a playlist. The playlist is an EVENT playlist while
//! the stream is live and becomes a VOD playlist ending in EXT-X-ENDLIST when it ends (or
//! when the server stops).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::media::hls::iso8601_ms;
use crate::media::stream::RecordEvent;

/// Segments queued for the writer before the publisher starts dropping them (counted).
const QUEUE_SEGMENTS: usize = 256;

/// One recording: its directory and the segments written so far.
struct Recording {
    dir: PathBuf,
    /// (file name, duration ms, discontinuity before it)
    segments: Vec<(String, u64, bool)>,
}

/// Start the writer thread; returns the queue the publishers send to.
pub fn start(root: PathBuf) -> std::io::Result<SyncSender<RecordEvent>> {
    let (tx, rx) = sync_channel(QUEUE_SEGMENTS);
    std::thread::Builder::new()
        .name("uringcast-record".into())
        .spawn(move || run(&root, rx))?;
    Ok(tx)
}

fn run(root: &Path, rx: Receiver<RecordEvent>) {
    let mut open: HashMap<(String, u64), Recording> = HashMap::new();
    for event in rx.iter() {
        match event {
            RecordEvent::Segment {
                key,
                started_unix_ms,
                name,
                bytes,
                duration_ms,
                discontinuity,
            } => {
                let recording = open
                    .entry((key.clone(), started_unix_ms))
                    .or_insert_with(|| Recording {
                        dir: root.join(dir_name(&key, started_unix_ms)),
                        segments: Vec::new(),
                    });
                if let Err(e) = std::fs::create_dir_all(&recording.dir)
                    .and_then(|()| write_atomic(&recording.dir.join(&name), &bytes))
                {
                    tracing::warn!(stream = %key, dir = %recording.dir.display(), error = %e, "recording: segment not written");
                    continue;
                }
                recording.segments.push((name, duration_ms, discontinuity));
                write_playlist(recording, false);
            }
            RecordEvent::End {
                key,
                started_unix_ms,
            } => {
                if let Some(recording) = open.remove(&(key.clone(), started_unix_ms)) {
                    write_playlist(&recording, true);
                    tracing::info!(stream = %key, dir = %recording.dir.display(), segments = recording.segments.len(), "recording finished");
                }
            }
        }
    }
    // Every sender is gone (the server stops): what was recorded becomes a finished VOD.
    for recording in open.values() {
        write_playlist(recording, true);
    }
}

/// `{app}/{stream}-{YYYYMMDDTHHMMSSZ}` (app and stream names are `[A-Za-z0-9_-]`).
fn dir_name(key: &str, started_unix_ms: u64) -> String {
    let stamp: String = iso8601_ms(started_unix_ms)
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{key}-{stamp}Z")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The recording's playlist: every segment, EVENT while live, VOD with ENDLIST at the end.
fn playlist(recording: &Recording, ended: bool) -> String {
    let target = recording
        .segments
        .iter()
        .map(|s| s.1.div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut text = String::with_capacity(64 + recording.segments.len() * 48);
    let kind = if ended { "VOD" } else { "EVENT" };
    let _ = write!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n"
    );
    for (i, (name, duration_ms, discontinuity)) in recording.segments.iter().enumerate() {
        if *discontinuity && i > 0 {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = write!(
            text,
            "#EXTINF:{}.{:03},\n{name}\n",
            duration_ms / 1000,
            duration_ms % 1000
        );
    }
    if ended {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

fn write_playlist(recording: &Recording, ended: bool) {
    let text = playlist(recording, ended);
    if let Err(e) = write_atomic(&recording.dir.join("index.m3u8"), text.as_bytes()) {
        tracing::warn!(dir = %recording.dir.display(), error = %e, "recording: playlist not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_playlists() {
        // 2026-11-26T05:22:27.990Z
        assert_eq!(
            dir_name("live/cam", 1_795_670_547_990),
            "live/cam-20261126T052227Z"
        );
        let recording = Recording {
            dir: PathBuf::from("/x"),
            segments: vec![
                ("a0.ts".into(), 2000, false),
                ("a1.ts".into(), 2480, false),
                ("a2.ts".into(), 1000, true),
            ],
        };
        let live = playlist(&recording, false);
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:3\n"));
        assert!(
            live.contains("#EXTINF:2.480,\na1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.000,\na2.ts\n")
        );
        assert!(!live.contains("ENDLIST"));
        let done = playlist(&recording, true);
        assert!(done.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && done.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn the_writer_finishes_recordings_when_the_server_stops() {
        let dir = std::env::temp_dir().join(format!("uringcast-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tx = start(dir.clone()).expect("thread");
        tx.send(RecordEvent::Segment {
            key: "live/r".into(),
            started_unix_ms: 0,
            name: "s0.ts".into(),
            bytes: bytes::Bytes::from_static(&[0x47; 188]),
            duration_ms: 1500,
            discontinuity: false,
        })
        .unwrap();
        drop(tx);
        let rec = dir.join("live/r-19700101T000000Z");
        let ok = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::read_to_string(rec.join("index.m3u8"))
                .is_ok_and(|t| t.ends_with("#EXT-X-ENDLIST\n"))
        });
        assert!(ok, "no finished playlist in {}", rec.display());
        assert_eq!(std::fs::read(rec.join("s0.ts")).unwrap().len(), 188);
        assert!(!rec.join("s0.ts.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
