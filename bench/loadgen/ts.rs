//! A minimal streaming MPEG-TS walker (ISO/IEC 13818-1) for the load generator's HTTP-TS
//! readers: enough to find the video PID and the timestamps and random access points of its
//! PES packets, so that a TS reader measures media-time lag and first-keyframe latency the
//! way an FLV reader does.
//!
//! What it does with each 188-byte packet (sync byte 0x47 at every packet boundary; a wrong
//! one is [`TsError::SyncLost`], since a relay that loses sync is a bug worth seeing):
//! - PID 0: the PAT; the first program (number ≠ 0) names the PMT PID.
//! - The PMT PID: the PMT; the first elementary stream of a video stream type (H.264, HEVC,
//!   MPEG-1/2/4 video, VVC) is "the video PID". A new PMT version may move it.
//! - The video PID: at each payload_unit_start_indicator, the PES header's PTS/DTS (DTS when
//!   present, else PTS; 90 kHz, 33 bits, unwrapped across the 2^33 wrap) and the
//!   random_access_indicator of that packet's adaptation field become one [`PesInfo`],
//!   reported as soon as the PES header is complete (the rest of the PES is not buffered:
//!   a video PES usually has no length, and a relay sends a frame's packets together, so the
//!   header's arrival is the frame's, to within the frame's own transmission time).
//! - Every other PID (audio, null packets, ...) is skipped.
//!
//! Section CRCs are not checked (a bench tool that sees a bad CRC can do nothing better than
//! walk on); a PSI section longer than [`TsLimits::max_section_bytes`] is an error.
//!
//! Sans-IO, like the FLV walker: [`TsWalker::next_event`] takes bytes and returns how many it
//! used and at most one event; the caller loops. State per reader: one packet (188 bytes),
//! one PSI section under assembly, the 19-byte head of the current PES.

/// Size of a transport stream packet.
pub const TS_PACKET_LEN: usize = 188;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const TIMESTAMP_BITS: u32 = 33;
/// PES header bytes needed: 6 (start code, stream id, length) + 3 (flags, header length) +
/// PTS (5) + DTS (5).
const PES_HEAD_MAX_BYTES: usize = 19;

/// Limits the walker enforces; every one is a named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsLimits {
    /// Longest PSI section (PAT, PMT) accepted, header and CRC included. The format caps
    /// section_length at 1021 for PAT and PMT, so 1024 in all.
    pub max_section_bytes: usize,
}

impl Default for TsLimits {
    fn default() -> Self {
        Self {
            max_section_bytes: 1024,
        }
    }
}

/// Every way the peer's bytes can fail to be the TS this walker needs; all the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsError {
    /// A packet does not start with 0x47.
    SyncLost,
    /// An adaptation field longer than the packet.
    BadAdaptationField,
    /// A PAT or PMT section that is malformed or longer than [`TsLimits::max_section_bytes`].
    BadSection,
    /// A PES on the video PID that does not start with the 00 00 01 start code, or whose
    /// header flags are malformed.
    BadPes,
}

/// One PES packet of the video PID, reported when its header is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesInfo {
    /// DTS (or PTS when there is no DTS) in milliseconds on a continuous (unwrapped)
    /// timeline, truncated to 32 bits like an FLV timestamp; `None` for a PES without either.
    pub dts_ms: Option<u32>,
    /// The random_access_indicator of the PES's first packet (a keyframe).
    pub random_access: bool,
}

/// Events in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsEvent {
    /// A PMT was read; `video_pid` is the video PID it names, if any.
    Pmt {
        video_pid: Option<u16>,
    },
    Pes(PesInfo),
}

/// A PSI section being assembled from packet payloads.
#[derive(Debug, Clone, Default)]
struct Section {
    pid: u16,
    bytes: Vec<u8>,
    /// Whether bytes are being collected (a section start was seen on `pid`).
    active: bool,
}

/// The head of the current video PES.
#[derive(Debug, Clone, Copy)]
struct PesHead {
    bytes: [u8; PES_HEAD_MAX_BYTES],
    len: usize,
    random_access: bool,
    /// Collecting (a PES started and its header is not complete yet).
    active: bool,
}

/// Streaming TS walker; see the module docs.
#[derive(Debug, Clone)]
pub struct TsWalker {
    limits: TsLimits,
    packet: [u8; TS_PACKET_LEN],
    packet_len: usize,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    section: Section,
    pes: PesHead,
    /// Last timestamp, raw (33 bits) and unwrapped (90 kHz).
    last_ts: Option<(u64, i64)>,
    /// Packets walked, for the caller's curiosity and the tests.
    pub packets: u64,
}

impl TsWalker {
    pub fn new(limits: TsLimits) -> Self {
        Self {
            limits,
            packet: [0; TS_PACKET_LEN],
            packet_len: 0,
            pmt_pid: None,
            video_pid: None,
            section: Section::default(),
            pes: PesHead {
                bytes: [0; PES_HEAD_MAX_BYTES],
                len: 0,
                random_access: false,
                active: false,
            },
            last_ts: None,
            packets: 0,
        }
    }

    /// Consumes bytes from `input`, stopping after at most one event. Returns the number of
    /// bytes used and the event, if one completed. Call again with the rest of the input
    /// until it is all used; `(0, None)` happens only for empty input.
    pub fn next_event(&mut self, input: &[u8]) -> Result<(usize, Option<TsEvent>), TsError> {
        let mut used = 0;
        while used < input.len() {
            let take = (TS_PACKET_LEN - self.packet_len).min(input.len() - used);
            self.packet[self.packet_len..self.packet_len + take]
                .copy_from_slice(&input[used..used + take]);
            if self.packet_len == 0 && self.packet[0] != SYNC_BYTE {
                return Err(TsError::SyncLost);
            }
            self.packet_len += take;
            used += take;
            if self.packet_len < TS_PACKET_LEN {
                break;
            }
            self.packet_len = 0;
            self.packets += 1;
            if let Some(event) = self.on_packet()? {
                return Ok((used, Some(event)));
            }
        }
        Ok((used, None))
    }

    /// Walks one whole packet (in `self.packet`).
    fn on_packet(&mut self) -> Result<Option<TsEvent>, TsError> {
        let p = self.packet;
        // Transport error indicator: the packet is known to be damaged; skip it.
        if p[1] & 0x80 != 0 {
            return Ok(None);
        }
        let start = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let control = (p[3] >> 4) & 0x03;
        let mut payload_at = 4;
        let mut random_access = false;
        if control & 0x02 != 0 {
            let af_len = usize::from(p[4]);
            if af_len > TS_PACKET_LEN - 5 {
                return Err(TsError::BadAdaptationField);
            }
            if af_len > 0 {
                random_access = p[5] & 0x40 != 0;
            }
            payload_at = 5 + af_len;
        }
        // No payload (adaptation field only, or the reserved control value 0).
        if control & 0x01 == 0 {
            return Ok(None);
        }
        let payload = &p[payload_at..];
        if pid == PAT_PID || Some(pid) == self.pmt_pid {
            return self.on_psi(pid, start, payload);
        }
        if Some(pid) == self.video_pid {
            return self.on_video(start, random_access, payload);
        }
        Ok(None)
    }

    fn on_psi(
        &mut self,
        pid: u16,
        start: bool,
        payload: &[u8],
    ) -> Result<Option<TsEvent>, TsError> {
        let data = if start {
            // pointer_field: bytes that finish a previous section come first; this walker
            // assembles sections that start in their own packet, which is what muxers write.
            let pointer = usize::from(*payload.first().ok_or(TsError::BadSection)?);
            let from = 1 + pointer;
            if from > payload.len() {
                return Err(TsError::BadSection);
            }
            self.section = Section {
                pid,
                bytes: Vec::with_capacity(TS_PACKET_LEN),
                active: true,
            };
            &payload[from..]
        } else if self.section.active && self.section.pid == pid {
            payload
        } else {
            return Ok(None);
        };
        self.section.bytes.extend_from_slice(data);
        // table_id (1), then section_length in the low 12 bits of the next two bytes.
        let [_, b1, b2, ..] = self.section.bytes[..] else {
            return Ok(None);
        };
        if self.section.bytes[0] == 0xFF {
            // Stuffing where a section would start: nothing here.
            self.section.active = false;
            return Ok(None);
        }
        let total = 3 + ((usize::from(b1 & 0x0F) << 8) | usize::from(b2));
        if total > self.limits.max_section_bytes {
            return Err(TsError::BadSection);
        }
        if self.section.bytes.len() < total {
            if self.section.bytes.len() > self.limits.max_section_bytes {
                return Err(TsError::BadSection);
            }
            return Ok(None);
        }
        self.section.active = false;
        let section = std::mem::take(&mut self.section.bytes);
        let section = &section[..total];
        if pid == PAT_PID {
            self.pmt_pid = parse_pat(section)?.or(self.pmt_pid);
            Ok(None)
        } else {
            let video_pid = parse_pmt(section)?;
            if video_pid != self.video_pid {
                // A new video PID: whatever PES head was being read belonged to the old one.
                self.pes.active = false;
            }
            self.video_pid = video_pid;
            Ok(Some(TsEvent::Pmt { video_pid }))
        }
    }

    fn on_video(
        &mut self,
        start: bool,
        random_access: bool,
        payload: &[u8],
    ) -> Result<Option<TsEvent>, TsError> {
        if start {
            self.pes.len = 0;
            self.pes.random_access = random_access;
            self.pes.active = true;
        } else if !self.pes.active {
            return Ok(None);
        }
        let take = (PES_HEAD_MAX_BYTES - self.pes.len).min(payload.len());
        self.pes.bytes[self.pes.len..self.pes.len + take].copy_from_slice(&payload[..take]);
        self.pes.len += take;
        let Some(raw) = parse_pes_timestamp(&self.pes.bytes[..self.pes.len])? else {
            // Header incomplete: wait for the next packet of this PID.
            return Ok(None);
        };
        self.pes.active = false;
        let dts_ms = raw.map(|raw| self.unwrap_90khz(raw).div_euclid(90) as u32);
        Ok(Some(TsEvent::Pes(PesInfo {
            dts_ms,
            random_access: self.pes.random_access,
        })))
    }

    /// Extends a 33-bit timestamp to a continuous timeline: each step is taken as the
    /// shortest way around the 2^33 circle from the previous timestamp.
    fn unwrap_90khz(&mut self, raw: u64) -> i64 {
        let unwrapped = match self.last_ts {
            None => raw as i64,
            Some((last_raw, last)) => {
                let modulus = 1i64 << TIMESTAMP_BITS;
                let mut step = (raw as i64 - last_raw as i64).rem_euclid(modulus);
                if step >= modulus / 2 {
                    step -= modulus;
                }
                last + step
            }
        };
        self.last_ts = Some((raw, unwrapped));
        unwrapped
    }
}

/// The PMT PID of the first program (number ≠ 0; 0 is the network PID) of a PAT section.
fn parse_pat(section: &[u8]) -> Result<Option<u16>, TsError> {
    // table_id 0, 5 bytes after section_length, then 4-byte entries, then a 4-byte CRC.
    if section.first() != Some(&0x00) || section.len() < 12 {
        return Err(TsError::BadSection);
    }
    let entries = &section[8..section.len() - 4];
    for entry in entries.chunks_exact(4) {
        let program = u16::from_be_bytes([entry[0], entry[1]]);
        if program != 0 {
            return Ok(Some(
                (u16::from(entry[2] & 0x1F) << 8) | u16::from(entry[3]),
            ));
        }
    }
    Ok(None)
}

/// Whether a PMT stream_type is video (ISO/IEC 13818-1 Table 2-34 and its amendments).
fn is_video_stream_type(stream_type: u8) -> bool {
    // MPEG-1, MPEG-2, MPEG-4 part 2, H.264, H.265, H.266.
    matches!(stream_type, 0x01 | 0x02 | 0x10 | 0x1B | 0x24 | 0x33)
}

/// The first video elementary PID of a PMT section.
fn parse_pmt(section: &[u8]) -> Result<Option<u16>, TsError> {
    // table_id 2; after section_length: program_number (2), version (1), section numbers (2),
    // PCR_PID (2), program_info_length (2), descriptors, ES loop, CRC (4).
    if section.first() != Some(&0x02) || section.len() < 16 {
        return Err(TsError::BadSection);
    }
    let info_len = (usize::from(section[10] & 0x0F) << 8) | usize::from(section[11]);
    let end = section.len() - 4;
    let mut at = 12 + info_len;
    while at + 5 <= end {
        let stream_type = section[at];
        let pid = (u16::from(section[at + 1] & 0x1F) << 8) | u16::from(section[at + 2]);
        let es_info_len = (usize::from(section[at + 3] & 0x0F) << 8) | usize::from(section[at + 4]);
        if is_video_stream_type(stream_type) {
            return Ok(Some(pid));
        }
        at += 5 + es_info_len;
    }
    if at > end {
        return Err(TsError::BadSection);
    }
    Ok(None)
}

/// Parses the head of a PES packet: `Ok(None)` when more bytes are needed, `Ok(Some(ts))`
/// once the timestamp fields are in (`ts` = DTS, else PTS, else `None`).
#[allow(clippy::option_option)] // "incomplete" and "complete without a timestamp" differ
fn parse_pes_timestamp(head: &[u8]) -> Result<Option<Option<u64>>, TsError> {
    let prefix = head.len().min(3);
    if head[..prefix] != [0, 0, 1][..prefix] {
        return Err(TsError::BadPes);
    }
    if head.len() < 9 {
        return Ok(None);
    }
    // Stream ids without the optional PES header (program stream map, padding, private 2,
    // ECM, EMM, directory, DSMCC, H.222.1 type E): no timestamps.
    if matches!(
        head[3],
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return Ok(Some(None));
    }
    if head[6] & 0xC0 != 0x80 {
        return Err(TsError::BadPes);
    }
    let header_data_len = usize::from(head[8]);
    let (need, field) = match head[7] >> 6 {
        0b10 => (5, 9),   // PTS only
        0b11 => (10, 14), // PTS then DTS: take the DTS
        0b00 => return Ok(Some(None)),
        _ => return Err(TsError::BadPes),
    };
    if header_data_len < need {
        return Err(TsError::BadPes);
    }
    if head.len() < 9 + need {
        return Ok(None);
    }
    let b = &head[field..field + 5];
    let ts = (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1);
    Ok(Some(Some(ts)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const PMT: u16 = 0x1000;
    const VIDEO: u16 = 0x100;
    const AUDIO: u16 = 0x101;

    fn packet(pid: u16, start: bool, adaptation: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            SYNC_BYTE,
            (u8::from(start) << 6) | (pid >> 8) as u8,
            pid as u8,
            0,
        ];
        let room = TS_PACKET_LEN - 4 - adaptation.map_or(0, |a| a.len() + 1);
        assert!(payload.len() <= room, "test payload too long");
        // Stuff with an adaptation field so the payload ends the packet.
        let stuffing = room - payload.len();
        let mut af: Vec<u8> = adaptation.map(<[u8]>::to_vec).unwrap_or_default();
        if stuffing > 0 && af.is_empty() {
            af.push(0);
            af.resize(stuffing - 1, 0xFF);
            p[3] = 0x30;
            p.push(af.len() as u8);
            p.extend_from_slice(&af);
        } else if adaptation.is_some() || stuffing > 0 {
            af.resize(af.len() + stuffing, 0xFF);
            p[3] = 0x30;
            p.push(af.len() as u8);
            p.extend_from_slice(&af);
        } else {
            p[3] = 0x10;
        }
        p.extend_from_slice(payload);
        assert_eq!(p.len(), TS_PACKET_LEN);
        p
    }

    fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() + 5 + 4;
        let mut s = vec![
            table_id,
            0xB0 | (len >> 8) as u8,
            len as u8,
            0,
            1,
            0xC1,
            0,
            0,
        ];
        s.extend_from_slice(body);
        s.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]); // CRC (not checked)
        s
    }

    fn psi_packet(pid: u16, section: &[u8]) -> Vec<u8> {
        let mut payload = vec![0]; // pointer_field
        payload.extend_from_slice(section);
        packet(pid, true, None, &payload)
    }

    pub(crate) fn pat() -> Vec<u8> {
        psi_packet(
            PAT_PID,
            &section(
                0,
                &[0, 0, 0xE0, 0x10, 0, 1, 0xE0 | (PMT >> 8) as u8, PMT as u8],
            ),
        )
    }

    pub(crate) fn pmt() -> Vec<u8> {
        let body = [
            0xE1, 0x00, 0xF0, 0x00, // PCR PID 0x100, no program info
            0x0F, 0xE1, 0x01, 0xF0, 0x00, // AAC on 0x101
            0x1B, 0xE1, 0x00, 0xF0, 0x00, // H.264 on 0x100
        ];
        psi_packet(PMT, &section(2, &body))
    }

    fn timestamp(marker: u8, ts: u64) -> [u8; 5] {
        [
            (marker << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
            (ts >> 22) as u8,
            (((ts >> 15) as u8) << 1) | 1,
            (ts >> 7) as u8,
            ((ts as u8) << 1) | 1,
        ]
    }

    pub(crate) fn pes(pid: u16, pts: u64, dts: Option<u64>, key: bool) -> Vec<u8> {
        let stream_id = if pid == AUDIO { 0xC0 } else { 0xE0 };
        let mut head = vec![0, 0, 1, stream_id, 0, 0, 0x80];
        match dts {
            Some(dts) => {
                head.extend_from_slice(&[0xC0, 10]);
                head.extend_from_slice(&timestamp(3, pts));
                head.extend_from_slice(&timestamp(1, dts));
            }
            None => {
                head.extend_from_slice(&[0x80, 5]);
                head.extend_from_slice(&timestamp(2, pts));
            }
        }
        head.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xF0]);
        let adaptation: &[u8] = if key { &[0x40] } else { &[0x00] };
        let mut out = packet(pid, true, Some(adaptation), &head);
        // A continuation packet of the same PES.
        out.extend(packet(pid, false, None, &[0xAB; 184]));
        out
    }

    /// PAT, PMT, a keyframe (PTS + DTS), an audio PES, an inter frame (PTS only).
    pub(crate) fn sample_stream() -> Vec<u8> {
        let mut s = pat();
        s.extend(pmt());
        s.extend(pes(VIDEO, 3_690, Some(3_600), true));
        s.extend(pes(AUDIO, 3_600, None, false));
        s.extend(pes(VIDEO, 6_600, None, false));
        s
    }

    fn walk_all(w: &mut TsWalker, mut input: &[u8]) -> Result<Vec<TsEvent>, TsError> {
        let mut events = Vec::new();
        while !input.is_empty() {
            let (n, ev) = w.next_event(input)?;
            assert!(n > 0, "no progress on non-empty input");
            events.extend(ev);
            input = &input[n..];
        }
        Ok(events)
    }

    #[test]
    fn finds_video_pid_and_reports_video_pes_only() {
        let mut w = TsWalker::new(TsLimits::default());
        let events = walk_all(&mut w, &sample_stream()).unwrap();
        assert_eq!(
            events,
            [
                TsEvent::Pmt {
                    video_pid: Some(VIDEO)
                },
                TsEvent::Pes(PesInfo {
                    dts_ms: Some(40),
                    random_access: true
                }),
                TsEvent::Pes(PesInfo {
                    dts_ms: Some(73),
                    random_access: false
                }),
            ]
        );
        assert_eq!(w.packets, 8);
    }

    #[test]
    fn byte_at_a_time_gives_same_events() {
        let s = sample_stream();
        let whole = walk_all(&mut TsWalker::new(TsLimits::default()), &s).unwrap();
        let mut w = TsWalker::new(TsLimits::default());
        let mut split = Vec::new();
        for b in &s {
            split.extend(walk_all(&mut w, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(whole, split);
    }

    #[test]
    fn pes_head_split_over_packets() {
        // A keyframe whose first packet is nearly all adaptation field: 4 header bytes in
        // it, the rest in the next packet of the PID.
        let mut s = pat();
        s.extend(pmt());
        let full = pes(VIDEO, 9_000, Some(9_000), true);
        let head = &full[TS_PACKET_LEN - 25..TS_PACKET_LEN - 6]; // the 19 header bytes
        let mut af = vec![0x40];
        af.resize(TS_PACKET_LEN - 4 - 1 - 4, 0xFF);
        s.extend(packet(VIDEO, true, Some(&af), &head[..4]));
        s.extend(packet(AUDIO, false, None, &[0; 184]));
        let mut rest = head[4..].to_vec();
        rest.resize(184, 0);
        s.extend(packet(VIDEO, false, None, &rest));
        let events = walk_all(&mut TsWalker::new(TsLimits::default()), &s).unwrap();
        assert_eq!(
            events.last(),
            Some(&TsEvent::Pes(PesInfo {
                dts_ms: Some(100),
                random_access: true
            }))
        );
    }

    #[test]
    fn timestamps_unwrap_across_33_bits() {
        let mut s = pat();
        s.extend(pmt());
        let wrap = 1u64 << 33;
        s.extend(pes(VIDEO, wrap - 900, None, true)); // 10 ms before the wrap
        s.extend(pes(VIDEO, 900, None, false)); // 10 ms after it
        let events = walk_all(&mut TsWalker::new(TsLimits::default()), &s).unwrap();
        let dts: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                TsEvent::Pes(p) => p.dts_ms,
                TsEvent::Pmt { .. } => None,
            })
            .collect();
        assert_eq!(dts.len(), 2);
        assert_eq!(dts[1].wrapping_sub(dts[0]), 20);
    }

    #[test]
    fn video_before_pmt_is_ignored_and_errors_are_reported() {
        // PES before any PAT/PMT: nothing to report yet.
        let s = pes(VIDEO, 0, None, true);
        assert_eq!(
            walk_all(&mut TsWalker::new(TsLimits::default()), &s),
            Ok(vec![])
        );
        let mut s = sample_stream();
        s[TS_PACKET_LEN * 3] = 0x48;
        assert_eq!(
            walk_all(&mut TsWalker::new(TsLimits::default()), &s),
            Err(TsError::SyncLost)
        );
        // A video PES without a start code.
        let mut s = pat();
        s.extend(pmt());
        let mut bad = pes(VIDEO, 0, None, false);
        let at = TS_PACKET_LEN - 20; // 9 + 5 header bytes and a 6-byte AUD end the packet
        bad[at + 2] = 2;
        s.extend(bad);
        assert_eq!(
            walk_all(&mut TsWalker::new(TsLimits::default()), &s),
            Err(TsError::BadPes)
        );
        // An adaptation field longer than the packet.
        let mut s = pat();
        s[3] = 0x30;
        s[4] = 184;
        assert_eq!(
            walk_all(&mut TsWalker::new(TsLimits::default()), &s),
            Err(TsError::BadAdaptationField)
        );
    }

    proptest! {
        /// Splitting the input anywhere must not change the events.
        #[test]
        fn any_split_gives_same_events(cuts in proptest::collection::vec(0usize..1600, 0..12)) {
            let s = sample_stream();
            let whole = walk_all(&mut TsWalker::new(TsLimits::default()), &s).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
            cuts.sort_unstable();
            let mut w = TsWalker::new(TsLimits::default());
            let mut got = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain(std::iter::once(s.len())) {
                got.extend(walk_all(&mut w, &s[start..c]).unwrap());
                start = c;
            }
            prop_assert_eq!(whole, got);
        }

        /// Arbitrary packets never panic.
        #[test]
        fn random_packets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut input = pat();
            input.extend(pmt());
            for chunk in data.chunks(187) {
                input.push(SYNC_BYTE);
                input.extend_from_slice(chunk);
            }
            let _ = walk_all(&mut TsWalker::new(TsLimits::default()), &input);
        }
    }
}
