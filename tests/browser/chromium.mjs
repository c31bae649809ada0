// Debian's headless Chromium through playwright-core, as play.mjs and console.mjs launch it.
// Never downloads a browser: Chromium is /usr/bin/chromium (override: CHROMIUM=/path).

import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

/// A persistent context in a fresh profile directory: {context, page, close()}. Throws with a
/// message that says what is missing when Chromium or playwright-core is not there.
export async function launch(viewport) {
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath} (apt-get install chromium)`);
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    throw new Error(`cannot load playwright-core (run npm ci in tests/browser): ${e.message}`);
  }
  const userDataDir = await mkdtemp(join(tmpdir(), "uringcast-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      viewport,
      timeout: 15_000,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
      ],
    });
  } catch (e) {
    await rm(userDataDir, { recursive: true, force: true });
    throw new Error(`Chromium did not launch: ${e.message}`);
  }
  const page = context.pages()[0] || (await context.newPage());
  return {
    context,
    page,
    userDataDir,
    async close() {
      await Promise.race([context.close(), new Promise((r) => setTimeout(r, 3000))]);
      await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}
