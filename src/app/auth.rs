//! Who may publish and play: the `[auth]` policy, per app with a default for all apps.
//! Sans-IO: an action, a stream, the request's query, the client's address and the time in;
//! allowed, or refused with the status and a reason out. Every protocol asks the same
//! question at the same point (HTTP before a publish or play starts, RTMP at its `publish` and
//! `play` commands), so one key or one signed URL covers a stream's FLV, TS, HLS and RTMP.
//!
//! Modes:
//! - `open`: anyone.
//! - `loopback`: clients on 127.0.0.0/8 or ::1 only (the default for publishing, so a fresh
//!   box is not an open relay while a user on the same machine can publish at once).
//! - `key`: `?key=K` with K one of the app's (or the default) `keys`.
//! - `signed`: `?expires=UNIX_SECONDS&token=HEX`, token = lowercase hex of
//!   HMAC-SHA256(secret, "{action}:{app}/{stream}:{expires}"), any of the configured secrets
//!   (several at once, so a secret can be rotated); expired or wrong is refused. The MAC is
//!   checked with the `hmac` crate's constant-time comparison, keys with `subtle`.
//!
//! - `http`: the operator's auth service decides (`auth.http_url`, like SRS's http_hooks and
//!   nginx-rtmp's on_publish/on_play): the worker POSTs a JSON description of the request
//!   and a 2xx answer allows; anything else, no answer within `auth.http_timeout_ms`, or no
//!   service at all refuses (`server::callout`). [`Auth::check`] cannot decide this mode on
//!   its own and refuses (fail closed); callers ask [`Auth::needs_callout`] first.
//!
//! No credentials at all → 401; wrong, expired or for another action or stream → 403.
//!
//! [`Auth::mint`] goes the other way, for the operator's console: the credentials a play URL
//! needs under the policy (a fresh signed token, the first key, or none), minted by the
//! server so that the console's player and the URLs it shows work.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// What a client wants to do with a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Publish,
    Play,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
        }
    }
}

/// How an action is authorised.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Open,
    Loopback,
    Key,
    Signed,
    /// Ask the auth service at `auth.http_url`.
    Http,
}

/// One app's policy; unset fields take the default's.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AppAuth {
    pub publish: Option<Mode>,
    pub play: Option<Mode>,
    pub keys: Option<Vec<String>>,
}

/// `[auth]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Who may publish: `loopback` (default), `open`, `key`, `signed`, `http`.
    pub publish: Mode,
    /// Who may play: `open` (default), `loopback`, `key`, `signed`, `http`.
    pub play: Mode,
    /// Keys accepted as `?key=` (mode `key`).
    pub keys: Vec<String>,
    /// Secrets for signed URLs (mode `signed`); all are accepted, for rotation.
    pub secrets: Vec<String>,
    /// A file with more secrets, one per line (blank lines and `#` comments ignored).
    pub secret_file: Option<std::path::PathBuf>,
    /// Per-app policies: `[auth.apps.NAME]`.
    pub apps: HashMap<String, AppAuth>,
    /// The auth service (mode `http`, and the publish_done/play_done notifications):
    /// `http://HOST[:PORT]/PATH`. Plain HTTP only; HOST is an IP literal or a name resolved
    /// once when the configuration is loaded.
    pub http_url: Option<String>,
    /// How long a decision may take (connect, request, answer); past it: refused.
    pub http_timeout_ms: u64,
    /// How long an allow or a deny is remembered per worker (0: ask every time).
    pub http_cache_ms: u64,
    /// Decisions remembered per worker at most.
    pub http_cache_entries: usize,
    /// Requests to the auth service in flight per worker at most (decisions and
    /// notifications); past it a decision is answered 503, a notification dropped.
    pub http_pending_max: usize,
    /// Send publish_done and play_done to `http_url` when a publish or a live play ends.
    pub http_notify: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            publish: Mode::Loopback,
            play: Mode::Open,
            keys: Vec::new(),
            secrets: Vec::new(),
            secret_file: None,
            apps: HashMap::new(),
            http_url: None,
            http_timeout_ms: 2000,
            http_cache_ms: 5000,
            http_cache_entries: 10_000,
            http_pending_max: 256,
            http_notify: true,
        }
    }
}

/// The auth service, resolved when the configuration is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpService {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The Host header: the URL's authority as written.
    pub host: String,
    /// The request target (path and query of the URL; `/` if none).
    pub path: String,
    pub timeout_ms: u64,
    pub cache_ms: u64,
    pub cache_entries: usize,
    pub pending_max: usize,
    pub notify: bool,
}

impl HttpService {
    /// `http_url` parsed and its host resolved (std `ToSocketAddrs`: may block on DNS, so
    /// only ever called while the configuration is loaded, on the main thread).
    fn resolve(config: &AuthConfig, url: &str) -> Result<HttpService, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(format!(
                    "auth.http_url {url}: https is not supported (the binary has no TLS stack); run the auth service on this machine or on a private network and use http://"
                ));
            }
            _ => {
                return Err(format!(
                    "auth.http_url {url}: expected http://HOST[:PORT]/PATH"
                ));
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "auth.http_url {url}: expected http://HOST[:PORT]/PATH (no user info)"
            ));
        }
        if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "auth.http_url {url}: the path must be printable, without spaces or a fragment"
            ));
        }
        // [v6]:port, host:port, or a host alone (port 80).
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((ip, after)) = v6.split_once(']') else {
                return Err(format!("auth.http_url {url}: unclosed [ in the host"));
            };
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').unwrap_or(p)),
            };
            (ip, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("auth.http_url {url}: bad port {p:?}")),
            },
        };
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("auth.http_url {url}: cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("auth.http_url {url}: {host} has no address"))?,
        };
        Ok(HttpService {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
            timeout_ms: config.http_timeout_ms,
            cache_ms: config.http_cache_ms,
            cache_entries: config.http_cache_entries,
            pending_max: config.http_pending_max,
            notify: config.http_notify,
        })
    }
}

/// Why an action was refused: the HTTP status (401 no credentials, 403 wrong ones), a short
/// label for metrics, and a message for the client (never the key or the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

/// The resolved policy (secrets read from their file).
#[derive(Clone, Debug)]
pub struct Auth {
    config: AuthConfig,
    secrets: Vec<Vec<u8>>,
    http: Option<HttpService>,
}

impl Auth {
    /// Resolve `config`: reads `secret_file`; checks that every mode has what it needs.
    pub fn new(config: &AuthConfig) -> Result<Auth, String> {
        let mut secrets: Vec<Vec<u8>> = config
            .secrets
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if let Some(path) = &config.secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("auth.secret_file {}: {e}", path.display()))?;
            secrets.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.as_bytes().to_vec()),
            );
        }
        if secrets.iter().any(|s| s.len() < 16) {
            return Err("auth secrets must be at least 16 bytes".into());
        }
        validate_http_limits(config)?;
        let http = match &config.http_url {
            Some(url) => Some(HttpService::resolve(config, url)?),
            None => None,
        };
        let auth = Auth {
            config: config.clone(),
            secrets,
            http,
        };
        let apps = std::iter::once(None).chain(config.apps.keys().map(|a| Some(a.as_str())));
        for app in apps {
            for action in [Action::Publish, Action::Play] {
                let (mode, keys) = auth.policy(action, app.unwrap_or(""));
                let key = match app {
                    Some(app) => format!("auth.apps.{app}.{}", action.as_str()),
                    None => format!("auth.{}", action.as_str()),
                };
                if mode == Mode::Key && keys.is_empty() {
                    return Err(format!(
                        "{key} = \"key\" needs auth.keys (or the app's keys)"
                    ));
                }
                if mode == Mode::Signed && auth.secrets.is_empty() {
                    return Err(format!(
                        "{key} = \"signed\" needs auth.secrets or auth.secret_file"
                    ));
                }
                if mode == Mode::Http && auth.http.is_none() {
                    return Err(format!(
                        "{key} = \"http\" needs auth.http_url (the auth service's http://HOST:PORT/PATH)"
                    ));
                }
            }
        }
        Ok(auth)
    }

    /// The auth service (`auth.http_url`), if one is configured.
    pub fn http(&self) -> Option<&HttpService> {
        self.http.as_ref()
    }

    /// Whether `action` on `app` is decided by the auth service (mode `http`).
    pub fn needs_callout(&self, action: Action, app: &str) -> bool {
        self.policy(action, app).0 == Mode::Http
    }

    /// Whether publish_done/play_done notifications are sent.
    pub fn notifies(&self) -> bool {
        self.http.as_ref().is_some_and(|h| h.notify)
    }

    fn policy(&self, action: Action, app: &str) -> (Mode, &[String]) {
        let per_app = self.config.apps.get(app);
        let mode = match action {
            Action::Publish => per_app.and_then(|a| a.publish),
            Action::Play => per_app.and_then(|a| a.play),
        }
        .unwrap_or(match action {
            Action::Publish => self.config.publish,
            Action::Play => self.config.play,
        });
        let keys = per_app
            .and_then(|a| a.keys.as_deref())
            .unwrap_or(&self.config.keys);
        (mode, keys)
    }

    /// May `client` do `action` on `app/stream` with `query` (the URL's, or the RTMP stream
    /// name's) at `now_unix_s`?
    pub fn check(
        &self,
        action: Action,
        app: &str,
        stream: &str,
        query: Option<&str>,
        client: Option<IpAddr>,
        now_unix_s: u64,
    ) -> Result<(), Refusal> {
        let (mode, keys) = self.policy(action, app);
        match mode {
            Mode::Open => Ok(()),
            Mode::Loopback => {
                if client.is_some_and(|ip| ip.is_loopback() || is_mapped_loopback(ip)) {
                    Ok(())
                } else {
                    let key = format!("auth.{}", action.as_str());
                    Err(refuse(
                        403,
                        "not_loopback",
                        format!(
                            "{} is allowed from this machine only; set {key} (or auth.apps.{app}.{}) to open, key or signed",
                            action.as_str(),
                            action.as_str()
                        ),
                    ))
                }
            }
            Mode::Key => {
                let Some(given) = param(query, "key") else {
                    return Err(refuse(401, "no_key", "a key is required (?key=...)".into()));
                };
                let ok = keys.iter().fold(false, |ok, k| {
                    ok | bool::from(k.as_bytes().ct_eq(given.as_bytes()))
                });
                if ok {
                    Ok(())
                } else {
                    Err(refuse(403, "wrong_key", "wrong key".into()))
                }
            }
            Mode::Signed => {
                let (Some(expires), Some(token)) = (param(query, "expires"), param(query, "token"))
                else {
                    return Err(refuse(
                        401,
                        "no_token",
                        "a signed URL is required (?expires=...&token=...)".into(),
                    ));
                };
                let Ok(expires_s) = expires.parse::<u64>() else {
                    return Err(refuse(403, "bad_token", "malformed expires".into()));
                };
                if expires_s < now_unix_s {
                    return Err(refuse(403, "expired", "the signed URL has expired".into()));
                }
                let Some(mac) = hex_decode(&token) else {
                    return Err(refuse(403, "bad_token", "malformed token".into()));
                };
                let message = signed_message(action, app, stream, expires_s);
                let valid = self.secrets.iter().any(|secret| {
                    let Ok(mut m) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
                        return false;
                    };
                    m.update(message.as_bytes());
                    m.verify_slice(&mac).is_ok()
                });
                if valid {
                    Ok(())
                } else {
                    Err(refuse(403, "bad_token", "wrong token".into()))
                }
            }
            // Decided by the auth service through the worker's ring; a caller that did not
            // ask `needs_callout` first is refused, never let through.
            Mode::Http => Err(refuse(
                403,
                "http_required",
                "the auth service must decide".into(),
            )),
        }
    }
}

/// What a URL must carry for `action` on a stream to be allowed, as the server can mint it
/// ([`Auth::mint`]): for the operator's console, which plays and shows URLs that work.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Mode `open`: nothing.
    Open,
    /// Mode `loopback`: nothing a URL can carry; the client's address decides.
    Loopback,
    /// Mode `key`: `?key=K`, the first configured key.
    Key(String),
    /// Mode `signed`: `?expires=E&token=T`, signed with the first configured secret.
    Signed { expires: u64, token: String },
    /// Mode `http`: the auth service decides; the server has nothing to mint.
    External,
}

/// Never the key or the token: credentials may end up in a log line through `{:?}`.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Open => f.write_str("Open"),
            Credentials::Loopback => f.write_str("Loopback"),
            Credentials::Key(_) => f.write_str("Key(..)"),
            Credentials::Signed { expires, .. } => write!(f, "Signed {{ expires: {expires}, .. }}"),
            Credentials::External => f.write_str("External"),
        }
    }
}

impl Credentials {
    /// `none` (open, loopback), `key`, `signed` or `external` (the auth service's).
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Open | Credentials::Loopback => "none",
            Credentials::Key(_) => "key",
            Credentials::Signed { .. } => "signed",
            Credentials::External => "external",
        }
    }

    /// The query that carries them (percent-encoded as [`param`] decodes it); None if none.
    pub fn query(&self) -> Option<String> {
        match self {
            Credentials::Key(key) => Some(format!("key={}", query_escape(key))),
            Credentials::Signed { expires, token } => {
                Some(format!("expires={expires}&token={token}"))
            }
            Credentials::Open | Credentials::Loopback | Credentials::External => None,
        }
    }

    /// Until when they are valid (signed URLs only).
    pub fn expires(&self) -> Option<u64> {
        match self {
            Credentials::Signed { expires, .. } => Some(*expires),
            _ => None,
        }
    }
}

/// Everything but unreserved characters escaped: a key may hold `&`, `=`, `%` or `+`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn query_escape(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

impl Auth {
    /// The credentials a URL for `action` on `app/stream` needs under the policy, minted now
    /// (`now_unix_s`): a signed token valid for `ttl_s` (with the first secret), or the first
    /// key. [`Auth::check`] lets what this mints through until it expires.
    pub fn mint(
        &self,
        action: Action,
        app: &str,
        stream: &str,
        now_unix_s: u64,
        ttl_s: u64,
    ) -> Credentials {
        let (mode, keys) = self.policy(action, app);
        match mode {
            Mode::Open => Credentials::Open,
            Mode::Loopback => Credentials::Loopback,
            // `Auth::new` refuses a mode without what it needs; were it missing all the same,
            // the operator is told credentials are needed rather than handed a broken URL.
            Mode::Key => keys
                .first()
                .map_or(Credentials::External, |k| Credentials::Key(k.clone())),
            Mode::Signed => match self.secrets.first() {
                Some(secret) => {
                    let expires = now_unix_s.saturating_add(ttl_s);
                    let token = sign(secret, action, app, stream, expires);
                    Credentials::Signed { expires, token }
                }
                None => Credentials::External,
            },
            Mode::Http => Credentials::External,
        }
    }
}

/// What the auth service's answer means, for the client and the metrics.
pub fn http_refusal(reason: &'static str) -> Refusal {
    let message = match reason {
        "http_timeout" => "the auth service did not answer in time",
        "http_unreachable" => "the auth service is unreachable",
        "http_busy" => "too many auth requests in flight (auth.http_pending_max)",
        _ => "refused by the auth service",
    };
    let status = if reason == "http_busy" { 503 } else { 403 };
    refuse(status, reason, message.into())
}

/// The auth service's limits, checked whether or not a service is configured.
fn validate_http_limits(config: &AuthConfig) -> Result<(), String> {
    let range = |key: &str, v: u64, min: u64, max: u64| {
        if (min..=max).contains(&v) {
            Ok(())
        } else {
            Err(format!("auth.{key} = {v}: must be within {min}..={max}"))
        }
    };
    range("http_timeout_ms", config.http_timeout_ms, 10, 60_000)?;
    range("http_cache_ms", config.http_cache_ms, 0, 3_600_000)?;
    range(
        "http_cache_entries",
        config.http_cache_entries as u64,
        0,
        10_000_000,
    )?;
    range(
        "http_pending_max",
        config.http_pending_max as u64,
        1,
        65_536,
    )?;
    Ok(())
}

/// What a signed URL's token signs.
fn signed_message(action: Action, app: &str, stream: &str, expires_s: u64) -> String {
    format!("{}:{app}/{stream}:{expires_s}", action.as_str())
}

/// The token for `action` on `app/stream` until `expires_s` with `secret` (for operators'
/// tools and tests).
pub fn sign(secret: &[u8], action: Action, app: &str, stream: &str, expires_s: u64) -> String {
    let Ok(mut m) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    m.update(signed_message(action, app, stream, expires_s).as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn refuse(status: u16, reason: &'static str, message: String) -> Refusal {
    Refusal {
        status,
        reason,
        message,
    }
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// The first value of `name` in a query string (percent-decoded).
pub fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-secret";

    fn auth(toml: &str) -> Auth {
        let config: AuthConfig = toml::from_str(toml).expect("toml");
        Auth::new(&config).expect("valid")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn defaults_publish_from_loopback_only_and_play_open() {
        let a = Auth::new(&AuthConfig::default()).unwrap();
        let check = |action, who| a.check(action, "live", "s", None, ip(who), 0);
        assert!(check(Action::Publish, "127.0.0.1").is_ok());
        assert!(check(Action::Publish, "::1").is_ok());
        assert!(check(Action::Publish, "::ffff:127.0.0.1").is_ok());
        let refused = check(Action::Publish, "192.0.2.7").unwrap_err();
        assert_eq!((refused.status, refused.reason), (403, "not_loopback"));
        assert!(
            refused.message.contains("auth.publish"),
            "{}",
            refused.message
        );
        assert!(check(Action::Play, "192.0.2.7").is_ok());
    }

    #[test]
    fn keys_per_app_and_by_default() {
        let a = auth(
            "publish = \"key\"\nkeys = [\"k1\", \"k2\"]\n[apps.studio]\nkeys = [\"s1\"]\nplay = \"key\"\n",
        );
        let check = |action, app, q: Option<&str>| {
            a.check(action, app, "s", q, ip("192.0.2.7"), 0)
                .map_err(|r| (r.status, r.reason))
        };
        assert_eq!(check(Action::Publish, "live", None), Err((401, "no_key")));
        assert_eq!(
            check(Action::Publish, "live", Some("key=nope")),
            Err((403, "wrong_key"))
        );
        assert_eq!(check(Action::Publish, "live", Some("a=1&key=k2")), Ok(()));
        assert_eq!(
            check(Action::Publish, "studio", Some("key=k1")),
            Err((403, "wrong_key"))
        );
        assert_eq!(check(Action::Publish, "studio", Some("key=s1")), Ok(()));
        assert_eq!(check(Action::Play, "live", None), Ok(()));
        assert_eq!(check(Action::Play, "studio", None), Err((401, "no_key")));
    }

    #[test]
    fn signed_urls_are_bound_to_action_stream_and_time_and_secrets_rotate() {
        let a = auth(&format!(
            "publish = \"signed\"\nplay = \"signed\"\nsecrets = [\"{SECRET}\", \"another-secret-0123456\"]\n"
        ));
        let now = 1_800_000_000;
        let query = |secret: &str, action, stream, expires: u64| {
            format!(
                "expires={expires}&token={}",
                sign(secret.as_bytes(), action, "live", stream, expires)
            )
        };
        let check = |action, stream, q: &str| {
            a.check(action, "live", stream, Some(q), ip("192.0.2.7"), now)
                .map_err(|r| (r.status, r.reason))
        };
        let good = query(SECRET, Action::Publish, "cam", now + 60);
        assert_eq!(check(Action::Publish, "cam", &good), Ok(()));
        // The second secret works too (rotation).
        let rotated = query("another-secret-0123456", Action::Play, "cam", now + 60);
        assert_eq!(check(Action::Play, "cam", &rotated), Ok(()));
        // Another stream, another action, expired, unknown secret, tampered, missing.
        assert_eq!(
            check(Action::Publish, "other", &good),
            Err((403, "bad_token"))
        );
        assert_eq!(check(Action::Play, "cam", &good), Err((403, "bad_token")));
        let old = query(SECRET, Action::Publish, "cam", now - 1);
        assert_eq!(check(Action::Publish, "cam", &old), Err((403, "expired")));
        let stranger = query("not-a-configured-secret", Action::Publish, "cam", now + 60);
        assert_eq!(
            check(Action::Publish, "cam", &stranger),
            Err((403, "bad_token"))
        );
        let tampered = good.replace(
            &format!("expires={}", now + 60),
            &format!("expires={}", now + 999),
        );
        assert_eq!(
            check(Action::Publish, "cam", &tampered),
            Err((403, "bad_token"))
        );
        assert_eq!(
            check(Action::Publish, "cam", "expires=1&token=zz"),
            Err((403, "expired"))
        );
        assert_eq!(
            check(
                Action::Publish,
                "cam",
                &format!("expires={}&token=zz", now + 5)
            ),
            Err((403, "bad_token"))
        );
        assert_eq!(check(Action::Publish, "cam", "x=1"), Err((401, "no_token")));
    }

    #[test]
    fn a_minted_signed_url_is_let_through_until_it_expires() {
        let a = auth(&format!(
            "publish = \"signed\"\nplay = \"signed\"\nsecrets = [\"{SECRET}\", \"another-secret-0123456\"]\n"
        ));
        let now = 1_800_000_000;
        let minted = a.mint(Action::Play, "live", "cam", now, 3600);
        assert_eq!(minted.kind(), "signed");
        assert_eq!(minted.expires(), Some(now + 3600));
        // Signed with the first secret, in the format `check` verifies.
        let query = minted.query().expect("a query");
        assert_eq!(
            query,
            format!(
                "expires={}&token={}",
                now + 3600,
                sign(SECRET.as_bytes(), Action::Play, "live", "cam", now + 3600)
            )
        );
        let check = |stream, action, at| {
            a.check(action, "live", stream, Some(&query), ip("192.0.2.7"), at)
                .map_err(|r| (r.status, r.reason))
        };
        assert_eq!(check("cam", Action::Play, now), Ok(()));
        assert_eq!(check("cam", Action::Play, now + 3600), Ok(()));
        assert_eq!(
            check("cam", Action::Play, now + 3601),
            Err((403, "expired"))
        );
        // For that stream and that action only.
        assert_eq!(check("other", Action::Play, now), Err((403, "bad_token")));
        assert_eq!(check("cam", Action::Publish, now), Err((403, "bad_token")));
        // An expired one minted in the past does not verify.
        let old = a.mint(Action::Play, "live", "cam", now - 7200, 3600);
        let old = old.query().unwrap();
        assert_eq!(
            a.check(Action::Play, "live", "cam", Some(&old), None, now)
                .map_err(|r| r.reason),
            Err("expired")
        );
        // Never the token in a Debug rendering.
        let token = sign(SECRET.as_bytes(), Action::Play, "live", "cam", now + 3600);
        assert!(!format!("{minted:?}").contains(&token));
    }

    #[test]
    fn minted_credentials_follow_each_mode_and_app() {
        let a = auth(
            "play = \"key\"\nkeys = [\"a&b=c %+\", \"second\"]\n\
             http_url = \"http://127.0.0.1:1/\"\n\
             [apps.open]\nplay = \"open\"\n[apps.box]\nplay = \"loopback\"\n\
             [apps.svc]\nplay = \"http\"\n\
             [apps.own]\nplay = \"key\"\nkeys = [\"own-key\"]\n",
        );
        let mint = |app| a.mint(Action::Play, app, "cam", 1000, 60);
        // The first key, escaped so that `param` gives it back and `check` accepts it.
        let key = mint("live");
        assert_eq!(key.kind(), "key");
        assert_eq!(key.expires(), None);
        let query = key.query().unwrap();
        assert_eq!(query, "key=a%26b%3Dc%20%25%2B");
        assert_eq!(param(Some(&query), "key").as_deref(), Some("a&b=c %+"));
        let client = ip("192.0.2.7");
        assert!(
            a.check(Action::Play, "live", "cam", Some(&query), client, 1000)
                .is_ok()
        );
        assert!(!format!("{key:?}").contains("a&b"));
        assert_eq!(mint("own").query().as_deref(), Some("key=own-key"));
        assert_eq!(mint("open"), Credentials::Open);
        assert_eq!(mint("box"), Credentials::Loopback);
        assert_eq!(mint("svc"), Credentials::External);
        for (app, kind) in [("open", "none"), ("box", "none"), ("svc", "external")] {
            assert_eq!(mint(app).kind(), kind, "{app}");
            assert_eq!(mint(app).query(), None, "{app}");
        }
        // Publishing is loopback by default: nothing to mint.
        assert_eq!(
            a.mint(Action::Publish, "live", "cam", 0, 60),
            Credentials::Loopback
        );
    }

    #[test]
    fn a_mode_without_what_it_needs_is_a_config_error_naming_the_key() {
        let err = |toml: &str| Auth::new(&toml::from_str(toml).unwrap()).unwrap_err();
        assert!(err("publish = \"key\"\n").contains("auth.publish"));
        assert!(err("[apps.x]\nplay = \"signed\"\n").contains("auth.apps.x.play"));
        assert!(err("secrets = [\"short\"]\n").contains("16 bytes"));
        assert!(err("play = \"http\"\n").contains("auth.http_url"));
        assert!(err("[apps.x]\npublish = \"http\"\n").contains("auth.apps.x.publish"));
    }

    #[test]
    fn http_urls_are_plain_http_resolved_at_load_and_limits_name_their_key() {
        let ok = |toml: &str| auth(toml).http().cloned().expect("service");
        let s = ok("publish = \"http\"\nhttp_url = \"http://127.0.0.1:9000/auth?x=1\"\n");
        assert_eq!(s.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            (s.host.as_str(), s.path.as_str()),
            ("127.0.0.1:9000", "/auth?x=1")
        );
        assert_eq!(
            (s.timeout_ms, s.cache_ms, s.cache_entries),
            (2000, 5000, 10_000)
        );
        assert_eq!((s.pending_max, s.notify), (256, true));
        let s = ok("http_url = \"http://[::1]:81\"\n");
        assert_eq!(
            (s.addr, s.path.as_str()),
            ("[::1]:81".parse().unwrap(), "/")
        );
        let s = ok("http_url = \"http://localhost/a\"\n");
        assert_eq!(s.addr.port(), 80);
        assert!(s.addr.ip().is_loopback());
        let a = auth(
            "play = \"http\"\nhttp_url = \"http://127.0.0.1:1/\"\n[apps.free]\nplay = \"open\"\n",
        );
        assert!(a.needs_callout(Action::Play, "live"));
        assert!(!a.needs_callout(Action::Play, "free"));
        assert!(!a.needs_callout(Action::Publish, "live"));
        // Fail closed if asked directly.
        assert!(
            a.check(Action::Play, "live", "s", None, ip("127.0.0.1"), 0)
                .is_err()
        );

        let err = |toml: &str| Auth::new(&toml::from_str(toml).unwrap()).unwrap_err();
        let e = err("http_url = \"https://auth.example/x\"\n");
        assert!(
            e.contains("https is not supported") && e.contains("TLS"),
            "{e}"
        );
        assert!(err("http_url = \"ftp://x/\"\n").contains("auth.http_url"));
        assert!(err("http_url = \"http://127.0.0.1:0/\"\n").contains("bad port"));
        assert!(err("http_url = \"http://u@127.0.0.1/\"\n").contains("auth.http_url"));
        assert!(err("http_url = \"http://no-such-host.invalid/\"\n").contains("cannot resolve"));
        for (key, value) in [
            ("http_timeout_ms", "0"),
            ("http_cache_ms", "99999999"),
            ("http_pending_max", "0"),
            ("http_cache_entries", "999999999"),
        ] {
            let e = err(&format!(
                "http_url = \"http://127.0.0.1:1/\"\n{key} = {value}\n"
            ));
            assert!(e.contains(&format!("auth.{key}")), "{e}");
        }
    }
}
