//! Live media: media units, the per-stream chunk ring, the stream registry.

pub mod framing;
pub mod hls;
pub mod hls_push;
pub mod qos;
pub mod ring;
pub mod stream;
pub mod unit;
