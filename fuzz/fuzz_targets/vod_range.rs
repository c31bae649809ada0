//! evaluate_range never returns a range that is reversed or reaches past the end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::vod::{RangeOutcome, evaluate_range};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size_bytes, header) = data.split_at(8);
    let mut size = [0u8; 8];
    size.copy_from_slice(size_bytes);
    let size = u64::from_le_bytes(size);
    let header = String::from_utf8_lossy(header);
    for size in [size, size % 1024] {
        if let RangeOutcome::Partial {
            start,
            end_inclusive,
        } = evaluate_range(Some(&header), size)
        {
            assert!(start <= end_inclusive, "{header:?} {size}");
            assert!(end_inclusive < size, "{header:?} {size}");
        }
    }
});
