//! Routing: a parsed request head and the listener it came in on → what to do with it. No
//! fds, no state beyond the head.
//!
//! The public listener serves media (and `/healthz`, for load balancers); the admin listener
//! serves the operator's pages and API and no media. Which admin pages need the client to be
//! allowed (`admin.allow` or `admin.token`) is [`Route::restricted`].

use super::console::{self, Asset};
use crate::proto::http::{Method, RequestHead, Version};

/// Methods of the media paths, for `Allow` and CORS preflights.
pub const VOD_METHODS: &str = "GET, HEAD, OPTIONS";
pub const LIVE_METHODS: &str = "GET, HEAD, OPTIONS, POST, PUT";
/// Methods of HLS paths (PUT and DELETE: HLS pushed by an encoder).
pub const HLS_METHODS: &str = "GET, HEAD, OPTIONS, PUT, DELETE";
/// Methods of the server's own pages.
pub const PAGE_METHODS: &str = "GET, HEAD";
/// Methods of an API path that names one session or stream.
pub const KICK_METHODS: &str = "DELETE";

/// The listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `http.listen`: media, and `/healthz`.
    Public,
    /// `admin.listen`: `/metrics`, `/healthz`, the API and the status page.
    Admin,
}

/// Body of the 404 for an operator page asked for on the public listener.
pub const NOT_HERE: &str = "not found (the operator pages are served on the admin listener)\n";

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A file under the media root; `path` is what follows `/vod/`, still to be normalised.
    Vod { path: String },
    /// An HTTP-FLV or HTTP-TS viewer. `send_body`: GET (HEAD gets the head only); `chunked`:
    /// HTTP/1.1 framing (an HTTP/1.0 viewer gets the bare stream ended by the close).
    LivePlay {
        app: String,
        name: String,
        format: LiveFormat,
        send_body: bool,
        chunked: bool,
    },
    /// An HTTP push of FLV or MPEG-TS (POST or PUT).
    LivePublish {
        app: String,
        name: String,
        format: LiveFormat,
    },
    /// A file of a stream's HLS: `/{app}/{stream}/{file}` (the live playlist `index.m3u8` and
    /// its segments, or objects an encoder pushes with PUT and removes with DELETE).
    Hls {
        app: String,
        name: String,
        file: String,
        method: HlsMethod,
    },
    /// `OPTIONS` on a media path: 204 with `Allow` and the CORS preflight answer.
    Preflight { methods: &'static str },
    /// One of the server's own pages; `send_body` false for HEAD.
    Page { page: Page, send_body: bool },
    /// `DELETE` of a session or a stream on the admin API.
    Kick(Kick),
    /// `GET /api/v1/streams/{app}/{stream}/play`: the stream's play URLs, with the
    /// credentials the play policy needs (for the console, [`super::api::play_urls_json`]).
    PlayUrls {
        app: String,
        name: String,
        send_body: bool,
    },
    /// A file of the operator's console (`/` and `/console/...`), embedded in the binary.
    Console {
        asset: &'static Asset,
        send_body: bool,
    },
    /// An answer without a body of ours: status, text, whether the connection may stay open,
    /// and the `Allow` header for 405/501.
    Refuse {
        status: u16,
        text: &'static str,
        keep: bool,
        allow: Option<&'static str>,
    },
}

/// The container of a live HTTP stream, from its path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFormat {
    /// `.flv`
    Flv,
    /// `.ts`: MPEG-TS.
    Ts,
}

/// What a request does to an HLS file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsMethod {
    Get,
    Head,
    Put,
    Delete,
}

/// What a `DELETE` on the admin API ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kick {
    /// `/api/v1/sessions/{id}`: one publisher or reader.
    Session(u64),
    /// `/api/v1/streams/{app}/{stream}`: the stream's publisher, and the stream at once.
    Stream { app: String, name: String },
}

/// The server's own pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/healthz`: JSON.
    Health,
    /// `/api/v1/streams`: JSON.
    Streams,
    /// `/api/v1/sessions`: JSON.
    Sessions,
    /// `/metrics`: Prometheus text.
    Metrics,
}

impl Page {
    pub fn content_type(self) -> &'static str {
        match self {
            Page::Health | Page::Streams | Page::Sessions => "application/json",
            Page::Metrics => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

impl Route {
    /// Whether the client must be allowed by `admin.allow` or `admin.token`: the API and the
    /// status page (`/metrics` and `/healthz` are open).
    pub fn restricted(&self) -> bool {
        match self {
            Route::Page { page, .. } => {
                matches!(page, Page::Streams | Page::Sessions)
            }
            // The console (the operator's status page) shows what the API does.
            // The play URLs may carry a key or a signed token: the API's like the rest.
            Route::Kick(_) | Route::Console { .. } | Route::PlayUrls { .. } => true,
            _ => false,
        }
    }
}

/// Whether `path` is a media path (`/vod/...` or a live stream): every answer to it, errors
/// included, carries the CORS headers, so a browser player can read a 404 or a 409.
pub fn is_media_path(path: &str) -> bool {
    path.starts_with("/vod/") || parse_live_path(path).is_some() || parse_hls_path(path).is_some()
}

/// Whether `s` may be a live app or stream name: 1 to 128 of `[A-Za-z0-9_-]` (an app may
/// not be `vod` either). RTMP names follow the same rule, so every stream is playable over
/// every protocol.
pub fn valid_live_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `/{app}/{stream}.flv` or `.ts` → (app, stream, format), with conservative names (no dots,
/// slashes or escapes), so stream keys are safe in logs, labels and JSON. `vod` is not an app:
/// `/vod/` always names files, so no publish or play can claim a path under it.
pub fn parse_live_path(path: &str) -> Option<(&str, &str, LiveFormat)> {
    let rest = path.strip_prefix('/')?;
    let (app, file) = rest.split_once('/')?;
    if app == "vod" {
        return None;
    }
    let (name, format) = if let Some(name) = file.strip_suffix(".flv") {
        (name, LiveFormat::Flv)
    } else {
        (file.strip_suffix(".ts")?, LiveFormat::Ts)
    };
    (valid_live_name(app) && valid_live_name(name)).then_some((app, name, format))
}

/// Whether `file` may name an HLS object: one path segment of 1 to 128 of `[A-Za-z0-9._-]`,
/// not starting with a dot, with an HLS extension.
pub fn valid_hls_file(file: &str) -> bool {
    !file.is_empty()
        && file.len() <= 128
        && !file.starts_with('.')
        && !file.contains("..")
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && [".m3u8", ".ts", ".m4s", ".mp4", ".aac"]
            .iter()
            .any(|ext| file.len() > ext.len() && file.ends_with(ext))
}

/// `/{app}/{stream}/{file}` → (app, stream, file), for HLS.
pub fn parse_hls_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (app, rest) = rest.split_once('/')?;
    let (name, file) = rest.split_once('/')?;
    (app != "vod" && valid_live_name(app) && valid_live_name(name) && valid_hls_file(file))
        .then_some((app, name, file))
}

fn not_allowed(method: Method, allow: &'static str) -> Route {
    if method == Method::Other {
        Route::Refuse {
            status: 501,
            text: "method not implemented\n",
            keep: true,
            allow: Some(allow),
        }
    } else {
        Route::Refuse {
            status: 405,
            text: "method not allowed\n",
            keep: true,
            allow: Some(allow),
        }
    }
}

fn not_found(text: &'static str) -> Route {
    Route::Refuse {
        status: 404,
        text,
        keep: true,
        allow: None,
    }
}

/// Route one request head that came in on `listener`.
pub fn route(head: &RequestHead, listener: Listener) -> Route {
    match listener {
        Listener::Public => route_public(head),
        Listener::Admin => route_admin(head),
    }
}

/// The admin listener: the operator's pages and API; media paths are not found here.
fn route_admin(head: &RequestHead) -> Route {
    let path = head.path.as_str();
    if head.content_length.unwrap_or(0) > 0 || head.chunked {
        return Route::Refuse {
            status: 400,
            text: "request body not accepted here\n",
            keep: false,
            allow: None,
        };
    }
    if is_media_path(path) {
        return not_found("not found (media is served on the public listener)\n");
    }
    if let Some((app, name)) = parse_play_urls_path(path) {
        if !matches!(head.method, Method::Get | Method::Head) {
            return not_allowed(head.method, PAGE_METHODS);
        }
        return Route::PlayUrls {
            app: app.to_string(),
            name: name.to_string(),
            send_body: head.method == Method::Get,
        };
    }
    if let Some(kick) = parse_kick_path(path) {
        return match head.method {
            Method::Delete => Route::Kick(kick),
            other => not_allowed(other, KICK_METHODS),
        };
    }
    if let Some(asset) = console::lookup(path) {
        if !matches!(head.method, Method::Get | Method::Head) {
            return not_allowed(head.method, PAGE_METHODS);
        }
        return Route::Console {
            asset,
            send_body: head.method == Method::Get,
        };
    }
    let page = match path {
        "/healthz" => Page::Health,
        "/api/v1/streams" => Page::Streams,
        "/api/v1/sessions" => Page::Sessions,
        "/metrics" => Page::Metrics,
        _ => return not_found("not found\n"),
    };
    if !matches!(head.method, Method::Get | Method::Head) {
        return not_allowed(head.method, PAGE_METHODS);
    }
    Route::Page {
        page,
        send_body: head.method == Method::Get,
    }
}

/// `/api/v1/streams/{app}/{stream}/play` → (app, stream).
fn parse_play_urls_path(path: &str) -> Option<(&str, &str)> {
    let rest = path
        .strip_prefix("/api/v1/streams/")?
        .strip_suffix("/play")?;
    let (app, name) = rest.split_once('/')?;
    (app != "vod" && valid_live_name(app) && valid_live_name(name)).then_some((app, name))
}

/// `/api/v1/sessions/{id}` or `/api/v1/streams/{app}/{stream}`.
fn parse_kick_path(path: &str) -> Option<Kick> {
    if let Some(id) = path.strip_prefix("/api/v1/sessions/") {
        // Digits only: `+1` or ` 1` name nothing.
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return id.parse().ok().map(Kick::Session);
    }
    let rest = path.strip_prefix("/api/v1/streams/")?;
    let (app, name) = rest.split_once('/')?;
    (valid_live_name(app) && valid_live_name(name)).then(|| Kick::Stream {
        app: app.to_string(),
        name: name.to_string(),
    })
}

/// The public listener: media, and `/healthz` (load balancers probe it here).
fn route_public(head: &RequestHead) -> Route {
    let path = head.path.as_str();
    // `/vod/` is routed first: it always means files (an FLV file at the top of the media root
    // included), whatever a live path would look like.
    let vod = path.strip_prefix("/vod/");
    let live = if vod.is_some() {
        None
    } else {
        parse_live_path(path)
    };
    let hls = if vod.is_some() {
        None
    } else {
        parse_hls_path(path)
    };
    let publish = (live.is_some() && matches!(head.method, Method::Post | Method::Put))
        || (hls.is_some() && head.method == Method::Put);
    if !publish && (head.content_length.unwrap_or(0) > 0 || head.chunked) {
        // Only a live publish takes a request body; reading and discarding one elsewhere would
        // let a client make us spend bandwidth for nothing: a consistent 400 and close.
        return Route::Refuse {
            status: 400,
            text: "request body not accepted here\n",
            keep: false,
            allow: None,
        };
    }
    if let Some((app, name, file)) = hls {
        let method = match head.method {
            Method::Get => HlsMethod::Get,
            Method::Head => HlsMethod::Head,
            Method::Put => HlsMethod::Put,
            Method::Delete => HlsMethod::Delete,
            Method::Options => {
                return Route::Preflight {
                    methods: HLS_METHODS,
                };
            }
            other => return not_allowed(other, HLS_METHODS),
        };
        return Route::Hls {
            app: app.to_string(),
            name: name.to_string(),
            file: file.to_string(),
            method,
        };
    }
    if let Some((app, name, format)) = live {
        let (app, name) = (app.to_string(), name.to_string());
        return match head.method {
            Method::Post | Method::Put => Route::LivePublish { app, name, format },
            Method::Get | Method::Head => Route::LivePlay {
                app,
                name,
                format,
                send_body: head.method == Method::Get,
                chunked: head.version == Version::Http11,
            },
            Method::Options => Route::Preflight {
                methods: LIVE_METHODS,
            },
            // A live path names both a play and a publish: any other method is a 405.
            _ => Route::Refuse {
                status: 405,
                text: "method not allowed\n",
                keep: true,
                allow: Some(LIVE_METHODS),
            },
        };
    }
    let get_or_head = matches!(head.method, Method::Get | Method::Head);
    if let Some(rest) = vod {
        if head.method == Method::Options {
            return Route::Preflight {
                methods: VOD_METHODS,
            };
        }
        if !get_or_head {
            return not_allowed(head.method, VOD_METHODS);
        }
        return Route::Vod {
            path: rest.to_string(),
        };
    }
    if !get_or_head {
        return not_allowed(head.method, PAGE_METHODS);
    }
    match path {
        "/healthz" => Route::Page {
            page: Page::Health,
            send_body: head.method == Method::Get,
        },
        "/" | "/metrics" | "/api" => not_found(NOT_HERE),
        _ if path.starts_with("/api/") => not_found(NOT_HERE),
        _ => not_found("not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::{HttpLimits, Parse, parse_request};

    fn head(text: &str) -> RequestHead {
        let limits = HttpLimits {
            header_bytes_max: 8192,
            request_line_bytes_max: 4096,
            headers_max: 32,
        };
        match parse_request(text.as_bytes(), &limits) {
            Ok(Parse::Complete(head)) => head,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn live_paths_and_the_reserved_vod_prefix() {
        assert_eq!(
            parse_live_path("/live/cam1.flv"),
            Some(("live", "cam1", LiveFormat::Flv))
        );
        assert_eq!(
            parse_live_path("/live/cam1.ts"),
            Some(("live", "cam1", LiveFormat::Ts))
        );
        assert_eq!(
            parse_live_path("/vodka/x.flv"),
            Some(("vodka", "x", LiveFormat::Flv))
        );
        // `vod` is not an app: its paths are files, never a publish or a play.
        assert_eq!(parse_live_path("/vod/x.flv"), None);
        assert_eq!(parse_live_path("/vod/x.ts"), None);
        for bad in [
            "/live/x.mp4",
            "/live/a.b.flv",
            "/live/a.b.ts",
            "/a/b/c.flv",
            "/live/.flv",
            "live/x.flv",
        ] {
            assert_eq!(parse_live_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn hls_paths() {
        assert_eq!(
            parse_hls_path("/live/cam/index.m3u8"),
            Some(("live", "cam", "index.m3u8"))
        );
        assert_eq!(
            parse_hls_path("/live/cam/a-12.ts"),
            Some(("live", "cam", "a-12.ts"))
        );
        for bad in [
            "/vod/cam/index.m3u8",
            "/live/cam/../x.ts",
            "/live/cam/.hidden.ts",
            "/live/cam/x.txt",
            "/live/cam/.ts",
            "/live/cam/a/b.ts",
            "/live/c.m/index.m3u8",
            "/live/cam/a%2fb.ts",
        ] {
            assert_eq!(parse_hls_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_go_where_they_should() {
        let h = |t: &str| route(&head(t), Listener::Public);
        assert_eq!(
            h("GET /vod/a/b.mp4 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Vod {
                path: "a/b.mp4".into()
            }
        );
        assert_eq!(
            h("GET /vod/x.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Vod {
                path: "x.flv".into()
            }
        );
        assert_eq!(
            h("GET /live/cam.flv HTTP/1.0\r\n\r\n"),
            Route::LivePlay {
                app: "live".into(),
                name: "cam".into(),
                format: LiveFormat::Flv,
                send_body: true,
                chunked: false
            }
        );
        assert_eq!(
            h("HEAD /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::LivePlay {
                app: "live".into(),
                name: "cam".into(),
                format: LiveFormat::Flv,
                send_body: false,
                chunked: true
            }
        );
        assert_eq!(
            h("PUT /live/cam.flv HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            Route::LivePublish {
                app: "live".into(),
                name: "cam".into(),
                format: LiveFormat::Flv,
            }
        );
        assert_eq!(
            h("POST /live/cam.ts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Route::LivePublish {
                app: "live".into(),
                name: "cam".into(),
                format: LiveFormat::Ts,
            }
        );
        assert_eq!(
            h("PUT /live/cam/index3.ts HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            Route::Hls {
                app: "live".into(),
                name: "cam".into(),
                file: "index3.ts".into(),
                method: HlsMethod::Put,
            }
        );
        assert!(matches!(
            h("POST /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            Route::Refuse { status: 400, .. }
        ));
        assert!(matches!(
            h("POST /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse {
                status: 405,
                allow: Some(HLS_METHODS),
                ..
            }
        ));
        assert_eq!(
            h("OPTIONS /vod/a HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Preflight {
                methods: VOD_METHODS
            }
        );
        assert_eq!(
            h("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Page {
                page: Page::Health,
                send_body: false
            }
        );
        assert!(matches!(
            h("POST /vod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n"),
            Route::Refuse {
                status: 400,
                keep: false,
                ..
            }
        ));
        assert!(matches!(
            h("DELETE /vod/a HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse {
                status: 405,
                allow: Some(VOD_METHODS),
                ..
            }
        ));
        assert!(matches!(
            h("BREW /live/a.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse {
                status: 405,
                allow: Some(LIVE_METHODS),
                ..
            }
        ));
        assert!(matches!(
            h("BREW / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse { status: 501, .. }
        ));
        // The console is on the admin listener.
        let a = |t: &str| route(&head(t), Listener::Admin);
        assert!(matches!(
            a("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Console { asset, send_body: true } if asset.path == "/"
        ));
        assert!(matches!(
            a("HEAD /console/vendor/hls-1.7.4.min.js HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Console { asset, send_body: false } if asset.path.ends_with("hls-1.7.4.min.js")
        ));
        assert!(matches!(
            a("POST / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse {
                status: 405,
                allow: Some(PAGE_METHODS),
                ..
            }
        ));
        assert!(matches!(
            a("GET /console/nope.js HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse { status: 404, .. }
        ));
        assert!(matches!(
            h("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse { status: 404, .. }
        ));
    }

    #[test]
    fn the_public_listener_hides_the_operator_pages() {
        let h = |t: &str| route(&head(t), Listener::Public);
        for path in [
            "/metrics",
            "/api/v1/streams",
            "/api/v1/sessions",
            "/api/v1/sessions/1",
            "/",
        ] {
            assert_eq!(
                h(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")),
                Route::Refuse {
                    status: 404,
                    text: NOT_HERE,
                    keep: true,
                    allow: None
                },
                "{path}"
            );
        }
        assert!(matches!(
            h("DELETE /api/v1/sessions/1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse { status: 405, .. }
        ));
        assert_eq!(
            h("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Page {
                page: Page::Health,
                send_body: true
            }
        );
    }

    #[test]
    fn the_admin_listener_serves_pages_and_kicks_and_no_media() {
        let h = |t: &str| route(&head(t), Listener::Admin);
        for (path, page, restricted) in [
            ("/metrics", Page::Metrics, false),
            ("/healthz", Page::Health, false),
            ("/api/v1/streams", Page::Streams, true),
            ("/api/v1/sessions", Page::Sessions, true),
        ] {
            let r = h(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert_eq!(
                r,
                Route::Page {
                    page,
                    send_body: true
                },
                "{path}"
            );
            assert_eq!(r.restricted(), restricted, "{path}");
        }
        assert_eq!(
            h("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Page {
                page: Page::Metrics,
                send_body: false
            }
        );
        // The console is the admin listener's status page, restricted like the API.
        let console = h("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(console, Route::Console { asset, .. } if asset.path == "/"));
        assert!(console.restricted());
        for media in [
            "GET /vod/a.mp4",
            "GET /live/cam.flv",
            "POST /live/cam.flv",
            "GET /live/cam/index.m3u8",
            "OPTIONS /live/cam.flv",
        ] {
            assert!(
                matches!(
                    h(&format!("{media} HTTP/1.1\r\nHost: x\r\n\r\n")),
                    Route::Refuse { status: 404, .. }
                ),
                "{media}"
            );
        }
        let kick = h("DELETE /api/v1/sessions/42 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(kick, Route::Kick(Kick::Session(42)));
        assert!(kick.restricted());
        assert_eq!(
            h("DELETE /api/v1/streams/live/cam-1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Kick(Kick::Stream {
                app: "live".into(),
                name: "cam-1".into()
            })
        );
        assert!(matches!(
            h("GET /api/v1/sessions/42 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse {
                status: 405,
                allow: Some(KICK_METHODS),
                ..
            }
        ));
        // DELETE only where it names something.
        for path in ["/api/v1/sessions", "/api/v1/streams", "/metrics", "/"] {
            assert!(
                matches!(
                    h(&format!("DELETE {path} HTTP/1.1\r\nHost: x\r\n\r\n")),
                    Route::Refuse {
                        status: 405,
                        allow: Some(PAGE_METHODS),
                        ..
                    }
                ),
                "{path}"
            );
        }
        for bad in [
            "/api/v1/sessions/",
            "/api/v1/sessions/+1",
            "/api/v1/sessions/1x",
            "/api/v1/sessions/99999999999999999999999",
            "/api/v1/streams/live",
            "/api/v1/streams/live/a.b",
            "/api/v1/streams/live/cam/x",
        ] {
            assert!(
                matches!(
                    h(&format!("DELETE {bad} HTTP/1.1\r\nHost: x\r\n\r\n")),
                    Route::Refuse { status: 404, .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            h("DELETE /api/v1/sessions/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"),
            Route::Refuse { status: 400, .. }
        ));
    }

    #[test]
    fn play_urls_are_on_the_admin_api_and_restricted() {
        let h = |t: &str| route(&head(t), Listener::Admin);
        let r = h("GET /api/v1/streams/live/cam-1/play HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            r,
            Route::PlayUrls {
                app: "live".into(),
                name: "cam-1".into(),
                send_body: true
            }
        );
        assert!(r.restricted());
        assert_eq!(
            h("HEAD /api/v1/streams/live/cam/play HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::PlayUrls {
                app: "live".into(),
                name: "cam".into(),
                send_body: false
            }
        );
        // A query is not part of the path.
        assert!(matches!(
            h("GET /api/v1/streams/live/cam/play?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::PlayUrls { .. }
        ));
        assert!(matches!(
            h("DELETE /api/v1/streams/live/cam/play HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse {
                status: 405,
                allow: Some(PAGE_METHODS),
                ..
            }
        ));
        for bad in [
            "/api/v1/streams/live/a.b/play",
            "/api/v1/streams/vod/cam/play",
            "/api/v1/streams/live/cam/play/",
            "/api/v1/streams/live/cam/x/play",
            "/api/v1/streams//cam/play",
        ] {
            assert!(
                matches!(
                    h(&format!("GET {bad} HTTP/1.1\r\nHost: x\r\n\r\n")),
                    Route::Refuse { status: 404, .. }
                ),
                "{bad}"
            );
        }
        // Not on the public listener.
        let p = route(
            &head("GET /api/v1/streams/live/cam/play HTTP/1.1\r\nHost: x\r\n\r\n"),
            Listener::Public,
        );
        assert!(matches!(p, Route::Refuse { status: 404, .. }));
    }
}
