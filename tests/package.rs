//! The Debian package (`cargo deb`, `[package.metadata.deb]` in Cargo.toml): what it installs,
//! its control data and maintainer scripts, and that what it installs works — the packaged
//! binary with the packaged configuration, the unit under `systemd-analyze`, the sysusers and
//! tmpfiles entries under `systemd-sysusers`/`systemd-tmpfiles --root`, and the sysctl drop-in
//! as `scripts/sysctl-tune.sh` reads it.
//!
//! Cost: the package is made once per run with `cargo deb --no-build` around the binary this
//! `cargo test` already built (a copy of it in a scratch target directory, so cargo-deb's strip
//! never touches the one the other tests run): a few seconds, where `cargo deb` itself is a
//! release build with thin LTO (minutes on two cores). The release build differs only in the
//! binary's optimisation; every packaged path, script and control field is the same.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{required_or_skip, run_bounded_output, scratch};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The package made once, unpacked.
struct Package {
    dir: PathBuf,
    deb: PathBuf,
    /// `dpkg-deb -x`: the files as installed.
    root: PathBuf,
    /// `dpkg-deb -e`: control, conffiles, maintainer scripts.
    control: PathBuf,
}

static PACKAGE: OnceLock<Package> = OnceLock::new();

/// Runs `cmd` (at most `secs`), asserting it succeeds; its stdout.
fn run(cmd: &mut Command, secs: u64) -> String {
    let shown = format!("{cmd:?}");
    let (status, out, err) = run_bounded_output(cmd, Duration::from_secs(secs));
    assert_eq!(
        status,
        Some(true),
        "{shown}: {}\nstdout:\n{out}\nstderr:\n{err}",
        if status.is_none() {
            "timed out"
        } else {
            "failed"
        }
    );
    out
}

/// Does `program args...` run and succeed (a tool's `--version`)?
fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The package, or None (with a printed reason) when cargo-deb or dpkg-deb is missing.
fn package(test: &str) -> Option<&'static Package> {
    let mut missing = Vec::new();
    if !works(&cargo().to_string_lossy(), &["deb", "--version"]) {
        missing.push("cargo-deb (cargo install cargo-deb --locked)".to_string());
    }
    if !works("dpkg-deb", &["--version"]) {
        missing.push("dpkg-deb".to_string());
    }
    if !required_or_skip(test, &missing) {
        return None;
    }
    Some(PACKAGE.get_or_init(build))
}

/// Scratch directories of earlier runs (`package-PID-N`) whose process is gone: each holds
/// tens of megabytes.
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("package-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn build() -> Package {
    let started = std::time::Instant::now();
    remove_stale_scratch();
    let dir = scratch("package");
    // cargo-deb reads `target/release/uringcast` (Cargo.toml's asset path) from the target
    // directory cargo reports, which CARGO_TARGET_DIR moves here.
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_uringcast"),
        target.join("release/uringcast"),
    )
    .unwrap();
    let deb = dir.join("uringcast.deb");
    run(
        Command::new(cargo())
            .args(["deb", "--no-build", "--strip", "--fast", "--output"])
            .arg(&deb)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(MANIFEST_DIR),
        300,
    );
    let _ = std::fs::remove_dir_all(&target);
    let root = dir.join("root");
    let control = dir.join("control");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root), 60);
    run(
        Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control),
        60,
    );
    eprintln!(
        "package: made and unpacked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Package {
        dir,
        deb,
        root,
        control,
    }
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn repo(path: &str) -> String {
    read(Path::new(MANIFEST_DIR).join(path))
}

fn mode(path: impl AsRef<Path>) -> u32 {
    let path = path.as_ref();
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `dpkg-deb --contents`: path → (mode string, owner/group).
fn contents(pkg: &Package) -> BTreeMap<String, (String, String)> {
    run(Command::new("dpkg-deb").arg("--contents").arg(&pkg.deb), 60)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // -rw-r--r-- 0/0 4708 2026-11-26 00:00 ./usr/lib/...
            let path = fields.get(5)?.trim_start_matches('.');
            Some((
                path.trim_end_matches('/').to_string(),
                (fields[0].to_string(), fields[1].to_string()),
            ))
        })
        .collect()
}

fn field(pkg: &Package, name: &str) -> String {
    run(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(&pkg.deb)
            .arg(name),
        60,
    )
    .trim()
    .to_string()
}

#[test]
fn package_installs_binary_unit_config_sysctl_and_docs_where_documented() {
    let Some(pkg) = package("package_installs_binary_unit_config_sysctl_and_docs") else {
        return;
    };
    let listing = contents(pkg);
    for (path, want_mode, source) in [
        ("/usr/bin/uringcast", "-rwxr-xr-x", None),
        (
            "/usr/lib/systemd/system/uringcast.service",
            "-rw-r--r--",
            Some("scripts/uringcast.service"),
        ),
        (
            "/etc/uringcast/uringcast.toml",
            "-rw-r--r--",
            Some("packaging/uringcast.toml"),
        ),
        (
            "/usr/lib/sysctl.d/60-uringcast.conf",
            "-rw-r--r--",
            Some("packaging/sysctl/60-uringcast.conf"),
        ),
        (
            "/usr/lib/sysusers.d/uringcast.conf",
            "-rw-r--r--",
            Some("packaging/debian/uringcast.sysusers"),
        ),
        (
            "/usr/lib/tmpfiles.d/uringcast.conf",
            "-rw-r--r--",
            Some("packaging/debian/uringcast.tmpfiles"),
        ),
        (
            "/usr/share/doc/uringcast/README.md",
            "-rw-r--r--",
            Some("README.md"),
        ),
        ("/usr/share/doc/uringcast/copyright", "-rw-r--r--", None),
    ] {
        let (got_mode, owner) = listing
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the package: {listing:#?}"));
        assert_eq!(got_mode, want_mode, "{path}");
        assert_eq!(owner, "0/0", "{path}");
        if let Some(source) = source {
            assert_eq!(
                read(pkg.root.join(&path[1..])),
                repo(source),
                "{path} is not {source}"
            );
        }
    }
    // Nothing else but the directories above them.
    let files: Vec<&String> = listing
        .iter()
        .filter(|(_, (m, _))| !m.starts_with('d'))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(files.len(), 8, "unexpected files: {files:#?}");
    let copyright = read(pkg.root.join("usr/share/doc/uringcast/copyright"));
    assert!(copyright.contains("MIT OR Apache-2.0"), "{copyright}");

    // The configuration is a conffile: an administrator's changes survive upgrades.
    assert_eq!(
        read(pkg.control.join("conffiles")),
        "/etc/uringcast/uringcast.toml\n"
    );

    assert_eq!(field(pkg, "Package"), "uringcast");
    assert_eq!(
        field(pkg, "Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    let arch = run(Command::new("dpkg").arg("--print-architecture"), 30);
    assert_eq!(field(pkg, "Architecture"), arch.trim());
    // Computed from the binary's shared libraries ($auto), plus what the postinst runs.
    let depends = field(pkg, "Depends");
    assert!(depends.contains("libc6 (>= "), "Depends: {depends}");
    assert!(
        depends.contains("systemd (>= 238) | systemd-sysusers"),
        "Depends: {depends}"
    );
    assert!(!field(pkg, "Description").is_empty());
}

#[test]
fn maintainer_scripts_create_the_user_and_directories_and_start_the_service() {
    let Some(pkg) = package("maintainer_scripts_create_the_user_and_directories") else {
        return;
    };
    for script in ["postinst", "prerm", "postrm"] {
        let path = pkg.control.join(script);
        assert_eq!(format!("{:o}", mode(&path)), "755", "{script}");
        let text = read(&path);
        assert!(text.starts_with("#!/bin/sh\nset -e\n"), "{script}:\n{text}");
        assert!(
            !text.contains("#DEBHELPER#"),
            "{script}: token left:\n{text}"
        );
        run(Command::new("sh").arg("-n").arg(&path), 30);
    }
    let postinst = read(pkg.control.join("postinst"));
    // In this order: the user, then its directories, then the service, then the
    // configuration's group (which needs the user's group).
    let steps = [
        "systemd-sysctl 60-uringcast.conf",
        "systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} uringcast.conf",
        "systemd-tmpfiles --create uringcast.conf",
        "deb-systemd-helper enable uringcast.service",
        "systemctl --system daemon-reload",
        "deb-systemd-invoke $_dh_action uringcast.service",
        "config=/etc/uringcast/uringcast.toml",
        "dpkg-statoverride --update --add root uringcast 0640 \"$config\"",
    ];
    let mut at = 0;
    for step in steps {
        let found = postinst[at..]
            .find(step)
            .unwrap_or_else(|| panic!("postinst lacks {step:?} (after byte {at}):\n{postinst}"));
        at += found + step.len();
    }
    let prerm = read(pkg.control.join("prerm"));
    assert!(
        prerm.contains("deb-systemd-invoke stop uringcast.service"),
        "{prerm}"
    );
    let postrm = read(pkg.control.join("postrm"));
    assert!(
        postrm.contains("deb-systemd-helper purge uringcast.service"),
        "{postrm}"
    );
    assert!(
        postrm.contains("dpkg-statoverride --remove /etc/uringcast/uringcast.toml"),
        "{postrm}"
    );

    // What the postinst's systemd-sysusers and systemd-tmpfiles do, done for real in a
    // scratch root that holds only the packaged files.
    let mut missing = Vec::new();
    for tool in ["systemd-sysusers", "systemd-tmpfiles"] {
        if !works(tool, &["--version"]) {
            missing.push(format!("{tool} (apt-get install systemd)"));
        }
    }
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (systemd-tmpfiles must chown)".to_string());
    }
    if !required_or_skip(
        "maintainer_scripts_create_the_user: sysusers/tmpfiles",
        &missing,
    ) {
        return;
    }
    let sysroot = pkg.dir.join("sysroot");
    for dir in ["etc", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d"] {
        std::fs::create_dir_all(sysroot.join(dir)).unwrap();
        if dir != "etc" {
            std::fs::copy(
                pkg.root.join(dir).join("uringcast.conf"),
                sysroot.join(dir).join("uringcast.conf"),
            )
            .unwrap();
        }
    }
    run(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", sysroot.display()))
            .arg("uringcast.conf"),
        60,
    );
    let passwd = read(sysroot.join("etc/passwd"));
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("uringcast:"))
        .unwrap_or_else(|| panic!("no uringcast user in\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "a system uid: {user:?}");
    assert_eq!(user[5], "/var/lib/uringcast", "home: {user:?}");
    assert!(user[6].ends_with("nologin"), "shell: {user:?}");
    let group = read(sysroot.join("etc/group"));
    assert!(
        group.lines().any(|l| l.starts_with("uringcast:")),
        "{group}"
    );
    run(
        Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", sysroot.display()))
            .args(["--create", "uringcast.conf"]),
        60,
    );
    for dir in ["var/lib/uringcast", "var/lib/uringcast/media"] {
        let meta = std::fs::metadata(sysroot.join(dir)).unwrap();
        assert!(meta.is_dir(), "{dir}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.uid(), uid, "{dir} owner");
        assert_eq!(format!("{:o}", meta.mode() & 0o7777), "755", "{dir} mode");
    }
}

/// `#key = value` lines are the documented defaults: uncommented, they change nothing.
fn uncomment_defaults(config: &str) -> String {
    config
        .lines()
        .map(|line| {
            let body = line.strip_prefix('#').unwrap_or(line);
            let is_default = line.starts_with('#')
                && body.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
            if is_default {
                body.replace(
                    "\"uringcast/VERSION\"",
                    concat!("\"uringcast/", env!("CARGO_PKG_VERSION"), "\""),
                )
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every dotted key of a TOML document, tables included only through their keys.
fn keys(doc: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in doc {
        let name = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => keys(t, &format!("{name}."), out),
            _ => {
                out.insert(name);
            }
        }
    }
}

#[test]
fn packaged_binary_runs_and_accepts_the_packaged_configuration() {
    let Some(pkg) = package("packaged_binary_runs_and_accepts_the_packaged_configuration") else {
        return;
    };
    let bin = pkg.root.join("usr/bin/uringcast");
    assert_eq!(mode(&bin) & 0o111, 0o111, "not executable");
    let version = run(Command::new(&bin).arg("--version"), 30);
    assert_eq!(
        version.trim(),
        concat!("uringcast ", env!("CARGO_PKG_VERSION"))
    );

    let config = pkg.root.join("etc/uringcast/uringcast.toml");
    let effective = run(
        Command::new(&bin)
            .args(["--check-config", "--config"])
            .arg(&config),
        30,
    );
    assert!(
        effective.contains("root = \"/var/lib/uringcast/media\""),
        "{effective}"
    );
    // Only vod.root differs from the built-in defaults...
    let defaults = run(
        Command::new(&bin).args(["--check-config", "--media-root", "/var/lib/uringcast/media"]),
        30,
    );
    assert_eq!(effective, defaults);
    // ...and the commented defaults are the real ones, for every key.
    let uncommented = pkg.dir.join("uncommented.toml");
    let text = uncomment_defaults(&read(&config));
    std::fs::write(&uncommented, &text).unwrap();
    let with_all = run(
        Command::new(&bin)
            .args(["--check-config", "--config"])
            .arg(&uncommented),
        30,
    );
    assert_eq!(
        with_all, effective,
        "a `#key = value` line in packaging/uringcast.toml is not the default"
    );
    let mut documented = BTreeSet::new();
    keys(&text.parse::<toml::Table>().unwrap(), "", &mut documented);
    let mut all = BTreeSet::new();
    keys(&effective.parse::<toml::Table>().unwrap(), "", &mut all);
    assert_eq!(
        all.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys missing from packaging/uringcast.toml"
    );
    assert_eq!(documented, all);
}

/// One setting of the drop-in: (value, how the file applies it).
#[derive(Debug, PartialEq)]
enum Applied {
    /// `key = value`: at every boot.
    Always,
    /// `-key = value`: at boot when the kernel has it.
    IfPresent,
    /// `#key = value` under its `# [min]` reason: never at boot, sysctl-tune.sh only.
    ScriptOnly,
}

fn sysctl_entries(text: &str) -> BTreeMap<String, (String, Applied)> {
    let mut out = BTreeMap::new();
    let mut reason = false;
    for line in text.lines() {
        if line.starts_with("# [min] ") || line.starts_with("# [set] ") {
            reason = true;
            continue;
        }
        let (applied, body) = match line.as_bytes().first() {
            Some(b'-') => (Applied::IfPresent, &line[1..]),
            Some(b'#') if reason => (Applied::ScriptOnly, &line[1..]),
            Some(b'#') | None => {
                reason = false;
                continue;
            }
            _ => (Applied::Always, line),
        };
        let (key, value) = body.split_once(" = ").unwrap_or_else(|| panic!("{line}"));
        assert!(reason, "{key} has no reason line");
        reason = false;
        out.insert(key.trim().to_string(), (value.trim().to_string(), applied));
    }
    out
}

/// `scripts/sysctl-tune.sh show` with `conf` as its settings file: key → the row's words.
fn tune_show(conf: &Path) -> (BTreeMap<String, String>, String) {
    let out = run(
        Command::new("bash")
            .arg(Path::new(MANIFEST_DIR).join("scripts/sysctl-tune.sh"))
            .arg("show")
            .env("URINGCAST_SYSCTL_CONF", conf),
        60,
    );
    let rows = out
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with("note:"))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].to_string(), format!(" {} ", words[1..].join(" ")))
        })
        .collect();
    (rows, out)
}

#[test]
fn sysctl_drop_in_has_the_keys_and_values_sysctl_tune_sh_applies() {
    let Some(pkg) = package("sysctl_drop_in_has_the_keys_and_values_sysctl_tune_sh_applies") else {
        return;
    };
    let conf = pkg.root.join("usr/lib/sysctl.d/60-uringcast.conf");
    let entries = sysctl_entries(&read(&conf));
    assert!(entries.len() >= 16, "{entries:#?}");
    // The limits systemd raises to their maximum at boot are not lowered by this file.
    for key in ["fs.file-max", "fs.nr_open"] {
        assert_eq!(entries[key].1, Applied::ScriptOnly, "{key}");
    }
    for key in ["net.core.default_qdisc", "net.ipv4.tcp_congestion_control"] {
        assert_eq!(entries[key].1, Applied::IfPresent, "{key}");
    }

    let (rows, out) = tune_show(&conf);
    for (key, (value, applied)) in &entries {
        match rows.get(key) {
            // CURRENT RECOMMENDED STATUS: the recommended value is in the row.
            Some(row) => assert!(
                row.contains(&format!(" {value} ")),
                "{key} = {value}: {row}"
            ),
            // A setting the kernel lacks gets a note naming the value instead.
            None => assert!(
                *applied == Applied::IfPresent
                    && out
                        .lines()
                        .any(|l| l.starts_with("note:") && l.contains(value.as_str())),
                "sysctl-tune.sh show has no row for {key}:\n{out}"
            ),
        }
    }
    for key in rows.keys() {
        assert!(entries.contains_key(key), "{key} is not in the drop-in");
    }

    // The script has no table of its own: change a value in the file and it follows.
    let changed = pkg.dir.join("60-changed.conf");
    let text: Vec<String> = read(&conf)
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some(("net.core.somaxconn", _)) => "net.core.somaxconn = 65432".to_string(),
            Some(("net.ipv4.tcp_fin_timeout", _)) => "net.ipv4.tcp_fin_timeout = 17".to_string(),
            _ => line.to_string(),
        })
        .collect();
    std::fs::write(&changed, text.join("\n")).unwrap();
    let (rows, out) = tune_show(&changed);
    assert!(rows["net.core.somaxconn"].contains(" 65432 "), "{out}");
    assert!(rows["net.ipv4.tcp_fin_timeout"].contains(" 17 "), "{out}");
}

/// Every system call a `SystemCallFilter=` entry names, groups expanded.
fn syscalls(entry: &str, depth: u32) -> BTreeSet<String> {
    if !entry.starts_with('@') {
        return BTreeSet::from([entry.to_string()]);
    }
    assert!(depth < 8, "group nesting too deep at {entry}");
    let out = run(
        Command::new("systemd-analyze").args(["syscall-filter", entry]),
        30,
    );
    out.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| syscalls(l, depth + 1))
        .collect()
}

#[test]
fn unit_passes_systemd_analyze_and_lets_io_uring_through() {
    let Some(pkg) = package("unit_passes_systemd_analyze_and_lets_io_uring_through") else {
        return;
    };
    let unit = read(pkg.root.join("usr/lib/systemd/system/uringcast.service"));
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(
        get("ExecStart"),
        ["/usr/bin/uringcast --config /etc/uringcast/uringcast.toml"]
    );
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(get("User"), ["uringcast"]);
    assert_eq!(get("LimitNOFILE"), ["1048576"]);
    assert_eq!(get("LimitMEMLOCK"), ["infinity"]);
    assert_eq!(get("Restart"), ["on-failure"]);
    assert_eq!(get("KillSignal"), ["SIGTERM"]);
    assert_eq!(get("ProtectSystem"), ["strict"]);
    // Opt-in only: no capability unless a drop-in grants it.
    assert!(get("AmbientCapabilities").is_empty());
    assert_eq!(get("CapabilityBoundingSet"), [""]);
    assert!(unit.contains("\n#AmbientCapabilities=CAP_NET_BIND_SERVICE\n"));
    // The stop timeout covers the default drain and the 1 s the workers take after it.
    let drain_s = 5;
    let stop: u64 = get("TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop >= drain_s + 5, "TimeoutStopSec={stop}");
    // The packaged media root is writable under ProtectSystem=strict.
    let writable = get("ReadWritePaths");
    assert!(
        writable
            .iter()
            .flat_map(|v| v.split_whitespace())
            .any(|p| "/var/lib/uringcast/media".starts_with(p)),
        "ReadWritePaths={writable:?}"
    );

    if !required_or_skip(
        "unit_passes_systemd_analyze",
        &if works("systemd-analyze", &["--version"]) {
            vec![]
        } else {
            vec!["systemd-analyze (apt-get install systemd)".to_string()]
        },
    ) {
        return;
    }
    // verify checks that ExecStart's program exists: the unpacked one stands in for
    // /usr/bin/uringcast.
    let bin = pkg.root.join("usr/bin/uringcast");
    let copy = pkg.dir.join("uringcast.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/bin/uringcast ",
            &format!("ExecStart={} ", bin.display()),
        ),
    )
    .unwrap();
    let (status, out, err) = run_bounded_output(
        Command::new("systemd-analyze").arg("verify").arg(&copy),
        Duration::from_secs(60),
    );
    assert_eq!(status, Some(true), "systemd-analyze verify:\n{out}{err}");
    let about_us: Vec<&str> = err.lines().filter(|l| l.contains("uringcast")).collect();
    assert!(about_us.is_empty(), "systemd-analyze verify warns:\n{err}");
    // The sandbox stays tight: exposure 2.0 or less ("OK") in systemd's own scoring.
    let (status, out, err) = run_bounded_output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(&copy),
        Duration::from_secs(60),
    );
    let last = out.lines().last().unwrap_or_default().to_string();
    assert_eq!(status, Some(true), "{last}\n{err}");
    eprintln!("{last}");

    // No system call io_uring needs is filtered: not in a denied group, and in the allowed
    // ones if there is an allow-list.
    let mut denied = BTreeSet::new();
    let mut allowed: Option<BTreeSet<String>> = None;
    for value in get("SystemCallFilter") {
        match value.strip_prefix('~') {
            Some(deny) => deny
                .split_whitespace()
                .for_each(|e| denied.extend(syscalls(e, 0))),
            None => value
                .split_whitespace()
                .for_each(|e| allowed.get_or_insert_default().extend(syscalls(e, 0))),
        }
    }
    assert!(
        !denied.is_empty() || allowed.is_some(),
        "no SystemCallFilter"
    );
    assert!(denied.contains("reboot"), "{denied:?}");
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(!denied.contains(call), "{call} is denied");
        if let Some(allowed) = &allowed {
            assert!(allowed.contains(call), "{call} is not allowed");
        }
    }
}

/// `dpkg --root=DIR --force-script-chrootless`: dpkg runs the real maintainer scripts on this
/// machine with DPKG_ROOT=DIR, and systemd-sysusers, deb-systemd-helper and dpkg-statoverride
/// work inside DIR. Only where systemd is not running (a container): there the scripts' steps
/// that talk to a running systemd (sysctl, daemon-reload, start) are skipped by their own
/// guards, so nothing outside DIR changes.
fn dpkg_in(root: &Path, args: &[&str], deb: Option<&Path>) -> String {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless")
        // The scratch root has no libc6 or systemd package; the tools run from this machine.
        .arg("--force-depends")
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        .args(args)
        .env_remove("DPKG_ROOT");
    if let Some(deb) = deb {
        cmd.arg(deb);
    }
    run(&mut cmd, 120)
}

#[test]
fn maintainer_scripts_install_upgrade_and_purge_in_a_scratch_root() {
    let test = "maintainer_scripts_install_upgrade_and_purge_in_a_scratch_root";
    let Some(pkg) = package(test) else {
        return;
    };
    if Path::new("/run/systemd/system").exists() {
        eprintln!("SKIP {test}: systemd is running here, and the postinst would start the service");
        return;
    }
    let mut missing = Vec::new();
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (dpkg sets owners)".to_string());
    }
    for tool in ["systemd-sysusers", "deb-systemd-helper"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            missing.push(format!("{tool} (apt-get install systemd)"));
        }
    }
    if !required_or_skip(test, &missing) {
        return;
    }
    let host_overrides = std::fs::read("/var/lib/dpkg/statoverride").unwrap_or_default();
    let root = pkg.dir.join("dpkg-root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in ["var/lib/dpkg/status", "var/lib/dpkg/statoverride"] {
        std::fs::write(root.join(file), "").unwrap();
    }

    dpkg_in(&root, &["--install"], Some(&pkg.deb));
    let passwd = read(root.join("etc/passwd"));
    let gid: u32 = passwd
        .lines()
        .find_map(|l| l.strip_prefix("uringcast:"))
        .and_then(|rest| rest.split(':').nth(2))
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("no uringcast user in\n{passwd}"));
    let config = root.join("etc/uringcast/uringcast.toml");
    let check_private = || {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&config).unwrap();
        assert_eq!(format!("{:o}", meta.mode() & 0o7777), "640", "config mode");
        assert_eq!((meta.uid(), meta.gid()), (0, gid), "config owner");
    };
    check_private();
    let wants = root.join("etc/systemd/system/multi-user.target.wants/uringcast.service");
    assert!(
        wants.symlink_metadata().is_ok(),
        "the service is not enabled"
    );
    assert!(root.join("usr/bin/uringcast").exists());

    // An upgrade (the same version again) keeps the administrator's edit and the mode.
    let mut edited = read(&config);
    edited.push_str("# edited by the administrator\n");
    std::fs::write(&config, &edited).unwrap();
    dpkg_in(&root, &["--install"], Some(&pkg.deb));
    assert_eq!(read(&config), edited);
    check_private();

    dpkg_in(&root, &["--purge", "uringcast"], None);
    assert!(
        !root.join("etc/uringcast").exists(),
        "purge left the config"
    );
    assert!(!root.join("usr/bin/uringcast").exists());
    assert!(
        wants.symlink_metadata().is_err(),
        "purge left the service enabled"
    );
    // Under DPKG_ROOT the postinst sets owner and mode itself (no statoverride naming a
    // group of the building machine).
    assert_eq!(read(root.join("var/lib/dpkg/statoverride")), "");
    // Nothing of this reached the machine's own dpkg database.
    assert_eq!(
        std::fs::read("/var/lib/dpkg/statoverride").unwrap_or_default(),
        host_overrides
    );
}
