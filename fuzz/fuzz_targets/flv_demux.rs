//! FLV demuxer on arbitrary bytes pushed at arbitrary split points. The first byte picks
//! a small tag size limit (so the limit path is reached) and the split stride.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::flv::{FlvDemuxer, FlvLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let limits = FlvLimits {
        tag_bytes_max: u32::from(control) * 64,
    };
    let bound = (limits.tag_bytes_max as usize).max(11);
    let stride = usize::from(control % 17) + 1;
    let mut demuxer = FlvDemuxer::new(limits);
    for chunk in bytes.chunks(stride) {
        demuxer.push(chunk);
        loop {
            match demuxer.poll() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(demuxer.buffered_len() < bound);
    }
    let _ = demuxer.finish();
});
