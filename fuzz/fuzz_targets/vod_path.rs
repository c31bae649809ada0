//! normalise_vod_path never yields `..`, an absolute path, an empty path or a NUL.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use uringcast::vod::normalise_vod_path;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = normalise_vod_path(raw) {
        assert!(path.is_relative());
        assert!(!path.as_os_str().is_empty());
        assert!(!path.as_os_str().as_encoded_bytes().contains(&0));
        assert!(!path.as_os_str().as_encoded_bytes().contains(&b'\\'));
        for component in path.components() {
            assert!(matches!(component, Component::Normal(_)), "{path:?}");
        }
    }
});
