//! MPEG-TS muxer (ISO/IEC 13818-1) for HTTP-TS and HLS: turns H.264 and AAC [`MediaUnit`]s
//! into 188-byte transport packets.
//!
//! - H.264: AVCC length-prefixed NAL units become Annex B (start codes), an access unit
//!   delimiter is prepended when missing, and SPS/PPS from the last AVC sequence header are
//!   inserted before every IDR frame that does not carry them, so a viewer can start at any
//!   key frame.
//! - AAC: raw frames get a 7-byte ADTS header built from the last AudioSpecificConfig.
//! - PAT/PMT are written before the first media packet, before every video key frame, and
//!   whenever the set of streams changes (new PMT version). PCR rides on the video PID (the
//!   audio PID when there is no video) in the first packet of each PES, equal to its DTS.
//! - Timestamps are FLV milliseconds × 90, wrapped to 33 bits.
//!
//! Units of other codecs (HEVC, AV1, MP3, Opus, ...) and script data write nothing yet; nor do
//! AAC frames before their AudioSpecificConfig (without it there is no ADTS header).

pub mod demux;
use crate::media::unit::{Codec, MediaUnit, UnitKind};

/// Size of a transport stream packet.
pub const TS_PACKET_LEN: usize = 188;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC elementary stream.
pub const AUDIO_PID: u16 = 0x101;

const PAT_PID: u16 = 0x0000;
const SYNC_BYTE: u8 = 0x47;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;
const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

const NAL_TYPE_IDR: u8 = 5;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_AUD: u8 = 9;
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// Access unit delimiter, primary_pic_type 7 (any slice type).
const AUD_NAL: [u8; 2] = [0x09, 0xF0];

/// What an AVCDecoderConfigurationRecord tells the muxer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AvcConfig {
    /// Size of the NAL length prefix in frames (1, 2 or 4).
    nal_length_size: usize,
    /// SPS and PPS NAL units, each preceded by a start code.
    parameter_sets_annexb: Vec<u8>,
}

/// The AudioSpecificConfig fields ADTS repeats in every frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AacConfig {
    /// ADTS profile: audio object type - 1, 2 bits.
    profile: u8,
    sampling_frequency_index: u8,
    channel_configuration: u8,
}

/// Stateful MPEG-TS muxer for one program with at most one H.264 and one AAC stream.
#[derive(Debug, Default)]
pub struct TsMuxer {
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    /// Continuity counters (4 bits) of PAT, PMT, video, audio.
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// Streams listed in the PMT last written, and its version.
    psi_streams: Option<(bool, bool)>,
    pmt_version: u8,
}

impl TsMuxer {
    pub fn new() -> Self {
        Self::default()
    }

    fn streams(&self) -> (bool, bool) {
        (self.avc.is_some(), self.aac.is_some())
    }

    /// Appends `unit` as TS packets. Sequence headers update the muxer's state and write
    /// nothing; a new stream makes the next media unit start with a new PAT/PMT.
    pub fn write_unit(&mut self, unit: &MediaUnit, out: &mut Vec<u8>) {
        match (unit.kind, unit.codec) {
            (UnitKind::Video, Codec::H264) => {
                if unit.config {
                    // A malformed record leaves the previous one in force.
                    if let Some(avc) = parse_avc_config(unit.payload()) {
                        self.avc = Some(avc);
                    }
                } else if !unit.payload().is_empty() {
                    self.write_video(unit, out);
                }
            }
            (UnitKind::Audio, Codec::Aac) => {
                if unit.config {
                    if let Some(aac) = parse_aac_config(unit.payload()) {
                        self.aac = Some(aac);
                    }
                } else if !unit.payload().is_empty() {
                    self.write_audio(unit, out);
                }
            }
            _ => {}
        }
    }

    /// Appends a PAT and a PMT listing the streams whose configuration has been seen.
    pub fn write_psi(&mut self, out: &mut Vec<u8>) {
        let streams = self.streams();
        if let Some(previous) = self.psi_streams
            && previous != streams
        {
            self.pmt_version = (self.pmt_version + 1) & 0x1F;
        }
        self.psi_streams = Some(streams);

        let mut pat = Vec::with_capacity(16);
        pat.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pat.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        let pat = psi_section(0x00, TRANSPORT_STREAM_ID, 0, &pat);
        write_psi_packet(PAT_PID, &mut self.cc_pat, &pat, out);

        let (has_video, has_audio) = streams;
        let pcr_pid = if has_video {
            VIDEO_PID
        } else if has_audio {
            AUDIO_PID
        } else {
            0x1FFF
        };
        let mut pmt = Vec::with_capacity(32);
        pmt.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
        pmt.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
        for (present, stream_type, pid) in [
            (has_video, STREAM_TYPE_H264, VIDEO_PID),
            (has_audio, STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ] {
            if present {
                pmt.push(stream_type);
                pmt.extend_from_slice(&(0xE000 | pid).to_be_bytes());
                pmt.extend_from_slice(&0xF000u16.to_be_bytes()); // ES_info_length 0
            }
        }
        let pmt = psi_section(0x02, PROGRAM_NUMBER, self.pmt_version, &pmt);
        write_psi_packet(PMT_PID, &mut self.cc_pmt, &pmt, out);
    }

    fn write_psi_if_needed(&mut self, keyframe: bool, out: &mut Vec<u8>) {
        if keyframe || self.psi_streams != Some(self.streams()) {
            self.write_psi(out);
        }
    }

    fn write_video(&mut self, unit: &MediaUnit, out: &mut Vec<u8>) {
        let nal_length_size = self.avc.as_ref().map_or(4, |avc| avc.nal_length_size);
        let Some(nals) = split_avcc(unit.payload(), nal_length_size) else {
            return; // Lengths overrun the frame: nothing decodable to send.
        };
        self.write_psi_if_needed(unit.keyframe, out);

        let nal_type = |nal: &[u8]| nal.first().map_or(0, |b| b & 0x1F);
        let has_aud = nals
            .first()
            .is_some_and(|nal| nal_type(nal) == NAL_TYPE_AUD);
        // Parameter sets go in once per access unit, and not at all if the frame has them.
        let mut need_parameter_sets = !nals.iter().any(|nal| nal_type(nal) == NAL_TYPE_SPS);

        let dts = ms_to_90khz(i64::from(unit.dts_ms));
        let pts = ms_to_90khz(unit.pts_ms());
        let mut pes = Vec::with_capacity(unit.payload().len() + 64);
        pes_header(
            STREAM_ID_VIDEO,
            pts,
            (pts != dts).then_some(dts),
            None,
            &mut pes,
        );
        if !has_aud {
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(&AUD_NAL);
        }
        for nal in nals {
            if need_parameter_sets
                && nal_type(nal) == NAL_TYPE_IDR
                && let Some(avc) = &self.avc
            {
                // Before the first IDR slice (after SEI), so they precede the picture.
                pes.extend_from_slice(&avc.parameter_sets_annexb);
                need_parameter_sets = false;
            }
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(nal);
        }
        write_pes_packets(
            VIDEO_PID,
            &mut self.cc_video,
            &pes,
            Some(dts),
            unit.keyframe,
            out,
        );
    }

    fn write_audio(&mut self, unit: &MediaUnit, out: &mut Vec<u8>) {
        let Some(aac) = self.aac else {
            return;
        };
        let payload = unit.payload();
        let frame_len = payload.len() + 7;
        if frame_len > 0x1FFF {
            return; // ADTS frame length is 13 bits; no real AAC frame is this large.
        }
        self.write_psi_if_needed(false, out);
        let pts = ms_to_90khz(i64::from(unit.dts_ms));
        let mut pes = Vec::with_capacity(frame_len + 14);
        pes_header(STREAM_ID_AUDIO, pts, None, Some(frame_len), &mut pes);
        write_adts_header(aac, frame_len, &mut pes);
        pes.extend_from_slice(payload);
        let pcr = (!self.streams().0).then_some(pts);
        write_pes_packets(AUDIO_PID, &mut self.cc_audio, &pes, pcr, false, out);
    }
}

fn ms_to_90khz(ms: i64) -> u64 {
    (ms * 90) as u64 & TIMESTAMP_MASK
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1).
fn parse_avc_config(record: &[u8]) -> Option<AvcConfig> {
    if record.len() < 7 || record[0] != 1 {
        return None;
    }
    let nal_length_size = usize::from(record[4] & 0x03) + 1;
    if nal_length_size == 3 {
        return None; // Not allowed by the spec.
    }
    let mut parameter_sets_annexb = Vec::new();
    let mut pos = 5;
    for count_mask in [0x1F, 0xFF] {
        let count = record.get(pos)? & count_mask;
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                *record.get(pos)?,
                *record.get(pos + 1)?,
            ]));
            let nal = record.get(pos + 2..pos + 2 + len)?;
            parameter_sets_annexb.extend_from_slice(&START_CODE);
            parameter_sets_annexb.extend_from_slice(nal);
            pos += 2 + len;
        }
    }
    Some(AvcConfig {
        nal_length_size,
        parameter_sets_annexb,
    })
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

/// Splits AVCC (length-prefixed) NAL units; `None` if a length runs past the end.
fn split_avcc(mut data: &[u8], nal_length_size: usize) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    while !data.is_empty() {
        let prefix = data.get(..nal_length_size)?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let nal = data.get(nal_length_size..nal_length_size + len)?;
        if !nal.is_empty() {
            nals.push(nal);
        }
        data = &data[nal_length_size + len..];
    }
    Some(nals)
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
    let mut rest = pes;
    let mut first = true;
    while !rest.is_empty() {
        // Adaptation field body (after its length byte): flags, then PCR.
        let mut adaptation = Vec::new();
        if first && (pcr.is_some() || random_access) {
            let mut flags = 0u8;
            if random_access {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
            }
            adaptation.push(flags);
            if let Some(pcr) = pcr {
                adaptation.extend_from_slice(&[
                    (pcr >> 25) as u8,
                    (pcr >> 17) as u8,
                    (pcr >> 9) as u8,
                    (pcr >> 1) as u8,
                    ((pcr as u8 & 1) << 7) | 0x7E,
                    0,
                ]);
            }
        }
        let mut has_adaptation = !adaptation.is_empty();
        let mut room = 184
            - if has_adaptation {
                1 + adaptation.len()
            } else {
                0
            };
        if rest.len() < room {
            let stuffing = room - rest.len();
            if has_adaptation {
                adaptation.resize(adaptation.len() + stuffing, 0xFF);
            } else {
                has_adaptation = true;
                // One byte of stuffing is the length byte alone (length 0).
                if stuffing >= 2 {
                    adaptation.push(0x00);
                    adaptation.resize(stuffing - 1, 0xFF);
                }
            }
            room = rest.len();
        }
        let start = out.len();
        out.push(SYNC_BYTE);
        out.push((u8::from(first) << 6) | (pid >> 8) as u8 & 0x1F);
        out.push(pid as u8);
        out.push(if has_adaptation { 0x30 } else { 0x10 } | *cc);
        *cc = (*cc + 1) & 0x0F;
        if has_adaptation {
            out.push(adaptation.len() as u8);
            out.extend_from_slice(&adaptation);
        }
        out.extend_from_slice(&rest[..room]);
        debug_assert_eq!(out.len() - start, TS_PACKET_LEN);
        rest = &rest[room..];
        first = false;
    }
}

/// Builds a PSI section with the long syntax and CRC.
fn psi_section(table_id: u8, id: u16, version: u8, body: &[u8]) -> Vec<u8> {
    // After section_length: id (2), version (1), section numbers (2), body, CRC (4).
    let section_len = 5 + body.len() + 4;
    let mut section = Vec::with_capacity(3 + section_len);
    section.push(table_id);
    section.extend_from_slice(&(0xB000 | section_len as u16).to_be_bytes());
    section.extend_from_slice(&id.to_be_bytes());
    section.push(0xC1 | (version << 1)); // reserved, version, current_next_indicator
    section.extend_from_slice(&[0, 0]);
    section.extend_from_slice(body);
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    section
}

fn write_psi_packet(pid: u16, cc: &mut u8, section: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[
        SYNC_BYTE,
        0x40 | (pid >> 8) as u8 & 0x1F,
        pid as u8,
        0x10 | *cc,
    ]);
    *cc = (*cc + 1) & 0x0F;
    out.push(0); // pointer_field
    out.extend_from_slice(section);
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
