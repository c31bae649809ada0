//! MPEG-TS demuxer (ISO/IEC 13818-1) for HTTP-TS ingest (`ffmpeg ... -f mpegts -method POST`):
//! bytes in any slicing → [`MediaUnit`]s whose bodies are FLV tag bodies, so the FLV and RTMP
//! outputs relay them as they relay an FLV or RTMP publisher's.
//!
//! Call [`TsDemuxer::push`] with each received slice, then [`TsDemuxer::poll`] until it returns
//! `Ok(None)`; at end of input call [`TsDemuxer::finish`] (it completes the last PES) and poll
//! again.
//!
//! # What is read
//! - 188-byte packets. The demuxer starts locked on byte 0; a packet that does not start with
//!   0x47 loses sync, and it locks again on the first 0x47 whose successor 188 bytes on is also
//!   0x47 (counted in [`TsDemuxStats::resyncs`], not an error).
//! - PAT (PID 0) → the first program's PMT PID; PMT → the first H.264 (stream type 0x1B) or
//!   HEVC (0x24) stream as video and the first AAC ADTS (0x0F) stream as audio; other streams
//!   are ignored. A PMT naming other streams (new version, or a new PID from the PAT) ends the
//!   old streams (their PES in progress is completed) and starts the new ones. PSI sections
//!   need a correct CRC-32.
//! - Continuity counters per PID: a duplicate packet is dropped; a gap is counted and drops
//!   the PES (or section) in progress on that PID, which resumes at its next unit start.
//! - PES: PTS/DTS (33-bit, unwrapped across the wrap against the last timestamp of any stream),
//!   `PES_packet_length` (0 = unbounded, as video uses: the PES ends at the next unit start on
//!   its PID or at [`TsDemuxer::finish`]).
//! - Timestamps: one millisecond timeline for all streams starting at the first PES decoded
//!   (of any stream): `dts_ms = (dts - first) / 90`, clamped at 0 for streams that start a little
//!   earlier; `cts_ms = pts_ms - dts_ms` (the presentation time is kept).
//! - H.264 / HEVC: Annex B → 4-byte length prefixes; access unit delimiters, filler data and
//!   parameter sets are taken out of the frame. The parameter sets become a decoder
//!   configuration record (`avcC` / `hvcC`), emitted as a config unit before the first frame
//!   and again when they change; frames before the first record are dropped (counted). Key
//!   frame = IDR (H.264) or IRAP (HEVC). HEVC uses Enhanced RTMP (`hvc1`) bodies.
//! - AAC: every ADTS frame (CRC-protected or not, several per PES or split across two) becomes
//!   one unit timestamped PES PTS + i × 1024 samples; its AudioSpecificConfig is emitted as a
//!   config unit before the first frame and again when it changes.
//!
//! # What is fatal
//! [`TsDemuxError`]: no supported program within `program_wait_bytes_max`, no video key frame
//! within `keyframe_wait_bytes_max` of the PMT, a PES larger than `pes_bytes_max`. Everything
//! else the input can get wrong (sync loss, CC gaps, bad sections, truncated or malformed PES,
//! bad ADTS frames, packets with the transport error or scrambling bits) is counted in
//! [`TsDemuxStats`] and skipped: a live contribution feed should survive a damaged packet.
//!
//! # Memory
//! Nothing is allocated by a length the input declares. Held between calls: at most 188
//! bytes of input (a resync decides each 0x47 as soon as the byte 188 on has arrived), one PES per
//! stream (capped by `pes_bytes_max`; the buffer is kept for the next PES), one PSI section
//! and one partial ADTS frame (each capped by their format and `buffered_bytes_max`). Per
//! frame the payload is copied twice: TS payloads into the PES buffer, then (transformed) into
//! the unit's own buffer, which is laid out as a whole FLV tag like the FLV demuxer's
//! ([`MediaUnit::flv_tag`], room set with [`TsDemuxer::with_room`]) so the publisher makes the
//! ring entry from it in place.
//!
//! # Why not a crate
//! `mpeg2ts` reads from a blocking `io::Read`, keeps PES state in a `HashMap`, allocates a
//! `Vec` per PES and gives up at the first bad sync byte: not sans-IO. `mpeg2ts-reader` is
//! push-based and zero-copy, but its `push` takes whole packets per call (`chunks_exact(188)`:
//! a packet split across two pushes, or one bad sync byte, silently drops the rest of that
//! buffer, with no resync), it does not reassemble PES, and its API is a trait-and-macro
//! framework with sixteen breaking releases so far. What would remain ours — alignment across
//! pushes, resync, bounded PES reassembly, timestamp unwrapping, Annex B → AVCC, ADTS, the
//! configuration records — is most of this file; PAT/PMT parsing is the part a crate saves.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::TS_PACKET_LEN;
use crate::media::unit::MediaUnit;
use crate::proto::flv::mux::TAG_BODY_MAX_BYTES;
use crate::proto::flv::{
    PREV_TAG_SIZE_LEN, TAG_HEADER_LEN, TAG_TYPE_AUDIO, TAG_TYPE_VIDEO, classify_tag, tag_header,
};

const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0x0000;
const NULL_PID: u16 = 0x1FFF;

const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_HEVC: u8 = 0x24;

const TABLE_ID_PAT: u8 = 0x00;
const TABLE_ID_PMT: u8 = 0x02;
/// Table id, flags and section_length.
const SECTION_HEADER_LEN: usize = 3;
/// Largest section_length of a PAT or PMT (13818-1 2.4.4.5, 2.4.4.9).
const SECTION_LENGTH_MAX: usize = 1021;
/// section_length up to the first table byte: table id extension, version, section numbers.
const SECTION_SYNTAX_LEN: usize = 5;
const CRC_LEN: usize = 4;
/// The byte that fills the rest of a packet after the last section.
const STUFFING: u8 = 0xFF;

/// Fixed PES header: start code prefix, stream id, PES_packet_length, two flag bytes and
/// PES_header_data_length.
const PES_FIXED_HEADER_LEN: usize = 9;
/// Bytes before the PES_packet_length count starts.
const PES_LENGTH_OFFSET: usize = 6;

const TIMESTAMP_WRAP: i64 = 1 << 33;
const TICKS_PER_MS: i64 = 90;
const CLOCK_HZ: i64 = 90_000;
/// FLV composition time is a signed 24-bit field.
const CTS_MS_MIN: i64 = -(1 << 23);
const CTS_MS_MAX: i64 = (1 << 23) - 1;

const AAC_SAMPLES_PER_FRAME: i64 = 1024;
/// ADTS frame_length is 13 bits.
const ADTS_FRAME_LEN_MAX: usize = (1 << 13) - 1;
const ADTS_HEADER_LEN: usize = 7;
const ADTS_HEADER_CRC_LEN: usize = 9;
const AAC_SAMPLE_RATES: [i64; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

// FLV bodies.
const FLV_AAC: u8 = 0xAF;
const FLV_AAC_SEQUENCE_HEADER: u8 = 0;
const FLV_AAC_RAW: u8 = 1;
const FLV_FRAME_KEY: u8 = 1;
const FLV_FRAME_INTER: u8 = 2;
const FLV_CODEC_AVC: u8 = 7;
const FLV_AVC_SEQUENCE_HEADER: u8 = 0;
const FLV_AVC_NALU: u8 = 1;
const FLV_EX_HEADER: u8 = 0x80;
const FLV_EX_SEQUENCE_START: u8 = 0;
const FLV_EX_CODED_FRAMES: u8 = 1;
const FLV_EX_CODED_FRAMES_X: u8 = 3;
const FOURCC_HEVC: &[u8; 4] = b"hvc1";

// NAL unit types.
const AVC_NAL_IDR: u8 = 5;
const AVC_NAL_SPS: u8 = 7;
const AVC_NAL_PPS: u8 = 8;
const AVC_NAL_AUD: u8 = 9;
const AVC_NAL_FILLER: u8 = 12;
const HEVC_NAL_IRAP: std::ops::RangeInclusive<u8> = 16..=23;
const HEVC_NAL_VPS: u8 = 32;
const HEVC_NAL_SPS: u8 = 33;
const HEVC_NAL_PPS: u8 = 34;
const HEVC_NAL_AUD: u8 = 35;
const HEVC_NAL_FILLER: u8 = 38;
/// Parameter sets of one kind kept for a configuration record (the avcC SPS count is 5 bits).
const PARAM_SETS_MAX: usize = 16;
/// Bytes of a parameter set read (emulation prevention removed) for the record's fields.
const PARAM_SET_PARSE_BYTES_MAX: usize = 512;

/// Bounds on what a publisher can make the demuxer hold or wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsDemuxLimits {
    /// Largest PES (header included), i.e. one video access unit, reassembled. A larger one is
    /// [`TsDemuxError::PesTooLarge`].
    pub pes_bytes_max: usize,
    /// Cap on each buffer held outside the PES buffers: a PSI section being reassembled (at
    /// most 1024 bytes by the format) and an ADTS frame split across two PES (at most 8191).
    /// Input awaiting a full packet or a resync never exceeds 188 bytes. Beyond the cap the
    /// section or frame is dropped and counted.
    pub buffered_bytes_max: usize,
    /// Input bytes after which, without a PAT and PMT listing a supported stream, the input
    /// is [`TsDemuxError::NoProgram`].
    pub program_wait_bytes_max: u64,
    /// Input bytes after the first PMT that lists video within which a video key frame must
    /// come out, else [`TsDemuxError::NoKeyframe`]: a viewer could not start without one.
    pub keyframe_wait_bytes_max: u64,
}

impl Default for TsDemuxLimits {
    fn default() -> Self {
        Self {
            pes_bytes_max: 8 * 1024 * 1024,
            buffered_bytes_max: 64 * 1024,
            program_wait_bytes_max: 4 * 1024 * 1024,
            keyframe_wait_bytes_max: 32 * 1024 * 1024,
        }
    }
}

/// Why TS input was rejected. Each is the publisher's fault and ends the stream: the demuxer
/// stays failed, [`TsDemuxer::poll`] hands out the units found before the error and then
/// returns it, as does [`TsDemuxer::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TsDemuxError {
    /// `bytes` of input without a PAT and a PMT listing an H.264, HEVC or AAC stream.
    NoProgram { bytes: u64 },
    /// `bytes` of input after the PMT announced video without a video key frame (with its
    /// parameter sets) coming out.
    NoKeyframe { bytes: u64 },
    /// A PES reached `bytes`, more than [`TsDemuxLimits::pes_bytes_max`] (or a frame would
    /// not fit an FLV tag).
    PesTooLarge { bytes: usize },
}

impl TsDemuxError {
    /// Short stable label for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            TsDemuxError::NoProgram { .. } => "no_program",
            TsDemuxError::NoKeyframe { .. } => "no_keyframe",
            TsDemuxError::PesTooLarge { .. } => "pes_too_large",
        }
    }
}

impl fmt::Display for TsDemuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsDemuxError::NoProgram { bytes } => write!(
                f,
                "no PAT/PMT listing an H.264, HEVC or AAC stream in {bytes} bytes of MPEG-TS"
            ),
            TsDemuxError::NoKeyframe { bytes } => write!(
                f,
                "no video key frame in {bytes} bytes of MPEG-TS after the PMT announced video"
            ),
            TsDemuxError::PesTooLarge { bytes } => {
                write!(f, "MPEG-TS PES packet of {bytes} bytes is too large")
            }
        }
    }
}

impl std::error::Error for TsDemuxError {}

/// Counters of what the demuxer read and what it skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsDemuxStats {
    /// Bytes pushed.
    pub bytes_in: u64,
    /// Packets framed (starting with the sync byte), including skipped ones.
    pub packets: u64,
    /// Times sync was lost (a packet did not start with 0x47) and searched for again.
    pub resyncs: u64,
    /// Continuity counter gaps on the PIDs read (PAT, PMT, the two elementary streams).
    pub cc_errors: u64,
    /// PES packets dropped: cut by a CC gap, shorter than their declared length, or with a
    /// malformed header.
    pub pes_dropped: u64,
    /// Frames dropped: video before its first parameter sets, PES without a timestamp,
    /// malformed ADTS frames (one per resync in the audio data).
    pub frames_dropped: u64,
    /// PAT/PMT sections dropped: bad CRC or layout, cut short, or over the size cap.
    pub psi_errors: u64,
    /// Packets skipped for the transport error indicator, scrambling, or a bad adaptation
    /// field.
    pub packets_invalid: u64,
}

/// Sans-IO MPEG-TS demuxer: see the [module docs](self).
///
/// After an error the demuxer is failed for good: `poll` hands out the units that came before
/// the error, then returns that error, as does `finish`; `push` drops its input. After
/// `finish`, `push` drops its input too.
#[derive(Debug)]
pub struct TsDemuxer {
    limits: TsDemuxLimits,
    room_before: usize,
    room_after: usize,
    /// Input not yet framed: a partial packet, or (unsynced) a 0x47 and fewer than 188 bytes
    /// after it. At most 188 bytes between calls.
    pending: Vec<u8>,
    synced: bool,
    /// Input bytes framed so far (packets and skipped bytes): the position the wait limits
    /// count in, so that errors do not depend on how the input was sliced.
    offset: u64,
    pat: SectionReader,
    pmt: Option<Pmt>,
    /// A PMT has listed a supported stream.
    program_found: bool,
    /// Offset at which the PMT announced video, while no key frame has come out.
    keyframe_wait_since: Option<u64>,
    keyframe_seen: bool,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    clock: Clock,
    units: VecDeque<MediaUnit>,
    stats: TsDemuxStats,
    failed: Option<TsDemuxError>,
    finished: bool,
}

impl TsDemuxer {
    pub fn new(limits: TsDemuxLimits) -> Self {
        Self {
            limits,
            room_before: 0,
            room_after: 0,
            pending: Vec::with_capacity(2 * TS_PACKET_LEN + 1),
            synced: true,
            offset: 0,
            pat: SectionReader::default(),
            pmt: None,
            program_found: false,
            keyframe_wait_since: None,
            keyframe_seen: false,
            video: None,
            audio: None,
            clock: Clock::default(),
            units: VecDeque::new(),
            stats: TsDemuxStats::default(),
            failed: None,
            finished: false,
        }
    }

    /// Leave `before` bytes free in front of each unit's FLV tag in its buffer and `after`
    /// bytes behind it (as `FlvDemuxer::with_room` does), so the publisher can frame the tag
    /// in place. [`MediaUnit::flv_tag`] is the whole buffer, room included.
    pub fn with_room(mut self, before: usize, after: usize) -> Self {
        self.room_before = before;
        self.room_after = after;
        self
    }

    /// Parses received bytes; the units they complete are queued for [`poll`](Self::poll).
    /// Call `poll` until `Ok(None)` after each push so the queue stays short.
    pub fn push(&mut self, mut data: &[u8]) {
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(data.len() as u64);
        while !data.is_empty() && self.failed.is_none() && !self.finished {
            if self.pending.is_empty() {
                // Frame straight from the caller's slice; keep what does not make a packet.
                let used = self.frame(data);
                if self.failed.is_none() {
                    self.pending
                        .extend_from_slice(data.get(used..).unwrap_or_default());
                }
                break;
            }
            // Top the held bytes up to what decides them: one packet when synced, a candidate
            // and its successor's sync byte when not. Synced, that empties `pending`, and the
            // rest of `data` is framed in place.
            let want = if self.synced {
                TS_PACKET_LEN
            } else {
                2 * TS_PACKET_LEN + 1
            };
            let take = want.saturating_sub(self.pending.len()).clamp(1, data.len());
            let (head, tail) = data.split_at(take);
            data = tail;
            self.pending.extend_from_slice(head);
            let pending = std::mem::take(&mut self.pending);
            let used = self.frame(&pending);
            self.pending = pending;
            self.pending.drain(..used.min(self.pending.len()));
        }
    }

    /// The next unit, `Ok(None)` when more input is needed, or the error that failed the
    /// input once the units before it have been handed out.
    pub fn poll(&mut self) -> Result<Option<MediaUnit>, TsDemuxError> {
        if let Some(unit) = self.units.pop_front() {
            return Ok(Some(unit));
        }
        match self.failed {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    /// End of input: completes the PES in progress on each stream (a PES shorter than its
    /// declared length is dropped), so call [`poll`](Self::poll) again afterwards. A partial
    /// packet at the end is dropped.
    pub fn finish(&mut self) -> Result<(), TsDemuxError> {
        if !self.finished && self.failed.is_none() {
            self.finished = true;
            self.end_pes(Track::Video);
            self.end_pes(Track::Audio);
            if let Some(audio) = self.audio.as_mut()
                && !audio.carry.is_empty()
            {
                audio.carry.clear();
                self.stats.frames_dropped += 1;
            }
        }
        self.finished = true;
        match self.failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> TsDemuxStats {
        self.stats
    }

    /// Bytes held for units not complete yet: input awaiting a packet, PSI sections, PES
    /// buffers and a split ADTS frame. Units waiting for `poll` are not counted.
    pub fn buffered_len(&self) -> usize {
        self.pending.len()
            + self.pat.buf.len()
            + self.pmt.as_ref().map_or(0, |pmt| pmt.reader.buf.len())
            + self.video.as_ref().map_or(0, |video| video.es.pes.len())
            + self
                .audio
                .as_ref()
                .map_or(0, |audio| audio.es.pes.len() + audio.carry.len())
    }

    fn fail(&mut self, error: TsDemuxError) {
        if self.failed.is_none() {
            self.failed = Some(error);
        }
    }

    /// Frames packets out of `input` and handles them; returns how many bytes were used.
    /// What is left is less than a packet (synced), or a 0x47 and under 188 bytes after it
    /// (unsynced).
    fn frame(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while self.failed.is_none() {
            let rest = input.get(used..).unwrap_or_default();
            if self.synced {
                let Some(packet) = rest.first_chunk::<TS_PACKET_LEN>() else {
                    break;
                };
                if packet[0] != SYNC_BYTE {
                    self.synced = false;
                    self.stats.resyncs += 1;
                    continue;
                }
                used += TS_PACKET_LEN;
                self.offset += TS_PACKET_LEN as u64;
                self.handle_packet(packet);
                self.check_waits();
            } else {
                // Lock on a 0x47 whose successor is one too; skip everything before it.
                let mut skip = 0;
                let mut locked = false;
                while let Some(at) = rest
                    .get(skip..)
                    .and_then(|r| r.iter().position(|&b| b == SYNC_BYTE))
                {
                    skip += at;
                    match rest.get(skip + TS_PACKET_LEN) {
                        Some(&SYNC_BYTE) => {
                            locked = true;
                            break;
                        }
                        Some(_) => skip += 1,
                        None => break,
                    }
                }
                if !locked && rest.get(skip) != Some(&SYNC_BYTE) {
                    // No candidate left at all.
                    skip = rest.len();
                }
                used += skip;
                self.offset += skip as u64;
                self.check_waits();
                if !locked {
                    break;
                }
                self.synced = true;
            }
        }
        used
    }

    fn check_waits(&mut self) {
        if !self.program_found && self.offset > self.limits.program_wait_bytes_max {
            self.fail(TsDemuxError::NoProgram { bytes: self.offset });
        }
        if let Some(since) = self.keyframe_wait_since {
            let waited = self.offset.saturating_sub(since);
            if waited > self.limits.keyframe_wait_bytes_max {
                self.fail(TsDemuxError::NoKeyframe { bytes: waited });
            }
        }
    }

    fn handle_packet(&mut self, bytes: &[u8; TS_PACKET_LEN]) {
        self.stats.packets += 1;
        let Some(packet) = Packet::parse(bytes) else {
            self.stats.packets_invalid += 1;
            return;
        };
        let pid = packet.pid;
        if pid == NULL_PID {
            return;
        }
        if pid == PAT_PID {
            self.on_psi_packet(Table::Pat, &packet);
        } else if self.pmt.as_ref().is_some_and(|pmt| pmt.pid == pid) {
            self.on_psi_packet(Table::Pmt, &packet);
        } else if self.video.as_ref().is_some_and(|v| v.es.pid == pid) {
            self.on_es_packet(Track::Video, &packet);
        } else if self.audio.as_ref().is_some_and(|a| a.es.pid == pid) {
            self.on_es_packet(Track::Audio, &packet);
        }
    }

    // ---- PSI ----

    fn on_psi_packet(&mut self, table: Table, packet: &Packet<'_>) {
        let section_max = self
            .limits
            .buffered_bytes_max
            .min(SECTION_HEADER_LEN + SECTION_LENGTH_MAX);
        // Taken out while its sections are handled (which may replace the PMT).
        let mut reader = match table {
            Table::Pat => std::mem::take(&mut self.pat),
            Table::Pmt => match self.pmt.as_mut() {
                Some(pmt) => std::mem::take(&mut pmt.reader),
                None => return,
            },
        };
        if let Some(payload) = packet.payload {
            match reader.cc.check(packet.cc, packet.discontinuity) {
                Continuity::Duplicate => {}
                continuity => {
                    if continuity == Continuity::Gap {
                        self.stats.cc_errors += 1;
                        self.stats.psi_errors += u64::from(reader.active);
                        reader.reset();
                    }
                    let dropped =
                        reader.feed(packet.start, payload, section_max, |section| match table {
                            Table::Pat => self.on_pat(section),
                            Table::Pmt => self.on_pmt(section),
                        });
                    self.stats.psi_errors += dropped;
                }
            }
        } else {
            reader.cc.observe_no_payload(packet.discontinuity);
        }
        match table {
            Table::Pat => self.pat = reader,
            Table::Pmt => {
                if let Some(pmt) = self.pmt.as_mut()
                    && pmt.pid == packet.pid
                {
                    pmt.reader = reader;
                }
            }
        }
    }

    fn on_pat(&mut self, section: &[u8]) {
        let Some(table) = psi_table(section, TABLE_ID_PAT) else {
            self.stats.psi_errors += 1;
            return;
        };
        let Some(table) = table else {
            return; // Not yet applicable (current_next_indicator 0).
        };
        let first = table.chunks_exact(4).find_map(|entry| match *entry {
            [n0, n1, p0, p1] => {
                let program = u16::from_be_bytes([n0, n1]);
                let pid = u16::from_be_bytes([p0 & 0x1F, p1]);
                (program != 0).then_some((program, pid))
            }
            _ => None,
        });
        let Some((program, pid)) = first else {
            return;
        };
        if pid == PAT_PID || pid == NULL_PID {
            self.stats.psi_errors += 1;
            return;
        }
        if self
            .pmt
            .as_ref()
            .is_some_and(|pmt| pmt.pid == pid && pmt.program == program)
        {
            return;
        }
        self.pmt = Some(Pmt {
            pid,
            program,
            reader: SectionReader::default(),
        });
    }

    fn on_pmt(&mut self, section: &[u8]) {
        let Some(table) = psi_table(section, TABLE_ID_PMT) else {
            self.stats.psi_errors += 1;
            return;
        };
        let Some(table) = table else {
            return;
        };
        let Some(pmt) = self.pmt.as_ref() else {
            return;
        };
        let pmt_pid = pmt.pid;
        // table_id_extension is the program number; other programs may share the PID.
        let [_, _, _, n0, n1, ..] = *section else {
            return;
        };
        if u16::from_be_bytes([n0, n1]) != pmt.program {
            return;
        }
        let [_pcr0, _pcr1, info0, info1, rest @ ..] = table else {
            self.stats.psi_errors += 1;
            return;
        };
        let info_len = usize::from(u16::from_be_bytes([info0 & 0x0F, *info1]));
        let Some(mut streams) = rest.get(info_len..) else {
            self.stats.psi_errors += 1;
            return;
        };
        let mut video = None;
        let mut audio = None;
        while let [stream_type, p0, p1, i0, i1, rest @ ..] = streams {
            let pid = u16::from_be_bytes([p0 & 0x1F, *p1]);
            let usable = pid != PAT_PID && pid != NULL_PID && pid != pmt_pid;
            match *stream_type {
                STREAM_TYPE_H264 if usable && video.is_none() => {
                    video = Some((pid, VideoCodec::H264));
                }
                STREAM_TYPE_HEVC if usable && video.is_none() => {
                    video = Some((pid, VideoCodec::Hevc));
                }
                STREAM_TYPE_AAC_ADTS if usable && audio.is_none() => audio = Some(pid),
                _ => {}
            }
            let es_info_len = usize::from(u16::from_be_bytes([i0 & 0x0F, *i1]));
            let Some(next) = rest.get(es_info_len..) else {
                self.stats.psi_errors += 1;
                return;
            };
            streams = next;
        }
        if audio.is_some() && audio == video.map(|(pid, _)| pid) {
            audio = None;
        }
        self.set_streams(video, audio);
    }

    /// Applies the streams a PMT lists: a stream that changed PID or codec ends (its PES in
    /// progress is completed) and a new one starts with no state.
    fn set_streams(&mut self, video: Option<(u16, VideoCodec)>, audio: Option<u16>) {
        let current_video = self.video.as_ref().map(|v| (v.es.pid, v.codec));
        if current_video != video {
            self.end_pes(Track::Video);
            self.video = video.map(|(pid, codec)| VideoTrack::new(pid, codec));
        }
        let current_audio = self.audio.as_ref().map(|a| a.es.pid);
        if current_audio != audio {
            self.end_pes(Track::Audio);
            self.audio = audio.map(AudioTrack::new);
        }
        if self.video.is_some() || self.audio.is_some() {
            self.program_found = true;
        }
        if self.video.is_none() {
            self.keyframe_wait_since = None;
        } else if !self.keyframe_seen && self.keyframe_wait_since.is_none() {
            self.keyframe_wait_since = Some(self.offset);
        }
    }

    // ---- PES ----

    fn es_mut(&mut self, track: Track) -> Option<&mut Es> {
        match track {
            Track::Video => self.video.as_mut().map(|v| &mut v.es),
            Track::Audio => self.audio.as_mut().map(|a| &mut a.es),
        }
    }

    fn on_es_packet(&mut self, track: Track, packet: &Packet<'_>) {
        let pes_bytes_max = self.limits.pes_bytes_max;
        let Some(es) = self.es_mut(track) else {
            return;
        };
        let Some(payload) = packet.payload else {
            es.cc.observe_no_payload(packet.discontinuity);
            return;
        };
        match es.cc.check(packet.cc, packet.discontinuity) {
            Continuity::Duplicate => return,
            Continuity::Gap => {
                let cut = es.active;
                es.clear();
                self.stats.cc_errors += 1;
                self.stats.pes_dropped += u64::from(cut);
                if let (Track::Audio, Some(audio)) = (track, self.audio.as_mut())
                    && !audio.carry.is_empty()
                {
                    // The rest of the split frame may be what was lost.
                    audio.carry.clear();
                    self.stats.frames_dropped += 1;
                }
            }
            Continuity::InOrder => {}
        }
        if packet.start {
            self.end_pes(track);
        }
        let Some(es) = self.es_mut(track) else {
            return;
        };
        if packet.start {
            es.active = true;
        } else if !es.active {
            return; // Waiting for a unit start after a gap.
        }
        let len = es.pes.len() + payload.len();
        if len > pes_bytes_max {
            es.clear();
            self.fail(TsDemuxError::PesTooLarge { bytes: len });
            return;
        }
        es.append(payload, pes_bytes_max);
        if let Some(declared) = es.declared_len()
            && es.pes.len() >= declared
        {
            es.pes.truncate(declared);
            self.end_pes(track);
        }
    }

    /// Completes the PES in progress on `track`, if any: emits its units, or drops it when it
    /// is shorter than its declared length or its header is malformed.
    fn end_pes(&mut self, track: Track) {
        let Some(es) = self.es_mut(track) else {
            return;
        };
        if !es.active {
            return;
        }
        es.active = false;
        let complete = es.declared_len().is_none_or(|len| es.pes.len() >= len);
        let mut pes = std::mem::take(&mut es.pes);
        match PesHeader::parse(&pes) {
            Some(header) if complete => {
                let payload = pes.get(header.payload_start..).unwrap_or_default();
                match track {
                    Track::Video => self.on_video_pes(header, payload),
                    Track::Audio => self.on_audio_pes(header, payload),
                }
            }
            _ => self.stats.pes_dropped += 1,
        }
        // Keep the buffer (and its capacity) for the next PES.
        pes.clear();
        if let Some(es) = self.es_mut(track) {
            es.pes = pes;
        }
    }

    // ---- video ----

    fn on_video_pes(&mut self, header: PesHeader, data: &[u8]) {
        let Some(pts_raw) = header.pts else {
            self.stats.frames_dropped += 1;
            return;
        };
        let dts = self.clock.on_timeline(header.dts.unwrap_or(pts_raw));
        let pts = nearest(dts, pts_raw);
        let (dts_ms, cts_ms) = self.clock.frame_times(dts, pts);
        let Some(track) = self.video.as_mut() else {
            return;
        };
        let codec = track.codec;

        // Parameter sets first: a change makes a new configuration record.
        let mut config = None;
        let mut found: [Vec<&[u8]>; 3] = Default::default();
        for range in nal_ranges(data) {
            let Some(nal) = data.get(range) else { continue };
            if let Some(kind) = param_set_kind(codec, nal)
                && let Some(list) = found.get_mut(kind)
                && list.len() < PARAM_SETS_MAX
                && nal.len() <= usize::from(u16::MAX)
                && !list.contains(&nal)
            {
                list.push(nal);
            }
        }
        let changed = found.iter().zip(&track.params).any(|(new, old)| {
            !new.is_empty() && !new.iter().copied().eq(old.iter().map(|b| &b[..]))
        });
        if changed {
            let mut params = track.params.clone();
            for (new, old) in found.iter().zip(params.iter_mut()) {
                if !new.is_empty() {
                    *old = new.iter().map(|nal| Bytes::copy_from_slice(nal)).collect();
                }
            }
            config = match codec {
                VideoCodec::H264 => avc_decoder_config(&params[1], &params[2]),
                VideoCodec::Hevc => hevc_decoder_config(&params),
            };
            // Sets that make no record yet (HEVC without its VPS so far, say) are kept to be
            // completed by later ones; once a record is out, a malformed change leaves it in
            // force.
            if config.is_some() || !track.configured {
                track.params = params;
                track.configured = config.is_some();
            }
        }
        let configured = track.configured;

        if let Some(record) = config {
            let mut tag = self.tag_buf(record.len() + 5);
            match codec {
                VideoCodec::H264 => tag.buf.extend_from_slice(&[
                    FLV_FRAME_KEY << 4 | FLV_CODEC_AVC,
                    FLV_AVC_SEQUENCE_HEADER,
                    0,
                    0,
                    0,
                ]),
                VideoCodec::Hevc => {
                    tag.buf.extend_from_slice(&[FLV_EX_HEADER
                        | FLV_FRAME_KEY << 4
                        | FLV_EX_SEQUENCE_START]);
                    tag.buf.extend_from_slice(FOURCC_HEVC);
                }
            }
            tag.buf.extend_from_slice(&record);
            self.emit(TAG_TYPE_VIDEO, dts_ms, tag);
        }

        let mut tag = self.tag_buf(data.len() + 64);
        let cts = cts_ms.to_be_bytes();
        let header_len = match codec {
            VideoCodec::H264 => {
                tag.buf
                    .extend_from_slice(&[0, FLV_AVC_NALU, cts[1], cts[2], cts[3]]);
                5
            }
            VideoCodec::Hevc if cts_ms != 0 => {
                tag.buf.extend_from_slice(&[0]);
                tag.buf.extend_from_slice(FOURCC_HEVC);
                tag.buf.extend_from_slice(&cts[1..]);
                8
            }
            VideoCodec::Hevc => {
                tag.buf.extend_from_slice(&[0]);
                tag.buf.extend_from_slice(FOURCC_HEVC);
                5
            }
        };
        let mut keyframe = false;
        for range in nal_ranges(data) {
            let Some(nal) = data.get(range) else { continue };
            let Some(key) = frame_nal(codec, nal) else {
                continue;
            };
            keyframe |= key;
            tag.buf.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            tag.buf.extend_from_slice(nal);
        }
        if tag.body_len() == header_len {
            return; // Only delimiters and parameter sets.
        }
        if !configured {
            self.stats.frames_dropped += 1;
            return;
        }
        let frame_type = if keyframe {
            FLV_FRAME_KEY
        } else {
            FLV_FRAME_INTER
        };
        let first = match codec {
            VideoCodec::H264 => frame_type << 4 | FLV_CODEC_AVC,
            VideoCodec::Hevc if cts_ms != 0 => {
                FLV_EX_HEADER | frame_type << 4 | FLV_EX_CODED_FRAMES
            }
            VideoCodec::Hevc => FLV_EX_HEADER | frame_type << 4 | FLV_EX_CODED_FRAMES_X,
        };
        if let Some(byte) = tag.buf.get_mut(tag.body_start) {
            *byte = first;
        }
        if self.emit(TAG_TYPE_VIDEO, dts_ms, tag) && keyframe {
            self.keyframe_seen = true;
            self.keyframe_wait_since = None;
        }
    }

    // ---- audio ----

    fn on_audio_pes(&mut self, header: PesHeader, data: &[u8]) {
        let base = match header.pts {
            Some(raw) => Some(self.clock.on_timeline(raw)),
            None => self.audio.as_ref().and_then(|a| a.next_ts),
        };
        let carry_max = self.limits.buffered_bytes_max.min(ADTS_FRAME_LEN_MAX);
        let Some(track) = self.audio.as_mut() else {
            return;
        };
        let mut carry = std::mem::take(&mut track.carry);
        let carry_at = track.carry_at;
        let mut rest = data;

        // A frame the previous PES ended inside: complete it from the start of this one.
        if !carry.is_empty() {
            let (carry_base, carry_index) = carry_at;
            loop {
                match Adts::parse(&carry) {
                    AdtsParse::Frame(adts) => {
                        self.emit_aac(adts, &carry, frame_time(carry_base, carry_index, adts));
                        carry.clear();
                        break;
                    }
                    AdtsParse::NeedMore(total) => {
                        let take = total.saturating_sub(carry.len()).min(rest.len());
                        if take == 0 {
                            break; // A PES too short to finish it: wait for the next.
                        }
                        if total > carry_max {
                            self.stats.frames_dropped += 1;
                            carry.clear();
                            break;
                        }
                        let (head, tail) = rest.split_at(take);
                        carry.extend_from_slice(head);
                        rest = tail;
                    }
                    AdtsParse::Invalid => {
                        self.stats.frames_dropped += 1;
                        carry.clear();
                        break;
                    }
                }
            }
            if !carry.is_empty() {
                if let Some(track) = self.audio.as_mut() {
                    track.carry = carry;
                }
                return;
            }
        }

        let Some(base) = base else {
            // No timestamp to give these frames.
            self.stats.frames_dropped += u64::from(!rest.is_empty());
            if let Some(track) = self.audio.as_mut() {
                track.carry = carry;
            }
            return;
        };
        let mut index: i64 = 0;
        let mut last_adts = None;
        let mut in_garbage = false;
        while !rest.is_empty() {
            match Adts::parse(rest) {
                AdtsParse::Frame(adts) => {
                    in_garbage = false;
                    let (frame, tail) = rest.split_at(adts.frame_len.min(rest.len()));
                    self.emit_aac(adts, frame, frame_time(base, index, adts));
                    last_adts = Some(adts);
                    index += 1;
                    rest = tail;
                }
                AdtsParse::NeedMore(_) => {
                    if rest.len() <= carry_max {
                        carry.extend_from_slice(rest);
                    } else {
                        self.stats.frames_dropped += 1;
                    }
                    break;
                }
                AdtsParse::Invalid => {
                    if !in_garbage {
                        self.stats.frames_dropped += 1;
                        in_garbage = true;
                    }
                    let tail = rest.get(1..).unwrap_or_default();
                    let next = tail.iter().position(|&b| b == 0xFF).unwrap_or(tail.len());
                    rest = tail.get(next..).unwrap_or_default();
                }
            }
        }
        if let Some(track) = self.audio.as_mut() {
            track.carry = carry;
            track.carry_at = (base, index);
            if let Some(adts) = last_adts {
                track.next_ts = Some(frame_time(base, index, adts));
            }
        }
    }

    /// Emits one ADTS frame (header included in `frame`), preceded by its AudioSpecificConfig
    /// when that is new.
    fn emit_aac(&mut self, adts: Adts, frame: &[u8], ts: i64) {
        let dts_ms = self.clock.ms(ts);
        let Some(track) = self.audio.as_mut() else {
            return;
        };
        let config = adts.audio_specific_config();
        let new_config = track.config != Some(config);
        track.config = Some(config);
        if new_config {
            let mut tag = self.tag_buf(4);
            tag.buf
                .extend_from_slice(&[FLV_AAC, FLV_AAC_SEQUENCE_HEADER]);
            tag.buf.extend_from_slice(&config);
            self.emit(TAG_TYPE_AUDIO, dts_ms, tag);
        }
        if adts.raw_blocks != 0 {
            // Several raw blocks in one ADTS frame: FLV carries one per tag, and splitting
            // them needs the syntax elements parsed. No encoder we know writes them.
            self.stats.frames_dropped += 1;
            return;
        }
        let raw = frame.get(adts.header_len..).unwrap_or_default();
        let mut tag = self.tag_buf(raw.len() + 2);
        tag.buf.extend_from_slice(&[FLV_AAC, FLV_AAC_RAW]);
        tag.buf.extend_from_slice(raw);
        self.emit(TAG_TYPE_AUDIO, dts_ms, tag);
    }

    // ---- output ----

    fn tag_buf(&self, body_capacity: usize) -> TagBuf {
        let body_start = self.room_before + TAG_HEADER_LEN;
        let mut buf = BytesMut::with_capacity(
            body_start + body_capacity + PREV_TAG_SIZE_LEN + self.room_after,
        );
        buf.resize(body_start, 0);
        TagBuf { buf, body_start }
    }

    /// Finishes the tag in `tag` (header, PreviousTagSize, room) and queues its unit. False
    /// when the body is too large for an FLV tag, which fails the input.
    fn emit(&mut self, tag_type: u8, dts_ms: u32, tag: TagBuf) -> bool {
        let TagBuf {
            mut buf,
            body_start,
        } = tag;
        let body_len = buf.len().saturating_sub(body_start);
        if body_len > TAG_BODY_MAX_BYTES {
            self.fail(TsDemuxError::PesTooLarge { bytes: body_len });
            return false;
        }
        if let Some(header) = buf.get_mut(self.room_before..body_start) {
            header.copy_from_slice(&tag_header(tag_type, dts_ms, body_len));
        }
        buf.extend_from_slice(&((TAG_HEADER_LEN + body_len) as u32).to_be_bytes());
        buf.resize(buf.len() + self.room_after, 0);
        let buf = buf.freeze();
        let body = buf.slice(body_start..body_start + body_len);
        match classify_tag(tag_type, dts_ms, body) {
            Ok(mut unit) => {
                unit.flv_tag = Some(buf);
                self.units.push_back(unit);
                true
            }
            // Cannot happen: every body is built with the header it is classified by.
            Err(_) => {
                self.stats.frames_dropped += 1;
                false
            }
        }
    }
}

/// A unit's buffer being built: room, the tag header (written last), then the body.
struct TagBuf {
    buf: BytesMut,
    body_start: usize,
}

impl TagBuf {
    fn body_len(&self) -> usize {
        self.buf.len().saturating_sub(self.body_start)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Video,
    Audio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Pat,
    Pmt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VideoCodec {
    H264,
    Hevc,
}

// ---- packets ----

/// The fields of a transport packet the demuxer uses.
struct Packet<'a> {
    pid: u16,
    /// payload_unit_start_indicator: a PES or section starts in this packet.
    start: bool,
    cc: u8,
    discontinuity: bool,
    /// `None` when adaptation_field_control says there is no payload.
    payload: Option<&'a [u8]>,
}

impl<'a> Packet<'a> {
    /// `None` for packets to skip: transport error indicator, scrambled, reserved
    /// adaptation_field_control, or an adaptation field longer than the packet.
    fn parse(bytes: &'a [u8; TS_PACKET_LEN]) -> Option<Self> {
        let [_sync, b1, b2, b3, rest @ ..] = bytes;
        if b1 & 0x80 != 0 || b3 & 0xC0 != 0 {
            return None;
        }
        let control = (b3 >> 4) & 0x3;
        let (discontinuity, payload) = match control {
            0b01 => (false, Some(&rest[..])),
            0b10 | 0b11 => {
                let (&len, after) = rest.split_first()?;
                let (field, payload) = after.split_at_checked(usize::from(len))?;
                let discontinuity = field.first().is_some_and(|flags| flags & 0x80 != 0);
                (discontinuity, (control == 0b11).then_some(payload))
            }
            _ => return None,
        };
        Some(Packet {
            pid: u16::from_be_bytes([b1 & 0x1F, *b2]),
            start: b1 & 0x40 != 0,
            cc: b3 & 0x0F,
            discontinuity,
            payload,
        })
    }
}

/// Continuity counter of one PID.
#[derive(Clone, Copy, Debug, Default)]
struct Cc {
    last: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Continuity {
    InOrder,
    /// The same counter again: a duplicate packet, to drop.
    Duplicate,
    Gap,
}

impl Cc {
    /// Checks the counter of a packet with a payload.
    fn check(&mut self, cc: u8, discontinuity: bool) -> Continuity {
        let verdict = match self.last {
            Some(_) if discontinuity => Continuity::InOrder,
            None => Continuity::InOrder,
            Some(last) if cc == last => return Continuity::Duplicate,
            Some(last) if cc == (last + 1) & 0x0F => Continuity::InOrder,
            Some(_) => Continuity::Gap,
        };
        self.last = Some(cc);
        verdict
    }

    /// A packet without payload does not advance the counter, but may restart it.
    fn observe_no_payload(&mut self, discontinuity: bool) {
        if discontinuity {
            self.last = None;
        }
    }
}

// ---- PSI ----

#[derive(Debug)]
struct Pmt {
    pid: u16,
    program: u16,
    reader: SectionReader,
}

/// Reassembles the sections of one PSI PID.
#[derive(Debug, Default)]
struct SectionReader {
    buf: Vec<u8>,
    /// A section has started and not ended.
    active: bool,
    cc: Cc,
}

impl SectionReader {
    fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds one packet's payload; `on_section` gets each complete section. Returns how many
    /// sections were dropped.
    fn feed(
        &mut self,
        start: bool,
        mut payload: &[u8],
        max: usize,
        mut on_section: impl FnMut(&[u8]),
    ) -> u64 {
        let mut dropped = 0;
        if !start {
            if self.active {
                match self.fill(&mut payload, max) {
                    Some(true) => {
                        on_section(&self.buf);
                        self.reset();
                    }
                    Some(false) => {}
                    None => {
                        dropped += 1;
                        self.reset();
                    }
                }
            }
            return dropped;
        }
        // pointer_field: the bytes before the first new section end the previous one.
        let Some((&pointer, rest)) = payload.split_first() else {
            dropped += u64::from(self.active);
            self.reset();
            return dropped + 1;
        };
        let Some((mut tail, mut rest)) = rest.split_at_checked(usize::from(pointer)) else {
            dropped += u64::from(self.active);
            self.reset();
            return dropped + 1;
        };
        if self.active {
            match self.fill(&mut tail, max) {
                Some(true) => on_section(&self.buf),
                Some(false) | None => dropped += 1,
            }
        }
        self.reset();
        while let Some(&table_id) = rest.first()
            && table_id != STUFFING
        {
            self.active = true;
            match self.fill(&mut rest, max) {
                Some(true) => {
                    on_section(&self.buf);
                    self.reset();
                }
                Some(false) => break, // Continues in the next packet.
                None => {
                    dropped += 1;
                    self.reset();
                    break;
                }
            }
        }
        dropped
    }

    /// Moves bytes from `input` toward the end of the section. `Some(true)` when it is
    /// complete, `Some(false)` when more input is needed, `None` when its length is invalid
    /// or over `max`.
    fn fill(&mut self, input: &mut &[u8], max: usize) -> Option<bool> {
        if self.buf.len() < SECTION_HEADER_LEN {
            let take = (SECTION_HEADER_LEN - self.buf.len()).min(input.len());
            let (head, tail) = input.split_at(take);
            self.buf.extend_from_slice(head);
            *input = tail;
        }
        let [_, b1, b2, ..] = self.buf[..] else {
            return Some(false);
        };
        let section_length = usize::from(u16::from_be_bytes([b1 & 0x0F, b2]));
        let total = SECTION_HEADER_LEN + section_length;
        if section_length > SECTION_LENGTH_MAX || total > max {
            return None;
        }
        let take = total.saturating_sub(self.buf.len()).min(input.len());
        let (head, tail) = input.split_at(take);
        self.buf.extend_from_slice(head);
        *input = tail;
        Some(self.buf.len() == total)
    }
}

/// The table bytes of a PSI section (between the syntax header and the CRC). `None` when the
/// section is malformed (wrong table id, no syntax, too short, bad CRC); `Some(None)` when
/// it is valid but not yet applicable (current_next_indicator 0).
fn psi_table(section: &[u8], table_id: u8) -> Option<Option<&[u8]>> {
    let [id, flags, _, _, _, version, ..] = *section else {
        return None;
    };
    let table_start = SECTION_HEADER_LEN + SECTION_SYNTAX_LEN;
    let table_end = section.len().checked_sub(CRC_LEN)?;
    if id != table_id || flags & 0x80 == 0 || table_end < table_start || crc32_mpeg2(section) != 0 {
        return None;
    }
    if version & 0x01 == 0 {
        return Some(None);
    }
    Some(section.get(table_start..table_end))
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial value all ones, no reflection, no final
/// xor). Over a whole section, CRC field included, it is 0.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &byte| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)]
    })
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

// ---- PES ----

/// One elementary stream's PES reassembly.
#[derive(Debug)]
struct Es {
    pid: u16,
    cc: Cc,
    /// The PES being reassembled, from its start code prefix on.
    pes: Vec<u8>,
    /// A PES has started (unit start seen) and not ended.
    active: bool,
}

impl Es {
    fn new(pid: u16) -> Self {
        Self {
            pid,
            cc: Cc::default(),
            pes: Vec::new(),
            active: false,
        }
    }

    fn clear(&mut self) {
        self.pes.clear();
        self.active = false;
    }

    /// Length of the whole PES when its header declares one (PES_packet_length ≠ 0).
    fn declared_len(&self) -> Option<usize> {
        let [hi, lo] = *self.pes.get(4..PES_LENGTH_OFFSET)? else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        (len != 0).then_some(PES_LENGTH_OFFSET + len)
    }

    /// Appends, growing the capacity by doubling but never past `max` (or what `data` needs).
    fn append(&mut self, data: &[u8], max: usize) {
        let needed = self.pes.len() + data.len();
        if needed > self.pes.capacity() {
            let target = (self.pes.capacity() * 2).max(4096).min(max).max(needed);
            self.pes.reserve_exact(target - self.pes.len());
        }
        self.pes.extend_from_slice(data);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PesHeader {
    pts: Option<u64>,
    dts: Option<u64>,
    payload_start: usize,
}

impl PesHeader {
    /// Parses the header of a complete PES; `None` if malformed.
    fn parse(pes: &[u8]) -> Option<Self> {
        let [
            0,
            0,
            1,
            _stream_id,
            _,
            _,
            flags1,
            flags2,
            header_len,
            optional @ ..,
        ] = pes
        else {
            return None;
        };
        // '10' marks the MPEG-2 optional header; stream ids without one (padding, private
        // stream 2, ...) are not audio or video.
        if flags1 & 0xC0 != 0x80 {
            return None;
        }
        let optional = optional.get(..usize::from(*header_len))?;
        let (pts, dts) = match flags2 >> 6 {
            0b10 => (Some(timestamp(optional.get(..5)?)), None),
            0b11 => (
                Some(timestamp(optional.get(..5)?)),
                Some(timestamp(optional.get(5..10)?)),
            ),
            _ => (None, None),
        };
        Some(PesHeader {
            pts,
            dts,
            payload_start: PES_FIXED_HEADER_LEN + usize::from(*header_len),
        })
    }
}

/// A 33-bit PTS/DTS from its 5 bytes (marker bits not checked).
fn timestamp(b: &[u8]) -> u64 {
    let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    ((byte(0) >> 1) & 0x07) << 30
        | byte(1) << 22
        | (byte(2) >> 1) << 15
        | byte(3) << 7
        | byte(4) >> 1
}

/// Unwraps 33-bit timestamps onto one 90 kHz timeline and converts them to milliseconds
/// from the first.
#[derive(Debug, Default)]
struct Clock {
    /// The last DTS (or audio PTS) unwrapped, of any stream.
    last: Option<i64>,
    first: Option<i64>,
}

impl Clock {
    /// Places a 33-bit timestamp on the unwrapped timeline: the nearest to the last one.
    fn on_timeline(&mut self, raw: u64) -> i64 {
        let t = match self.last {
            Some(last) => nearest(last, raw),
            None => (raw % TIMESTAMP_WRAP as u64) as i64,
        };
        self.last = Some(t);
        self.first.get_or_insert(t);
        t
    }

    /// Milliseconds since the first timestamp, clamped at 0 and wrapped to 32 bits like
    /// FLV timestamps.
    fn ms(&self, t: i64) -> u32 {
        self.ms_signed(t).max(0) as u64 as u32
    }

    fn ms_signed(&self, t: i64) -> i64 {
        let first = self.first.unwrap_or(t);
        t.saturating_sub(first).div_euclid(TICKS_PER_MS)
    }

    /// A video frame's dts_ms and cts_ms (pts_ms - dts_ms, so the presentation time is right
    /// even where the dts was clamped).
    fn frame_times(&self, dts: i64, pts: i64) -> (u32, i32) {
        let dts_ms = self.ms_signed(dts).max(0);
        let cts_ms = self
            .ms_signed(pts)
            .saturating_sub(dts_ms)
            .clamp(CTS_MS_MIN, CTS_MS_MAX);
        (dts_ms as u64 as u32, cts_ms as i32)
    }
}

/// `raw` (33-bit) plus the multiple of 2^33 that brings it nearest to `reference`.
fn nearest(reference: i64, raw: u64) -> i64 {
    let raw = (raw % TIMESTAMP_WRAP as u64) as i64;
    let t = reference
        .saturating_sub(reference.rem_euclid(TIMESTAMP_WRAP))
        .saturating_add(raw);
    if t.saturating_sub(reference) > TIMESTAMP_WRAP / 2 {
        t.saturating_sub(TIMESTAMP_WRAP)
    } else if reference.saturating_sub(t) > TIMESTAMP_WRAP / 2 {
        t.saturating_add(TIMESTAMP_WRAP)
    } else {
        t
    }
}

// ---- video ----

#[derive(Debug)]
struct VideoTrack {
    es: Es,
    codec: VideoCodec,
    /// The parameter sets in force: VPS (HEVC only), SPS, PPS.
    params: [Vec<Bytes>; 3],
    /// `params` made a configuration record, which has been emitted.
    configured: bool,
}

impl VideoTrack {
    fn new(pid: u16, codec: VideoCodec) -> Self {
        Self {
            es: Es::new(pid),
            codec,
            params: Default::default(),
            configured: false,
        }
    }
}

/// Byte ranges of the NAL units of an Annex B access unit (start codes and trailing zero
/// bytes excluded; bytes before the first start code ignored). Ranges may be empty.
fn nal_ranges(data: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut next = find_start_code(data, 0).map(|at| at + 3);
    std::iter::from_fn(move || {
        let start = next?;
        let end = match find_start_code(data, start) {
            Some(at) => {
                next = Some(at + 3);
                at
            }
            None => {
                next = None;
                data.len()
            }
        };
        let nal = data.get(start..end).unwrap_or_default();
        let trailing_zeros = nal.iter().rev().take_while(|&&b| b == 0).count();
        Some(start..end - trailing_zeros)
    })
}

/// Index of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(window) = data.get(at..at + 3) {
        match *window {
            [0, 0, 1] => return Some(at),
            // A byte above 1 at the end of the window cannot belong to a start code that
            // begins anywhere in the window.
            [_, _, b] if b > 1 => at += 3,
            _ => at += 1,
        }
    }
    None
}

/// Which parameter set list (0 VPS, 1 SPS, 2 PPS) a NAL unit belongs in, if any.
fn param_set_kind(codec: VideoCodec, nal: &[u8]) -> Option<usize> {
    let &first = nal.first()?;
    match codec {
        VideoCodec::H264 => match first & 0x1F {
            AVC_NAL_SPS if nal.len() >= 4 => Some(1),
            AVC_NAL_PPS => Some(2),
            _ => None,
        },
        VideoCodec::Hevc => match (first >> 1) & 0x3F {
            _ if nal.len() < 3 => None,
            HEVC_NAL_VPS => Some(0),
            HEVC_NAL_SPS => Some(1),
            HEVC_NAL_PPS => Some(2),
            _ => None,
        },
    }
}

/// Whether a NAL unit goes into the frame: `None` for the ones taken out (delimiters, filler,
/// parameter sets, empty or headerless), else whether it makes the frame a key frame.
fn frame_nal(codec: VideoCodec, nal: &[u8]) -> Option<bool> {
    let &first = nal.first()?;
    match codec {
        VideoCodec::H264 => match first & 0x1F {
            AVC_NAL_AUD | AVC_NAL_SPS | AVC_NAL_PPS | AVC_NAL_FILLER => None,
            kind => Some(kind == AVC_NAL_IDR),
        },
        VideoCodec::Hevc => match (first >> 1) & 0x3F {
            _ if nal.len() < 2 => None,
            HEVC_NAL_VPS | HEVC_NAL_SPS | HEVC_NAL_PPS | HEVC_NAL_AUD | HEVC_NAL_FILLER => None,
            kind => Some(HEVC_NAL_IRAP.contains(&kind)),
        },
    }
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with 4-byte NAL lengths; the
/// chroma and bit depth fields that High profiles add are filled from the first SPS (left out
/// if it cannot be read, which decoders accept).
fn avc_decoder_config(sps: &[Bytes], pps: &[Bytes]) -> Option<Vec<u8>> {
    let first = sps.first()?;
    let [_, profile, compatibility, level, ..] = first[..] else {
        return None;
    };
    if pps.is_empty() {
        return None;
    }
    let size: usize = sps.iter().chain(pps).map(|s| s.len() + 2).sum();
    let mut out = Vec::with_capacity(11 + size);
    out.extend_from_slice(&[1, profile, compatibility, level, 0xFC | 3]);
    out.push(0xE0 | sps.len() as u8);
    for set in sps {
        out.extend_from_slice(&(set.len() as u16).to_be_bytes());
        out.extend_from_slice(set);
    }
    out.push(pps.len() as u8);
    for set in pps {
        out.extend_from_slice(&(set.len() as u16).to_be_bytes());
        out.extend_from_slice(set);
    }
    if matches!(profile, 100 | 110 | 122 | 244)
        && let Some((chroma, luma_minus8, chroma_minus8)) = avc_sps_format(first)
    {
        out.extend_from_slice(&[
            0xFC | chroma,
            0xF8 | luma_minus8,
            0xF8 | chroma_minus8,
            0, // numOfSequenceParameterSetExt
        ]);
    }
    Some(out)
}

/// chroma_format_idc and the bit depths (minus 8) of a High-profile H.264 SPS.
fn avc_sps_format(sps: &[u8]) -> Option<(u8, u8, u8)> {
    let rbsp = rbsp(sps);
    // NAL header, profile_idc, constraint flags, level_idc.
    let mut bits = Bits::new(&rbsp, 4 * 8);
    bits.ue()?; // seq_parameter_set_id
    let chroma = bits.ue()?;
    if chroma > 3 {
        return None;
    }
    if chroma == 3 {
        bits.skip(1)?; // separate_colour_plane_flag
    }
    let luma = bits.ue()?;
    let chroma_depth = bits.ue()?;
    if luma > 6 || chroma_depth > 6 {
        return None;
    }
    Some((chroma as u8, luma as u8, chroma_depth as u8))
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) with arrays of VPS, SPS and PPS
/// (complete: the frames carry none), 4-byte NAL lengths; profile, tier, level and format
/// from the first SPS.
fn hevc_decoder_config(params: &[Vec<Bytes>; 3]) -> Option<Vec<u8>> {
    if params.iter().any(|list| list.is_empty()) {
        return None;
    }
    let sps = hevc_sps_info(params[1].first()?)?;
    let size: usize = params.iter().flatten().map(|s| s.len() + 2).sum();
    let mut out = Vec::with_capacity(23 + 3 * 3 + size);
    out.push(1); // configurationVersion
    out.extend_from_slice(&sps.profile_tier_level);
    out.extend_from_slice(&[
        0xF0, // min_spatial_segmentation_idc = 0 (unknown)
        0x00,
        0xFC, // parallelismType = 0 (unknown)
        0xFC | sps.chroma_format,
        0xF8 | sps.luma_depth_minus8,
        0xF8 | sps.chroma_depth_minus8,
        0, // avgFrameRate: unspecified
        0,
        // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
        ((sps.max_sub_layers_minus1 + 1) & 0x07) << 3 | u8::from(sps.temporal_id_nesting) << 2 | 3,
        params.len() as u8,
    ]);
    for (list, nal_type) in params
        .iter()
        .zip([HEVC_NAL_VPS, HEVC_NAL_SPS, HEVC_NAL_PPS])
    {
        out.push(0x80 | nal_type); // array_completeness = 1
        out.extend_from_slice(&(list.len() as u16).to_be_bytes());
        for set in list {
            out.extend_from_slice(&(set.len() as u16).to_be_bytes());
            out.extend_from_slice(set);
        }
    }
    Some(out)
}

/// What an HEVC SPS tells the configuration record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HevcSpsInfo {
    /// general_profile_space … general_level_idc: 12 bytes, byte-aligned in the SPS.
    profile_tier_level: [u8; 12],
    max_sub_layers_minus1: u8,
    temporal_id_nesting: bool,
    chroma_format: u8,
    luma_depth_minus8: u8,
    chroma_depth_minus8: u8,
}

/// Reads an HEVC SPS (H.265 7.3.2.2). The general profile_tier_level is required; when the
/// fields after the sub-layer levels cannot be read, 4:2:0 8-bit is assumed.
fn hevc_sps_info(sps: &[u8]) -> Option<HevcSpsInfo> {
    let rbsp = rbsp(sps);
    // 2-byte NAL header, then vps_id (4) | max_sub_layers_minus1 (3) | temporal_id_nesting (1).
    let &layers = rbsp.get(2)?;
    let max_sub_layers_minus1 = (layers >> 1) & 0x07;
    let profile_tier_level: [u8; 12] = rbsp.get(3..15)?.try_into().ok()?;
    let (chroma_format, luma_depth_minus8, chroma_depth_minus8) =
        hevc_sps_format(&rbsp, max_sub_layers_minus1).unwrap_or((1, 0, 0));
    Some(HevcSpsInfo {
        profile_tier_level,
        max_sub_layers_minus1,
        temporal_id_nesting: layers & 0x01 != 0,
        chroma_format,
        luma_depth_minus8,
        chroma_depth_minus8,
    })
}

fn hevc_sps_format(rbsp: &[u8], max_sub_layers_minus1: u8) -> Option<(u8, u8, u8)> {
    let sub_layers = usize::from(max_sub_layers_minus1);
    let mut bits = Bits::new(rbsp, 15 * 8);
    let mut present = [(false, false); 8];
    for flags in present.iter_mut().take(sub_layers) {
        *flags = (bits.bit()?, bits.bit()?);
    }
    if sub_layers > 0 {
        bits.skip(2 * (8 - sub_layers))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(sub_layers) {
        if profile {
            bits.skip(88)?;
        }
        if level {
            bits.skip(8)?;
        }
    }
    bits.ue()?; // sps_seq_parameter_set_id
    let chroma = bits.ue()?;
    if chroma > 3 {
        return None;
    }
    if chroma == 3 {
        bits.skip(1)?; // separate_colour_plane_flag
    }
    bits.ue()?; // pic_width_in_luma_samples
    bits.ue()?; // pic_height_in_luma_samples
    if bits.bit()? {
        for _ in 0..4 {
            bits.ue()?; // conformance window offsets
        }
    }
    let luma = bits.ue()?;
    let chroma_depth = bits.ue()?;
    if luma > 7 || chroma_depth > 7 {
        return None;
    }
    Some((chroma as u8, luma as u8, chroma_depth as u8))
}

/// The first bytes of a NAL unit with emulation prevention bytes (the 03 of `00 00 03`)
/// removed, enough for the fields the records need.
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len().min(PARAM_SET_PARSE_BYTES_MAX));
    let mut zeros = 0;
    for &byte in nal.iter().take(PARAM_SET_PARSE_BYTES_MAX) {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Big-endian bit reader over an RBSP.
struct Bits<'a> {
    data: &'a [u8],
    position_bits: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], position_bits: usize) -> Self {
        Self {
            data,
            position_bits,
        }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.position_bits / 8)?;
        let bit = (byte >> (7 - self.position_bits % 8)) & 1;
        self.position_bits += 1;
        Some(bit != 0)
    }

    fn skip(&mut self, bits: usize) -> Option<()> {
        let position = self.position_bits.checked_add(bits)?;
        if position > self.data.len() * 8 {
            return None;
        }
        self.position_bits = position;
        Some(())
    }

    /// Unsigned Exp-Golomb code (ue(v)), up to 32 bits.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut value: u64 = 1;
        for _ in 0..zeros {
            value = value << 1 | u64::from(self.bit()?);
        }
        u32::try_from(value - 1).ok()
    }
}

// ---- audio ----

#[derive(Debug)]
struct AudioTrack {
    es: Es,
    /// AudioSpecificConfig last emitted.
    config: Option<[u8; 2]>,
    /// The start of an ADTS frame the last PES ended inside.
    carry: Vec<u8>,
    /// Timestamp base and frame index the carried frame is timed by.
    carry_at: (i64, i64),
    /// Time of the frame after the last one: for a PES without PTS.
    next_ts: Option<i64>,
}

impl AudioTrack {
    fn new(pid: u16) -> Self {
        Self {
            es: Es::new(pid),
            config: None,
            carry: Vec::new(),
            carry_at: (0, 0),
            next_ts: None,
        }
    }
}

/// The time of the `index`-th frame of a PES whose PTS is `base`, at `adts`'s sample rate.
fn frame_time(base: i64, index: i64, adts: Adts) -> i64 {
    let offset = index
        .saturating_mul(AAC_SAMPLES_PER_FRAME)
        .saturating_mul(CLOCK_HZ)
        / adts.sample_rate();
    base.saturating_add(offset)
}

/// An ADTS header (ISO/IEC 14496-3 1.A.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Adts {
    /// Audio object type - 1.
    profile: u8,
    sampling_frequency_index: u8,
    channel_configuration: u8,
    header_len: usize,
    /// Header included.
    frame_len: usize,
    /// number_of_raw_data_blocks_in_frame (0 = one block).
    raw_blocks: u8,
}

enum AdtsParse {
    Frame(Adts),
    /// The frame (or its header) needs this many bytes in all.
    NeedMore(usize),
    Invalid,
}

impl Adts {
    fn parse(data: &[u8]) -> AdtsParse {
        let header_len = match *data {
            [] | [0xFF] => return AdtsParse::NeedMore(ADTS_HEADER_LEN),
            // Sync word (12 bits), then ID (either MPEG version), layer 0.
            [0xFF, b1, ..] if b1 & 0xF6 == 0xF0 => {
                if b1 & 0x01 != 0 {
                    ADTS_HEADER_LEN
                } else {
                    ADTS_HEADER_CRC_LEN
                }
            }
            _ => return AdtsParse::Invalid,
        };
        let Some(&[_, _, b2, b3, b4, b5, b6]) = data.first_chunk::<ADTS_HEADER_LEN>() else {
            return AdtsParse::NeedMore(header_len);
        };
        let sampling_frequency_index = (b2 >> 2) & 0x0F;
        let frame_len = usize::from(b3 & 0x03) << 11 | usize::from(b4) << 3 | usize::from(b5 >> 5);
        if usize::from(sampling_frequency_index) >= AAC_SAMPLE_RATES.len() || frame_len < header_len
        {
            return AdtsParse::Invalid;
        }
        if data.len() < frame_len {
            return AdtsParse::NeedMore(frame_len);
        }
        AdtsParse::Frame(Adts {
            profile: b2 >> 6,
            sampling_frequency_index,
            channel_configuration: (b2 & 0x01) << 2 | b3 >> 6,
            header_len,
            frame_len,
            raw_blocks: b6 & 0x03,
        })
    }

    fn sample_rate(&self) -> i64 {
        AAC_SAMPLE_RATES
            .get(usize::from(self.sampling_frequency_index))
            .copied()
            .unwrap_or(48000)
    }

    /// AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): object type, frequency index, channels.
    fn audio_specific_config(&self) -> [u8; 2] {
        let object_type = self.profile + 1;
        [
            object_type << 3 | self.sampling_frequency_index >> 1,
            (self.sampling_frequency_index & 0x01) << 7 | self.channel_configuration << 3,
        ]
    }
}

/// The body of the cargo-fuzz target `ts_demux` (`fuzz/fuzz_targets/ts_demux.rs`), here so
/// the unit tests run the same code on stable over arbitrary input.
pub mod fuzzing {
    use super::{TS_PACKET_LEN, TsDemuxLimits, TsDemuxer};
    use crate::media::unit::MediaUnit;
    use crate::proto::flv::{classify_tag, tag_type};

    /// Splits `data` into pieces of 1..=`stride` bytes, cycling through the sizes.
    fn pieces(data: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
        let mut rest = data;
        let mut size = 0;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            size = size % stride.max(1) + 1;
            let (head, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            Some(head)
        })
    }

    /// The demuxer on arbitrary bytes: the first two pick small limits, the split stride and
    /// whether every 188th byte is forced to 0x47 (so mutations reach packet contents rather
    /// than only the resync). Checks the memory bound after every push and that every unit
    /// is what the FLV classifier makes of its body.
    pub fn demux(data: &[u8]) {
        let Some((&[a, b], bytes)) = data.split_first_chunk::<2>() else {
            return;
        };
        let limits = TsDemuxLimits {
            pes_bytes_max: usize::from(a) * 64 + 16,
            buffered_bytes_max: usize::from(b & 0x3F) * 32 + 1,
            program_wait_bytes_max: u64::from(a ^ b) * 512,
            keyframe_wait_bytes_max: u64::from(b) * 1024,
        };
        let mut synced;
        let bytes = if b & 0x80 != 0 {
            synced = bytes.to_vec();
            for byte in synced.iter_mut().step_by(TS_PACKET_LEN) {
                *byte = 0x47;
            }
            &synced[..]
        } else {
            bytes
        };
        let bound = TS_PACKET_LEN
            + 2 * limits.buffered_bytes_max.min(1024)
            + limits.buffered_bytes_max.min(8191)
            + 2 * limits.pes_bytes_max;
        let mut demuxer = TsDemuxer::new(limits).with_room(usize::from(a % 4), usize::from(b % 3));
        for piece in pieces(bytes, usize::from(a % 61) + 1) {
            demuxer.push(piece);
            if !drain(&mut demuxer) {
                return;
            }
            assert!(demuxer.buffered_len() <= bound);
        }
        let _ = demuxer.finish();
        drain(&mut demuxer);
        let stats = demuxer.stats();
        assert_eq!(stats.bytes_in, bytes.len() as u64);
    }

    /// Polls to exhaustion; false once the demuxer has failed.
    fn drain(demuxer: &mut TsDemuxer) -> bool {
        loop {
            match demuxer.poll() {
                Ok(Some(unit)) => check(&unit),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    fn check(unit: &MediaUnit) {
        let again = classify_tag(tag_type(unit.kind), unit.dts_ms, unit.body.clone());
        assert_eq!(again.as_ref(), Ok(unit));
        assert!(unit.payload_offset <= unit.body.len());
        assert!(unit.flv_tag.is_some());
    }
}

#[cfg(test)]
#[path = "demux_tests.rs"]
mod tests;
