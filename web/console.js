// The operator's console: polls /api/v1/streams, lists the live streams, plays the selected
// one (mpegts.js for HTTP-FLV and HTTP-TS, hls.js or the browser's own HLS), and charts its
// figures from what was polled. No dependency beyond the two players; no build step.
//
// The selected stream's URLs come from /api/v1/streams/{app}/{stream}/play, which writes in
// the credentials the play policy needs when the server can mint them (a signed token, a
// key); what the operator types in "credentials (query)" is appended to every URL (for an
// auth service's credentials, which the server cannot mint).
"use strict";

const POLL_MS = 2000;
const POLL_TIMEOUT_MS = 5000;
const HISTORY = 150; // samples kept per stream: 5 minutes at one poll every 2 s
const CHART_MIN_MS = 60_000; // a chart spans at least a minute, then all the history
const FORMATS = { flv: "HTTP-FLV", ts: "HTTP-TS", hls: "HLS" };
const ACCESS_TIMEOUT_MS = 5000;
const ACCESS_MARGIN_S = 60; // signed URLs closer than this to their expiry are renewed first

const $ = (id) => document.getElementById(id);
const video = $("video");

const state = {
  play: null, // {http_port, rtmp_port}: where media is served (maybe another port than ours)
  streams: new Map(), // "app/name" -> latest figures from the API
  history: new Map(), // "app/name" -> [{t, kbps, fps, flv, ts, rtmp, skips, drops}]
  selected: null, // "app/name"
  format: null, // key of FORMATS while playing
  player: null, // {destroy()}
  generation: 0, // bumped by every start and stop: a start that awaited and was overtaken gives up
  access: null, // the selected stream's /play answer, plus its key: {key, flv, ts, hls, rtmp, ...}
  accessTimer: null, // renews signed URLs before they expire
  extra: "", // the operator's "credentials (query)"
  held: false, // the selected stream was not played: it needs credentials the operator has not given
};

// ---- formatting -----------------------------------------------------------------------

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function kbps(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? `${(value / 1000).toFixed(1)} Mbit/s` : `${Math.round(value)} kbit/s`;
}

// ---- media URLs -----------------------------------------------------------------------

// The stream's URLs: the server's answer (with credentials) once it is in, else built from the
// ports the API names (media may be served on another port than the console's); plus the
// operator's credentials.
function mediaUrls(key) {
  const access = state.access && state.access.key === key ? state.access : null;
  const urls = access ? serverUrls(access) : builtUrls(key);
  if (state.extra) {
    for (const format of Object.keys(urls)) urls[format] = withQuery(urls[format], state.extra);
  }
  return urls;
}

function serverUrls(access) {
  const urls = { flv: access.flv, ts: access.ts, hls: access.hls };
  if (access.rtmp) urls.rtmp = access.rtmp;
  return urls;
}

function withQuery(url, query) {
  return `${url}${url.includes("?") ? "&" : "?"}${query}`;
}

// "?key=a", " &token=b " -> "key=a", "token=b".
function cleanQuery(text) {
  return text.trim().replace(/^[?&]+/, "");
}

// Media is served on the public HTTP port the API names, which may not be the console's.
function builtUrls(key) {
  const play = state.play || {};
  const host = location.hostname; // IPv6 hosts come bracketed
  const port = play.http_port || location.port;
  const http = `${location.protocol}//${host}${port ? `:${port}` : ""}`;
  const urls = {
    flv: `${http}/${key}.flv`,
    ts: `${http}/${key}.ts`,
    hls: `${http}/${key}/index.m3u8`,
  };
  if (play.rtmp_port) urls.rtmp = `rtmp://${host}:${play.rtmp_port}/${key}`;
  return urls;
}

// ---- polling --------------------------------------------------------------------------

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), POLL_TIMEOUT_MS);
  try {
    const answer = await fetch("/api/v1/streams", { cache: "no-store", signal: abort.signal });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    update(await answer.json(), performance.now());
    $("error").hidden = true;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("error").textContent = `cannot read /api/v1/streams: ${e.message || e}`;
    $("error").hidden = false;
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
}

function update(json, now) {
  state.play = json.play || null;
  const seen = new Map();
  for (const s of json.streams || []) {
    const key = `${s.app}/${s.name}`;
    seen.set(key, s);
    record(key, s, state.streams.get(key), now);
  }
  for (const key of state.history.keys()) {
    if (!seen.has(key)) state.history.delete(key);
  }
  state.streams = seen;
  renderTable();
  renderPanel();
}

// One history sample: bitrate and fps from the counters' change since the last poll (the
// API's own figures are averages since the start), readers and skips as they are.
function record(key, s, previous, now) {
  const history = state.history.get(key) || [];
  const last = history[history.length - 1];
  let rate = s.ingest_bitrate_kbps;
  let fps = s.fps;
  if (last && previous && now > last.t) {
    const seconds = (now - last.t) / 1000;
    const bytes = s.bytes_in - previous.bytes_in;
    const frames = s.video_frames - previous.video_frames;
    if (bytes >= 0) rate = (bytes * 8) / 1000 / seconds;
    if (frames >= 0 && s.video_codec) fps = frames / seconds;
  }
  history.push({
    t: now,
    kbps: rate,
    fps: fps || 0,
    flv: s.readers.flv,
    ts: s.readers.ts,
    rtmp: s.readers.rtmp,
    skips: s.skips,
    drops: s.slow_reader_disconnects,
    // QoS over the server's window (null until there is one).
    gop_min: (s.gop_min_ms ?? 0) / 1000,
    gop_avg: (s.gop_avg_ms ?? 0) / 1000,
    gop_max: (s.gop_max_ms ?? 0) / 1000,
    jitter50: s.jitter_p50_ms ?? 0,
    jitter99: s.jitter_p99_ms ?? 0,
    drop_pct: (s.frame_drop_ratio ?? 0) * 100,
    lag99: s.reader_lag_p99_ms ?? 0,
  });
  if (history.length > HISTORY) history.shift();
  state.history.set(key, history);
}

// ---- the table ------------------------------------------------------------------------

function renderTable() {
  const body = $("streams").tBodies[0];
  body.replaceChildren();
  const keys = [...state.streams.keys()].sort();
  $("count").textContent = `(${keys.length})`;
  $("empty").hidden = keys.length > 0;
  for (const key of keys) {
    const s = state.streams.get(key);
    const latest = state.history.get(key).at(-1);
    const row = el("tr");
    row.dataset.stream = key;
    if (key === state.selected) row.className = "selected";
    const codecs = [s.video_codec, s.audio_codec].filter((c) => c && c !== "none").join(" + ");
    const size = s.width && s.height ? `${s.width}×${s.height}` : "–";
    const readers = [`flv ${s.readers.flv}`, `ts ${s.readers.ts}`, `rtmp ${s.readers.rtmp}`];
    if (s.hls_segmenting) readers.push("hls on");
    const bitrate = el("td", kbps(latest.kbps), "num");
    const spark = el("canvas");
    bitrate.append(spark);
    row.append(
      el("td", key),
      el("td", s.publishing ? "live" : "publisher gone", s.publishing ? "state-live" : "state-gone"),
      el("td", codecs || "–"),
      el("td", size),
      el("td", latest.fps ? latest.fps.toFixed(1) : "–", "num"),
      bitrate,
      el("td", s.gop_interval_ms ? `${(s.gop_interval_ms / 1000).toFixed(1)} s` : "–", "num"),
      el("td", duration(s.uptime_ms), "num"),
      el("td", readers.join(" · ")),
      el("td", s.skips, "num"),
      el("td", s.slow_reader_disconnects, "num"),
    );
    body.append(row);
    chart(spark, state.history.get(key), [{ field: "kbps", color: "--flv" }], false);
  }
}

// ---- the player panel -----------------------------------------------------------------

function select(key) {
  if (state.selected !== key) {
    stopPlayer();
    state.held = false;
    state.selected = key;
    forgetAccess();
    window.history.replaceState(null, "", `#${key}`);
  }
  renderTable();
  renderPanel();
  if (!state.player && !state.format) startPlayer("flv", true);
}

// ---- play URLs and their credentials --------------------------------------------------

function forgetAccess() {
  clearTimeout(state.accessTimer);
  state.accessTimer = null;
  state.access = null;
  renderAccess();
}

// The selected stream's URLs from the server, asked for again when signed ones are about to
// expire. Resolves once they are in (or the asking failed, said in the player's status).
async function ensureAccess(key) {
  const a = state.access;
  const fresh = a && a.key === key && (a.expires == null || a.expires - Date.now() / 1000 > ACCESS_MARGIN_S);
  if (!fresh) await fetchAccess(key);
}

async function fetchAccess(key) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ACCESS_TIMEOUT_MS);
  try {
    const path = `/api/v1/streams/${key.split("/").map(encodeURIComponent).join("/")}/play`;
    const answer = await fetch(path, { cache: "no-store", signal: abort.signal });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const json = await answer.json();
    if (state.selected !== key) return;
    state.access = { ...json, key };
    clearTimeout(state.accessTimer);
    state.accessTimer = null;
    if (json.expires != null) {
      // Renew at 80 % of the lifetime left (the players' own connections outlive a token:
      // it is checked when they start; hls.js asks again for every playlist and segment).
      const left = json.expires * 1000 - Date.now();
      const delay = Math.min(2 ** 31 - 1, Math.max(10_000, left * 0.8));
      state.accessTimer = setTimeout(() => {
        if (state.selected === key) fetchAccess(key);
      }, delay);
    }
  } catch (e) {
    if (state.selected === key) status(`cannot read the play URLs: ${e.message || e}`, true);
  } finally {
    clearTimeout(timer);
  }
  renderAccess();
  if (state.selected) renderUrls(state.selected);
}

// What the server said about credentials, under the URLs.
function renderAccess() {
  const note = $("access-note");
  const a = state.access;
  const parts = [];
  if (a) {
    if (a.credentials === "signed" && a.expires != null) {
      parts.push(`signed URLs, valid until ${new Date(a.expires * 1000).toLocaleString()}`);
    }
    if (a.note) parts.push(a.note);
    if (a.needs_credentials && !state.extra) parts.push("no credentials given yet");
  }
  note.textContent = parts.join(". ");
  note.hidden = parts.length === 0;
  note.className = a && a.needs_credentials && !state.extra ? "error" : "muted";
  $("urls").dataset.credentials = a ? a.credentials : "";
}

// hls.js asks for the playlist again and again: a signed URL past its expiry is refused, so
// every request gets the newest expires and token the console holds (the segments' URIs carry
// the playlist request's query, so they follow).
function renewSigned(url) {
  const a = state.access;
  if (!a || a.credentials !== "signed" || !a.query) return url;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (!parsed.searchParams.has("token") || !parsed.searchParams.has("expires")) return url;
  const fresh = new URLSearchParams(a.query);
  for (const name of ["expires", "token"]) parsed.searchParams.set(name, fresh.get(name));
  return parsed.href;
}

function renderPanel() {
  const key = state.selected;
  $("panel").hidden = !key;
  if (!key) return;
  const s = state.streams.get(key);
  $("panel-title").textContent = key;
  $("panel-state").textContent = s ? (s.publishing ? "live" : "publisher gone") : "not live";
  for (const button of document.querySelectorAll(".formats button[data-format]")) {
    const format = button.dataset.format;
    button.classList.toggle("active", format === state.format);
    button.disabled = format === "hls" && s !== undefined && !s.hls_enabled;
  }
  renderUrls(key);
  const history = state.history.get(key) || [];
  chart($("chart-bitrate"), history, [{ field: "kbps", color: "--flv" }], true);
  chart($("chart-fps"), history, [{ field: "fps", color: "--rtmp" }], true);
  const readers = ["flv", "ts", "rtmp"].map((p) => ({ field: p, color: `--${p}` }));
  chart($("chart-readers"), history, readers, true);
  const skips = [{ field: "skips", color: "--skips" }, { field: "drops", color: "--drops" }];
  chart($("chart-skips"), history, skips, true);
  const gop = [
    { field: "gop_min", color: "--ts" },
    { field: "gop_avg", color: "--flv" },
    { field: "gop_max", color: "--rtmp" },
  ];
  chart($("chart-gop"), history, gop, true);
  const jitter = [{ field: "jitter50", color: "--flv" }, { field: "jitter99", color: "--drops" }];
  chart($("chart-jitter"), history, jitter, true);
  const delivery = [{ field: "drop_pct", color: "--skips" }, { field: "lag99", color: "--ts" }];
  chart($("chart-delivery"), history, delivery, true);
}

// The URL table is rebuilt only when the URLs change, so a selection in it survives polls.
function renderUrls(key) {
  const urls = mediaUrls(key);
  // The table says whose URLs these are: the server's (with credentials) or built here.
  const access = state.access && state.access.key === key;
  $("urls").dataset.source = access ? "server" : "built";
  const body = $("urls").tBodies[0];
  const signature = JSON.stringify(urls);
  if (body.dataset.signature === signature) return;
  body.dataset.signature = signature;
  body.replaceChildren();
  for (const [format, url] of Object.entries(urls)) {
    const input = el("input");
    input.readOnly = true;
    input.value = url;
    input.dataset.format = format;
    const copy = el("button", "copy");
    copy.type = "button";
    copy.addEventListener("click", () => copyText(input, copy));
    const row = el("tr");
    const cells = [el("td", FORMATS[format] || "RTMP"), el("td"), el("td")];
    cells[1].append(input);
    cells[2].append(copy);
    row.append(...cells);
    body.append(row);
  }
}

async function copyText(input, button) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // The async clipboard needs a secure context; a plain-HTTP console falls back to this.
    input.select();
    document.execCommand("copy");
  }
  button.textContent = "copied";
  setTimeout(() => (button.textContent = "copy"), 1500);
}

function status(text, isError) {
  const p = $("player-status");
  p.textContent = text;
  p.className = isError ? "error" : "muted";
}

function stopPlayer() {
  if (state.player) {
    try {
      state.player.destroy();
    } catch (e) {
      status(`stopping the player: ${e.message || e}`, true);
    }
  }
  state.player = null;
  state.format = null;
  state.generation++;
  video.removeAttribute("src");
  video.load();
}

// `auto`: on selection, where a stream that needs credentials nobody gave is held back until
// they are typed in (or a format is chosen), rather than refused.
async function startPlayer(format, auto) {
  const key = state.selected;
  if (!key) return;
  stopPlayer();
  state.held = false;
  state.format = format;
  const generation = state.generation;
  renderPanel();
  status(`${FORMATS[format]}: asking for the play URLs`);
  await ensureAccess(key);
  // Stopped, or another start, while the URLs were asked for.
  if (generation !== state.generation || state.selected !== key) return;
  const access = state.access && state.access.key === key ? state.access : null;
  if (auto && access && access.needs_credentials && !state.extra) {
    state.format = null;
    state.held = true;
    renderPanel();
    status("this stream needs credentials the server cannot add: type them in \"credentials (query)\"");
    return;
  }
  const url = mediaUrls(key)[format];
  try {
    state.player = format === "hls" ? startHls(url) : startMpegts(format, url);
  } catch (e) {
    status(`${FORMATS[format]}: ${e.message || e}`, true);
  }
  renderPanel();
  const started = video.play();
  if (started && started.catch) started.catch((e) => status(`play(): ${e.message || e}`, true));
}

function startMpegts(format, url) {
  if (!window.mpegts || !mpegts.getFeatureList().mseLivePlayback) {
    throw new Error("this browser has no Media Source Extensions for live playback");
  }
  const player = mpegts.createPlayer(
    { type: format === "flv" ? "flv" : "mpegts", isLive: true, url },
    { enableWorker: false, liveBufferLatencyChasing: false },
  );
  player.on(mpegts.Events.ERROR, (type, details) => status(`${FORMATS[format]}: ${type} ${details}`, true));
  player.on(mpegts.Events.MEDIA_INFO, (info) => status(`${FORMATS[format]} with mpegts.js: ${info.mimeType || ""}`));
  player.attachMediaElement(video);
  player.load();
  status(`${FORMATS[format]} with mpegts.js: connecting`);
  return {
    destroy() {
      player.pause();
      player.unload();
      player.detachMediaElement();
      player.destroy();
    },
  };
}

function startHls(url) {
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({
      liveDurationInfinity: true,
      xhrSetup(xhr, requested) {
        const renewed = renewSigned(requested);
        // Opened here, hls.js sends it as it is (it opens the request only if we did not).
        if (renewed !== requested) xhr.open("GET", renewed, true);
      },
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) status(`HLS: ${data.type} ${data.details}`, true);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => status("HLS with hls.js: playing"));
    hls.loadSource(url);
    hls.attachMedia(video);
    status("HLS with hls.js: loading the playlist");
    return { destroy: () => hls.destroy() };
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    status("HLS, played by the browser itself");
    return { destroy() {} };
  }
  throw new Error("this browser plays HLS neither natively nor through Media Source Extensions");
}

// ---- charts ---------------------------------------------------------------------------

// Lines of `series` (fields of the history samples): time runs left to right, the newest
// sample at the right edge, over the history's span (at least CHART_MIN_MS); the y scale runs
// from 0 to the largest value shown.
function chart(canvas, history, series, labels) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (!width || !height) return;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  const values = history.flatMap((h) => series.map((s) => h[s.field] || 0));
  const max = Math.max(1, ...values);
  const top = labels ? 14 * ratio : 2 * ratio;
  const newest = history.length ? history[history.length - 1].t : 0;
  const span = Math.max(CHART_MIN_MS, newest - (history.length ? history[0].t : 0));
  const x = (h) => width - 1 - ((newest - h.t) / span) * (width - 2);
  const styles = getComputedStyle(document.documentElement);
  g.lineWidth = 1.5 * ratio;
  for (const s of series) {
    g.strokeStyle = styles.getPropertyValue(s.color).trim() || "#888";
    g.beginPath();
    history.forEach((h, i) => {
      const y = height - 1 - ((h[s.field] || 0) / max) * (height - top - 1);
      if (i === 0) g.moveTo(x(h), y);
      else g.lineTo(x(h), y);
    });
    g.stroke();
  }
  if (labels && history.length) {
    const latest = history[history.length - 1];
    g.fillStyle = styles.getPropertyValue("--muted").trim() || "#888";
    g.font = `${11 * ratio}px system-ui, sans-serif`;
    g.fillText(`max ${Math.round(max)}`, 3 * ratio, 11 * ratio);
    const now = series.map((s) => Math.round(latest[s.field] || 0)).join(" / ");
    g.textAlign = "right";
    g.fillText(`now ${now}`, width - 3 * ratio, 11 * ratio);
    g.textAlign = "left";
    g.fillText(`${Math.round(span / 60_000)} min`, 3 * ratio, height - 3 * ratio);
  }
}

// ---- start ----------------------------------------------------------------------------

// Rows are rebuilt on every poll: one listener on the table body serves them all.
$("streams").tBodies[0].addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-stream]");
  if (row) select(row.dataset.stream);
});
for (const button of document.querySelectorAll(".formats button[data-format]")) {
  button.addEventListener("click", () => startPlayer(button.dataset.format));
}
$("stop").addEventListener("click", () => {
  stopPlayer();
  status("stopped");
  renderPanel();
});
video.addEventListener("error", () => {
  const e = video.error;
  if (e && state.player) status(`video: ${e.message || `error ${e.code}`}`, true);
});
const credentials = $("credentials");
credentials.addEventListener("change", () => {
  state.extra = cleanQuery(credentials.value);
  renderAccess();
  if (state.selected) renderUrls(state.selected);
  // A running player restarts with them; one held back for want of them starts.
  if (state.format) startPlayer(state.format);
  else if (state.held && state.extra) startPlayer("flv");
});
// A stream named in the address (#app/name) is shown at once; it plays when a format is chosen.
const wanted = decodeURIComponent(location.hash.slice(1));
if (wanted) {
  state.selected = wanted;
  renderPanel();
  fetchAccess(wanted);
}
poll();
