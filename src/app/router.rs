//! Routing: a parsed request head → what to do with it. No fds, no state beyond the head.

use crate::proto::http::{Method, RequestHead, Version};

/// Methods of the media paths, for `Allow` and CORS preflights.
pub const VOD_METHODS: &str = "GET, HEAD, OPTIONS";
pub const LIVE_METHODS: &str = "GET, HEAD, OPTIONS, POST, PUT";
/// Methods of the server's own pages.
pub const PAGE_METHODS: &str = "GET, HEAD";

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A file under the media root; `path` is what follows `/vod/`, still to be normalised.
    Vod { path: String },
    /// An HTTP-FLV viewer. `send_body`: GET (HEAD gets the head only); `chunked`: HTTP/1.1
    /// framing (an HTTP/1.0 viewer gets the bare stream ended by the close).
    LivePlay {
        app: String,
        name: String,
        send_body: bool,
        chunked: bool,
    },
    /// An HTTP push of FLV (POST or PUT).
    LivePublish { app: String, name: String },
    /// `OPTIONS` on a media path: 204 with `Allow` and the CORS preflight answer.
    Preflight { methods: &'static str },
    /// One of the server's own pages; `send_body` false for HEAD.
    Page { page: Page, send_body: bool },
    /// An answer without a body of ours: status, text, whether the connection may stay open,
    /// and the `Allow` header for 405/501.
    Refuse {
        status: u16,
        text: &'static str,
        keep: bool,
        allow: Option<&'static str>,
    },
}

/// The server's own pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/healthz`: JSON.
    Health,
    /// `/api/v1/streams`: JSON.
    Streams,
    /// `/metrics`: Prometheus text.
    Metrics,
    /// `/`: HTML status page.
    Status,
}

impl Page {
    pub fn content_type(self) -> &'static str {
        match self {
            Page::Health | Page::Streams => "application/json",
            Page::Metrics => "text/plain; version=0.0.4; charset=utf-8",
            Page::Status => "text/html; charset=utf-8",
        }
    }
}

/// Whether `path` is a media path (`/vod/...` or a live stream): every answer to it, errors
/// included, carries the CORS headers, so a browser player can read a 404 or a 409.
pub fn is_media_path(path: &str) -> bool {
    path.starts_with("/vod/") || parse_live_path(path).is_some()
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

/// `/{app}/{stream}.flv` → (app, stream), with conservative names (no dots, slashes or
/// escapes), so stream keys are safe in logs, labels and JSON. `vod` is not an app: `/vod/`
/// always names files, so no publish or play can claim a path under it.
pub fn parse_live_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (app, file) = rest.split_once('/')?;
    if app == "vod" {
        return None;
    }
    let name = file.strip_suffix(".flv")?;
    (valid_live_name(app) && valid_live_name(name)).then_some((app, name))
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

/// Route one request head.
pub fn route(head: &RequestHead) -> Route {
    let path = head.path.as_str();
    // `/vod/` is routed first: it always means files (an FLV file at the top of the media root
    // included), whatever a live path would look like.
    let vod = path.strip_prefix("/vod/");
    let live = if vod.is_some() {
        None
    } else {
        parse_live_path(path)
    };
    let publish = live.is_some() && matches!(head.method, Method::Post | Method::Put);
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
    if let Some((app, name)) = live {
        let (app, name) = (app.to_string(), name.to_string());
        return match head.method {
            Method::Post | Method::Put => Route::LivePublish { app, name },
            Method::Get | Method::Head => Route::LivePlay {
                app,
                name,
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
    let page = match path {
        "/healthz" => Page::Health,
        "/api/v1/streams" => Page::Streams,
        "/metrics" => Page::Metrics,
        "/" => Page::Status,
        _ => {
            return Route::Refuse {
                status: 404,
                text: "not found\n",
                keep: true,
                allow: None,
            };
        }
    };
    Route::Page {
        page,
        send_body: head.method == Method::Get,
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
        assert_eq!(parse_live_path("/live/cam1.flv"), Some(("live", "cam1")));
        assert_eq!(parse_live_path("/vodka/x.flv"), Some(("vodka", "x")));
        // `vod` is not an app: its paths are files, never a publish or a play.
        assert_eq!(parse_live_path("/vod/x.flv"), None);
        for bad in [
            "/live/x.ts",
            "/live/a.b.flv",
            "/a/b/c.flv",
            "/live/.flv",
            "live/x.flv",
        ] {
            assert_eq!(parse_live_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_go_where_they_should() {
        let h = |t: &str| route(&head(t));
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
                send_body: true,
                chunked: false
            }
        );
        assert_eq!(
            h("HEAD /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::LivePlay {
                app: "live".into(),
                name: "cam".into(),
                send_body: false,
                chunked: true
            }
        );
        assert_eq!(
            h("PUT /live/cam.flv HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            Route::LivePublish {
                app: "live".into(),
                name: "cam".into()
            }
        );
        assert_eq!(
            h("OPTIONS /vod/a HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Preflight {
                methods: VOD_METHODS
            }
        );
        assert_eq!(
            h("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Page {
                page: Page::Metrics,
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
        assert!(matches!(
            h("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse { status: 404, .. }
        ));
    }
}
