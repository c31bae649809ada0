#!/usr/bin/env node
// Plays a live stream in Debian's headless Chromium and reports what the <video> element did.
//
//   node play.mjs --player mpegts-flv|mpegts-ts|hls|native --url URL --seconds N --screenshot PATH
//
// Serves page.html and the players' dist builds (from node_modules) on 127.0.0.1:0, so the stream
// URL is on another origin and the page's fetches are cross-origin (the server's CORS headers
// must allow them). Waits for playback to start (currentTime > 0, readyState >= 2, playing),
// then samples the element every 500 ms for N seconds, takes a screenshot, and prints ONE JSON
// line on stdout:
//   {"ok":bool,"started_after_ms":..,"samples":[[wall_ms,currentTime],...],"width":..,
//    "height":..,"errors":[...],"codecs":"..", "mse_h264_aac":bool, ...}
// ok = playback started and no player, media element or page error was seen. The whole run is
// bounded by N + 20 s (an overrun is reported as ok:false). Exit status is nonzero only when the
// harness itself cannot run (bad arguments, no node_modules, Chromium does not launch).
// Never downloads a browser: Chromium is /usr/bin/chromium (override: CHROMIUM=/path; see
// chromium.mjs).

import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { launch } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const PLAYERS = ["mpegts-flv", "mpegts-ts", "hls", "native"];
const SAMPLE_MS = 500;

function die(msg) {
  process.stderr.write(`play.mjs: ${msg}\n`);
  process.exit(2);
}

const log = (msg) => process.stderr.write(`play.mjs: ${msg}\n`);

let args;
try {
  args = parseArgs({
    options: {
      player: { type: "string" },
      url: { type: "string" },
      seconds: { type: "string", default: "8" },
      screenshot: { type: "string" },
    },
  }).values;
} catch (e) {
  die(String(e.message));
}
if (!PLAYERS.includes(args.player)) die(`--player must be one of ${PLAYERS.join("|")}`);
if (!args.url) die("--url is required");
const seconds = Number(args.seconds);
if (!(seconds > 0 && seconds <= 600)) die("--seconds must be in (0, 600]");

// What the static server hands out: the page and the players' browser builds.
const files = {
  "/": ["page.html", "text/html; charset=utf-8"],
  "/lib/mpegts.js": ["node_modules/mpegts.js/dist/mpegts.js", "text/javascript"],
  "/lib/hls.js": ["node_modules/hls.js/dist/hls.min.js", "text/javascript"],
};
for (const [file] of Object.values(files)) {
  if (!existsSync(join(here, file))) die(`missing ${file} (run npm ci in ${here})`);
}

const t0 = Date.now();
const deadline = t0 + (seconds + 20) * 1000;
const result = {
  ok: false,
  player: args.player,
  url: args.url,
  started_after_ms: null,
  samples: [],
  width: 0,
  height: 0,
  errors: [],
  codecs: "",
  mse_h264_aac: null,
  mse: {},
  warnings: [],
  events: [],
  console: [],
  screenshot: null,
};

let emitted = false;
function emit() {
  if (emitted) return;
  emitted = true;
  result.ok = result.started_after_ms !== null && result.errors.length === 0;
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

// The hard bound: whatever state we are in, report it and leave (Playwright kills the browser
// it launched when this process exits).
let userDataDir = null;
const watchdog = setTimeout(() => {
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  result.errors.push({ source: "harness", detail: `overall timeout of ${seconds + 20} s` });
  emit();
}, deadline - t0);

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/favicon.ico") {
    res.writeHead(204).end();
    return;
  }
  const entry = files[path];
  if (!entry) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(join(here, entry[0]));
    res.writeHead(200, { "Content-Type": entry[1], "Cache-Control": "no-store" }).end(body);
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const pageUrl =
  `http://127.0.0.1:${server.address().port}/?player=${encodeURIComponent(args.player)}` +
  `&url=${encodeURIComponent(args.url)}`;

let browser;
try {
  browser = await launch({ width: 660, height: 520 });
} catch (e) {
  die(e.message);
}
userDataDir = browser.userDataDir;
log(`chromium launched in ${Date.now() - t0} ms`);

const page = browser.page;
const keep = (list, item) => {
  if (list.length < 50) list.push(item);
};
page.on("console", (m) => {
  if (m.type() === "error" || m.type() === "warning") {
    keep(result.console, `${m.type()}: ${m.text().slice(0, 400)}`);
  }
});
page.on("pageerror", (e) => keep(result.errors, { source: "page", detail: String(e).slice(0, 400) }));
page.on("requestfailed", (r) =>
  keep(result.console, `requestfailed: ${r.url()} ${r.failure()?.errorText || ""}`)
);

async function run() {
  const navStart = Date.now();
  await page.goto(pageUrl, { timeout: 10_000 });
  result.mse = await page.evaluate(() => {
    const probe = (t) => (window.MediaSource ? MediaSource.isTypeSupported(t) : false);
    return {
      'video/mp4; codecs="avc1.42E01E,mp4a.40.2"': probe('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'),
      'video/mp4; codecs="avc1.640028"': probe('video/mp4; codecs="avc1.640028"'),
      'audio/mp4; codecs="mp4a.40.2"': probe('audio/mp4; codecs="mp4a.40.2"'),
      'video/mp4; codecs="hvc1.1.6.L93.B0"': probe('video/mp4; codecs="hvc1.1.6.L93.B0"'),
      'video/mp2t; codecs="avc1.42E01E,mp4a.40.2"': probe('video/mp2t; codecs="avc1.42E01E,mp4a.40.2"'),
      'canPlayType(application/vnd.apple.mpegurl)': document.createElement("video").canPlayType("application/vnd.apple.mpegurl"),
    };
  });
  result.mse_h264_aac = result.mse['video/mp4; codecs="avc1.42E01E,mp4a.40.2"'];

  const state = () =>
    page.evaluate(() => {
      const v = document.getElementById("v");
      return {
        now: performance.now(),
        ct: v.currentTime,
        rs: v.readyState,
        paused: v.paused,
        w: v.videoWidth,
        h: v.videoHeight,
        errors: window.harness.errors.length,
      };
    });

  // Wait for playback, leaving time for the sampling and the screenshot before the bound.
  const startBy = deadline - seconds * 1000 - 3000;
  let s;
  for (;;) {
    s = await state();
    if (s.ct > 0 && s.rs >= 2 && !s.paused) break;
    if (s.errors > 0) return log("player error before playback started");
    if (Date.now() > startBy) {
      result.errors.push({ source: "harness", detail: `playback did not start within ${startBy - navStart} ms` });
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  result.started_after_ms = Date.now() - navStart;
  log(`playing after ${result.started_after_ms} ms`);

  // Sample on a fixed schedule; wall time is the page's clock at the moment of each read.
  const base = s.now;
  const count = Math.floor((seconds * 1000) / SAMPLE_MS);
  const schedule = Date.now();
  result.samples.push([0, s.ct]);
  for (let i = 1; i <= count; i++) {
    const wait = schedule + i * SAMPLE_MS - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    s = await state();
    result.samples.push([Math.round(s.now - base), s.ct]);
  }
}

try {
  await run();
} catch (e) {
  result.errors.push({ source: "harness", detail: String(e.message || e).slice(0, 400) });
}

try {
  const h = await page.evaluate(() => {
    const v = document.getElementById("v");
    const h = window.harness;
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      errors: h.errors,
      warnings: h.warnings,
      events: h.events,
      codecs: h.codecs,
    };
  });
  result.width = h.width;
  result.height = h.height;
  result.errors.push(...h.errors);
  result.warnings = h.warnings;
  result.events = h.events;
  result.codecs = h.codecs;
} catch (e) {
  result.errors.push({ source: "harness", detail: `reading the page: ${e.message}` });
}

if (args.screenshot) {
  try {
    const path = resolve(args.screenshot);
    await mkdir(dirname(path), { recursive: true });
    await page.screenshot({ path, timeout: 5_000 });
    result.screenshot = path;
  } catch (e) {
    log(`screenshot failed: ${e.message}`);
  }
}

clearTimeout(watchdog);
await browser.close();
server.close();
emit();
