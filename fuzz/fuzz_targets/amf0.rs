//! AMF0 decoding of arbitrary bytes; whatever decodes must re-encode and decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok((value, used)) = amf0::decode(data) {
        assert!(used <= data.len());
        let mut out = Vec::new();
        amf0::write_value(&mut out, &value);
        let (again, _) = amf0::decode(&out).expect("re-encoded value decodes");
        // NaN != NaN, so compare the encodings instead of the values.
        let mut out_again = Vec::new();
        amf0::write_value(&mut out_again, &again);
        assert_eq!(out, out_again);
    }
    let _ = amf0::decode_all(data);
});
