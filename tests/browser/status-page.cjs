// The status page in a real browser (Debian's Chromium, headless, driven by
// playwright-core): it clicks through the page of a running ferry and
// checks what it shows against the API, retries and purges dead letters
// from the page, and saves a screenshot.
//
//   node tests/browser/status-page.cjs BASE_URL ADMIN_TOKEN SCREENSHOT.png
//
// Run by tests/tests/it/status_page.rs, which starts ferry with two dead
// letters: one its plugin applies when retried (FailTimes), one it never
// applies. CHROMIUM overrides /usr/bin/chromium; NODE_PATH must reach
// playwright-core (scripts/test installs it under $HOME/.cache/ferry/node).
"use strict";
const { chromium } = require("playwright-core");
const assert = require("node:assert/strict");

const [base, token, screenshot] = process.argv.slice(2);
if (!base || !token || !screenshot) {
  console.error("usage: status-page.cjs BASE_URL ADMIN_TOKEN SCREENSHOT.png");
  process.exit(2);
}

async function api(path) {
  const r = await fetch(base + path);
  assert.ok(r.ok, `${path}: ${r.status}`);
  return r.json();
}

async function rows(page, testid, attrs) {
  return page.$$eval(`[data-testid="${testid}"]`, (trs, attrs) =>
    trs.map((tr) => ({
      cells: [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()),
      ...Object.fromEntries(attrs.map((a) => [a, tr.dataset[a]])),
    })), attrs);
}

// Waits for the page to refresh at least once more after now.
async function nextRefresh(page) {
  const now = Number(await page.getAttribute('[data-testid="refreshed"]', "data-count"));
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="refreshed"]').dataset.count) > n, now, { timeout: 15000 });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(base + "/");
    await page.waitForSelector('[data-testid="partition-row"]', { timeout: 15000 });
    await nextRefresh(page);

    // Partitions: the same set, checkpoints, lags and states as /sources
    // (the sources are idle by now, so both reads agree).
    const sources = await api("/sources");
    const shown = await rows(page, "partition-row", ["key"]);
    assert.deepEqual(shown.map((r) => r.key).sort(), sources.map((p) => `${p.source}/${p.partition}`).sort());
    for (const p of sources) {
      const r = shown.find((s) => s.key === `${p.source}/${p.partition}`);
      assert.equal(r.cells[2], String(p.checkpoint ?? "—"), `checkpoint of ${r.key}`);
      assert.equal(r.cells[3], String(p.lag ?? "—"), `lag of ${r.key}`);
      assert.equal(r.cells[4], p.state, `state of ${r.key}`);
    }

    // Plugins: name, version, digest and contract as /plugins says.
    const plugins = await api("/plugins");
    const pluginRows = await rows(page, "plugin-row", ["name", "digest"]);
    assert.equal(pluginRows.length, plugins.length);
    for (const p of plugins) {
      const r = pluginRows.find((x) => x.name === p.name);
      assert.ok(r, `plugin ${p.name} is shown`);
      assert.equal(r.digest, p.digest);
      assert.equal(r.cells[1], p.version);
      assert.equal(r.cells[3], p.contract ?? "—");
      for (const [outcome, n] of Object.entries(p.counters).filter(([, n]) => n > 0)) {
        assert.ok(r.cells[4].includes(`${outcome} ${n}`), `${p.name}: ${outcome} ${n} in "${r.cells[4]}"`);
      }
    }
    const history = await rows(page, "history-row", []);
    assert.ok(history.some((h) => h.cells[3] === "activated"), "the start activations are listed");

    // The sparkline has points once the page has sampled twice.
    await nextRefresh(page);
    const points = await page.getAttribute("#spark", "points");
    assert.ok(points.trim().split(" ").length >= 2, `sparkline points: "${points}"`);

    // Dead letters: as /dead-letters lists them.
    const letters = await api("/dead-letters");
    assert.equal(letters.length, 2, JSON.stringify(letters));
    let shownLetters = await rows(page, "dead-letter-row", ["id"]);
    assert.deepEqual(shownLetters.map((r) => Number(r.id)).sort(), letters.map((d) => d.id).sort());
    const retriable = letters.find((d) => d.event_type === "FailTimes");
    const hopeless = letters.find((d) => d.event_type !== "FailTimes");

    // Without the token, the page says why the purge was refused, and the
    // dead letter stays.
    await page.fill('[data-testid="token"]', "");
    await page.click(`[data-testid="dead-letter-row"][data-id="${hopeless.id}"] [data-testid="purge"]`);
    await page.waitForFunction(() => /401/.test(document.querySelector('[data-testid="message"]').textContent), null, { timeout: 10000 });
    assert.ok((await api("/dead-letters")).some((d) => d.id === hopeless.id));

    // With it, a retry applies the first dead letter...
    await page.fill('[data-testid="token"]', token);
    await page.click(`[data-testid="dead-letter-row"][data-id="${retriable.id}"] [data-testid="retry"]`);
    await page.waitForFunction((id) => document.querySelector('[data-testid="message"]').textContent.includes(`dead letter ${id}: applied`), retriable.id, { timeout: 15000 });
    await page.waitForFunction((id) => !document.querySelector(`[data-testid="dead-letter-row"][data-id="${id}"]`), retriable.id, { timeout: 15000 });
    assert.ok(!(await api("/dead-letters")).some((d) => d.id === retriable.id), "the retried dead letter is gone");
    await nextRefresh(page);
    await page.screenshot({ path: screenshot, fullPage: true });

    // ... and a purge deletes the other.
    await page.click(`[data-testid="dead-letter-row"][data-id="${hopeless.id}"] [data-testid="purge"]`);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="dead-letter-row"]').length === 0, null, { timeout: 15000 });
    assert.equal((await api("/dead-letters")).length, 0);
    assert.deepEqual(errors, [], "the page threw");
    console.log("status page: ok");
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
