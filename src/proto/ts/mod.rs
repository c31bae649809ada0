//! MPEG-TS muxer (ISO/IEC 13818-1) for HTTP-TS and HLS: turns H.264, HEVC and AAC
//! [`MediaUnit`]s into 188-byte transport packets of one program.
//!
//! - H.264 and HEVC (legacy FLV codec ids 7 and 12, Enhanced RTMP `avc1` and `hvc1` including
//!   CodedFramesX): AVCC length-prefixed NAL units become Annex B (start codes); an access unit
//!   delimiter is prepended when the frame does not start with one (HEVC: type 35 with the
//!   slice's TemporalId). The parameter sets of the last decoder configuration record (avcC:
//!   SPS, PPS; hvcC: VPS, SPS, PPS) go right after the AUD of every key frame (as the FLV
//!   frame type flags it) and every frame with an H.264 IDR / HEVC IRAP slice that does not
//!   carry an SPS in-band, so a viewer can start at any key frame; they precede SEI because
//!   buffering-period and active-parameter-sets SEI refer to them. There is one video PID: the
//!   latest configuration record (H.264 or HEVC) decides the codec, and frames of the other
//!   codec, or before any record, write nothing (the PMT could not announce them).
//! - AAC: raw frames get a 7-byte ADTS header built from the last AudioSpecificConfig; frames
//!   before it write nothing (there is no ADTS header without it).
//! - PAT/PMT are written before the first media packet, before every video key frame (so the
//!   output for a key frame starts with PAT, PMT, then its PES), and whenever the set of
//!   streams or the video codec changes (new PMT version). [`TsMuxer::psi_snapshot`] gives the
//!   bytes the next [`TsMuxer::write_psi`] will write, for a reader joining between key frames
//!   (or an audio-only stream): sent ahead of the shared output, the later identical packets
//!   with the same continuity counters are legal duplicates.
//! - PCR rides on the video PID (the audio PID when there is no video), in the first packet of
//!   each PES, [`PCR_LEAD_90KHZ`] (100 ms) before that PES's DTS, never later. A PCR equal to
//!   the DTS (what this muxer wrote before) is allowed but leaves no time: the frame is due
//!   when its first byte arrives, and audio the publisher interleaved slightly behind the
//!   video is late on arrival. ffmpeg (VBR) and nginx-rtmp put the PCR 700 ms before the DTS,
//!   but they shift PTS/DTS up by that much first; here PTS/DTS are the caller's timeline as
//!   given, so a larger lead would only add start-up delay in players that follow the PCR.
//!   While the DTS is below the lead the PCR is 0, so it never wraps backwards at the start.
//! - Timestamps are milliseconds × 90, modulo 2^33: [`TsMuxer::write_unit`] takes them from the
//!   unit (FLV milliseconds), [`TsMuxer::write_unit_at`] from the caller's 64-bit timeline.
//! - PES_packet_length is the real length for audio and 0 (unbounded, allowed for video in
//!   TS) for video, as ffmpeg writes it by default: video frames exceed 65535 bytes often.
//!
//! Malformed input never panics: a configuration record that does not parse leaves the
//! previous one in force, a frame whose NAL lengths overrun it writes nothing. Units of other
//! codecs (AV1, VP9, MP3, Opus, ...), configuration records and script data write nothing.
//!
//! Hand-written rather than a crate. On crates.io, `mpeg2ts` (sile) has a writer, but it
//! writes one `TsPacket` value at a time through `io::Write` (each packet's payload copied
//! into a fixed 184-byte array, so it does not allocate per packet) and leaves PES splitting,
//! stuffing, continuity counters and PCR placement to the caller; `mpeg-ts` (fishloa) frames
//! packets and PSI sections only; `mpeg-ts-core` (marked early development) packetises PES but
//! takes access units as they are. None converts AVCC to Annex B, inserts parameter sets or
//! builds ADTS headers from an AudioSpecificConfig, which is most of the work here; the packet
//! layer that is left is small, and appends straight into the caller's buffer without
//! allocating per packet.

mod nal;

pub mod demux;

use crate::media::unit::{Codec, MediaUnit, UnitKind};
use nal::{START_CODE, VideoCodec, VideoConfig, parse_avc_config, parse_hevc_config, split_avcc};

/// Size of a transport stream packet.
pub const TS_PACKET_LEN: usize = 188;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video (H.264 or HEVC) elementary stream.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC elementary stream.
pub const AUDIO_PID: u16 = 0x101;
/// How far the PCR in a PES's first packet is behind its DTS, in 90 kHz ticks (100 ms).
pub const PCR_LEAD_90KHZ: u64 = 9_000;

const PAT_PID: u16 = 0x0000;
const NULL_PID: u16 = 0x1FFF;
const SYNC_BYTE: u8 = 0x47;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;
const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// A TS packet's payload room after the 4-byte header.
const PACKET_PAYLOAD_LEN: usize = TS_PACKET_LEN - 4;
/// ADTS frame length is a 13-bit field.
const ADTS_FRAME_LEN_MAX: usize = 0x1FFF;
const ADTS_HEADER_LEN: usize = 7;

/// The AudioSpecificConfig fields ADTS repeats in every frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AacConfig {
    /// ADTS profile: audio object type - 1, 2 bits.
    profile: u8,
    sampling_frequency_index: u8,
    channel_configuration: u8,
}

/// What the PMT lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Streams {
    video: Option<VideoCodec>,
    audio: bool,
}

/// Stateful MPEG-TS muxer for one program with at most one video (H.264 or HEVC) and one AAC
/// stream. Feed it every unit of a stream in order; it keeps the configuration records and
/// the continuity counters.
#[derive(Debug, Default)]
pub struct TsMuxer {
    video: Option<VideoConfig>,
    aac: Option<AacConfig>,
    /// Continuity counters (4 bits) of PAT, PMT, video, audio.
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// Streams listed in the PMT last written, and its version.
    psi_streams: Option<Streams>,
    pmt_version: u8,
}

impl TsMuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the program has a video stream (an H.264 or HEVC configuration record has been
    /// seen).
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    fn streams(&self) -> Streams {
        Streams {
            video: self.video.as_ref().map(|video| video.codec),
            audio: self.aac.is_some(),
        }
    }

    /// Appends `unit` as TS packets, timed by the unit's own `dts_ms`: the same as
    /// `write_unit_at(unit, unit.dts_ms.into(), out)`.
    pub fn write_unit(&mut self, unit: &MediaUnit, out: &mut Vec<u8>) {
        self.write_unit_at(unit, u64::from(unit.dts_ms), out);
    }

    /// Appends `unit` as TS packets with DTS = `dts_ms` × 90 and PTS = (`dts_ms` +
    /// `unit.cts_ms`) × 90, both modulo 2^33; `dts_ms` is the stream's output timeline (which
    /// may differ from `unit.dts_ms`). Configuration records update the muxer's state and
    /// write nothing, as do units it does not carry; a new stream makes the next media unit
    /// start with a new PAT/PMT, and so does every video key frame.
    pub fn write_unit_at(&mut self, unit: &MediaUnit, dts_ms: u64, out: &mut Vec<u8>) {
        let timing = Timing::new(dts_ms, unit.cts_ms);
        match (unit.kind, unit.codec) {
            (UnitKind::Video, Codec::H264 | Codec::Hevc) => {
                let codec = if unit.codec == Codec::H264 {
                    VideoCodec::H264
                } else {
                    VideoCodec::Hevc
                };
                if unit.config {
                    let parsed = match codec {
                        VideoCodec::H264 => parse_avc_config(unit.payload()),
                        VideoCodec::Hevc => parse_hevc_config(unit.payload()),
                    };
                    // A malformed record leaves the previous one in force.
                    if let Some(video) = parsed {
                        self.video = Some(video);
                    }
                } else if !unit.payload().is_empty() {
                    self.write_video(unit, codec, timing, out);
                }
            }
            (UnitKind::Audio, Codec::Aac) => {
                if unit.config {
                    if let Some(aac) = parse_aac_config(unit.payload()) {
                        self.aac = Some(aac);
                    }
                } else if !unit.payload().is_empty() {
                    self.write_audio(unit, timing, out);
                }
            }
            _ => {}
        }
    }

    /// Appends a PAT and a PMT listing the streams whose configuration has been seen (an
    /// empty program when none has).
    pub fn write_psi(&mut self, out: &mut Vec<u8>) {
        let streams = self.streams();
        let version = self.next_pmt_version(streams);
        self.psi_bytes(streams, version, out);
        self.psi_streams = Some(streams);
        self.pmt_version = version;
        self.cc_pat = (self.cc_pat + 1) & 0x0F;
        self.cc_pmt = (self.cc_pmt + 1) & 0x0F;
    }

    /// Appends the PAT and PMT exactly as the next [`write_psi`](Self::write_psi) would write
    /// them (same continuity counters and version), without changing any state; nothing if
    /// no stream configuration has been seen yet. For a reader that joins where the shared
    /// output has no PAT/PMT coming before its media.
    pub fn psi_snapshot(&self, out: &mut Vec<u8>) {
        let streams = self.streams();
        if streams.video.is_none() && !streams.audio {
            return;
        }
        self.psi_bytes(streams, self.next_pmt_version(streams), out);
    }

    fn next_pmt_version(&self, streams: Streams) -> u8 {
        match self.psi_streams {
            Some(previous) if previous != streams => (self.pmt_version + 1) & 0x1F,
            _ => self.pmt_version,
        }
    }

    /// PAT then PMT with the current continuity counters.
    fn psi_bytes(&self, streams: Streams, pmt_version: u8, out: &mut Vec<u8>) {
        let mut pat = [0u8; 4];
        pat[..2].copy_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pat[2..].copy_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        write_psi_packet(
            PAT_PID,
            self.cc_pat,
            PsiSection {
                table_id: 0x00,
                id: TRANSPORT_STREAM_ID,
                version: 0,
                body: &pat,
            },
            out,
        );

        let pcr_pid = match streams {
            Streams { video: Some(_), .. } => VIDEO_PID,
            Streams { audio: true, .. } => AUDIO_PID,
            _ => NULL_PID,
        };
        // PCR_PID, program_info_length 0, then 5 bytes per stream.
        let mut pmt = [0u8; 4 + 2 * 5];
        pmt[..2].copy_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
        pmt[2..4].copy_from_slice(&0xF000u16.to_be_bytes());
        let mut len = 4;
        let video = streams.video.map(|codec| (codec.stream_type(), VIDEO_PID));
        let audio = streams.audio.then_some((STREAM_TYPE_AAC_ADTS, AUDIO_PID));
        for (stream_type, pid) in [video, audio].into_iter().flatten() {
            pmt[len] = stream_type;
            pmt[len + 1..len + 3].copy_from_slice(&(0xE000 | pid).to_be_bytes());
            pmt[len + 3..len + 5].copy_from_slice(&0xF000u16.to_be_bytes()); // ES_info_length 0
            len += 5;
        }
        write_psi_packet(
            PMT_PID,
            self.cc_pmt,
            PsiSection {
                table_id: 0x02,
                id: PROGRAM_NUMBER,
                version: pmt_version,
                body: &pmt[..len],
            },
            out,
        );
    }

    fn write_psi_if_needed(&mut self, keyframe: bool, out: &mut Vec<u8>) {
        if keyframe || self.psi_streams != Some(self.streams()) {
            self.write_psi(out);
        }
    }

    fn write_video(
        &mut self,
        unit: &MediaUnit,
        codec: VideoCodec,
        timing: Timing,
        out: &mut Vec<u8>,
    ) {
        let Some(config) = self.video.as_ref().filter(|video| video.codec == codec) else {
            return; // No record for this codec: the PMT does not announce it.
        };
        let Some(nals) = split_avcc(unit.payload(), config.nal_length_size) else {
            return; // Lengths overrun the frame: nothing decodable to send.
        };
        let Some((first, _)) = nals.split_first() else {
            return; // Only empty NAL units.
        };

        let parameter_sets_len = config.parameter_sets_annexb.len();
        let mut pes = Vec::with_capacity(unit.payload().len() + parameter_sets_len + 64);
        let dts = (timing.pts != timing.dts).then_some(timing.dts);
        pes_header(STREAM_ID_VIDEO, timing.pts, dts, None, &mut pes);
        let rest = if codec.is_aud(first) {
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(first);
            &nals[1..]
        } else {
            pes.extend_from_slice(&START_CODE);
            let first_slice = nals.iter().copied().find(|nal| codec.is_vcl(nal));
            codec.write_aud(first_slice, &mut pes);
            &nals[..]
        };
        // Parameter sets once per access unit, right after the AUD, unless the frame has them.
        let random_access =
            unit.keyframe || nals.iter().any(|nal| codec.is_random_access_slice(nal));
        if random_access && !nals.iter().any(|nal| codec.is_sps(nal)) {
            pes.extend_from_slice(&config.parameter_sets_annexb);
        }
        for nal in rest {
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(nal);
        }

        self.write_psi_if_needed(unit.keyframe, out);
        write_pes_packets(
            VIDEO_PID,
            &mut self.cc_video,
            &pes,
            Some(timing.pcr),
            unit.keyframe,
            out,
        );
    }

    fn write_audio(&mut self, unit: &MediaUnit, timing: Timing, out: &mut Vec<u8>) {
        let Some(aac) = self.aac else {
            return;
        };
        let payload = unit.payload();
        let frame_len = payload.len() + ADTS_HEADER_LEN;
        if frame_len > ADTS_FRAME_LEN_MAX {
            return; // No real AAC frame is this large.
        }
        self.write_psi_if_needed(false, out);
        let mut pes = Vec::with_capacity(frame_len + 14);
        pes_header(STREAM_ID_AUDIO, timing.pts, None, Some(frame_len), &mut pes);
        write_adts_header(aac, frame_len, &mut pes);
        pes.extend_from_slice(payload);
        let pcr = (!self.has_video()).then_some(timing.pcr);
        write_pes_packets(AUDIO_PID, &mut self.cc_audio, &pes, pcr, false, out);
    }
}

/// A unit's timestamps in 90 kHz ticks, modulo 2^33.
#[derive(Clone, Copy, Debug)]
struct Timing {
    pts: u64,
    dts: u64,
    /// For the PES's first packet: [`PCR_LEAD_90KHZ`] before the DTS, 0 at the very start.
    pcr: u64,
}

impl Timing {
    fn new(dts_ms: u64, cts_ms: i32) -> Self {
        // 2^33 divides 2^64, so wrapping arithmetic then the mask is exact modulo 2^33.
        let dts = dts_ms.wrapping_mul(90);
        let pts = dts_ms
            .wrapping_add_signed(i64::from(cts_ms))
            .wrapping_mul(90);
        Timing {
            pts: pts & TIMESTAMP_MASK,
            dts: dts & TIMESTAMP_MASK,
            pcr: dts.saturating_sub(PCR_LEAD_90KHZ) & TIMESTAMP_MASK,
        }
    }
}

/// Parses the start of an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
fn parse_aac_config(asc: &[u8]) -> Option<AacConfig> {
    if asc.len() < 2 {
        return None;
    }
    let object_type = asc[0] >> 3;
    let sampling_frequency_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
    let channel_configuration = (asc[1] >> 3) & 0x0F;
    // ADTS can express object types 1-4 (2 bits) and table sampling rates only. Escape codes
    // (31, 15) and explicit rates would need more bits than ADTS has.
    if !(1..=4).contains(&object_type) || sampling_frequency_index >= 13 {
        return None;
    }
    Some(AacConfig {
        profile: object_type - 1,
        sampling_frequency_index,
        channel_configuration,
    })
}

/// Writes a 7-byte ADTS header (no CRC) for a frame of `frame_len` bytes including it.
fn write_adts_header(aac: AacConfig, frame_len: usize, out: &mut Vec<u8>) {
    let len = frame_len as u32;
    out.extend_from_slice(&[
        0xFF,
        0xF1, // MPEG-4, layer 0, protection absent
        (aac.profile << 6) | (aac.sampling_frequency_index << 2) | (aac.channel_configuration >> 2),
        ((aac.channel_configuration & 0x03) << 6) | ((len >> 11) as u8 & 0x03),
        (len >> 3) as u8,
        ((len & 0x07) as u8) << 5 | 0x1F, // buffer fullness 0x7FF (VBR)
        0xFC,                             // buffer fullness, one raw data block
    ]);
}

/// Encodes a 33-bit timestamp with its 4-bit prefix and marker bits.
fn write_timestamp(prefix: u8, ts: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7F) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7F) << 1) | 1,
    ]);
}

/// Writes a PES header. `es_len` is the elementary data length when it fits the 16-bit
/// PES_packet_length; video uses 0 (unbounded), which TS allows for video streams.
fn pes_header(stream_id: u8, pts: u64, dts: Option<u64>, es_len: Option<usize>, out: &mut Vec<u8>) {
    let header_data_len: usize = if dts.is_some() { 10 } else { 5 };
    let packet_len = es_len
        .map(|len| len + 3 + header_data_len)
        .filter(|len| *len <= 0xFFFF)
        .unwrap_or(0);
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&(packet_len as u16).to_be_bytes());
    out.push(0x84); // '10', not scrambled, data_alignment_indicator
    out.push(if dts.is_some() { 0xC0 } else { 0x80 });
    out.push(header_data_len as u8);
    match dts {
        Some(dts) => {
            write_timestamp(0x3, pts, out);
            write_timestamp(0x1, dts, out);
        }
        None => write_timestamp(0x2, pts, out),
    }
}

/// Splits a PES packet into TS packets; the first carries PCR / random access when asked,
/// the last is padded with adaptation-field stuffing.
fn write_pes_packets(
    pid: u16,
    cc: &mut u8,
    pes: &[u8],
    pcr: Option<u64>,
    random_access: bool,
    out: &mut Vec<u8>,
) {
    out.reserve((pes.len() / PACKET_PAYLOAD_LEN + 2) * TS_PACKET_LEN);
    let mut rest = pes;
    let mut first = true;
    while !rest.is_empty() {
        // Adaptation field body (after its length byte) before stuffing: flags, then PCR.
        let mut fields = [0u8; 7];
        let mut fields_len = 0;
        if first && (pcr.is_some() || random_access) {
            fields[0] = if random_access { 0x40 } else { 0 } | if pcr.is_some() { 0x10 } else { 0 };
            fields_len = 1;
            if let Some(pcr) = pcr {
                // 33-bit base, 6 reserved bits, 9-bit extension 0.
                fields[1..7].copy_from_slice(&[
                    (pcr >> 25) as u8,
                    (pcr >> 17) as u8,
                    (pcr >> 9) as u8,
                    (pcr >> 1) as u8,
                    ((pcr as u8 & 1) << 7) | 0x7E,
                    0,
                ]);
                fields_len = 7;
            }
        }
        let room = PACKET_PAYLOAD_LEN - if fields_len > 0 { 1 + fields_len } else { 0 };
        let payload_len = rest.len().min(room);
        let stuffing = room - payload_len;
        let has_adaptation = fields_len > 0 || stuffing > 0;

        let start = out.len();
        out.push(SYNC_BYTE);
        out.push((u8::from(first) << 6) | (pid >> 8) as u8 & 0x1F);
        out.push(pid as u8);
        out.push(if has_adaptation { 0x30 } else { 0x10 } | *cc);
        *cc = (*cc + 1) & 0x0F;
        if fields_len > 0 {
            out.push((fields_len + stuffing) as u8);
            out.extend_from_slice(&fields[..fields_len]);
            out.resize(out.len() + stuffing, 0xFF);
        } else if stuffing > 0 {
            // `stuffing` bytes in all, the length byte included: one byte is that alone
            // (length 0); more is a flags byte (none set) and 0xFF.
            out.push((stuffing - 1) as u8);
            if stuffing >= 2 {
                out.push(0x00);
                out.resize(out.len() + stuffing - 2, 0xFF);
            }
        }
        out.extend_from_slice(&rest[..payload_len]);
        debug_assert_eq!(out.len() - start, TS_PACKET_LEN);
        rest = &rest[payload_len..];
        first = false;
    }
}

/// A PSI section with the long syntax; the CRC is added when written.
struct PsiSection<'a> {
    table_id: u8,
    /// transport_stream_id (PAT) or program_number (PMT).
    id: u16,
    version: u8,
    body: &'a [u8],
}

/// Writes `section` as one TS packet (it must fit: PAT and PMT here are a few dozen bytes).
fn write_psi_packet(pid: u16, cc: u8, section: PsiSection<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[
        SYNC_BYTE,
        0x40 | (pid >> 8) as u8 & 0x1F,
        pid as u8,
        0x10 | cc,
        0, // pointer_field
    ]);
    let section_start = out.len();
    // After section_length: id (2), version (1), section numbers (2), body, CRC (4).
    let section_len = 5 + section.body.len() + 4;
    out.push(section.table_id);
    out.extend_from_slice(&(0xB000 | section_len as u16).to_be_bytes());
    out.extend_from_slice(&section.id.to_be_bytes());
    out.push(0xC1 | (section.version << 1)); // reserved, version, current_next_indicator
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(section.body);
    let crc = crc32_mpeg2(&out[section_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    debug_assert!(out.len() - start <= TS_PACKET_LEN);
    out.resize(start + TS_PACKET_LEN, 0xFF);
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, no reflection, no final XOR.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests;
