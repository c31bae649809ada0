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
//! No credentials at all → 401; wrong, expired or for another action or stream → 403.

use std::collections::HashMap;
use std::net::IpAddr;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// What a client wants to do with a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Who may publish: `loopback` (default), `open`, `key`, `signed`.
    pub publish: Mode,
    /// Who may play: `open` (default), `loopback`, `key`, `signed`.
    pub play: Mode,
    /// Keys accepted as `?key=` (mode `key`).
    pub keys: Vec<String>,
    /// Secrets for signed URLs (mode `signed`); all are accepted, for rotation.
    pub secrets: Vec<String>,
    /// A file with more secrets, one per line (blank lines and `#` comments ignored).
    pub secret_file: Option<std::path::PathBuf>,
    /// Per-app policies: `[auth.apps.NAME]`.
    pub apps: HashMap<String, AppAuth>,
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
        }
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
        let auth = Auth {
            config: config.clone(),
            secrets,
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
            }
        }
        Ok(auth)
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
        }
    }
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
    fn a_mode_without_what_it_needs_is_a_config_error_naming_the_key() {
        let err = |toml: &str| Auth::new(&toml::from_str(toml).unwrap()).unwrap_err();
        assert!(err("publish = \"key\"\n").contains("auth.publish"));
        assert!(err("[apps.x]\nplay = \"signed\"\n").contains("auth.apps.x.play"));
        assert!(err("secrets = [\"short\"]\n").contains("16 bytes"));
    }
}
