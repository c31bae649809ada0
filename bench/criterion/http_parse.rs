//! Request-head parsing and Range evaluation: the per-request CPU cost in front of every
//! on-demand response.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use uringcast::proto::http::{HttpLimits, Parse, parse_request};
use uringcast::vod::{RangeOutcome, evaluate_range};

/// What ffmpeg/curl-style clients send: five fields.
const TYPICAL_GET: &[u8] = b"GET /vod/movies/big_buck_bunny_1080p.mp4 HTTP/1.1\r\n\
Host: media.example.com:8080\r\n\
User-Agent: Lavf/61.7.100\r\n\
Accept: */*\r\n\
Range: bytes=1048576-\r\n\
Connection: keep-alive\r\n\
\r\n";

/// A desktop browser fetching an HLS segment: twenty fields.
const BROWSER_GET: &[u8] = b"GET /vod/show/season1/ep01/seg_00042.m4s?token=abcdef0123456789&expires=1767225600 HTTP/1.1\r\n\
Host: media.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"142\", \"Google Chrome\";v=\"142\", \"Not_A Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36\r\n\
Accept: */*\r\n\
Origin: https://player.example.com\r\n\
Sec-Fetch-Site: same-site\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Dest: empty\r\n\
Referer: https://player.example.com/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; prefs=dark\r\n\
Range: bytes=0-524287\r\n\
If-None-Match: \"1a2b3c-80000-17b0c2d4e5f60000\"\r\n\
If-Modified-Since: Sun, 06 Nov 2026 08:49:37 GMT\r\n\
Cache-Control: max-age=0\r\n\
Pragma: no-cache\r\n\
\r\n";

fn parse(c: &mut Criterion) {
    let limits = HttpLimits::default();
    for (name, request) in [
        ("typical_get_5_fields", TYPICAL_GET),
        ("browser_get_20_fields", BROWSER_GET),
    ] {
        assert!(matches!(
            parse_request(request, &limits),
            Ok(Parse::Complete(_))
        ));
        let mut group = c.benchmark_group("parse_request");
        group.throughput(Throughput::Bytes(request.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse_request(black_box(request), &limits))
        });
        group.finish();
    }
}

fn range(c: &mut Criterion) {
    let size = 734_003_200u64;
    assert_eq!(
        evaluate_range(Some("bytes=1048576-2097151"), size),
        RangeOutcome::Partial {
            start: 1_048_576,
            end_inclusive: 2_097_151
        }
    );
    let mut group = c.benchmark_group("evaluate_range");
    for (name, header) in [
        ("closed", "bytes=1048576-2097151"),
        ("open", "bytes=1048576-"),
        ("suffix", "bytes=-65536"),
        ("multi_ignored", "bytes=0-99, 200-299"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| evaluate_range(black_box(Some(header)), size))
        });
    }
    group.finish();
}

criterion_group!(benches, parse, range);
criterion_main!(benches);
