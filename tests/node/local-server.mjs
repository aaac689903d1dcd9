// Helpers for running the official `stytch` npm SDK against the local development server.
// Mirrors tests/sdk/conftest.py:
//
// * `startServer()` starts `target/debug/local-api` (or `$LOCAL_API_BIN`) on a free port, reads
//   the development app's APP_ID / APP_SECRET from its stdout, waits until `GET /_dev/outbox`
//   answers, and returns a handle whose `stop()` ends the process.
// * `server.createApp(name)` creates a fresh app through the management API, with a default sms
//   and a default email login config, so that every test has its own users, codes and limits.
// * `server.client(app)` is a `stytch.Client` for that app, pointed at the server.
// * `server.newestCode(to)` reads the code of the newest outbox message sent to `to`.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as stytch from "stytch";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DEFAULT_BIN = join(REPO_ROOT, "target", "debug", "local-api");
const MANAGEMENT_KEY = "node-sdk-tests-management-key";
const START_TIMEOUT_MS = 30_000;
const HTTP_TIMEOUT_MS = 10_000;

const APP_ID_RE = /development app: APP_ID=(\S+)/;
const APP_SECRET_RE = /development app: APP_SECRET=(\S+)/;

function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  let timer;
  const timedOut = new Promise((r) => {
    timer = setTimeout(() => r("timeout"), 5_000);
  });
  const outcome = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}

export async function startServer() {
  const binary = process.env.LOCAL_API_BIN || DEFAULT_BIN;
  if (!existsSync(binary)) {
    throw new Error(
      `local-api binary not found at ${binary}: run \`cargo build --bin local-api\` or set LOCAL_API_BIN`,
    );
  }
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    PORT: String(port),
    PUBLIC_BASE_URL: baseUrl,
    MANAGEMENT_KEY,
    LOCAL_BACKEND: "memory",
    // A short cooldown keeps tests that send twice to one identifier fast.
    SEND_COOLDOWN_SECONDS: "2",
    RUST_LOG: process.env.RUST_LOG || "info",
  };
  delete env.JWT_SIGNING_KEY_PEM;

  const logPath = join(tmpdir(), `local-api-node-sdk-tests-${port}.log`);
  const log = createWriteStream(logPath);
  const child = spawn(binary, [], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  // Never leave the server behind, even if the test process dies abruptly.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const lines = [];
  let appId = null;
  let appSecret = null;
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    log.write(line + "\n");
    appId ??= line.match(APP_ID_RE)?.[1] ?? null;
    appSecret ??= line.match(APP_SECRET_RE)?.[1] ?? null;
  });
  child.stderr.on("data", (chunk) => log.write(chunk));
  let spawnError = null;
  child.on("error", (err) => {
    spawnError = err;
  });

  const stop = async () => {
    await stopProcess(child);
    process.removeListener("exit", killOnExit);
    log.end();
  };

  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let answering = false;
    for (;;) {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `local-api exited (${child.exitCode ?? child.signalCode}) before answering; ` +
            `stdout:\n${lines.join("\n")}\nfull log: ${logPath}`,
        );
      }
      if (!answering) {
        try {
          const res = await fetch(`${baseUrl}/_dev/outbox`, { signal: AbortSignal.timeout(1_000) });
          answering = res.status === 200;
          await res.arrayBuffer();
        } catch {
          answering = false;
        }
      }
      if (answering && appId && appSecret) break;
      if (Date.now() > deadline) {
        throw new Error(
          `local-api did not answer on ${baseUrl} with its development app within ` +
            `${START_TIMEOUT_MS / 1000} s; stdout so far:\n${lines.join("\n")}`,
        );
      }
      await sleep(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return new LocalServer({ baseUrl, devApp: { id: appId, secret: appSecret }, lines, logPath, stop });
}

export class LocalServer {
  constructor({ baseUrl, devApp, lines, logPath, stop }) {
    this.baseUrl = baseUrl; // no trailing slash (also the JWT issuer)
    this.devApp = devApp;
    this.lines = lines;
    this.logPath = logPath;
    this.stop = stop;
  }

  /** The value given to `new stytch.Client({ env })`. */
  get env() {
    return this.baseUrl + "/";
  }

  async management(method, path, body) {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: {
        Authorization: `Bearer ${MANAGEMENT_KEY}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? JSON.parse(text) : null };
  }

  /** A new app with a default sms and a default email login config. */
  async createApp(name) {
    const created = await this.management("POST", "/v2/session/apps", { name: name.slice(0, 100) });
    if (created.status !== 201) throw new Error(`create app: ${created.status} ${created.text}`);
    const app = { id: created.json.app.id, secret: created.json.secret };
    for (const channel of ["sms", "email"]) {
      const res = await this.management("POST", `/v2/session/apps/${app.id}/config/login/otp`, {
        config_type: "otp",
        channel_type: channel,
        is_default: true,
      });
      if (res.status !== 201) {
        throw new Error(`create ${channel} login config: ${res.status} ${res.text}`);
      }
    }
    return app;
  }

  /** A `stytch.Client` for `app`, exactly as an app backend would construct it. */
  client(app) {
    // The SDK warns on every construction with a non-standard `env`; that warning is expected
    // here, so it is filtered out (and only it).
    const warn = console.warn;
    console.warn = (...args) => {
      if (typeof args[0] === "string" && args[0].startsWith("[Stytch] Warning: Using a custom 'env'")) {
        return;
      }
      warn(...args);
    };
    try {
      return new stytch.Client({ project_id: app.id, secret: app.secret, env: this.env });
    } finally {
      console.warn = warn;
    }
  }

  async outbox() {
    const res = await fetch(`${this.baseUrl}/_dev/outbox`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET /_dev/outbox: ${res.status} ${text}`);
    return JSON.parse(text).messages;
  }

  /** The newest outbox message to a phone number or email. */
  async newestMessage(to) {
    const message = (await this.outbox()).find((m) => m.to === to); // newest first
    if (!message) throw new Error(`no outbox message to ${JSON.stringify(to)}`);
    return message;
  }

  /** The code of the newest outbox message to a phone number or email. */
  async newestCode(to) {
    const message = await this.newestMessage(to);
    if (typeof message.code !== "string" || !/^\d+$/.test(message.code)) {
      throw new Error(`outbox message without a code: ${JSON.stringify(message)}`);
    }
    return message.code;
  }
}
