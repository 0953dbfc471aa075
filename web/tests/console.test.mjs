// The console in a real browser (Debian's chromium, driven by playwright-core) against a real
// Slipway server and agents: each test starts its own (harness.mjs) and stops everything after.
// Run: SLIPWAY_BIN=build/slipway SLIPWAY_CONSOLE_DIR=build/console
//      SLIPWAY_SAMPLE_SERVICE=build/slipway-sample-service node --test web/tests/
// (ctest runs it as console_browser_test). SLIPWAY_SCREENSHOTS=DIR saves each page as DIR/*.png.
// Nothing here depends on timing: every wait is for a state the page shows.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { Lab, waitFor } from "./harness.mjs";

let lab;
beforeEach(async () => {
  lab = new Lab();
});
afterEach(async () => {
  if (lab) await lab.stop();
  lab = null;
});

// A test whose failure also shows what the server and agents said last.
function scenario(name, body) {
  test(name, async () => {
    try {
      await body();
      assert.deepEqual(lab.pageErrors, [], "uncaught errors in the page");
    } catch (e) {
      // The runner prints the error's stack: what they said goes there.
      const said = `\n--- server and agents (last lines) ---\n${lab.output.slice(-6000)}`;
      if (e && typeof e === "object") e.stack = `${e.stack ?? e.message}${said}`;
      throw e;
    }
  });
}

// Waits until the deploy page shows a finished deploy; returns its state.
async function finishedState(page) {
  const el = await page.waitForSelector(
    "section.deploy-page[data-state=succeeded], section.deploy-page[data-state=failed], section.deploy-page[data-state=rolled_back]",
    { timeout: 120_000 },
  );
  return el.getAttribute("data-state");
}

async function nodeStatuses(page) {
  return page.$$eval("tr.node-row", (rows) => Object.fromEntries(rows.map((r) => [r.dataset.node, r.dataset.status])));
}

scenario("sign in: a wrong token is refused with the server's message, the admin token shows the fleet", async () => {
  await lab.start(3);
  await lab.push("1.0.0");
  await lab.deploy({ app: "web", version: "1.0.0" });

  const page = await lab.page(null);
  await lab.screenshot(page, "sign-in");
  await page.fill("input[name=token]", "slwt_" + "0".repeat(64));
  await page.click("button[type=submit]");
  const error = await page.waitForSelector(".error");
  assert.match(await error.textContent(), /unauthenticated/);
  assert.equal(await page.$("header.top"), null);

  await page.fill("input[name=token]", lab.adminToken);
  await page.click("button[type=submit]");
  await page.waitForSelector("header.top");
  assert.match(await page.textContent("header.top .who"), /admin/);
  // The overview: staging x web -> 1.0.0 on 3 healthy nodes.
  const cell = await page.waitForSelector("td.cell[data-env=staging][data-app=web]");
  await waitFor(
    "the matrix",
    async () => /1\.0\.0/.test(await cell.textContent()) && /3\/3 healthy/.test(await cell.textContent()),
  );
  await lab.screenshot(page, "overview");

  // A reload keeps the session (the token is in sessionStorage); signing out forgets it.
  await page.reload();
  await page.waitForSelector("header.top");
  await page.goto(lab.url + "/#/nodes");
  await page.waitForSelector("tr.node-row[data-node=node-3]");
  assert.equal((await page.$$("tr.node-row")).length, 3);
  await page.selectOption("select[name=zone]", "a");
  await waitFor("the zone filter", async () => (await page.$$("tr.node-row")).length === 2);
  await page.selectOption("select[name=zone]", "");
  await waitFor("no filter", async () => (await page.$$("tr.node-row")).length === 3);
  await page.fill("input[name=tag]", "canary");
  await page.press("input[name=tag]", "Enter");
  await waitFor("the tag filter", async () => (await page.$$("tr.node-row")).length === 1);
  await page.fill("input[name=tag]", "");
  await page.press("input[name=tag]", "Enter");
  await waitFor("no filter", async () => (await page.$$("tr.node-row")).length === 3);
  await lab.screenshot(page, "nodes");
  await page.click("a[href='#/nodes/node-1']");
  await page.waitForSelector("tr.deploy-row");
  assert.match(await page.textContent("main"), /last heartbeat/);
  await lab.screenshot(page, "node");

  await page.click("text=Sign out");
  await page.waitForSelector("input[name=token]");
  await page.reload();
  await page.waitForSelector("input[name=token]");
});

scenario("deploy by button: the preview counts the nodes, the live page shows them go healthy", async () => {
  await lab.start(3);
  await lab.push("1.0.0");
  await lab.push("1.1.0", { message: "the new greeting" });
  await lab.deploy({ app: "web", version: "1.0.0" });
  await lab.apiOk("PATCH", "/api/v1/envs/staging/apps/web/config", { set: { GREETING: "hello" } });

  const page = await lab.page();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  await page.goto(lab.url + "/#/deploy?app=web&env=staging");
  await page.waitForSelector("select[name=version] option[value='1.1.0']", { state: "attached" });
  await page.selectOption("select[name=version]", "1.1.0");
  await page.fill("input[name=batch]", "1");
  await page.click("button[type=submit]");
  const preview = await page.waitForSelector(".preview");
  assert.equal(await preview.getAttribute("data-count"), "3");
  assert.match(await preview.textContent(), /3 nodes/);
  await lab.screenshot(page, "deploy-form");
  await page.click(".preview button.primary");

  await page.waitForURL(/#\/deploys\/\d+/);
  assert.equal(await finishedState(page), "succeeded");
  await waitFor("every node healthy", async () =>
    Object.values(await nodeStatuses(page)).every((s) => s === "healthy"),
  );
  assert.deepEqual(Object.keys(await nodeStatuses(page)).sort(), ["node-1", "node-2", "node-3"]);
  // Pushed over the watch WebSocket, not polled.
  assert.ok(
    sockets.some((u) => /\/api\/v1\/deploys\/\d+\/watch$/.test(u)),
    `websockets: ${sockets.join(", ")}`,
  );
  // Three batches of one; a node's steps and their output on click.
  assert.equal((await page.$$(".batch")).length, 3);
  await page.click("tr.node-row[data-node=node-1]");
  await page.waitForSelector("table.steps tr");
  // What changed since 1.0.0: the release's files, and the config (none set).
  await page.waitForSelector(".diff li.added");
  assert.match(await page.textContent(".changes"), /config\/notes\.txt/);
  assert.match(await page.textContent(".changes ul.diff"), /GREETING\s*added/);
  await lab.screenshot(page, "deploy-live");

  const status = await lab.apiOk("GET", "/api/v1/status?env=staging");
  for (const n of status.nodes) assert.equal(n.apps.web.version, "1.1.0", n.name);
});

scenario("a canary deploy paused after its canary: promote by button, and abort by button rolls back", async () => {
  await lab.start(3);
  await lab.push("1.0.0");
  await lab.push("1.1.0");
  await lab.push("1.2.0");
  await lab.deploy({ app: "web", version: "1.0.0" });

  const page = await lab.page();
  const startCanary = async (version) => {
    await page.goto(lab.url + `/#/deploy?app=web&env=staging&version=${version}`);
    await page.waitForSelector(`select[name=version] option[value='${version}']`, { state: "attached" });
    await page.selectOption("select[name=version]", version);
    await page.selectOption("select[name=strategy]", "canary");
    await page.check("input[name=pause]");
    await page.click("button[type=submit]");
    await page.waitForSelector(".preview[data-count='3']");
    await page.click(".preview button.primary");
    await page.waitForURL(/#\/deploys\/\d+/);
    // Held after the canary (node-1, the first by name), until promoted.
    await page.waitForSelector("section.deploy-page[data-state=paused]", { timeout: 120_000 });
    await page.waitForSelector("tr.node-row[data-node=node-1][data-status=healthy]");
  };

  await startCanary("1.1.0");
  await lab.screenshot(page, "deploy-paused");
  // Every action asks first; cancelling does nothing.
  await page.click(".controls button:text-is('Abort')");
  await page.click(".confirm button:text-is('Cancel')");
  await page.click(".controls button:text-is('Promote')");
  await page.click(".confirm button:text-is('Yes, promote')");
  assert.equal(await finishedState(page), "succeeded");
  for (const n of (await lab.apiOk("GET", "/api/v1/status?env=staging")).nodes)
    assert.equal(n.apps.web.version, "1.1.0");

  await startCanary("1.2.0");
  await page.click(".controls button:text-is('Abort')");
  await page.click(".confirm button:text-is('Yes, abort')");
  assert.equal(await finishedState(page), "rolled_back");
  for (const n of (await lab.apiOk("GET", "/api/v1/status?env=staging")).nodes)
    assert.equal(n.apps.web.version, "1.1.0");
  assert.match(await page.textContent("table.log"), /aborted/);
});

scenario("a failing deploy stops and rolls the failed node back, as the page shows", async () => {
  await lab.start(3);
  await lab.push("1.0.0");
  await lab.push("1.2.0", { healthy: false });
  await lab.deploy({ app: "web", version: "1.0.0" });

  const page = await lab.page();
  await page.goto(lab.url + "/#/deploy?app=web&env=staging&version=1.2.0");
  await page.waitForSelector("select[name=version] option[value='1.2.0']", { state: "attached" });
  await page.selectOption("select[name=version]", "1.2.0");
  await page.fill("input[name=batch]", "1");
  await page.click("button[type=submit]");
  await page.waitForSelector(".preview[data-count='3']");
  await page.click(".preview button.primary");
  await page.waitForURL(/#\/deploys\/\d+/);
  const state = await finishedState(page);
  assert.ok(state === "failed" || state === "rolled_back", state);
  const statuses = await nodeStatuses(page);
  assert.ok(
    Object.values(statuses).some((s) => s === "reverted" || s === "failed"),
    JSON.stringify(statuses),
  );
  assert.notEqual((await page.textContent("dd.reason")).trim(), "");
  // The failed node's health-check step, with its output.
  const failed = Object.entries(statuses).find(([, s]) => s === "reverted" || s === "failed")[0];
  await page.click(`tr.node-row[data-node=${failed}]`);
  await page.waitForSelector("table.steps tr.step-failed");
  await lab.screenshot(page, "deploy-failed");

  // Every node serves 1.0.0 again.
  const status = await lab.apiOk("GET", "/api/v1/status?env=staging");
  for (const n of status.nodes) assert.equal(n.apps.web.version, "1.0.0", n.name);

  // The history lists it as failed.
  await page.goto(lab.url + "/#/history");
  await page.waitForSelector(`tr.deploy-row[data-state=${state}]`);
  await lab.screenshot(page, "history");

  // The delivery metrics count it: two deploys, one failed.
  await page.goto(lab.url + "/#/metrics");
  await page.waitForSelector("svg.chart");
  assert.equal((await page.$$(".metric")).length, 4);
  assert.match(await page.textContent(".metric:nth-child(3) .metric-value"), /%/);
  await lab.screenshot(page, "metrics");
});

scenario("roll back by button: back to the previous release on every node", async () => {
  await lab.start(3);
  await lab.push("1.0.0");
  await lab.push("1.1.0");
  await lab.deploy({ app: "web", version: "1.0.0" });
  await lab.deploy({ app: "web", version: "1.1.0" });

  const page = await lab.page();
  // From the overview's matrix cell.
  await page.click("td.cell[data-env=staging][data-app=web] >> text=roll back");
  await page.waitForSelector("h1:has-text('Roll back')");
  await page.waitForSelector("select[name=env] option[value=staging]", { state: "attached" });
  await page.click("button[type=submit]");
  const preview = await page.waitForSelector(".preview");
  assert.equal(await preview.getAttribute("data-count"), "3");
  assert.match(await preview.textContent(), /1\.0\.0/);
  await lab.screenshot(page, "rollback-form");
  await page.click(".preview button.danger");
  await page.waitForURL(/#\/deploys\/\d+/);
  assert.equal(await finishedState(page), "succeeded");
  assert.match(await page.textContent(".page-head h1"), /rollback/);
  const status = await lab.apiOk("GET", "/api/v1/status?env=staging");
  for (const n of status.nodes) assert.equal(n.apps.web.version, "1.0.0", n.name);

  await page.goto(lab.url + "/#/history");
  await waitFor("three deploys in the history", async () => (await page.$$("tr.deploy-row")).length === 3);
  assert.equal((await page.$$("tr.deploy-row[data-state=succeeded]")).length, 3);
});

scenario("a viewer sees no action buttons, and the server refuses the action anyway", async () => {
  await lab.start(2);
  await lab.push("1.0.0");
  await lab.push("1.1.0");
  const done = await lab.deploy({ app: "web", version: "1.0.0" });
  const viewer = await lab.token("viewer", "console-viewer");

  const page = await lab.page(viewer);
  assert.match(await page.textContent("header.top .who"), /viewer/);
  const cell = await page.waitForSelector("td.cell[data-env=staging][data-app=web]");
  assert.match(await cell.textContent(), /1\.0\.0/);
  assert.equal(await page.$(".cell-actions"), null);

  await page.goto(lab.url + `/#/deploys/${done.id}`);
  await finishedState(page);
  assert.equal(await page.$(".controls"), null);
  assert.equal(await page.$("text=Roll back web"), null);

  await page.goto(lab.url + "/#/deploy?app=web&env=staging");
  await page.waitForSelector("p.notice[role=note]");
  assert.equal(await page.$("form.deploy-form button[type=submit]"), null);
  await lab.screenshot(page, "viewer");

  // The page hides the buttons; the server is what refuses: the same call from the page, with
  // the viewer's token, is 403.
  const refused = await page.evaluate(async () => {
    const res = await fetch("/api/v1/deploys", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${sessionStorage.getItem("slipway.token")}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ app: "web", env: "staging", version: "1.1.0" }),
    });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, "forbidden");
  const rollback = await lab.api("POST", "/api/v1/rollbacks", { app: "web", env: "staging" }, viewer);
  assert.equal(rollback.status, 403);
  const abort = await lab.api("POST", `/api/v1/deploys/${done.id}/abort`, {}, viewer);
  assert.equal(abort.status, 403);
  const status = await lab.apiOk("GET", "/api/v1/status?env=staging");
  for (const n of status.nodes) assert.equal(n.apps.web.version, "1.0.0", n.name);
});
