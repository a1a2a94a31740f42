// Drives Debian's chromium (headless, through playwright-core) against the
// watchdog's status page, for tests/tests/status_page.rs.
//
//   node status_page.mjs URL SCREENSHOT [--hosts a,b,c] [--expect SELECTOR=>TEXT ...]
//                        [--fail HOST] [--stop HOST]
//
// TEXT written /like this/ is a regular expression.
//
// 1. Loads URL and waits until every host of --hosts has a tile, all healthy,
//    and every --expect SELECTOR holds TEXT (in its visible text).
// 2. Prints "READY". With --fail HOST it then waits for a line on stdin (the
//    test kills HOST's agent and writes "killed"), and waits for HOST's tile
//    to show the host failed, measuring how long the page took. With
//    --stop HOST too (the test SIGTERMs that agent before it writes
//    "killed"), HOST's tile must then show the host stopped.
// 3. Saves a full-page screenshot to SCREENSHOT, prints "RESULT {json}".
// Exit status 0 when all of that held and the console logged no error,
// 1 otherwise (the reason on stderr and in the RESULT line).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

/** Chromium from Debian's package (`cargo xtask setup` installs it). */
const CHROMIUM = "/usr/bin/chromium";
/** Bound on the page showing the expected hosts and texts. */
const LOAD_BOUND_MS = 20_000;
/** Bound on a killed host showing as failed: the detector's 3 s, one 2 s poll, margin. */
const FAIL_BOUND_MS = 10_000;
/** Bound on the test's "killed" line. */
const STDIN_BOUND_MS = 30_000;
/** Bound on the whole run, so a hung browser cannot hang the test. */
const RUN_BOUND_MS = 90_000;

function parseArgs(argv) {
  const [url, screenshot, ...rest] = argv;
  if (!url || !screenshot) throw new Error("usage: status_page.mjs URL SCREENSHOT [--hosts a,b] [--expect SEL=>TEXT] [--fail HOST] [--stop HOST]");
  const args = { url, screenshot, hosts: [], expect: [], fail: null, stop: null };
  for (let i = 0; i < rest.length; i += 2) {
    const value = rest[i + 1];
    if (value === undefined) throw new Error(`${rest[i]} needs a value`);
    switch (rest[i]) {
      case "--hosts": args.hosts = value.split(",").filter(Boolean); break;
      case "--fail": args.fail = value; break;
      case "--stop": args.stop = value; break;
      case "--expect": {
        const at = value.indexOf("=>");
        if (at < 1) throw new Error(`--expect ${value}: want SELECTOR=>TEXT`);
        args.expect.push({ selector: value.slice(0, at), text: value.slice(at + 2) });
        break;
      }
      default: throw new Error(`unknown option ${rest[i]}`);
    }
  }
  return args;
}

function nextStdinLine(boundMs) {
  const rl = createInterface({ input: process.stdin });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { rl.close(); reject(new Error(`no line on stdin within ${boundMs} ms`)); }, boundMs);
    rl.once("line", line => { clearTimeout(timer); rl.close(); resolve(line.trim()); });
  });
}

const tile = host => `#host-grid [data-host="${host.replaceAll('"', '\\"')}"]`;

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const result = { consoleErrors: [], failedAfterMs: null, screenshot: args.screenshot, hostsSeen: [] };
  const profile = mkdtempSync(join(tmpdir(), "hyperwatch-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on("console", m => { if (m.type() === "error") result.consoleErrors.push(`console: ${m.text()}`); });
    page.on("pageerror", e => result.consoleErrors.push(`page error: ${e.message}`));
    page.on("requestfailed", r => result.consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on("response", r => { if (r.status() >= 400) result.consoleErrors.push(`HTTP ${r.status()}: ${r.url()}`); });

    await page.goto(args.url, { timeout: LOAD_BOUND_MS });
    for (const host of args.hosts) {
      await page.locator(`${tile(host)}[data-state="healthy"]`).waitFor({ timeout: LOAD_BOUND_MS });
    }
    for (const { selector, text } of args.expect) {
      // TEXT written /like this/ is a regular expression.
      const match = text.length > 2 && text.startsWith("/") && text.endsWith("/") ? new RegExp(text.slice(1, -1)) : text;
      await page.locator(selector).filter({ hasText: match }).first().waitFor({ timeout: LOAD_BOUND_MS });
    }
    result.hostsSeen = await page.locator("#host-grid [data-host]").evaluateAll(
      tiles => tiles.map(t => ({ host: t.dataset.host, state: t.dataset.state })));
    console.log("READY");

    if (args.fail) {
      const line = await nextStdinLine(STDIN_BOUND_MS);
      if (line !== "killed") throw new Error(`expected "killed" on stdin, got ${JSON.stringify(line)}`);
      const t0 = Date.now();
      const failed = page.locator(`${tile(args.fail)}[data-state="failed"]`);
      await failed.waitFor({ timeout: FAIL_BOUND_MS });
      result.failedAfterMs = Date.now() - t0;
      result.failedTileText = await failed.innerText();
      // How it stands out: the striped red background, white text.
      result.failedTileStyle = await failed.evaluate(t => {
        const s = getComputedStyle(t);
        return { backgroundImage: s.backgroundImage, color: s.color };
      });
      if (args.stop) {
        // A planned stop: grey, whatever its last CPU figure was.
        const stopped = page.locator(`${tile(args.stop)}[data-state="stopped"]`);
        await stopped.waitFor({ timeout: FAIL_BOUND_MS });
        result.stoppedTileText = await stopped.innerText();
        result.stoppedTileStyle = await stopped.evaluate(t => {
          const s = getComputedStyle(t);
          return { backgroundColor: s.backgroundColor, backgroundImage: s.backgroundImage };
        });
      }
      result.hostsAfter = await page.locator("#host-grid [data-host]").evaluateAll(
        tiles => tiles.map(t => ({ host: t.dataset.host, state: t.dataset.state })));
      // One more refresh cycle, so the screenshot shows a settled page.
      await page.waitForTimeout(500);
    }
    await page.screenshot({ path: args.screenshot, fullPage: true });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log("RESULT " + JSON.stringify(result));
  if (result.consoleErrors.length > 0) {
    console.error("console errors:\n" + result.consoleErrors.join("\n"));
    return 1;
  }
  return 0;
}

const bound = setTimeout(() => { console.error(`status_page.mjs: gave up after ${RUN_BOUND_MS} ms`); process.exit(1); }, RUN_BOUND_MS);
main().then(code => { clearTimeout(bound); process.exit(code); }, e => {
  console.error(`status_page.mjs: ${e.stack || e}`);
  console.log("RESULT " + JSON.stringify({ error: String(e.message || e) }));
  process.exit(1);
});
