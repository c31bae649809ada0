//! The chunked decoder over arbitrary bytes split at an arbitrary point must give the same
//! result as one call with all of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::http::{ChunkedDecoder, HttpError};

/// Feeds `pieces` in order, re-feeding what was not consumed: (body, consumed, done).
fn run(data: &[u8], cut: usize) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = ChunkedDecoder::new(1 << 16);
    let mut body = Vec::new();
    let mut consumed = 0;
    for end in [cut, data.len()] {
        let progress = decoder.decode(&data[consumed..end], &mut |d: &[u8]| {
            body.extend_from_slice(d)
        })?;
        consumed += progress.consumed;
        assert!(consumed <= end);
        if progress.done {
            return Ok((body, consumed, true));
        }
        assert_eq!(consumed, end, "not done but input left over");
    }
    Ok((body, consumed, false))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split) * data.len() / 255;
    let whole = run(data, data.len());
    let split = run(data, cut);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        // An error may surface in either call; but both runs must fail.
        (Err(_), Err(_)) => {}
        _ => panic!("split changed the outcome: {whole:?} vs {split:?}"),
    }
});
