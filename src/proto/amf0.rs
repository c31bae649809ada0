//! AMF0 (Action Message Format 0): the encoding of FLV script data (`onMetaData`) and of RTMP
//! command messages.
//!
//! The decoder borrows from the input: strings and keys are `&str` slices of the buffer, numbers
//! are plain `f64`, so only objects and arrays allocate (one `Vec` each). Input comes from peers,
//! so nesting depth and the total number of decoded values are bounded by [`Amf0Limits`].
//!
//! Supported markers: number (0), boolean (1), string (2), object (3), null (5), undefined (6),
//! ECMA array (8), object end (9), strict array (10), date (11), long string (12). The rest
//! (movie clip, reference, typed object, AVM+ switch, ...) are never sent by encoders or RTMP
//! clients we serve and are reported as [`Amf0Error::UnsupportedMarker`].

use std::fmt;

/// Type markers (AMF0 specification, section 2.1).
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
}

/// One decoded AMF0 value, borrowing strings from the input buffer.
///
/// Strings decoded from either the short (u16 length) or the long (u32 length) form become
/// [`Amf0Value::String`]; the encoder picks the form from the length.
#[derive(Clone, Debug, PartialEq)]
pub enum Amf0Value<'a> {
    Number(f64),
    Bool(bool),
    String(&'a str),
    /// Anonymous object: ordered key/value pairs (order kept, duplicates kept).
    Object(Vec<(&'a str, Amf0Value<'a>)>),
    Null,
    Undefined,
    /// ECMA (associative) array. The count in the header is only a hint (encoders get it
    /// wrong), so entries are read up to the object-end marker.
    EcmaArray(Vec<(&'a str, Amf0Value<'a>)>),
    StrictArray(Vec<Amf0Value<'a>>),
    /// Milliseconds since the Unix epoch; the time-zone field is ignored on decode, written as 0.
    Date(f64),
}

impl<'a> Amf0Value<'a> {
    /// The number, if this is a `Number`.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The string, if this is a `String`.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Key/value pairs of an `Object` or `EcmaArray`.
    pub fn properties(&self) -> Option<&[(&'a str, Amf0Value<'a>)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an `Object` or `EcmaArray`.
    pub fn get(&self, key: &str) -> Option<&Amf0Value<'a>> {
        self.properties()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Bounds on what one decode call may build from peer input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amf0Limits {
    /// Maximum nesting of objects/arrays. A top-level scalar is depth 0, its children depth 1.
    /// Real payloads (RTMP `connect`, `onMetaData`) nest two or three levels; the limit also
    /// bounds the decoder's recursion.
    pub depth_max: u32,
    /// Maximum number of values (scalars and containers, at every level) decoded in one call,
    /// which bounds the memory a peer can make us allocate.
    pub elements_max: u32,
}

impl Default for Amf0Limits {
    fn default() -> Self {
        Self {
            depth_max: 32,
            elements_max: 4096,
        }
    }
}

/// Why AMF0 input could not be decoded. All of these are the peer's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amf0Error {
    /// Input ended inside a value.
    Truncated,
    /// A valid AMF0 marker that this decoder does not implement (movie clip, reference, ...).
    UnsupportedMarker(u8),
    /// A byte that is not an AMF0 marker at all.
    UnknownMarker(u8),
    /// An object-end marker where a value was expected.
    UnexpectedObjectEnd,
    /// A string is not UTF-8.
    InvalidUtf8,
    /// Nesting deeper than [`Amf0Limits::depth_max`].
    DepthExceeded,
    /// More values than [`Amf0Limits::elements_max`].
    TooManyElements,
}

impl Amf0Error {
    /// Short stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Amf0Error::Truncated => "amf0_truncated",
            Amf0Error::UnsupportedMarker(_) => "amf0_unsupported_marker",
            Amf0Error::UnknownMarker(_) => "amf0_unknown_marker",
            Amf0Error::UnexpectedObjectEnd => "amf0_unexpected_object_end",
            Amf0Error::InvalidUtf8 => "amf0_invalid_utf8",
            Amf0Error::DepthExceeded => "amf0_depth_exceeded",
            Amf0Error::TooManyElements => "amf0_too_many_elements",
        }
    }
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf0Error::UnsupportedMarker(m) => write!(f, "unsupported AMF0 marker 0x{m:02x}"),
            Amf0Error::UnknownMarker(m) => write!(f, "unknown AMF0 marker 0x{m:02x}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for Amf0Error {}

/// Decodes one value from the start of `buf` with [`Amf0Limits::default`]; returns it and the
/// number of bytes it used (the rest of `buf` is left to the caller).
pub fn decode(buf: &[u8]) -> Result<(Amf0Value<'_>, usize), Amf0Error> {
    decode_with_limits(buf, &Amf0Limits::default())
}

/// [`decode`] with explicit limits.
pub fn decode_with_limits<'a>(
    buf: &'a [u8],
    limits: &Amf0Limits,
) -> Result<(Amf0Value<'a>, usize), Amf0Error> {
    let mut decoder = Decoder {
        buf,
        pos: 0,
        elements_left: limits.elements_max,
        depth_max: limits.depth_max,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

/// Decodes consecutive values until `buf` is used up (an RTMP command message or a script tag
/// body is a sequence of values), with [`Amf0Limits::default`] applied to the whole sequence.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value<'_>>, Amf0Error> {
    decode_all_with_limits(buf, &Amf0Limits::default())
}

/// [`decode_all`] with explicit limits; `elements_max` counts values across the whole sequence.
pub fn decode_all_with_limits<'a>(
    buf: &'a [u8],
    limits: &Amf0Limits,
) -> Result<Vec<Amf0Value<'a>>, Amf0Error> {
    let mut decoder = Decoder {
        buf,
        pos: 0,
        elements_left: limits.elements_max,
        depth_max: limits.depth_max,
    };
    let mut values = Vec::new();
    while decoder.pos < buf.len() {
        values.push(decoder.value(0)?);
    }
    Ok(values)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    elements_left: u32,
    depth_max: u32,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(len).ok_or(Amf0Error::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Amf0Error> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn str(&mut self, len: usize) -> Result<&'a str, Amf0Error> {
        std::str::from_utf8(self.take(len)?).map_err(|_| Amf0Error::InvalidUtf8)
    }

    fn count_element(&mut self) -> Result<(), Amf0Error> {
        self.elements_left = self
            .elements_left
            .checked_sub(1)
            .ok_or(Amf0Error::TooManyElements)?;
        Ok(())
    }

    fn value(&mut self, depth: u32) -> Result<Amf0Value<'a>, Amf0Error> {
        let marker = self.u8()?;
        if marker == marker::OBJECT_END {
            return Err(Amf0Error::UnexpectedObjectEnd);
        }
        self.count_element()?;
        match marker {
            marker::NUMBER => Ok(Amf0Value::Number(self.f64()?)),
            marker::BOOLEAN => Ok(Amf0Value::Bool(self.u8()? != 0)),
            marker::STRING => {
                let len = self.u16()?;
                Ok(Amf0Value::String(self.str(usize::from(len))?))
            }
            marker::LONG_STRING => {
                let len = self.u32()?;
                let len = usize::try_from(len).map_err(|_| Amf0Error::Truncated)?;
                Ok(Amf0Value::String(self.str(len)?))
            }
            marker::NULL => Ok(Amf0Value::Null),
            marker::UNDEFINED => Ok(Amf0Value::Undefined),
            marker::OBJECT => Ok(Amf0Value::Object(self.properties(depth)?)),
            marker::ECMA_ARRAY => {
                // The count is advisory; read to the object-end marker like every player does.
                let _count_hint = self.u32()?;
                Ok(Amf0Value::EcmaArray(self.properties(depth)?))
            }
            marker::STRICT_ARRAY => {
                let child_depth = self.child_depth(depth)?;
                let count = self.u32()?;
                // Every value takes at least one byte, so a count beyond the remaining input
                // is truncated: checking first keeps a hostile count from sizing an allocation.
                let remaining = self.buf.len() - self.pos;
                let count = usize::try_from(count).map_err(|_| Amf0Error::Truncated)?;
                if count > remaining {
                    return Err(Amf0Error::Truncated);
                }
                if count > self.elements_left as usize {
                    return Err(Amf0Error::TooManyElements);
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(child_depth)?);
                }
                Ok(Amf0Value::StrictArray(items))
            }
            marker::DATE => {
                let millis = self.f64()?;
                let _time_zone = self.u16()?;
                Ok(Amf0Value::Date(millis))
            }
            // movie clip, reference, unsupported, record set, XML document, typed object,
            // AVM+ switch: defined by the spec, not produced by anything we talk to.
            0x04 | 0x07 | 0x0D | 0x0E | 0x0F | 0x10 | 0x11 => {
                Err(Amf0Error::UnsupportedMarker(marker))
            }
            other => Err(Amf0Error::UnknownMarker(other)),
        }
    }

    fn child_depth(&self, depth: u32) -> Result<u32, Amf0Error> {
        let child = depth + 1;
        if child > self.depth_max {
            return Err(Amf0Error::DepthExceeded);
        }
        Ok(child)
    }

    /// Reads `key, value` pairs up to and including the empty key + object-end marker.
    fn properties(&mut self, depth: u32) -> Result<Vec<(&'a str, Amf0Value<'a>)>, Amf0Error> {
        let child_depth = self.child_depth(depth)?;
        let mut props = Vec::new();
        loop {
            let key_len = self.u16()?;
            if key_len == 0 && self.buf.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.str(usize::from(key_len))?;
            let value = self.value(child_depth)?;
            props.push((key, value));
        }
    }
}

/// Appends a number.
pub fn write_number(out: &mut Vec<u8>, v: f64) {
    out.push(marker::NUMBER);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a boolean.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(marker::BOOLEAN);
    out.push(u8::from(v));
}

/// Appends a string, as a short string when it fits in 65535 bytes, else as a long string.
///
/// # Panics
/// If `v` is longer than `u32::MAX` bytes, which AMF0 cannot express.
pub fn write_string(out: &mut Vec<u8>, v: &str) {
    match u16::try_from(v.len()) {
        Ok(len) => {
            out.push(marker::STRING);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            let len = u32::try_from(v.len()).expect("AMF0 long string longer than 4 GiB");
            out.push(marker::LONG_STRING);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(v.as_bytes());
}

/// Appends null (RTMP command replies use it for the command object).
pub fn write_null(out: &mut Vec<u8>) {
    out.push(marker::NULL);
}

/// Appends undefined.
pub fn write_undefined(out: &mut Vec<u8>) {
    out.push(marker::UNDEFINED);
}

/// Appends an anonymous object.
///
/// # Panics
/// If a key is longer than 65535 bytes. Keys are either ours (short literals) or were decoded
/// from AMF0, whose key lengths are 16-bit, so this is a programming error.
pub fn write_object(out: &mut Vec<u8>, props: &[(&str, Amf0Value<'_>)]) {
    out.push(marker::OBJECT);
    write_properties(out, props);
}

/// Appends an ECMA array; its count field is the number of pairs.
///
/// # Panics
/// As [`write_object`], and if there are more than `u32::MAX` pairs.
pub fn write_ecma_array(out: &mut Vec<u8>, props: &[(&str, Amf0Value<'_>)]) {
    out.push(marker::ECMA_ARRAY);
    let count = u32::try_from(props.len()).expect("AMF0 ECMA array with more than 2^32 entries");
    out.extend_from_slice(&count.to_be_bytes());
    write_properties(out, props);
}

/// Appends a strict array.
///
/// # Panics
/// If there are more than `u32::MAX` items.
pub fn write_strict_array(out: &mut Vec<u8>, items: &[Amf0Value<'_>]) {
    out.push(marker::STRICT_ARRAY);
    let count = u32::try_from(items.len()).expect("AMF0 strict array with more than 2^32 items");
    out.extend_from_slice(&count.to_be_bytes());
    for item in items {
        write_value(out, item);
    }
}

/// Appends a date (milliseconds since the epoch, time zone 0).
pub fn write_date(out: &mut Vec<u8>, millis: f64) {
    out.push(marker::DATE);
    out.extend_from_slice(&millis.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Appends any value.
///
/// # Panics
/// As the `write_*` function for its type.
pub fn write_value(out: &mut Vec<u8>, value: &Amf0Value<'_>) {
    match value {
        Amf0Value::Number(n) => write_number(out, *n),
        Amf0Value::Bool(b) => write_bool(out, *b),
        Amf0Value::String(s) => write_string(out, s),
        Amf0Value::Object(props) => write_object(out, props),
        Amf0Value::Null => write_null(out),
        Amf0Value::Undefined => write_undefined(out),
        Amf0Value::EcmaArray(props) => write_ecma_array(out, props),
        Amf0Value::StrictArray(items) => write_strict_array(out, items),
        Amf0Value::Date(millis) => write_date(out, *millis),
    }
}

fn write_properties(out: &mut Vec<u8>, props: &[(&str, Amf0Value<'_>)]) {
    for (key, value) in props {
        let key_len = u16::try_from(key.len()).expect("AMF0 object key longer than 65535 bytes");
        out.extend_from_slice(&key_len.to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        write_value(out, value);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(value: &Amf0Value<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, value);
        out
    }

    #[test]
    fn scalars_encode_to_spec_bytes() {
        let mut out = Vec::new();
        write_number(&mut out, 1.0);
        assert_eq!(out, [0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        out.clear();
        write_bool(&mut out, true);
        assert_eq!(out, [0x01, 0x01]);
        out.clear();
        write_string(&mut out, "ab");
        assert_eq!(out, [0x02, 0x00, 0x02, b'a', b'b']);
        out.clear();
        write_null(&mut out);
        write_undefined(&mut out);
        assert_eq!(out, [0x05, 0x06]);
        out.clear();
        write_object(&mut out, &[("a", Amf0Value::Null)]);
        assert_eq!(out, [0x03, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09]);
        out.clear();
        write_ecma_array(&mut out, &[("a", Amf0Value::Bool(false))]);
        assert_eq!(
            out,
            [
                0x08, 0, 0, 0, 1, 0x00, 0x01, b'a', 0x01, 0x00, 0x00, 0x00, 0x09
            ]
        );
        out.clear();
        write_date(&mut out, 0.0);
        assert_eq!(out, [0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn long_string_is_used_past_u16() {
        let s = "x".repeat(70_000);
        let mut out = Vec::new();
        write_string(&mut out, &s);
        assert_eq!(out[0], marker::LONG_STRING);
        assert_eq!(&out[1..5], &70_000u32.to_be_bytes());
        let (value, used) = decode(&out).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(value, Amf0Value::String(&s));
    }

    #[test]
    fn decode_reports_bytes_used_and_leaves_the_rest() {
        let mut out = Vec::new();
        write_string(&mut out, "onMetaData");
        write_number(&mut out, 2.5);
        let (first, used) = decode(&out).unwrap();
        assert_eq!(first, Amf0Value::String("onMetaData"));
        assert_eq!(used, 13);
        let (second, used2) = decode(&out[used..]).unwrap();
        assert_eq!(second, Amf0Value::Number(2.5));
        assert_eq!(used2, 9);
        assert_eq!(
            decode_all(&out).unwrap(),
            vec![Amf0Value::String("onMetaData"), Amf0Value::Number(2.5)]
        );
    }

    #[test]
    fn rtmp_connect_command_round_trips() {
        let props = vec![
            ("app", Amf0Value::String("live")),
            ("type", Amf0Value::String("nonprivate")),
            ("tcUrl", Amf0Value::String("rtmp://localhost/live")),
            ("fpad", Amf0Value::Bool(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            (
                "fourCcList",
                Amf0Value::StrictArray(vec![Amf0Value::String("hvc1"), Amf0Value::String("av01")]),
            ),
        ];
        let mut out = Vec::new();
        write_string(&mut out, "connect");
        write_number(&mut out, 1.0);
        write_object(&mut out, &props);
        let values = decode_all(&out).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_number(), Some(1.0));
        assert_eq!(
            values[2].get("tcUrl").and_then(|v| v.as_str()),
            Some("rtmp://localhost/live")
        );
        assert_eq!(values[2].get("fpad").and_then(|v| v.as_bool()), Some(false));
        assert_eq!(values[2], Amf0Value::Object(props));
    }

    #[test]
    fn ecma_array_count_is_only_a_hint() {
        // Count says 5, one entry follows: read to the end marker like players do.
        let bytes = [0x08, 0, 0, 0, 5, 0x00, 0x01, b'w', 0x05, 0x00, 0x00, 0x09];
        let (value, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(value, Amf0Value::EcmaArray(vec![("w", Amf0Value::Null)]));
    }

    #[test]
    fn every_truncation_of_a_valid_value_is_an_error() {
        let value = Amf0Value::Object(vec![
            ("n", Amf0Value::Number(3.0)),
            ("s", Amf0Value::String("hello")),
            (
                "a",
                Amf0Value::StrictArray(vec![Amf0Value::Date(1.0), Amf0Value::Bool(true)]),
            ),
            ("e", Amf0Value::EcmaArray(vec![("u", Amf0Value::Undefined)])),
        ]);
        let bytes = encode(&value);
        assert_eq!(decode(&bytes).unwrap(), (value, bytes.len()));
        for len in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..len]),
                Err(Amf0Error::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn depth_limit_is_enforced() {
        fn nested(levels: usize) -> Vec<u8> {
            // `levels` strict arrays of one element around a null.
            let mut bytes = Vec::new();
            for _ in 0..levels {
                bytes.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
            }
            bytes.push(0x05);
            bytes
        }
        let limits = Amf0Limits {
            depth_max: 4,
            elements_max: 100,
        };
        assert!(decode_with_limits(&nested(4), &limits).is_ok());
        assert_eq!(
            decode_with_limits(&nested(5), &limits),
            Err(Amf0Error::DepthExceeded)
        );
        // Objects count as a level too.
        let mut deep_objects = Vec::new();
        for _ in 0..40 {
            deep_objects.extend_from_slice(&[0x03, 0x00, 0x01, b'k']);
        }
        deep_objects.push(0x05);
        assert_eq!(decode(&deep_objects), Err(Amf0Error::DepthExceeded));
        // A hostile nesting far beyond the limit does not overflow the stack.
        assert_eq!(decode(&nested(100_000)), Err(Amf0Error::DepthExceeded));
    }

    #[test]
    fn element_limit_is_enforced() {
        let limits = Amf0Limits {
            depth_max: 8,
            elements_max: 3,
        };
        let mut ok = Vec::new();
        write_strict_array(&mut ok, &[Amf0Value::Null, Amf0Value::Null]);
        assert!(decode_with_limits(&ok, &limits).is_ok());
        let mut too_many = Vec::new();
        write_strict_array(
            &mut too_many,
            &[Amf0Value::Null, Amf0Value::Null, Amf0Value::Null],
        );
        assert_eq!(
            decode_with_limits(&too_many, &limits),
            Err(Amf0Error::TooManyElements)
        );
        // The limit spans the whole sequence in decode_all.
        let four_nulls = [0x05u8; 4];
        assert_eq!(
            decode_all_with_limits(&four_nulls, &limits),
            Err(Amf0Error::TooManyElements)
        );
        assert_eq!(
            decode_all_with_limits(&four_nulls[..3], &limits)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn hostile_array_count_does_not_allocate() {
        let bytes = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05];
        assert_eq!(decode(&bytes), Err(Amf0Error::Truncated));
    }

    #[test]
    fn bad_markers_and_strings_are_rejected() {
        assert_eq!(
            decode(&[0x07, 0, 1]),
            Err(Amf0Error::UnsupportedMarker(0x07))
        );
        assert_eq!(decode(&[0x11]), Err(Amf0Error::UnsupportedMarker(0x11)));
        assert_eq!(decode(&[0x42]), Err(Amf0Error::UnknownMarker(0x42)));
        assert_eq!(decode(&[0x09]), Err(Amf0Error::UnexpectedObjectEnd));
        assert_eq!(decode(&[0x02, 0, 1, 0xFF]), Err(Amf0Error::InvalidUtf8));
        assert_eq!(decode(&[]), Err(Amf0Error::Truncated));
        // An object-end marker as a property value.
        assert_eq!(
            decode(&[0x03, 0x00, 0x01, b'a', 0x09]),
            Err(Amf0Error::UnexpectedObjectEnd)
        );
    }

    #[test]
    fn errors_have_distinct_reasons() {
        let all = [
            Amf0Error::Truncated,
            Amf0Error::UnsupportedMarker(7),
            Amf0Error::UnknownMarker(0x42),
            Amf0Error::UnexpectedObjectEnd,
            Amf0Error::InvalidUtf8,
            Amf0Error::DepthExceeded,
            Amf0Error::TooManyElements,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(
            Amf0Error::UnknownMarker(0x42).to_string(),
            "unknown AMF0 marker 0x42"
        );
    }

    /// Values with owned strings, so proptest can generate them; borrowed for encode/compare.
    #[derive(Clone, Debug)]
    enum Owned {
        Number(f64),
        Bool(bool),
        String(String),
        Object(Vec<(String, Owned)>),
        Null,
        Undefined,
        EcmaArray(Vec<(String, Owned)>),
        StrictArray(Vec<Owned>),
        Date(f64),
    }

    impl Owned {
        fn borrow(&self) -> Amf0Value<'_> {
            fn props(p: &[(String, Owned)]) -> Vec<(&str, Amf0Value<'_>)> {
                p.iter().map(|(k, v)| (k.as_str(), v.borrow())).collect()
            }
            match self {
                Owned::Number(n) => Amf0Value::Number(*n),
                Owned::Bool(b) => Amf0Value::Bool(*b),
                Owned::String(s) => Amf0Value::String(s),
                Owned::Object(p) => Amf0Value::Object(props(p)),
                Owned::Null => Amf0Value::Null,
                Owned::Undefined => Amf0Value::Undefined,
                Owned::EcmaArray(p) => Amf0Value::EcmaArray(props(p)),
                Owned::StrictArray(items) => {
                    Amf0Value::StrictArray(items.iter().map(Owned::borrow).collect())
                }
                Owned::Date(d) => Amf0Value::Date(*d),
            }
        }
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
            Just(f64::INFINITY),
            (-1e6f64..1e6)
        ]
    }

    fn owned_value() -> impl Strategy<Value = Owned> {
        let leaf = prop_oneof![
            finite().prop_map(Owned::Number),
            any::<bool>().prop_map(Owned::Bool),
            ".{0,12}".prop_map(Owned::String),
            Just(Owned::Null),
            Just(Owned::Undefined),
            finite().prop_map(Owned::Date),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            // Non-empty keys: an empty key followed by 0x09 is the end marker by definition.
            let props = prop::collection::vec(("[a-zA-Z@_]{1,10}", inner.clone()), 0..6);
            prop_oneof![
                props.clone().prop_map(Owned::Object),
                props.prop_map(Owned::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Owned::StrictArray),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(value in owned_value()) {
            let borrowed = value.borrow();
            let bytes = encode(&borrowed);
            let (decoded, used) = decode(&bytes).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&decoded, &borrowed);
            // Re-encoding the decoded value reproduces the bytes.
            prop_assert_eq!(encode(&decoded), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let limits = Amf0Limits { depth_max: 8, elements_max: 64 };
            if let Ok((_, used)) = decode_with_limits(&bytes, &limits) {
                prop_assert!(used <= bytes.len());
            }
            let _ = decode_all_with_limits(&bytes, &limits);
        }
    }
}
