#!/usr/bin/env node
// Drives uringcast's operator console (the page at /) in Debian's headless Chromium, the way an
// operator would, and reports what happened.
//
//   node console.mjs --url http://HOST:PORT/ --stream APP/NAME --formats flv,hls \
//                    --seconds N --screenshot PREFIX [--credentials QUERY]
//
// Loads the console, waits for the stream's row in the table, clicks it (which starts the
// player), waits for the URLs the server hands out for it (/api/v1/streams/APP/NAME/play),
// types QUERY (if given) into its "credentials (query)" field, then for each format clicks its
// button, waits for playback (currentTime > 0, readyState >= 2, playing) and samples the
// <video> element every 500 ms for N seconds, and saves PREFIX-FORMAT.png. Prints ONE JSON
// line on stdout:
//   {"ok":bool,"row":"...","urls":{"flv":..},"credentials":"signed","note":"...",
//    "formats":{"flv":{"started_after_ms":..,
//    "samples":[[wall_ms,currentTime],..],"width":..,"height":..,"status":".."},..},
//    "chart_pixels":N,"errors":[...],"console":[...],"screenshots":[...]}
// errors: uncaught page errors, console.error messages and harness failures (ok = none, and
// every format started). The run is bounded by formats × (N + 15) + 20 s. Exit status is
// nonzero only when the harness itself cannot run.

import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { launch } from "./chromium.mjs";

const SAMPLE_MS = 500;
const log = (msg) => process.stderr.write(`console.mjs: ${msg}\n`);
function die(msg) {
  log(msg);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      url: { type: "string" },
      stream: { type: "string" },
      formats: { type: "string", default: "flv,hls" },
      seconds: { type: "string", default: "6" },
      screenshot: { type: "string" },
      credentials: { type: "string" },
    },
  }).values;
} catch (e) {
  die(String(e.message));
}
if (!args.url || !args.stream) die("--url and --stream are required");
const formats = args.formats.split(",");
if (!formats.every((f) => ["flv", "ts", "hls"].includes(f))) die("--formats: flv, ts, hls");
const seconds = Number(args.seconds);
if (!(seconds > 0 && seconds <= 120)) die("--seconds must be in (0, 120]");

const t0 = Date.now();
const boundMs = formats.length * (seconds + 15) * 1000 + 20_000;
const result = {
  ok: false,
  row: null,
  urls: {},
  credentials: null,
  note: null,
  formats: {},
  chart_pixels: 0,
  gop_chart_pixels: 0,
  errors: [],
  console: [],
  screenshots: [],
};
const keep = (list, item) => {
  if (list.length < 50) list.push(item);
};

let emitted = false;
function emit() {
  if (emitted) return;
  emitted = true;
  const started = formats.every((f) => result.formats[f]?.started_after_ms != null);
  result.ok = started && result.errors.length === 0;
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

let browser = null;
const watchdog = setTimeout(() => {
  result.errors.push({ source: "harness", detail: `overall timeout of ${boundMs} ms` });
  emit();
}, boundMs);

try {
  browser = await launch({ width: 1280, height: 900 });
} catch (e) {
  die(e.message);
}
log(`chromium launched in ${Date.now() - t0} ms`);
const page = browser.page;
page.on("console", (m) => {
  const text = `${m.type()}: ${m.text().slice(0, 400)}`;
  if (m.type() === "error") keep(result.errors, { source: "console", detail: text });
  else if (m.type() === "warning") keep(result.console, text);
});
page.on("pageerror", (e) => keep(result.errors, { source: "page", detail: String(e).slice(0, 400) }));
page.on("requestfailed", (r) =>
  keep(result.console, `requestfailed: ${r.url()} ${r.failure()?.errorText || ""}`)
);

const videoState = () =>
  page.evaluate(() => {
    const v = document.getElementById("video");
    return {
      now: performance.now(),
      ct: v.currentTime,
      rs: v.readyState,
      paused: v.paused,
      w: v.videoWidth,
      h: v.videoHeight,
      status: document.getElementById("player-status").textContent,
    };
  });

async function play(format, first) {
  const entry = { started_after_ms: null, samples: [], width: 0, height: 0, status: "" };
  result.formats[format] = entry;
  const clickedAt = Date.now();
  if (!first || format !== "flv") await page.click(`.formats button[data-format="${format}"]`);
  // Leave time for the sampling within this format's share of the bound.
  const startBy = clickedAt + 15_000;
  let s;
  for (;;) {
    s = await videoState();
    if (s.ct > 0 && s.rs >= 2 && !s.paused) break;
    if (Date.now() > startBy) {
      entry.status = s.status;
      result.errors.push({ source: "harness", detail: `${format}: playback did not start in 15 s (${s.status})` });
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  entry.started_after_ms = Date.now() - clickedAt;
  log(`${format}: playing after ${entry.started_after_ms} ms`);
  const base = s.now;
  const schedule = Date.now();
  entry.samples.push([0, s.ct]);
  for (let i = 1; i <= Math.floor((seconds * 1000) / SAMPLE_MS); i++) {
    const wait = schedule + i * SAMPLE_MS - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    s = await videoState();
    entry.samples.push([Math.round(s.now - base), s.ct]);
  }
  Object.assign(entry, { width: s.w, height: s.h, status: s.status });
  if (args.screenshot) {
    const path = resolve(`${args.screenshot}-${format}.png`);
    await mkdir(dirname(path), { recursive: true });
    await page.screenshot({ path, timeout: 5_000, fullPage: true });
    result.screenshots.push(path);
  }
}

async function run() {
  await page.goto(args.url, { timeout: 10_000 });
  const row = page.locator(`#streams tbody tr[data-stream="${args.stream}"]`);
  await row.waitFor({ timeout: 10_000 });
  result.row = await row.innerText();
  await row.click();
  // The URL table is rebuilt from the server's answer once it is in.
  await page.locator('#urls[data-source="server"]').waitFor({ state: "attached", timeout: 10_000 });
  if (args.credentials !== undefined) {
    // As an operator would, once the panel says they are needed: type, then leave the field
    // (its change event starts the player the console held back).
    await page.fill("#credentials", args.credentials, { timeout: 5_000 });
    await page.press("#credentials", "Tab");
  }
  Object.assign(
    result,
    await page.evaluate(() => ({
      urls: Object.fromEntries([...document.querySelectorAll("#urls input")].map((i) => [i.dataset.format, i.value])),
      credentials: document.getElementById("urls").dataset.credentials,
      note: document.getElementById("access-note").textContent,
    }))
  );
  for (const [i, format] of formats.entries()) await play(format, i === 0);
  // The bitrate chart of the selected stream has been drawn from the polls by now.
  const pixels = (id) =>
    page.evaluate((id) => {
      const c = document.getElementById(id);
      const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
      return n;
    }, id);
  result.chart_pixels = await pixels("chart-bitrate");
  // And a QoS chart: the GOP interval the server measures.
  result.gop_chart_pixels = await pixels("chart-gop");
}

try {
  await run();
} catch (e) {
  result.errors.push({ source: "harness", detail: String(e.message || e).slice(0, 400) });
}
clearTimeout(watchdog);
await browser.close();
emit();
