//! HLS for the load generator: a media playlist parser and a client that behaves like a live
//! player's loader, sans-IO.
//!
//! The client ([`HlsClient`]) loops, for the whole run, over one keep-alive HTTP/1.1
//! connection (the caller opens a new one when the server closes it):
//! 1. GET the media playlist; parse its target duration, media sequence, segments (URI,
//!    EXTINF duration, program date) and ENDLIST ([`parse_media_playlist`]);
//! 2. GET, in order, every segment it has not fetched yet; on the first playlist, like hls.js
//!    and AVPlayer, it starts at the third segment from the end (or the first, when fewer are
//!    listed) — [`SegmentPlanner`]; segments that left the window before it got to them are
//!    counted as missed;
//! 3. wait half the target duration (RFC 8216 §6.3.4's reload interval when the playlist has
//!    not changed; a loader polls at that pace) and go to 1. A playlist with ENDLIST and
//!    nothing new ends the client (the stream ended).
//!
//! A failed playlist (status other than 200, a parse error, a broken connection) is retried
//! after the same half target duration; a failed segment is counted and skipped. Segment
//! URIs are resolved against the playlist's path (relative, absolute-path, or absolute URLs
//! on the same host; anything else is an error, never a request elsewhere), and a URI with
//! bytes that do not belong in a request line is refused.
//!
//! Measured per client ([`HlsClientStats`]) and per fetch ([`HlsRunStats`]): playlist and
//! segment fetches ok and failed, 304 and 404 answers, body bytes, segment download time
//! (request sent → last body byte), segment lag, and stalls:
//! - segment lag = wall clock at the segment's last byte − (its EXT-X-PROGRAM-DATE-TIME +
//!   its EXTINF duration), i.e. how long after the segment could first exist (its last media
//!   had been produced) the client had it; only for playlists that carry program dates
//!   (uringcast does, nginx-rtmp does not), only meaningful when the server's and this
//!   machine's clocks agree (loopback), and only for segments that were new in a reloaded
//!   playlist: the ones a client starts with are behind the live edge on purpose (up to
//!   three segments), which says where players start, not how fast segments arrive;
//! - a stall is a gap of more than 2 × target duration with no segment completed: between two
//!   completions, from the first playlist to the first segment, or from the last segment to
//!   the end of the run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::http1::{HttpError, ResponseEvent, ResponseHead, ResponseLimits, ResponseReader};

/// Limits of the HLS client; every one is a named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsLimits {
    /// Largest playlist body accepted (it is buffered to be parsed).
    pub max_playlist_bytes: usize,
    /// Most segments accepted in one playlist.
    pub max_segments: usize,
    /// Longest segment URI.
    pub max_uri_bytes: usize,
    /// Reload interval when the target duration is not known yet (a failed first playlist).
    pub retry_without_target_ms: u64,
    /// Shortest and longest reload interval (half the target duration, clamped).
    pub min_reload_ms: u64,
    pub max_reload_ms: u64,
    /// Segments a client starts behind the live edge, as players do.
    pub start_segments_from_end: usize,
    pub response: ResponseLimits,
}

/// What a playlist says about one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistSegment {
    /// Media sequence number.
    pub seq: u64,
    pub uri: String,
    pub duration_ms: u64,
    /// Wall clock of its first media (Unix ms): its own EXT-X-PROGRAM-DATE-TIME, or the
    /// previous segment's plus that one's duration; `None` when the playlist has none (or a
    /// discontinuity came without a new one).
    pub program_date_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylist {
    pub target_duration_ms: u64,
    pub media_sequence: u64,
    pub segments: Vec<PlaylistSegment>,
    pub ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistError {
    /// It does not start with `#EXTM3U`.
    NotM3u,
    /// Not UTF-8.
    NotText,
    /// A master playlist (EXT-X-STREAM-INF): this client plays one media playlist.
    Master,
    /// No (or a bad) EXT-X-TARGETDURATION.
    BadTargetDuration,
    BadMediaSequence,
    /// A URI line without an EXTINF before it, or a bad EXTINF.
    BadExtinf,
    /// More than [`HlsLimits::max_segments`] segments, or a URI over
    /// [`HlsLimits::max_uri_bytes`].
    TooLarge,
}

/// Parses a media playlist (RFC 8216 §4): the tags this client needs, the rest ignored.
pub fn parse_media_playlist(
    body: &[u8],
    limits: &HlsLimits,
) -> Result<MediaPlaylist, PlaylistError> {
    let text = std::str::from_utf8(body).map_err(|_| PlaylistError::NotText)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err(PlaylistError::NotM3u);
    }
    let mut target_duration_ms = None;
    let mut media_sequence = 0u64;
    let mut segments = Vec::new();
    let mut ended = false;
    let mut pending_duration_ms = None;
    let mut pending_date_ms = None;
    // The date the next segment starts at, carried from the previous one.
    let mut running_date_ms: Option<i64> = None;
    for line in lines {
        if let Some(tag) = line.strip_prefix('#') {
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-TARGETDURATION" => {
                    let secs: f64 = value
                        .trim()
                        .parse()
                        .map_err(|_| PlaylistError::BadTargetDuration)?;
                    if !(secs > 0.0 && secs <= 3600.0) {
                        return Err(PlaylistError::BadTargetDuration);
                    }
                    target_duration_ms = Some((secs * 1000.0).round() as u64);
                }
                "EXT-X-MEDIA-SEQUENCE" => {
                    media_sequence = value
                        .trim()
                        .parse()
                        .map_err(|_| PlaylistError::BadMediaSequence)?;
                }
                "EXTINF" => {
                    let secs: f64 = value
                        .split(',')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .parse()
                        .map_err(|_| PlaylistError::BadExtinf)?;
                    if !(0.0..=86_400.0).contains(&secs) {
                        return Err(PlaylistError::BadExtinf);
                    }
                    pending_duration_ms = Some((secs * 1000.0).round() as u64);
                }
                "EXT-X-PROGRAM-DATE-TIME" => pending_date_ms = parse_iso8601_ms(value.trim()),
                "EXT-X-DISCONTINUITY" => running_date_ms = None,
                "EXT-X-ENDLIST" => ended = true,
                "EXT-X-STREAM-INF" => return Err(PlaylistError::Master),
                _ => {}
            }
            continue;
        }
        let duration_ms = pending_duration_ms.take().ok_or(PlaylistError::BadExtinf)?;
        if segments.len() >= limits.max_segments || line.len() > limits.max_uri_bytes {
            return Err(PlaylistError::TooLarge);
        }
        let program_date_ms = pending_date_ms.take().or(running_date_ms);
        running_date_ms = program_date_ms.map(|d| d + duration_ms as i64);
        segments.push(PlaylistSegment {
            seq: media_sequence + segments.len() as u64,
            uri: line.to_string(),
            duration_ms,
            program_date_ms,
        });
    }
    Ok(MediaPlaylist {
        target_duration_ms: target_duration_ms.ok_or(PlaylistError::BadTargetDuration)?,
        media_sequence,
        segments,
        ended,
    })
}

/// `YYYY-MM-DDThh:mm:ss[.fff][Z|±hh:mm|±hhmm]` (RFC 3339, as EXT-X-PROGRAM-DATE-TIME
/// carries it) to Unix milliseconds.
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-')
        && sep(7, b'-')
        && (sep(10, b'T') || sep(10, b't'))
        && sep(13, b':')
        && sep(16, b':'))
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0i64;
    if sep(at, b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        // Milliseconds from the first three fraction digits.
        let mut frac = b[start..at.min(start + 3)].to_vec();
        frac.resize(3, b'0');
        millis = std::str::from_utf8(&frac).ok()?.parse().ok()?;
    }
    let offset_min = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let h = num(at + 1, 2)?;
            let (m, end) = if sep(at + 3, b':') {
                (num(at + 4, 2)?, at + 6)
            } else {
                (num(at + 3, 2)?, at + 5)
            };
            if end != b.len() {
                return None;
            }
            let total = h * 60 + m;
            if sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// An absolute URL of another scheme or host: this tool only talks to its target.
    OtherHost,
    /// Bytes that cannot go in a request line (controls, spaces, non-ASCII), or a fragment.
    BadBytes,
}

/// Resolves a segment URI against the playlist's path (RFC 3986 §5.2, for the forms
/// playlists use) to the path to request. `host_header` is the target's `host[:port]`.
pub fn resolve_uri(playlist_path: &str, uri: &str, host_header: &str) -> Result<String, UriError> {
    if uri.is_empty() || !uri.bytes().all(|b| b.is_ascii_graphic()) || uri.contains('#') {
        return Err(UriError::BadBytes);
    }
    let path = if let Some(rest) = uri.strip_prefix("http://") {
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if !authority.eq_ignore_ascii_case(host_header) {
            return Err(UriError::OtherHost);
        }
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        }
    } else if uri.starts_with("//") || uri.contains("://") {
        return Err(UriError::OtherHost);
    } else if uri.starts_with('/') {
        uri.to_string()
    } else {
        let base = playlist_path.split('?').next().unwrap_or("");
        let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{dir}{uri}")
    };
    Ok(remove_dot_segments(&path))
}

/// RFC 3986 §5.2.4 for an absolute path (the query kept as is).
fn remove_dot_segments(path: &str) -> String {
    let (path, query) = match path.find('?') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            p => out.push(p),
        }
    }
    format!("/{}{query}", out.join("/"))
}

/// Which segments of each playlist to fetch.
#[derive(Debug, Clone, Default)]
pub struct SegmentPlanner {
    /// The sequence number of the next segment wanted; `None` before the first playlist.
    next_seq: Option<u64>,
}

/// What [`SegmentPlanner::plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into the playlist's segments, in order.
    pub fetch: Vec<usize>,
    /// Segments wanted that the playlist no longer lists (the client fell behind).
    pub missed: u64,
    /// The media sequence went backwards (a restarted server): the client started over.
    pub restarted: bool,
    /// The first plan, or a restart: the segments are the start position's.
    pub initial: bool,
}

impl SegmentPlanner {
    pub fn plan(&mut self, playlist: &MediaPlaylist, start_from_end: usize) -> Plan {
        let segments = &playlist.segments;
        let Some(last) = segments.last() else {
            return Plan {
                fetch: Vec::new(),
                missed: 0,
                restarted: false,
                initial: self.next_seq.is_none(),
            };
        };
        let mut restarted = false;
        let first = match self.next_seq {
            Some(next) if last.seq + 1 >= next => {
                // The usual case: everything from `next` on (none when nothing is new).
                segments
                    .iter()
                    .position(|s| s.seq >= next)
                    .unwrap_or(segments.len())
            }
            Some(_) => {
                restarted = true;
                segments.len().saturating_sub(start_from_end)
            }
            None => segments.len().saturating_sub(start_from_end),
        };
        let initial = restarted || self.next_seq.is_none();
        let missed = match (self.next_seq, segments.get(first)) {
            (Some(next), Some(s)) if !restarted => s.seq.saturating_sub(next),
            _ => 0,
        };
        self.next_seq = Some(last.seq + 1);
        Plan {
            fetch: (first..segments.len()).collect(),
            missed,
            restarted,
            initial,
        }
    }
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HlsClientStats {
    pub playlists_ok: u64,
    /// Playlist fetches that failed: status other than 200/304, unparsable, or cut off.
    pub playlists_failed: u64,
    pub playlist_parse_errors: u64,
    pub segments_ok: u64,
    /// Segment fetches that failed (status other than 200, or cut off).
    pub segments_failed: u64,
    /// Segments that left the playlist before the client got to them.
    pub segments_missed: u64,
    /// Segment URIs that could not be resolved to a request on the target.
    pub segments_bad_uri: u64,
    pub status_304: u64,
    pub status_404: u64,
    /// HTTP framing errors and broken connections in the middle of a response.
    pub http_errors: u64,
    /// Body bytes of every response (playlists and segments), after de-chunking.
    pub body_bytes: u64,
    pub segment_bytes: u64,
    pub stalls: u64,
    pub sequence_restarts: u64,
    /// Segments listed without a program date (no lag sample).
    pub segments_without_date: u64,
}

/// Per-fetch samples of all clients.
#[derive(Debug, Default)]
pub struct HlsRunStats {
    /// Every response's status (0: none, the connection ended before the head).
    pub status_codes: std::collections::BTreeMap<u16, u64>,
    pub segment_download_ms: Vec<f64>,
    pub segment_lag_ms: Vec<f64>,
    /// Largest target duration seen, ms.
    pub target_duration_ms_max: u64,
}

#[derive(Debug, Clone)]
struct QueuedSegment {
    path: String,
    duration_ms: u64,
    program_date_ms: Option<i64>,
    /// From the client's first playlist (or a restart): behind the live edge on purpose, so
    /// no lag sample.
    catching_up: bool,
}

#[derive(Debug)]
enum Fetch {
    Playlist,
    Segment(QueuedSegment),
}

#[derive(Debug)]
struct InFlight {
    fetch: Fetch,
    started_at: Instant,
    response: ResponseReader,
    head: Option<ResponseHead>,
    /// Playlist body (segments are counted, not kept).
    body: Vec<u8>,
    body_bytes: u64,
}

/// What the client wants next; see [`HlsClient::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Send this request (on the open connection, or a new one).
    Send(Vec<u8>),
    /// Nothing to do before this instant.
    WaitUntil(Instant),
    /// A response is being read.
    Busy,
    /// The stream ended (ENDLIST); nothing more to do.
    Finished,
}

/// The response just read is complete: whether the connection can carry the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    Reuse,
    Close,
}

/// Why a connection must be dropped mid-response (the fetch is counted as failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    Http(HttpError),
    /// Bytes arrived when no response was expected.
    Unsolicited,
    /// A playlist body over [`HlsLimits::max_playlist_bytes`].
    PlaylistTooLarge,
}

/// One HLS client; see the module docs. The caller owns the socket and the clock: it sends
/// what [`Self::poll`] returns, feeds what it reads to [`Self::handle_bytes`] (or the end of
/// the connection to [`Self::handle_eof`]), and calls `poll` again after a completed response
/// or at the instant `poll` asked for.
#[derive(Debug)]
pub struct HlsClient {
    limits: HlsLimits,
    host_header: String,
    playlist_path: String,
    planner: SegmentPlanner,
    queue: VecDeque<QueuedSegment>,
    target_duration_ms: Option<u64>,
    next_playlist_at: Option<Instant>,
    in_flight: Option<InFlight>,
    ended: bool,
    /// Last segment completion, or the first playlist before any segment (for stalls).
    last_progress_at: Option<Instant>,
    pub first_playlist_at: Option<Instant>,
    pub first_segment_at: Option<Instant>,
    pub stats: HlsClientStats,
}

impl HlsClient {
    pub fn new(limits: HlsLimits, host_header: &str, playlist_path: &str) -> Self {
        Self {
            limits,
            host_header: host_header.to_string(),
            playlist_path: playlist_path.to_string(),
            planner: SegmentPlanner::default(),
            queue: VecDeque::new(),
            target_duration_ms: None,
            next_playlist_at: None,
            in_flight: None,
            ended: false,
            last_progress_at: None,
            first_playlist_at: None,
            first_segment_at: None,
            stats: HlsClientStats::default(),
        }
    }

    fn request(&self, path: &str) -> Vec<u8> {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: uringcast-loadgen\r\nAccept: */*\r\n\r\n",
            self.host_header
        )
        .into_bytes()
    }

    fn reload_interval(&self) -> Duration {
        let ms = match self.target_duration_ms {
            Some(t) => (t / 2).clamp(self.limits.min_reload_ms, self.limits.max_reload_ms),
            None => self.limits.retry_without_target_ms,
        };
        Duration::from_millis(ms)
    }

    fn stall_after(&self) -> Option<Duration> {
        self.target_duration_ms
            .map(|t| Duration::from_millis(2 * t))
    }

    /// Whether the client is getting segments: it has had one within 2 × target duration.
    pub fn is_healthy(&self, now: Instant) -> bool {
        match (
            self.first_segment_at,
            self.last_progress_at,
            self.stall_after(),
        ) {
            (Some(_), Some(last), Some(limit)) => now.saturating_duration_since(last) <= limit,
            _ => false,
        }
    }

    /// What to do next at `now`.
    pub fn poll(&mut self, now: Instant) -> Poll {
        if self.in_flight.is_some() {
            return Poll::Busy;
        }
        if let Some(segment) = self.queue.pop_front() {
            let request = self.request(&segment.path);
            self.start(Fetch::Segment(segment), now);
            return Poll::Send(request);
        }
        if self.ended {
            return Poll::Finished;
        }
        let interval = self.reload_interval();
        let at = *self.next_playlist_at.get_or_insert(now + interval);
        if now < at {
            return Poll::WaitUntil(at);
        }
        self.next_playlist_at = None;
        let request = self.request(&self.playlist_path);
        self.start(Fetch::Playlist, now);
        Poll::Send(request)
    }

    /// The first playlist request, at once (the first [`Self::poll`] would wait).
    pub fn start_now(&mut self, now: Instant) {
        self.next_playlist_at = Some(now);
    }

    fn start(&mut self, fetch: Fetch, now: Instant) {
        self.in_flight = Some(InFlight {
            fetch,
            started_at: now,
            response: ResponseReader::new(self.limits.response),
            head: None,
            body: Vec::new(),
            body_bytes: 0,
        });
    }

    /// Bytes read from the connection. `wall_ms` is the wall clock (Unix ms) at `now`.
    /// `Ok(Some(_))`: the response is complete; `Ok(None)`: more to read; `Err`: drop the
    /// connection (the fetch has been counted as failed).
    pub fn handle_bytes(
        &mut self,
        mut data: &[u8],
        now: Instant,
        wall_ms: i64,
        run: &mut HlsRunStats,
    ) -> Result<Option<Completed>, ConnError> {
        let Some(mut flight) = self.in_flight.take() else {
            return Err(ConnError::Unsolicited);
        };
        loop {
            let (used, event) = match flight.response.next_event(data) {
                Ok(step) => step,
                Err(e) => {
                    self.stats.http_errors += 1;
                    self.fail(flight, now);
                    return Err(ConnError::Http(e));
                }
            };
            data = &data[used..];
            match event {
                None => {
                    self.in_flight = Some(flight);
                    return Ok(None);
                }
                Some(ResponseEvent::Head(head)) => flight.head = Some(head),
                Some(ResponseEvent::Body(body)) => {
                    flight.body_bytes += body.len() as u64;
                    self.stats.body_bytes += body.len() as u64;
                    if matches!(flight.fetch, Fetch::Playlist) {
                        if flight.body.len() + body.len() > self.limits.max_playlist_bytes {
                            self.fail(flight, now);
                            return Err(ConnError::PlaylistTooLarge);
                        }
                        flight.body.extend_from_slice(body);
                    }
                }
                Some(ResponseEvent::End) => {
                    if !data.is_empty() {
                        // Only one request is ever outstanding: these belong to nothing.
                        self.fail(flight, now);
                        return Err(ConnError::Unsolicited);
                    }
                    let close = flight.head.is_none_or(|h| h.close);
                    self.complete(flight, now, wall_ms, run);
                    return Ok(Some(if close {
                        Completed::Close
                    } else {
                        Completed::Reuse
                    }));
                }
            }
        }
    }

    /// The connection ended (`clean`: an EOF; else a read or write error). Completes a
    /// close-delimited response; any other response in flight failed. Returns whether a
    /// response completed.
    pub fn handle_eof(
        &mut self,
        clean: bool,
        now: Instant,
        wall_ms: i64,
        run: &mut HlsRunStats,
    ) -> bool {
        let Some(mut flight) = self.in_flight.take() else {
            return false;
        };
        if clean && flight.head.is_some() && flight.response.on_eof().is_ok() {
            self.complete(flight, now, wall_ms, run);
            return true;
        }
        self.stats.http_errors += 1;
        self.fail(flight, now);
        false
    }

    fn fail(&mut self, flight: InFlight, now: Instant) {
        match flight.fetch {
            Fetch::Playlist => {
                self.stats.playlists_failed += 1;
                self.next_playlist_at = Some(now + self.reload_interval());
            }
            Fetch::Segment(_) => self.stats.segments_failed += 1,
        }
    }

    fn complete(&mut self, flight: InFlight, now: Instant, wall_ms: i64, run: &mut HlsRunStats) {
        let status = flight.head.map_or(0, |h| h.status);
        *run.status_codes.entry(status).or_insert(0) += 1;
        match status {
            304 => self.stats.status_304 += 1,
            404 => self.stats.status_404 += 1,
            _ => {}
        }
        match flight.fetch {
            Fetch::Playlist => self.on_playlist(status, &flight.body, now, run),
            Fetch::Segment(segment) => {
                if status != 200 {
                    self.stats.segments_failed += 1;
                    return;
                }
                self.stats.segments_ok += 1;
                self.stats.segment_bytes += flight.body_bytes;
                run.segment_download_ms
                    .push(now.duration_since(flight.started_at).as_secs_f64() * 1000.0);
                match segment.program_date_ms {
                    Some(date) if !segment.catching_up => run
                        .segment_lag_ms
                        .push((wall_ms - date - segment.duration_ms as i64) as f64),
                    Some(_) => {}
                    None => self.stats.segments_without_date += 1,
                }
                self.first_segment_at.get_or_insert(now);
                self.note_progress(now);
            }
        }
    }

    /// Counts a stall if the gap from the last progress to `now` exceeds 2 × target.
    fn count_stall(&mut self, now: Instant) {
        if let (Some(last), Some(limit)) = (self.last_progress_at, self.stall_after())
            && now.saturating_duration_since(last) > limit
        {
            self.stats.stalls += 1;
        }
    }

    /// A segment completed at `now` (ending a stall, if the gap was one).
    fn note_progress(&mut self, now: Instant) {
        self.count_stall(now);
        self.last_progress_at = Some(now);
    }

    fn on_playlist(&mut self, status: u16, body: &[u8], now: Instant, run: &mut HlsRunStats) {
        if status == 304 {
            // Unchanged (this client sends no validators, but a cache in between might).
            self.stats.playlists_ok += 1;
            return;
        }
        if status != 200 {
            self.stats.playlists_failed += 1;
            self.next_playlist_at = Some(now + self.reload_interval());
            return;
        }
        let playlist = match parse_media_playlist(body, &self.limits) {
            Ok(p) => p,
            Err(_) => {
                self.stats.playlists_failed += 1;
                self.stats.playlist_parse_errors += 1;
                self.next_playlist_at = Some(now + self.reload_interval());
                return;
            }
        };
        self.stats.playlists_ok += 1;
        self.target_duration_ms = Some(playlist.target_duration_ms);
        run.target_duration_ms_max = run.target_duration_ms_max.max(playlist.target_duration_ms);
        if self.first_playlist_at.is_none() {
            self.first_playlist_at = Some(now);
            self.last_progress_at = Some(now);
        }
        let plan = self
            .planner
            .plan(&playlist, self.limits.start_segments_from_end);
        self.stats.segments_missed += plan.missed;
        self.stats.sequence_restarts += u64::from(plan.restarted);
        for i in plan.fetch {
            let segment = &playlist.segments[i];
            match resolve_uri(&self.playlist_path, &segment.uri, &self.host_header) {
                Ok(path) => self.queue.push_back(QueuedSegment {
                    path,
                    duration_ms: segment.duration_ms,
                    program_date_ms: segment.program_date_ms,
                    catching_up: plan.initial,
                }),
                Err(_) => self.stats.segments_bad_uri += 1,
            }
        }
        if playlist.ended && self.queue.is_empty() {
            self.ended = true;
        }
    }

    /// The run is over at `now`: a client that has had no segment for 2 × target duration
    /// is stalled at the end too.
    pub fn finish(&mut self, now: Instant) {
        self.count_stall(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunked::ChunkedLimits;

    pub(crate) fn limits() -> HlsLimits {
        HlsLimits {
            max_playlist_bytes: 64 * 1024,
            max_segments: 100,
            max_uri_bytes: 512,
            retry_without_target_ms: 1000,
            min_reload_ms: 100,
            max_reload_ms: 10_000,
            start_segments_from_end: 3,
            response: ResponseLimits {
                max_head_bytes: 8192,
                max_headers: 32,
                chunked: ChunkedLimits::default(),
            },
        }
    }

    /// What uringcast serves (see src/media/hls): a date on the first segment only.
    const URINGCAST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:00.000Z\n#EXTINF:2.000,\nlz3k7.ts\n\
        #EXTINF:2.400,\nlz3k8.ts\n#EXTINF:1.600,\nlz3k9.ts\n#EXTINF:2.000,\nlz3ka.ts\n";

    /// What nginx-rtmp 1.2 writes (ngx_rtmp_hls_write_playlist), CRLF-free, no dates.
    const NGINX_RTMP: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:12\n#EXT-X-TARGETDURATION:3\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:2.002,\nbench-12.ts\n#EXTINF:2.000,\nbench-13.ts\n";

    #[test]
    fn parses_uringcast_playlist_with_dates() {
        let p = parse_media_playlist(URINGCAST.as_bytes(), &limits()).unwrap();
        assert_eq!(
            (p.target_duration_ms, p.media_sequence, p.ended),
            (2000, 7, false)
        );
        let t0 = parse_iso8601_ms("2026-11-26T10:00:00.000Z").unwrap();
        let got: Vec<(u64, &str, u64, Option<i64>)> = p
            .segments
            .iter()
            .map(|s| (s.seq, s.uri.as_str(), s.duration_ms, s.program_date_ms))
            .collect();
        assert_eq!(
            got,
            [
                (7, "lz3k7.ts", 2000, Some(t0)),
                (8, "lz3k8.ts", 2400, Some(t0 + 2000)),
                (9, "lz3k9.ts", 1600, Some(t0 + 4400)),
                (10, "lz3ka.ts", 2000, Some(t0 + 6000)),
            ]
        );
    }

    #[test]
    fn parses_nginx_rtmp_playlist_and_endlist() {
        let text = format!("{NGINX_RTMP}#EXT-X-ENDLIST\n").replace('\n', "\r\n");
        let p = parse_media_playlist(text.as_bytes(), &limits()).unwrap();
        assert_eq!(
            (p.target_duration_ms, p.media_sequence, p.ended),
            (3000, 12, true)
        );
        assert_eq!(p.segments.len(), 2);
        assert_eq!(
            (
                p.segments[0].seq,
                p.segments[0].duration_ms,
                p.segments[0].program_date_ms
            ),
            (12, 2002, None)
        );
        assert_eq!(p.segments[1].uri, "bench-13.ts");
    }

    #[test]
    fn playlist_errors() {
        let l = limits();
        let parse = |s: &str| parse_media_playlist(s.as_bytes(), &l);
        assert_eq!(
            parse("#EXT-X-TARGETDURATION:2\n"),
            Err(PlaylistError::NotM3u)
        );
        assert_eq!(
            parse("#EXTM3U\n#EXTINF:2,\na.ts\n"),
            Err(PlaylistError::BadTargetDuration)
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:x\n"),
            Err(PlaylistError::BadTargetDuration)
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\na.ts\n"),
            Err(PlaylistError::BadExtinf)
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"),
            Err(PlaylistError::Master)
        );
        assert_eq!(
            parse_media_playlist(b"#EXTM3U\n\xff\n", &l),
            Err(PlaylistError::NotText)
        );
        let mut many = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
        for i in 0..=l.max_segments {
            many.push_str(&format!("#EXTINF:2,\n{i}.ts\n"));
        }
        assert_eq!(parse(&many), Err(PlaylistError::TooLarge));
        // Empty but valid: a live playlist before its first segment.
        let p = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n").unwrap();
        assert!(p.segments.is_empty());
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_iso8601_ms("2000-03-01T00:00:00.123456Z"),
            Some(951_868_800_123)
        );
        assert_eq!(
            parse_iso8601_ms("2026-11-26T11:00:00.000+01:00"),
            parse_iso8601_ms("2026-11-26T10:00:00.000Z")
        );
        assert_eq!(
            parse_iso8601_ms("2026-11-26T09:30:00-0030"),
            parse_iso8601_ms("2026-11-26T10:00:00Z")
        );
        for bad in [
            "",
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "2026-11-26T10:00:00",
            "2026-11-26T10:00:00.Z",
            "2026-11-26T10:00:00Zx",
        ] {
            assert_eq!(parse_iso8601_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolves_relative_absolute_and_same_host_uris() {
        let host = "127.0.0.1:8080";
        let r = |base: &str, uri: &str| resolve_uri(base, uri, host);
        assert_eq!(
            r("/live/x/index.m3u8", "lz3k7.ts").as_deref(),
            Ok("/live/x/lz3k7.ts")
        );
        assert_eq!(
            r("/hls/x.m3u8?t=1", "x-123.ts").as_deref(),
            Ok("/hls/x-123.ts")
        );
        assert_eq!(
            r("/hls/x.m3u8", "/other/x-1.ts").as_deref(),
            Ok("/other/x-1.ts")
        );
        assert_eq!(
            r("/a/b/c.m3u8", "../d/./e.ts?k=v").as_deref(),
            Ok("/a/d/e.ts?k=v")
        );
        assert_eq!(r("/a.m3u8", "../../e.ts").as_deref(), Ok("/e.ts"));
        assert_eq!(
            r("/a/b.m3u8", "http://127.0.0.1:8080/s/1.ts").as_deref(),
            Ok("/s/1.ts")
        );
        assert_eq!(
            r("/a/b.m3u8", "http://192.0.2.1/s/1.ts"),
            Err(UriError::OtherHost)
        );
        assert_eq!(
            r("/a/b.m3u8", "https://127.0.0.1:8080/s.ts"),
            Err(UriError::OtherHost)
        );
        assert_eq!(r("/a/b.m3u8", "//192.0.2.1/s.ts"), Err(UriError::OtherHost));
        assert_eq!(r("/a/b.m3u8", "a b.ts"), Err(UriError::BadBytes));
        assert_eq!(r("/a/b.m3u8", "a\r\nX: y"), Err(UriError::BadBytes));
        assert_eq!(r("/a/b.m3u8", "é.ts"), Err(UriError::BadBytes));
    }

    fn playlist(first_seq: u64, count: u64) -> MediaPlaylist {
        MediaPlaylist {
            target_duration_ms: 2000,
            media_sequence: first_seq,
            segments: (first_seq..first_seq + count)
                .map(|seq| PlaylistSegment {
                    seq,
                    uri: format!("{seq}.ts"),
                    duration_ms: 2000,
                    program_date_ms: None,
                })
                .collect(),
            ended: false,
        }
    }

    #[test]
    fn planner_starts_three_from_the_end_then_takes_new_ones() {
        let mut p = SegmentPlanner::default();
        let plan = p.plan(&playlist(10, 6), 3);
        assert_eq!((plan.fetch, plan.initial), (vec![3, 4, 5], true));
        // Unchanged: nothing; one new: just it.
        assert_eq!(p.plan(&playlist(10, 6), 3).fetch, Vec::<usize>::new());
        let plan = p.plan(&playlist(11, 6), 3);
        assert_eq!((plan.fetch, plan.initial), (vec![5], false));
        // Fell behind by two segments: they are missed, the rest fetched.
        let plan = p.plan(&playlist(19, 6), 3);
        assert_eq!((plan.fetch, plan.missed), (vec![0, 1, 2, 3, 4, 5], 2));
        // Sequence went backwards: start over.
        let plan = p.plan(&playlist(0, 6), 3);
        assert_eq!((plan.fetch, plan.restarted), (vec![3, 4, 5], true));
        // Fewer than three listed: from the first.
        let mut p = SegmentPlanner::default();
        assert_eq!(p.plan(&playlist(0, 2), 3).fetch, [0, 1]);
        assert_eq!(p.plan(&playlist(0, 0), 3).fetch, Vec::<usize>::new());
    }

    fn response(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A whole client loop against canned responses, on a virtual clock.
    #[test]
    fn client_fetches_playlist_then_segments_then_waits() {
        let t0 = Instant::now();
        let mut run = HlsRunStats::default();
        let mut c = HlsClient::new(limits(), "127.0.0.1:8080", "/live/x/index.m3u8");
        c.start_now(t0);
        let Poll::Send(req) = c.poll(t0) else {
            panic!("no playlist request")
        };
        assert!(req.starts_with(b"GET /live/x/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert_eq!(c.poll(t0), Poll::Busy);
        let date0 = parse_iso8601_ms("2026-11-26T10:00:00.000Z").unwrap();
        let wall = date0 + 9_000;
        // The playlist, split in two reads.
        let wire = response("200 OK", URINGCAST);
        assert_eq!(c.handle_bytes(&wire[..30], t0, wall, &mut run), Ok(None));
        assert_eq!(
            c.handle_bytes(&wire[30..], t0, wall, &mut run),
            Ok(Some(Completed::Reuse))
        );
        // Third from the end: lz3k8, lz3k9, lz3ka.
        let mut t = t0;
        for name in ["lz3k8", "lz3k9", "lz3ka"] {
            let Poll::Send(req) = c.poll(t) else {
                panic!("no segment request")
            };
            assert!(req.starts_with(format!("GET /live/x/{name}.ts HTTP/1.1\r\n").as_bytes()));
            t += Duration::from_millis(10);
            let done = c.handle_bytes(&response("200 OK", "0123456789"), t, wall, &mut run);
            assert_eq!(done, Ok(Some(Completed::Reuse)));
        }
        assert_eq!(c.stats.segments_ok, 3);
        assert_eq!(c.stats.segment_bytes, 30);
        assert_eq!(run.segment_download_ms, [10.0, 10.0, 10.0]);
        // The start position's segments give no lag sample.
        assert!(run.segment_lag_ms.is_empty());
        // Then half the target duration before the next playlist.
        assert_eq!(c.poll(t), Poll::WaitUntil(t + Duration::from_millis(1000)));
        assert!(c.is_healthy(t));
        let t = t + Duration::from_millis(1000);
        assert!(matches!(c.poll(t), Poll::Send(_)));
        // A 404 playlist: counted, retried later; a close-delimited answer ends at EOF.
        assert_eq!(
            c.handle_bytes(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                t,
                wall,
                &mut run
            ),
            Ok(Some(Completed::Reuse))
        );
        assert_eq!((c.stats.status_404, c.stats.playlists_failed), (1, 1));
        assert!(matches!(c.poll(t), Poll::WaitUntil(_)));
        let t = t + Duration::from_millis(1000);
        assert!(matches!(c.poll(t), Poll::Send(_)));
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:8\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:02.000Z\n#EXTINF:2.4,\nlz3k8.ts\n\
            #EXTINF:1.6,\nlz3k9.ts\n#EXTINF:2,\nlz3ka.ts\n#EXTINF:2,\nlz3kb.ts\n\
            #EXTINF:2,\nlz3kc.ts\n";
        let head = "HTTP/1.0 200 OK\r\n\r\n";
        assert_eq!(
            c.handle_bytes(format!("{head}{text}").as_bytes(), t, wall, &mut run),
            Ok(None)
        );
        assert!(c.handle_eof(true, t, wall, &mut run));
        assert_eq!(c.stats.playlists_ok, 2);
        let Poll::Send(req) = c.poll(t) else {
            panic!("no request for the new segment")
        };
        assert!(req.starts_with(b"GET /live/x/lz3kb.ts "));
        // lz3kb ends at date0 + 10 s: fetched 700 ms later.
        let wall = date0 + 10_700;
        let done = c.handle_bytes(&response("200 OK", "0123456789"), t, wall, &mut run);
        assert_eq!(done, Ok(Some(Completed::Reuse)));
        assert_eq!(run.segment_lag_ms, [700.0]);
        let Poll::Send(req) = c.poll(t) else {
            panic!("no request for the next new segment")
        };
        assert!(req.starts_with(b"GET /live/x/lz3kc.ts "));
        // The connection breaks mid-segment: a failed segment.
        c.handle_bytes(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
            t,
            wall,
            &mut run,
        )
        .unwrap();
        assert!(!c.handle_eof(true, t, wall, &mut run));
        assert_eq!((c.stats.segments_failed, c.stats.http_errors), (1, 1));
        // Nothing for more than 2 × target: a stall at the end of the run.
        assert_eq!(c.stats.stalls, 0);
        let late = t + Duration::from_secs(5);
        assert!(!c.is_healthy(late));
        c.finish(late);
        assert_eq!(c.stats.stalls, 1);
        // Bytes nobody asked for.
        let mut c = HlsClient::new(limits(), "h", "/p.m3u8");
        assert_eq!(
            c.handle_bytes(b"x", t, wall, &mut run),
            Err(ConnError::Unsolicited)
        );
    }

    #[test]
    fn client_ends_on_endlist_and_counts_gaps_as_stalls() {
        let t0 = Instant::now();
        let mut run = HlsRunStats::default();
        let mut c = HlsClient::new(limits(), "h", "/hls/bench.m3u8");
        c.start_now(t0);
        assert!(matches!(c.poll(t0), Poll::Send(_)));
        c.handle_bytes(&response("200 OK", NGINX_RTMP), t0, 0, &mut run)
            .unwrap();
        // Two segments listed: both fetched, the second 6.5 s after the first: more than
        // 2 × the target duration (3 s), a stall.
        let Poll::Send(req) = c.poll(t0) else {
            panic!()
        };
        assert!(req.starts_with(b"GET /hls/bench-12.ts "));
        c.handle_bytes(&response("200 OK", "ts"), t0, 0, &mut run)
            .unwrap();
        assert!(matches!(c.poll(t0), Poll::Send(_)));
        let t = t0 + Duration::from_millis(6_500);
        c.handle_bytes(&response("200 OK", "ts"), t, 0, &mut run)
            .unwrap();
        assert_eq!(c.stats.stalls, 1);
        assert_eq!(c.stats.segments_without_date, 2);
        assert!(run.segment_lag_ms.is_empty());
        // The stream ends.
        assert_eq!(c.poll(t), Poll::WaitUntil(t + Duration::from_millis(1_500)));
        let t = t + Duration::from_millis(1_500);
        assert!(matches!(c.poll(t), Poll::Send(_)));
        let ended = format!("{NGINX_RTMP}#EXT-X-ENDLIST\n");
        c.handle_bytes(&response("200 OK", &ended), t, 0, &mut run)
            .unwrap();
        assert_eq!(c.poll(t), Poll::Finished);
    }
}
