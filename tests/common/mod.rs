//! Test harness: runs the real `uringcast` binary on an ephemeral loopback port and talks to it
//! with raw sockets, curl, ffmpeg and ffprobe.
#![allow(dead_code)]

pub mod flv;
pub mod media;
pub mod rtmp;
pub mod ts;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The RTMP listener (every test server has one, on its own ephemeral port).
    pub rtmp_addr: SocketAddr,
    /// The admin listener (`/metrics`, `/api/...`, the status page; its own ephemeral port).
    pub admin_addr: SocketAddr,
    pub dir: PathBuf,
    pub media: PathBuf,
    pub stderr_path: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where the server's stderr goes.
enum StderrTo {
    /// `stderr.log` in the scratch directory, read by [`Server::stderr`].
    File,
    /// A pipe that is never read.
    UnreadPipe,
}

/// A fresh scratch directory under the target dir (removed on drop of the server).
pub fn scratch(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    /// Start with `extra_toml` appended to a config that sets the media root and the port.
    pub fn start(name: &str, extra_toml: &str) -> Server {
        Self::start_with(name, extra_toml, |_| {})
    }

    /// Like `start`, with extra environment variables for the server process.
    pub fn start_env(name: &str, extra_toml: &str, env: &[(&str, &str)]) -> Server {
        Self::launch(name, extra_toml, |_| {}, env, StderrTo::File)
    }

    /// Like `start`, letting the caller fill the media root first.
    pub fn start_with(name: &str, extra_toml: &str, prepare: impl FnOnce(&Path)) -> Server {
        Self::launch(name, extra_toml, prepare, &[], StderrTo::File)
    }

    /// Like `start_env`, with the server's stderr a pipe that nobody reads: once the pipe's
    /// buffer (64 KiB) is full, every write to it blocks. [`Server::stderr`] is empty.
    pub fn start_stderr_unread(name: &str, extra_toml: &str, env: &[(&str, &str)]) -> Server {
        Self::launch(name, extra_toml, |_| {}, env, StderrTo::UnreadPipe)
    }

    /// Like `start_with`, with extra environment variables for the server process.
    pub fn launch_env(
        name: &str,
        extra_toml: &str,
        prepare: impl FnOnce(&Path),
        env: &[(&str, &str)],
    ) -> Server {
        Self::launch(name, extra_toml, prepare, env, StderrTo::File)
    }

    fn launch(
        name: &str,
        extra_toml: &str,
        prepare: impl FnOnce(&Path),
        env: &[(&str, &str)],
        stderr_to: StderrTo,
    ) -> Server {
        let dir = scratch(name);
        let media = dir.join("media");
        std::fs::create_dir_all(&media).unwrap();
        prepare(&media);
        let config = dir.join("uringcast.toml");
        // Two workers unless the test chooses (top-level keys must come before any table).
        let workers = if extra_toml.starts_with("workers") {
            ""
        } else {
            "workers = 2\n"
        };
        std::fs::write(&config, format!("{workers}{extra_toml}\n")).unwrap();
        let stderr_path = dir.join("stderr.log");
        let stderr = match stderr_to {
            StderrTo::File => Stdio::from(std::fs::File::create(&stderr_path).unwrap()),
            // The read end stays in `child.stderr` until the server is dropped.
            StderrTo::UnreadPipe => Stdio::piped(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_uringcast"))
            .arg("--config")
            .arg(&config)
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .arg("--rtmp-listen")
            .arg("127.0.0.1:0")
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .arg("--media-root")
            .arg(&media)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn uringcast");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("uringcast printed nothing").unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .unwrap_or_else(|| panic!("no http= in {line:?}"))
            .parse()
            .unwrap();
        let rtmp_addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rtmp="))
            .unwrap_or_else(|| panic!("no rtmp= in {line:?}"))
            .parse()
            .unwrap();
        let admin_addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("admin="))
            .unwrap_or_else(|| panic!("no admin= in {line:?}"))
            .parse()
            .unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            rtmp_addr,
            admin_addr,
            dir,
            media,
            stderr_path,
        }
    }

    /// `rtmp://127.0.0.1:PORT{path}`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://{}{}", self.rtmp_addr, path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://127.0.0.1:PORT{path}` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        Self::connect_to(self.addr)
    }

    /// A connection to the admin listener.
    pub fn connect_admin(&self) -> TcpStream {
        Self::connect_to(self.admin_addr)
    }

    fn connect_to(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Send raw bytes, read one response.
    pub fn raw(&self, request: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_response(&mut s, request.starts_with(b"HEAD")).expect("response")
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut s = self.connect();
        Self::exchange(&mut s, method, path, headers)
    }

    /// GET on the admin listener.
    pub fn admin_get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.admin_request("GET", path, headers)
    }

    /// A request on the admin listener.
    pub fn admin_request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut s = self.connect_admin();
        Self::exchange(&mut s, method, path, headers)
    }

    fn exchange(s: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        read_response(s, method == "HEAD").expect("response")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident set size of the server process (VmRSS), in KiB.
    pub fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `/metrics`, from the admin listener.
    pub fn metrics(&self) -> String {
        String::from_utf8(self.admin_get("/metrics", &[]).body).unwrap()
    }

    /// Sum of a metric's samples whose line contains every `filters` string.
    pub fn metric_sum(&self, name: &str, filters: &[&str]) -> f64 {
        metric_sum(&self.metrics(), name, filters)
    }

    /// Every connection closed so far was counted under a reason: the sum of
    /// `uringcast_connections_closed_total` over reasons equals accepted minus active (polled
    /// until a metrics flush makes them agree, or panics after 5 s).
    pub fn assert_closes_add_up(&self) {
        let mut counts = (0.0, 0.0, 0.0);
        let agree = poll_until(in_ms(5_000), || {
            let text = self.metrics();
            counts = (
                metric_sum(&text, "uringcast_connections_closed_total", &[]),
                metric_sum(&text, "uringcast_connections_accepted_total", &[]),
                metric_sum(&text, "uringcast_connections_active", &[]),
            );
            counts.0 == counts.1 - counts.2
        });
        let (closed, accepted, active) = counts;
        assert!(
            agree,
            "closes by reason ({closed}) != accepted ({accepted}) - active ({active})"
        );
    }

    /// Polls `/metrics` (up to 10 s) until the sum of `name` over lines containing every
    /// `filters` satisfies `ok`; returns that sum. Workers hand their counters to the recorder
    /// once per tick, so a counter bumped by a finished request shows up a little later.
    pub fn wait_metric(&self, name: &str, filters: &[&str], ok: impl Fn(f64) -> bool) -> f64 {
        let mut last = String::new();
        let mut value = 0.0;
        let met = poll_until(in_ms(10_000), || {
            last = self.metrics();
            value = metric_sum(&last, name, filters);
            ok(value)
        });
        assert!(
            met,
            "{name}{filters:?} = {value} never became as expected:\n{last}"
        );
        value
    }

    /// Returns once every worker has flushed its counters at least once after this call
    /// began, so everything counted before the call is on `/metrics`; returns that text.
    /// It sends requests that are answered 404 (connections spread over the workers by
    /// SO_REUSEPORT) until each worker's 4xx counter has risen. The caller must have no other
    /// 4xx request in flight, and must not count 2xx requests across it (the polls are 2xx).
    pub fn flush_barrier(&self) -> String {
        let name = "uringcast_http_requests_total";
        let filter = ["class=\"4xx\""];
        let start = metric_by_worker(&self.metrics(), name, &filter);
        assert!(!start.is_empty(), "no per-worker {name} series");
        let mut text = String::new();
        let done = poll_until(in_ms(10_000), || {
            assert_eq!(self.get("/flush-barrier", &[]).status, 404);
            text = self.metrics();
            let now = metric_by_worker(&text, name, &filter);
            start.iter().all(|(w, v)| now.get(w).is_some_and(|n| n > v))
        });
        assert!(
            done,
            "the workers' counters were not flushed within 10 s:\n{text}"
        );
        text
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY-free: kill(1) via the command keeps the test free of unsafe.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn metric_sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Calls `cond` every 20 ms until it returns true (→ true) or `deadline` passes (→ false).
/// Waiting for the server this way costs only as long as the server takes, where a fixed
/// sleep is either too short on a loaded box or wasted time on an idle one.
pub fn poll_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Instant::now() + ms`, for `poll_until`.
pub fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// Per-worker values of a metric (by its `worker` label) whose line contains every `filters`.
pub fn metric_by_worker(text: &str, name: &str, filters: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if !(line.starts_with(name) && line[name.len()..].starts_with('{')) {
            continue;
        }
        if !filters.iter().all(|f| line.contains(f)) {
            continue;
        }
        let Some(worker) = line
            .split("worker=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        else {
            continue;
        };
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *out.entry(worker.to_string()).or_insert(0.0) += v;
        }
    }
    out
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one HTTP/1.1 response (Content-Length or chunked or until close).
pub fn read_response(s: &mut impl Read, head_request: bool) -> std::io::Result<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("eof in head: {:?}", String::from_utf8_lossy(&head)),
            ));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head_request || status == 204 || status == 304 || status / 100 == 1 {
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().unwrap();
        body.resize(len, 0);
        s.read_exact(&mut body)?;
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte)?;
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap();
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        s.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Run `cmd` (stdin null, stdout and stderr captured) for at most `timeout`: returns
/// (Some(exit success) or None if it had to be killed, its stderr).
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> (Option<bool>, String) {
    let (status, _stdout, stderr) = run_bounded_output(cmd, timeout);
    (status, stderr)
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A short H.264+AAC MP4 made once per test run with ffmpeg (faststart off, so a seek needs
/// ranges into the file's end too).
pub fn test_mp4(dir: &Path, seconds: u32) -> PathBuf {
    let out = dir.join(format!("clip{seconds}s.mp4"));
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("sine=frequency=440:sample_rate=44100")
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg could not make the test clip");
    out
}

/// Like [`run_bounded`], keeping stdout too: (Some(exit success) or None if it had to be
/// killed after `timeout`, stdout, stderr). Both pipes are drained while the child runs.
pub fn run_bounded_output(cmd: &mut Command, timeout: Duration) -> (Option<bool>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status.success());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// For a test that needs tools beyond the base set-up: with `missing` empty → true (run it).
/// Otherwise, under `CI=true` the test fails (scripts/test.sh installs everything there);
/// elsewhere it prints a SKIP line and returns false.
pub fn required_or_skip(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let what = missing.join("; ");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: missing {what} under CI=true (scripts/test.sh installs them)"
    );
    eprintln!("SKIP {test}: missing {what} (scripts/test.sh installs them)");
    false
}
