// The browser tests' harness: a real `slipway lab` (a server and agents on loopback addresses of
// this machine, an ephemeral port, a temporary directory), releases of the sample service, and
// Debian's chromium driven by playwright-core. Everything a test starts is stopped by stop().
//
// Environment: SLIPWAY_BIN (the slipway executable), SLIPWAY_SAMPLE_SERVICE (the sample service
// shipped in releases), SLIPWAY_CONSOLE_DIR (the built console; the server is given it with
// --console-dir), CHROMIUM (default /usr/bin/chromium), SLIPWAY_SCREENSHOTS (a directory: save a
// screenshot of each page there), SLIPWAY_KEEP (keep the temporary directory).
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const SLIPWAY_BIN = process.env.SLIPWAY_BIN || path.resolve("../build/slipway");
export const SAMPLE = process.env.SLIPWAY_SAMPLE_SERVICE || path.resolve("../build/slipway-sample-service");
export const CONSOLE_DIR = process.env.SLIPWAY_CONSOLE_DIR || path.resolve("../build/console");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOTS = process.env.SLIPWAY_SCREENSHOTS ? path.resolve(process.env.SLIPWAY_SCREENSHOTS) : "";

for (const [what, p] of [
  ["SLIPWAY_BIN", SLIPWAY_BIN],
  ["SLIPWAY_SAMPLE_SERVICE", SAMPLE],
  ["CHROMIUM", CHROMIUM],
  ["SLIPWAY_CONSOLE_DIR (index.html)", path.join(CONSOLE_DIR, "index.html")],
]) {
  if (!fs.existsSync(p))
    throw new Error(`${what}: ${p} does not exist (build with ./run.sh build; chromium: apt-get install chromium)`);
}

// Whether this slipway's server takes --console-dir (else it serves the console next to itself).
let consoleFlagKnown;
function consoleFlag() {
  if (consoleFlagKnown === undefined) {
    consoleFlagKnown = execFileSync(SLIPWAY_BIN, ["server", "--help"], { encoding: "utf8" }).includes("--console-dir");
  }
  return consoleFlagKnown;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `pred` until it returns a truthy value (returned) or `timeoutMs` passes (throws `what`).
export async function waitFor(what, pred, timeoutMs = 60_000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await sleep(everyMs);
  }
}

// Loopback addresses no other test process uses at the same time: 127.N.M.10.. from the pid and
// a random part (the C++ end-to-end tests use 127.64.0.0/10; these stay in 127.192.0.0/10).
function firstAddress() {
  const a = 192 + (process.pid % 64);
  const b = Math.floor(Math.random() * 256);
  const c = 1 + Math.floor(Math.random() * 15) * 16;
  return `127.${a}.${b}.${c}`;
}

// The pids of this user's processes whose working directory or executable lies under `dir`
// (apps the agents started).
function processesUnder(dir) {
  const out = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    for (const link of ["cwd", "exe"]) {
      try {
        if (fs.readlinkSync(`/proc/${p}/${link}`).startsWith(dir + "/")) {
          out.push(Number(p));
          break;
        }
      } catch {
        /* gone, or not ours */
      }
    }
  }
  return out;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

// Whatever is still running when this process exits (a test runner killed, a crash) is killed too.
const started = new Set();
const labDirs = new Set();
process.on("exit", () => {
  for (const p of started) p.kill("SIGKILL");
  for (const dir of labDirs) {
    for (const pid of processesUnder(dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
});

export class Lab {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "slipway-console-"));
    labDirs.add(this.dir);
    this.procs = [];
    this.pageErrors = []; // uncaught errors of the console's script
    this.url = "";
    this.adminToken = "";
    this.output = "";
    this.browser = null;
  }

  // A server on an ephemeral port of 127.0.0.1 serving the built console (--console-dir), and
  // `nodes` agents (env staging, role api, zones a and b round-robin, names node-1..., node-1
  // tagged canary=yes), each on its own loopback address.
  async start(nodes = 3) {
    const data = path.join(this.dir, "server");
    const serverArgs = ["server", "--data", data, "--listen", "127.0.0.1:0"];
    if (consoleFlag()) serverArgs.push("--console-dir", CONSOLE_DIR);
    this.spawn("server", serverArgs);
    const url = await waitFor(
      "the server to listen",
      () => {
        const dead = this.procs.find((p) => p.exitCode !== null);
        if (dead) throw new Error(`${dead.what} exited with ${dead.exitCode}:\n${this.output}`);
        try {
          return fs.readFileSync(path.join(data, "server.url"), "utf8").trim();
        } catch {
          return "";
        }
      },
      60_000,
    );
    this.url = url;
    this.adminToken = fs.readFileSync(path.join(data, "admin.token"), "utf8").trim();
    const join = fs.readFileSync(path.join(data, "join.token"), "utf8").trim();
    const [a, b, c, d] = firstAddress().split(".").map(Number);
    for (let i = 1; i <= nodes; i++) {
      const root = path.join(this.dir, "nodes", `node-${i}`);
      fs.mkdirSync(root, { recursive: true });
      this.spawn(`agent node-${i}`, [
        "agent",
        "--server",
        url,
        "--token",
        join,
        "--name",
        `node-${i}`,
        "--env",
        "staging",
        "--roles",
        "api",
        "--zone",
        i % 2 === 1 ? "a" : "b",
        "--root",
        root,
        "--address",
        `${a}.${b}.${c}.${d + i - 1}`,
        ...(i === 1 ? ["--tag", "canary=yes"] : []),
      ]);
    }
    await waitFor(
      `${nodes} agents to be alive`,
      async () => {
        const dead = this.procs.find((p) => p.exitCode !== null);
        if (dead) throw new Error(`${dead.what} exited with ${dead.exitCode}:\n${this.output}`);
        const r = await this.apiOk("GET", "/api/v1/nodes?state=alive");
        return r.nodes.length === nodes;
      },
      60_000,
    );
    return this;
  }

  spawn(what, args) {
    const p = spawn(SLIPWAY_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    p.what = what;
    const log = (d) => {
      this.output += String(d)
        .split("\n")
        .filter(Boolean)
        .map((l) => `[${what}] ${l}\n`)
        .join("");
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    p.stdout.on("data", log);
    p.stderr.on("data", log);
    this.procs.push(p);
    started.add(p);
    p.once("exit", () => started.delete(p));
    return p;
  }

  // The HTTP API with a token (default: the admin token).
  async api(method, p, body, token = this.adminToken) {
    const headers = { Authorization: `Bearer ${token}` };
    let data = body;
    if (body !== undefined && !(body instanceof Uint8Array)) {
      headers["Content-Type"] = "application/json";
      data = JSON.stringify(body);
    }
    const res = await fetch(this.url + p, { method, headers, body: data });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text };
  }

  async apiOk(method, p, body) {
    const r = await this.api(method, p, body);
    if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
    return r.json;
  }

  // A release of the sample service (as src/lab/sample_release.cpp builds them), pushed as web VERSION.
  async push(version, { healthy = true, app = "web", message = "" } = {}) {
    const root = path.join(this.dir, "releases", `${app}-${version}`);
    fs.mkdirSync(path.join(root, "bin"), { recursive: true });
    fs.mkdirSync(path.join(root, "config"), { recursive: true });
    fs.copyFileSync(SAMPLE, path.join(root, "bin", "server"));
    fs.chmodSync(path.join(root, "bin", "server"), 0o755);
    const timeout = healthy ? 10_000 : 3_000;
    fs.writeFileSync(
      path.join(root, "slipway.yaml"),
      `start: ./bin/server --address \${SLIPWAY_ADDRESS} --port \${SLIPWAY_PORT} --version \${SLIPWAY_VERSION} --app \${SLIPWAY_APP}${healthy ? "" : " --unhealthy"}\n` +
        "hooks:\n  after_install: test -x ./bin/server\n" +
        `health:\n  http: http://\${SLIPWAY_ADDRESS}:\${SLIPWAY_PORT}/health\n  timeout: ${timeout}ms\n  healthy_for: 300ms\n  interval: 100ms\n`,
    );
    fs.writeFileSync(path.join(root, "VERSION"), `${version}\n`);
    fs.writeFileSync(path.join(root, "CHANGELOG"), `${version}: ${message || "release " + version}\n`);
    fs.writeFileSync(path.join(root, "config", "app.conf"), `app = ${app}\nversion = ${version}\n`);
    if (message) fs.writeFileSync(path.join(root, "config", "notes.txt"), `${message}\n`);
    const tarball = path.join(this.dir, "releases", `${app}-${version}.tar.gz`);
    execFileSync("tar", ["czf", tarball, "-C", root, ...fs.readdirSync(root)]);
    const r = await this.api("POST", `/api/v1/artifacts/${app}/${version}`, new Uint8Array(fs.readFileSync(tarball)));
    if (r.status !== 201 && r.status !== 200) throw new Error(`push ${app} ${version}: ${r.status} ${r.text}`);
  }

  // Deploys through the API and waits until it is over; returns the deploy.
  async deploy(body, path_ = "/api/v1/deploys") {
    const d = await this.apiOk("POST", path_, { env: "staging", ...body });
    return waitFor(
      `deploy #${d.id} to finish`,
      async () => {
        const x = await this.apiOk("GET", `/api/v1/deploys/${d.id}`);
        return x.state !== "running" && x.state !== "paused" ? x : null;
      },
      120_000,
    );
  }

  // A token with `role` (viewer, deployer); returns its secret.
  async token(role, name) {
    const r = await this.apiOk("POST", "/api/v1/tokens", { role, name });
    return r.token;
  }

  // A browser page, signed in with `token` (unless null).
  async page(token = this.adminToken) {
    if (!this.browser) {
      const args = process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [];
      this.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
    }
    const context = await this.browser.newContext({ viewport: { width: 1360, height: 860 } });
    const page = await context.newPage();
    page.on("pageerror", (e) => this.pageErrors.push(e.message));
    await page.goto(this.url + "/");
    if (token !== null) {
      await page.fill("input[name=token]", token);
      await page.click("button[type=submit]");
      await page.waitForSelector("header.top");
    }
    return page;
  }

  async screenshot(page, name) {
    if (!SCREENSHOTS) return;
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  // Stops the browser, the lab (SIGTERM: it stops its server and agents) and any app left behind.
  async stop() {
    if (this.browser) await this.browser.close().catch(() => {});
    // The agents first (they stop their apps), then the server.
    const order = [...this.procs.filter((p) => p.what !== "server"), ...this.procs.filter((p) => p.what === "server")];
    for (const p of order) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
    }
    const left = processesUnder(this.dir);
    for (const pid of left) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        /* gone */
      }
    }
    await waitFor("the apps to stop", () => left.every((p) => !alive(p)), 10_000).catch(() =>
      left.forEach((p) => {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          /* gone */
        }
      }),
    );
    if (!process.env.SLIPWAY_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
    labDirs.delete(this.dir);
  }
}
