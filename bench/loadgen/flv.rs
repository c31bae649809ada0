//! A minimal streaming FLV tag walker for the load generator.
//!
//! The server crate's own demuxer is being written at the same time, and a measuring tool
//! should not depend on the code it measures anyway, so this is a small, independent
//! walker: it checks the 9-byte header, then walks `tag header (11) | body | PreviousTagSize
//! (4)` and reports one [`TagInfo`] per complete tag. It never buffers a tag body: it keeps
//! only the first two body bytes (enough to classify video and audio), so a reader costs a
//! few dozen bytes of state however large the tags are.
//!
//! Sans-IO in the house style: [`FlvWalker::next_event`] takes bytes and returns how many it
//! used plus at most one event; the caller loops. No clock, no sockets.

/// What kind of FLV tag this is (FLV spec, TagType field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
    /// Any other tag type value; kept so that the caller can count it.
    Other(u8),
}

/// One complete tag, reported when its last body byte has arrived (that is when a player
/// could use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    pub kind: TagKind,
    /// Decode timestamp in milliseconds (24-bit field plus the extended upper byte).
    pub dts_ms: u32,
    pub data_len_bytes: u32,
    /// Video only: frame type 1 (a keyframe / IDR picture).
    pub video_keyframe: bool,
    /// Codec configuration rather than media: an AVC/HEVC sequence header, an enhanced-FLV
    /// SequenceStart, or an AAC AudioSpecificConfig. Players need it but it is not a picture
    /// or a sound, so the load generator does not count it as "media arrived".
    pub config: bool,
}

/// Events in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvEvent {
    Header { has_audio: bool, has_video: bool },
    Tag(TagInfo),
}

/// Every way the peer's bytes can fail to be FLV. All of them are the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvError {
    /// The first three bytes are not `FLV`.
    BadSignature,
    /// The header's data offset is below 9 or above [`FlvLimits::max_header_bytes`].
    BadHeaderLength,
    /// A tag's DataSize exceeds [`FlvLimits::max_tag_data_bytes`].
    TagTooLarge,
    /// A PreviousTagSize field does not equal 11 + DataSize of the tag before it.
    PrevTagSizeMismatch,
}

/// Limits the walker enforces; every one is a named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvLimits {
    /// Largest accepted tag body. The format allows 16 MiB - 1; real streams stay far below.
    pub max_tag_data_bytes: u32,
    /// Largest accepted header data offset (the spec says 9 for version 1).
    pub max_header_bytes: u32,
    /// Whether to check each PreviousTagSize. Some muxers write 0; ours must not.
    pub check_prev_tag_size: bool,
}

impl Default for FlvLimits {
    fn default() -> Self {
        Self {
            max_tag_data_bytes: 8 * 1024 * 1024,
            max_header_bytes: 1024,
            check_prev_tag_size: true,
        }
    }
}

const FLV_HEADER_LEN_BYTES: usize = 9;
const TAG_HEADER_LEN_BYTES: usize = 11;
const PREV_TAG_SIZE_LEN_BYTES: usize = 4;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting the 9-byte header.
    Header,
    /// Skipping header bytes beyond 9 (data offset > 9).
    HeaderExtra {
        remaining: u32,
    },
    /// Collecting a PreviousTagSize; `expected` is 11 + DataSize of the tag before (0 first).
    PrevTagSize {
        expected: u32,
    },
    TagHeader,
    TagBody {
        kind: TagKind,
        dts_ms: u32,
        data_len_bytes: u32,
        remaining: u32,
    },
}

/// Streaming FLV walker; see the module docs.
#[derive(Debug, Clone)]
pub struct FlvWalker {
    limits: FlvLimits,
    state: State,
    /// Partial fixed-size field (header, tag header or PreviousTagSize).
    field: [u8; TAG_HEADER_LEN_BYTES],
    field_len: usize,
    /// First two body bytes of the current tag.
    body_head: [u8; 2],
    body_head_len: usize,
}

impl FlvWalker {
    pub fn new(limits: FlvLimits) -> Self {
        Self {
            limits,
            state: State::Header,
            field: [0; TAG_HEADER_LEN_BYTES],
            field_len: 0,
            body_head: [0; 2],
            body_head_len: 0,
        }
    }

    /// A walker for the body of an RTMP aggregate message: FLV tags with their
    /// PreviousTagSize fields but no file header.
    pub fn new_tags_only(limits: FlvLimits) -> Self {
        Self {
            state: State::TagHeader,
            ..Self::new(limits)
        }
    }

    /// Whether the walker stands between tags (no tag or PreviousTagSize half-read), which is
    /// where an aggregate message's body must end.
    pub fn is_between_tags(&self) -> bool {
        self.field_len == 0 && matches!(self.state, State::TagHeader | State::PrevTagSize { .. })
    }

    /// Copies bytes of a fixed-size field; returns how many were used and whether the field
    /// is now complete.
    fn fill_field(&mut self, input: &[u8], want: usize) -> (usize, bool) {
        let take = (want - self.field_len).min(input.len());
        self.field[self.field_len..self.field_len + take].copy_from_slice(&input[..take]);
        self.field_len += take;
        (take, self.field_len == want)
    }

    /// Consumes bytes from `input`, stopping after at most one event. Returns the number of
    /// bytes used and the event, if one completed. Call again with the rest of the input
    /// until it is all used; `(0, None)` happens only for empty input.
    pub fn next_event(&mut self, input: &[u8]) -> Result<(usize, Option<FlvEvent>), FlvError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.state {
                State::Header => {
                    let (n, done) = self.fill_field(rest, FLV_HEADER_LEN_BYTES);
                    used += n;
                    if !done {
                        continue;
                    }
                    self.field_len = 0;
                    let f = &self.field;
                    if &f[..3] != b"FLV" {
                        return Err(FlvError::BadSignature);
                    }
                    let flags = f[4];
                    let offset = u32::from_be_bytes([f[5], f[6], f[7], f[8]]);
                    if offset < FLV_HEADER_LEN_BYTES as u32 || offset > self.limits.max_header_bytes
                    {
                        return Err(FlvError::BadHeaderLength);
                    }
                    let extra = offset - FLV_HEADER_LEN_BYTES as u32;
                    self.state = if extra > 0 {
                        State::HeaderExtra { remaining: extra }
                    } else {
                        State::PrevTagSize { expected: 0 }
                    };
                    let event = FlvEvent::Header {
                        has_audio: flags & 0x04 != 0,
                        has_video: flags & 0x01 != 0,
                    };
                    return Ok((used, Some(event)));
                }
                State::HeaderExtra { remaining } => {
                    let n = (remaining as usize).min(rest.len());
                    used += n;
                    let remaining = remaining - n as u32;
                    self.state = if remaining == 0 {
                        State::PrevTagSize { expected: 0 }
                    } else {
                        State::HeaderExtra { remaining }
                    };
                }
                State::PrevTagSize { expected } => {
                    let (n, done) = self.fill_field(rest, PREV_TAG_SIZE_LEN_BYTES);
                    used += n;
                    if !done {
                        continue;
                    }
                    self.field_len = 0;
                    let f = &self.field;
                    let got = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                    if self.limits.check_prev_tag_size && got != expected {
                        return Err(FlvError::PrevTagSizeMismatch);
                    }
                    self.state = State::TagHeader;
                }
                State::TagHeader => {
                    let (n, done) = self.fill_field(rest, TAG_HEADER_LEN_BYTES);
                    used += n;
                    if !done {
                        continue;
                    }
                    self.field_len = 0;
                    let f = &self.field;
                    // The low 5 bits are the type; bit 5 is the "filter" (encryption) flag.
                    let kind = match f[0] & 0x1f {
                        8 => TagKind::Audio,
                        9 => TagKind::Video,
                        18 => TagKind::Script,
                        other => TagKind::Other(other),
                    };
                    let data_len_bytes = u32::from_be_bytes([0, f[1], f[2], f[3]]);
                    if data_len_bytes > self.limits.max_tag_data_bytes {
                        return Err(FlvError::TagTooLarge);
                    }
                    // Timestamp: 24 low bits, then TimestampExtended as the upper 8 bits.
                    let dts_ms = u32::from_be_bytes([f[7], f[4], f[5], f[6]]);
                    self.body_head_len = 0;
                    self.state = State::TagBody {
                        kind,
                        dts_ms,
                        data_len_bytes,
                        remaining: data_len_bytes,
                    };
                    if data_len_bytes == 0 {
                        return Ok((used, Some(self.finish_tag())));
                    }
                }
                State::TagBody {
                    kind,
                    dts_ms,
                    data_len_bytes,
                    remaining,
                } => {
                    let n = (remaining as usize).min(rest.len());
                    let head_take = (2 - self.body_head_len).min(n);
                    self.body_head[self.body_head_len..self.body_head_len + head_take]
                        .copy_from_slice(&rest[..head_take]);
                    self.body_head_len += head_take;
                    used += n;
                    let remaining = remaining - n as u32;
                    self.state = State::TagBody {
                        kind,
                        dts_ms,
                        data_len_bytes,
                        remaining,
                    };
                    if remaining == 0 {
                        return Ok((used, Some(self.finish_tag())));
                    }
                }
            }
        }
        Ok((used, None))
    }

    /// Classifies the tag whose body just completed and moves on to its PreviousTagSize.
    fn finish_tag(&mut self) -> FlvEvent {
        let State::TagBody {
            kind,
            dts_ms,
            data_len_bytes,
            ..
        } = self.state
        else {
            unreachable!("finish_tag is only called in TagBody");
        };
        let (video_keyframe, config) = classify(kind, &self.body_head[..self.body_head_len]);
        self.state = State::PrevTagSize {
            expected: data_len_bytes + TAG_HEADER_LEN_BYTES as u32,
        };
        FlvEvent::Tag(TagInfo {
            kind,
            dts_ms,
            data_len_bytes,
            video_keyframe,
            config,
        })
    }
}

/// Classifies a tag (or an RTMP audio/video message, whose body is an FLV tag body) from its
/// first body bytes: `(video keyframe, codec configuration)`. `head` may be shorter than two
/// bytes (an empty or one-byte body); what it cannot tell is reported as `false`.
pub fn classify(kind: TagKind, head: &[u8]) -> (bool, bool) {
    let b0 = head.first().copied();
    let b1 = head.get(1).copied();
    match (kind, b0) {
        (TagKind::Video, Some(b0)) => {
            let keyframe = (b0 >> 4) & 0x07 == 1;
            let config = if b0 & 0x80 != 0 {
                // Enhanced FLV: IsExHeader set, low nibble is the PacketType;
                // 0 = SequenceStart.
                b0 & 0x0f == 0
            } else {
                // Legacy AVC (7) or the common HEVC extension (12): AVCPacketType 0.
                matches!(b0 & 0x0f, 7 | 12) && b1 == Some(0)
            };
            (keyframe, config)
        }
        // AAC (SoundFormat 10) with AACPacketType 0 is the AudioSpecificConfig.
        (TagKind::Audio, Some(b0)) => (false, b0 >> 4 == 10 && b1 == Some(0)),
        _ => (false, false),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn header(has_audio: bool, has_video: bool) -> Vec<u8> {
        let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
        let mut v = b"FLV\x01".to_vec();
        v.push(flags);
        v.extend_from_slice(&9u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v
    }

    pub(crate) fn tag(tag_type: u8, dts_ms: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag_type];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        let ts = dts_ms.to_be_bytes();
        v.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
        v
    }

    /// A typical ffmpeg stream start: metadata, AVC and AAC sequence headers, a keyframe,
    /// an audio frame and an inter frame with an extended (> 24 bit) timestamp.
    pub(crate) fn sample_stream() -> Vec<u8> {
        let mut s = header(true, true);
        s.extend(tag(18, 0, b"\x02\x00\x0aonMetaData"));
        s.extend(tag(9, 0, &[0x17, 0x00, 0, 0, 0, 1, 0x64]));
        s.extend(tag(8, 0, &[0xaf, 0x00, 0x11, 0x90]));
        s.extend(tag(9, 40, &[0x17, 0x01, 0, 0, 0, 0xaa, 0xbb, 0xcc]));
        s.extend(tag(8, 43, &[0xaf, 0x01, 0x21]));
        s.extend(tag(9, 0x0100_0050, &[0x27, 0x01, 0, 0, 0, 0xdd]));
        s
    }

    fn walk_all(walker: &mut FlvWalker, mut input: &[u8]) -> Result<Vec<FlvEvent>, FlvError> {
        let mut events = Vec::new();
        while !input.is_empty() {
            let (n, ev) = walker.next_event(input)?;
            assert!(n > 0, "no progress on non-empty input");
            events.extend(ev);
            input = &input[n..];
        }
        Ok(events)
    }

    #[test]
    fn walks_sample_stream_and_classifies_tags() {
        let mut w = FlvWalker::new(FlvLimits::default());
        let events = walk_all(&mut w, &sample_stream()).unwrap();
        let tags: Vec<TagInfo> = events
            .iter()
            .filter_map(|e| match e {
                FlvEvent::Tag(t) => Some(*t),
                FlvEvent::Header { .. } => None,
            })
            .collect();
        assert_eq!(
            events[0],
            FlvEvent::Header {
                has_audio: true,
                has_video: true
            }
        );
        assert_eq!(tags.len(), 6);
        assert_eq!(tags[0].kind, TagKind::Script);
        assert_eq!(tags[0].data_len_bytes, 13);
        // AVC sequence header: frame type 1 but it is configuration.
        assert_eq!(
            (tags[1].kind, tags[1].video_keyframe, tags[1].config),
            (TagKind::Video, true, true)
        );
        assert_eq!((tags[2].kind, tags[2].config), (TagKind::Audio, true));
        assert_eq!(
            (tags[3].dts_ms, tags[3].video_keyframe, tags[3].config),
            (40, true, false)
        );
        assert_eq!((tags[4].dts_ms, tags[4].config), (43, false));
        assert_eq!(
            (tags[5].dts_ms, tags[5].video_keyframe),
            (0x0100_0050, false)
        );
    }

    #[test]
    fn byte_at_a_time_gives_same_events() {
        let s = sample_stream();
        let whole = walk_all(&mut FlvWalker::new(FlvLimits::default()), &s).unwrap();
        let mut w = FlvWalker::new(FlvLimits::default());
        let mut split = Vec::new();
        for b in &s {
            split.extend(walk_all(&mut w, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(whole, split);
    }

    #[test]
    fn rejects_bad_signature() {
        let mut s = sample_stream();
        s[0] = b'G';
        let mut w = FlvWalker::new(FlvLimits::default());
        assert_eq!(walk_all(&mut w, &s), Err(FlvError::BadSignature));
    }

    #[test]
    fn rejects_wrong_prev_tag_size() {
        let mut s = header(false, true);
        let mut t = tag(9, 0, &[0x17, 1, 0, 0, 0]);
        let last = t.len() - 1;
        t[last] ^= 1;
        s.extend(t);
        s.extend(tag(9, 0, &[0x27, 1, 0, 0, 0]));
        let mut w = FlvWalker::new(FlvLimits::default());
        assert_eq!(walk_all(&mut w, &s), Err(FlvError::PrevTagSizeMismatch));
        // With the check off the same bytes walk fine.
        let mut lenient = FlvWalker::new(FlvLimits {
            check_prev_tag_size: false,
            ..FlvLimits::default()
        });
        assert_eq!(walk_all(&mut lenient, &s).unwrap().len(), 3);
    }

    #[test]
    fn rejects_oversized_tag_and_short_header() {
        let mut s = header(false, true);
        s.extend(tag(9, 0, &[0x17; 100]));
        let mut w = FlvWalker::new(FlvLimits {
            max_tag_data_bytes: 99,
            ..FlvLimits::default()
        });
        assert_eq!(walk_all(&mut w, &s), Err(FlvError::TagTooLarge));

        let mut h = header(false, true);
        h[8] = 8;
        let mut w = FlvWalker::new(FlvLimits::default());
        assert_eq!(walk_all(&mut w, &h), Err(FlvError::BadHeaderLength));
    }

    #[test]
    fn skips_extra_header_bytes_and_empty_tags() {
        let mut s = b"FLV\x01\x01".to_vec();
        s.extend_from_slice(&12u32.to_be_bytes());
        s.extend_from_slice(&[0xee; 3]);
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend(tag(9, 7, &[]));
        let mut w = FlvWalker::new(FlvLimits::default());
        let ev = walk_all(&mut w, &s).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[1],
            FlvEvent::Tag(TagInfo {
                kind: TagKind::Video,
                dts_ms: 7,
                data_len_bytes: 0,
                video_keyframe: false,
                config: false
            })
        );
    }

    proptest! {
        /// Splitting the input anywhere must not change the events.
        #[test]
        fn any_split_gives_same_events(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let s = sample_stream();
            let whole = walk_all(&mut FlvWalker::new(FlvLimits::default()), &s).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
            cuts.sort_unstable();
            let mut w = FlvWalker::new(FlvLimits::default());
            let mut got = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain(std::iter::once(s.len())) {
                got.extend(walk_all(&mut w, &s[start..c]).unwrap());
                start = c;
            }
            prop_assert_eq!(whole, got);
        }

        /// Arbitrary bytes never panic and always make progress.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), flv_prefix in any::<bool>()) {
            let mut input = if flv_prefix { header(true, true) } else { Vec::new() };
            input.extend(data);
            let mut w = FlvWalker::new(FlvLimits::default());
            let _ = walk_all(&mut w, &input);
        }
    }
}
