//! The operator's console: the page at `/` (web/console.html, console.js, console.css) and the
//! two players it uses (web/vendor/, see web/vendor/VERSIONS), embedded in the binary, so the
//! console needs no network and no files at run time. No fds, no I/O: [`lookup`] takes a
//! request path and returns the [`Asset`] to answer with, whichever listener the request came
//! in on.
//!
//! Every script and style sheet has an immutable URL: the players' carry their upstream
//! version (`/console/vendor/hls-1.7.4.min.js`), the console's own a hash of their bytes
//! (`/console/console.0123456789ab.js`), written into the page when the table is built. Those
//! are cached for a year; the page (and the licence texts) are revalidated on every use
//! (`no-cache`), so a new binary's console shows at once. Each asset has a strong ETag (a hash
//! of its bytes) and If-None-Match gets a 304.

use std::sync::LazyLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
const CACHE_REVALIDATE: &str = "no-cache";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// What the page may load: its own scripts and styles only (no inline code); media, and the
/// players' fetches, from any http(s) origin, since media may be served on another port than
/// the console (`blob:` for the MediaSource URLs and hls.js's worker).
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob: http: https:; \
    connect-src 'self' http: https:; worker-src 'self' blob:; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Replaced by the server's version in the page.
const PAGE_VERSION_MARK: &str = "@VERSION@";

/// How an asset is named and cached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The page at `/`: the hashed names and the version written in; revalidated.
    Page,
    /// The path carries the upstream version: immutable.
    Versioned,
    /// The path gets a hash of the bytes before its extension: immutable.
    Hashed,
    /// Fixed path, revalidated (the licence texts).
    Plain,
}

struct Source {
    path: &'static str,
    content_type: &'static str,
    kind: Kind,
    bytes: &'static [u8],
}

/// Everything the console serves. The players' versions are in their paths: a refresh of
/// web/vendor/ (scripts/vendor-web.sh) changes them here, in web/console.html and in
/// web/vendor/VERSIONS together (a unit test checks that the three agree).
const SOURCES: &[Source] = &[
    Source {
        path: "/",
        content_type: HTML,
        kind: Kind::Page,
        bytes: include_bytes!("../../web/console.html"),
    },
    Source {
        path: "/console/console.js",
        content_type: JAVASCRIPT,
        kind: Kind::Hashed,
        bytes: include_bytes!("../../web/console.js"),
    },
    Source {
        path: "/console/console.css",
        content_type: CSS,
        kind: Kind::Hashed,
        bytes: include_bytes!("../../web/console.css"),
    },
    Source {
        path: "/console/vendor/hls-1.7.4.min.js",
        content_type: JAVASCRIPT,
        kind: Kind::Versioned,
        bytes: include_bytes!("../../web/vendor/hls.min.js"),
    },
    Source {
        path: "/console/vendor/mpegts-1.8.2.min.js",
        content_type: JAVASCRIPT,
        kind: Kind::Versioned,
        bytes: include_bytes!("../../web/vendor/mpegts.min.js"),
    },
    Source {
        path: "/console/vendor/hls.js.LICENSE",
        content_type: TEXT,
        kind: Kind::Plain,
        bytes: include_bytes!("../../web/vendor/hls.js.LICENSE"),
    },
    Source {
        path: "/console/vendor/mpegts.js.LICENSE",
        content_type: TEXT,
        kind: Kind::Plain,
        bytes: include_bytes!("../../web/vendor/mpegts.js.LICENSE"),
    },
    Source {
        path: "/console/vendor/mpegts.js.LICENSE.txt",
        content_type: TEXT,
        kind: Kind::Plain,
        bytes: include_bytes!("../../web/vendor/mpegts.js.LICENSE.txt"),
    },
];

/// One file of the console, ready to send.
pub struct Asset {
    /// The URL path it is served at.
    pub path: String,
    pub content_type: &'static str,
    /// Shared, never copied per response.
    pub bytes: Bytes,
    /// Strong and quoted: `"` + 32 hex digits of the SHA-256 of `bytes` + `"`.
    pub etag: String,
    kind: Kind,
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asset")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Assets are one table built once: the same path is the same asset.
impl PartialEq for Asset {
    fn eq(&self, other: &Asset) -> bool {
        self.path == other.path
    }
}

impl Eq for Asset {}

/// An asset's response headers beyond Content-Type and Content-Length, for 200 and 304 alike.
pub struct Headers<'a> {
    list: [(&'static str, &'a str); 4],
    len: usize,
}

impl<'a> Headers<'a> {
    pub fn as_slice(&self) -> &[(&'static str, &'a str)] {
        &self.list[..self.len]
    }
}

impl Asset {
    fn cache_control(&self) -> &'static str {
        match self.kind {
            Kind::Versioned | Kind::Hashed => CACHE_IMMUTABLE,
            Kind::Page | Kind::Plain => CACHE_REVALIDATE,
        }
    }

    /// Cache-Control, ETag, `nosniff`, and for the page its Content-Security-Policy.
    pub fn headers(&self) -> Headers<'_> {
        let list = [
            ("Cache-Control", self.cache_control()),
            ("ETag", self.etag.as_str()),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", PAGE_CSP),
        ];
        let len = if self.kind == Kind::Page { 4 } else { 3 };
        Headers { list, len }
    }

    /// Whether a request with this If-None-Match may be answered 304 (RFC 9110 §13.1.2: `*`,
    /// or a list naming our tag, weakly compared).
    pub fn not_modified(&self, if_none_match: Option<&str>) -> bool {
        if_none_match.is_some_and(|list| crate::vod::if_none_match_matches(list, &self.etag))
    }
}

/// The asset served at `path` (the request path, without the query), if any.
pub fn lookup(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The table, built on first use: the hashes of about 1 MB, once per process.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(build);

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn asset(path: String, source: &Source, bytes: Bytes) -> Asset {
    let hash = sha256_hex(&bytes);
    Asset {
        path,
        content_type: source.content_type,
        etag: format!("\"{}\"", &hash[..32]),
        bytes,
        kind: source.kind,
    }
}

fn build() -> Vec<Asset> {
    SOURCES
        .iter()
        .map(|source| {
            let bytes = match source.kind {
                Kind::Page => Bytes::from(render_page(source.bytes)),
                _ => Bytes::from_static(source.bytes),
            };
            asset(served_path(source), source, bytes)
        })
        .collect()
}

/// The path `source` is served at.
fn served_path(source: &Source) -> String {
    match source.kind {
        Kind::Hashed => hashed_path(source.path, &sha256_hex(source.bytes)[..12]),
        _ => source.path.to_string(),
    }
}

/// The page with the version and the hashed names of the console's own assets written in
/// (the source names them by their plain paths, quoted).
fn render_page(source: &[u8]) -> String {
    let mut page =
        String::from_utf8_lossy(source).replace(PAGE_VERSION_MARK, env!("CARGO_PKG_VERSION"));
    for hashed in SOURCES.iter().filter(|s| s.kind == Kind::Hashed) {
        let from = format!("\"{}\"", hashed.path);
        let to = format!("\"{}\"", served_path(hashed));
        page = page.replace(&from, &to);
    }
    page
}

/// `/console/console.js` + `0123` → `/console/console.0123.js`.
fn hashed_path(path: &str, hash: &str) -> String {
    let (dir, name) = path.split_at(path.rfind('/').map_or(0, |slash| slash + 1));
    match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => format!("{dir}{stem}.{hash}.{extension}"),
        _ => format!("{path}.{hash}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> &'static Asset {
        lookup("/").expect("the page")
    }

    fn page_text() -> &'static str {
        std::str::from_utf8(&page().bytes).expect("utf-8")
    }

    /// The URL paths the page loads or links (`src="/..."`, `href="/..."`).
    fn page_urls() -> Vec<&'static str> {
        let text = page_text();
        ["src=\"", "href=\""]
            .iter()
            .flat_map(|attr| {
                text.match_indices(attr)
                    .map(|(at, m)| &text[at + m.len()..])
            })
            .filter_map(|rest| rest.split_once('"').map(|(url, _)| url))
            .filter(|url| url.starts_with('/'))
            .collect()
    }

    #[test]
    fn content_types_by_extension() {
        for asset in ASSETS.iter() {
            let expected = match asset.path.rsplit_once('.').map(|(_, e)| e) {
                _ if asset.path == "/" => HTML,
                Some("js") => JAVASCRIPT,
                Some("css") => CSS,
                Some("LICENSE" | "txt") => TEXT,
                other => panic!("{}: unexpected extension {other:?}", asset.path),
            };
            assert_eq!(asset.content_type, expected, "{}", asset.path);
        }
    }

    #[test]
    fn etags_are_strong_quoted_and_follow_the_bytes() {
        for asset in ASSETS.iter() {
            let etag = &asset.etag;
            assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
            assert_eq!(etag.len(), 34, "{etag}");
            assert!(!etag.starts_with("W/"));
            let again = super::asset(asset.path.clone(), &SOURCES[0], asset.bytes.clone());
            assert_eq!(&again.etag, etag, "stable for {}", asset.path);
            assert!(etag[1..33].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let tags: std::collections::HashSet<_> = ASSETS.iter().map(|a| &a.etag).collect();
        assert_eq!(tags.len(), ASSETS.len(), "every asset has its own tag");
    }

    #[test]
    fn scripts_and_styles_have_versioned_immutable_urls() {
        let hashed: Vec<_> = ASSETS.iter().filter(|a| a.kind == Kind::Hashed).collect();
        assert_eq!(hashed.len(), 2);
        for asset in hashed {
            // /console/console.{12 hex}.{js,css}
            let name = asset.path.strip_prefix("/console/console.").expect("path");
            let (hash, extension) = name.split_once('.').expect("hash.ext");
            assert_eq!(hash.len(), 12, "{}", asset.path);
            assert_eq!(hash, &sha256_hex(&asset.bytes)[..12]);
            assert!(["js", "css"].contains(&extension));
        }
        for asset in ASSETS.iter() {
            let immutable = asset.headers().as_slice()[0].1 == CACHE_IMMUTABLE;
            let code = asset.content_type == JAVASCRIPT || asset.content_type == CSS;
            assert_eq!(immutable, code, "{}", asset.path);
        }
        assert_eq!(
            page().headers().as_slice()[0],
            ("Cache-Control", "no-cache")
        );
        assert_eq!(hashed_path("/a/b.js", "ff"), "/a/b.ff.js");
        assert_eq!(hashed_path("/a/b", "ff"), "/a/b.ff");
        assert_eq!(hashed_path("/a.d/b", "ff"), "/a.d/b.ff");
        assert_eq!(hashed_path("/a/.b", "ff"), "/a/.b.ff");
        assert_eq!(hashed_path("b.js", "ff"), "b.ff.js");
    }

    #[test]
    fn the_page_loads_only_what_the_table_serves() {
        let urls = page_urls();
        for expected in ["mpegts-1.8.2.min.js", "hls-1.7.4.min.js", "console."] {
            assert!(
                urls.iter()
                    .any(|u| u.starts_with("/console/") && u.contains(expected)),
                "the page does not load {expected}: {urls:?}"
            );
        }
        for url in &urls {
            if url.starts_with("/console/") {
                assert!(
                    lookup(url).is_some(),
                    "the page names {url}, which is not served"
                );
            }
        }
        // The unhashed names are not served: only their hashed forms.
        assert!(lookup("/console/console.js").is_none());
        assert!(!page_text().contains(PAGE_VERSION_MARK));
        assert!(page_text().contains(env!("CARGO_PKG_VERSION")));
        assert!(lookup("/console/").is_none() && lookup("/nope").is_none());
    }

    #[test]
    fn vendored_players_match_their_versions_file() {
        let versions = include_str!("../../web/vendor/VERSIONS");
        let mut players = 0;
        for line in versions
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [package, version, _integrity, file, sha256] = fields[..] else {
                panic!("bad VERSIONS line {line:?}");
            };
            let stem = package.strip_suffix(".js").unwrap_or(package);
            let path = format!("/console/vendor/{stem}-{version}.min.js");
            let asset = lookup(&path).unwrap_or_else(|| panic!("{path} ({file}) is not served"));
            assert_eq!(
                sha256_hex(&asset.bytes),
                sha256,
                "{file} is not what VERSIONS says"
            );
            assert!(
                page_urls().contains(&path.as_str()),
                "the page does not load {path}"
            );
            assert!(page_text().contains(&format!("{package} {version}")));
            players += 1;
        }
        assert_eq!(players, 2);
    }

    #[test]
    fn revalidation() {
        let asset = page();
        let etag = asset.etag.clone();
        assert!(!asset.not_modified(None));
        assert!(asset.not_modified(Some(&etag)));
        assert!(asset.not_modified(Some("*")));
        assert!(asset.not_modified(Some(&format!("W/{etag}"))));
        assert!(asset.not_modified(Some(&format!("\"x\", {etag} ,\"y\""))));
        assert!(!asset.not_modified(Some("\"x\", \"y\"")));
        assert!(!asset.not_modified(Some(&etag[1..33])), "unquoted");
        assert!(!asset.not_modified(Some("")));
    }

    #[test]
    fn only_the_page_has_a_content_security_policy() {
        let csp = |a: &Asset| {
            a.headers()
                .as_slice()
                .iter()
                .any(|(name, _)| *name == "Content-Security-Policy")
        };
        assert!(csp(page()));
        assert!(ASSETS.iter().filter(|a| a.path != "/").all(|a| !csp(a)));
        for asset in ASSETS.iter() {
            let headers = asset.headers();
            assert!(headers.as_slice().contains(&("ETag", asset.etag.as_str())));
            assert!(
                headers
                    .as_slice()
                    .contains(&("X-Content-Type-Options", "nosniff"))
            );
        }
    }
}
