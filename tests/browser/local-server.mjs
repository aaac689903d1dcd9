// Starts the local development server for the browser test, as tests/node/local-server.mjs does
// for the Node SDK: `target/debug/local-api` (or `$LOCAL_API_BIN`) on a free port, its development
// app read from stdout, ready once `GET /_dev/outbox` answers. `stop()` ends the process.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DEFAULT_BIN = join(REPO_ROOT, "target", "debug", "local-api");
export const MANAGEMENT_KEY = "browser-tests-management-key";
const START_TIMEOUT_MS = 30_000;

const APP_ID_RE = /development app: APP_ID=(\S+)/;
const PUBLIC_TOKEN_RE = /(?:PUBLIC_TOKEN=|public token: )(public-token-\S+)/;

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

/** `env` is added to the server's environment (e.g. `SEND_COOLDOWN_SECONDS`). */
export async function startServer(env = {}) {
  const binary = process.env.LOCAL_API_BIN || DEFAULT_BIN;
  if (!existsSync(binary)) {
    throw new Error(
      `local-api binary not found at ${binary}: run \`cargo build --bin local-api\` or set LOCAL_API_BIN`,
    );
  }
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const serverEnv = {
    ...process.env,
    PORT: String(port),
    PUBLIC_BASE_URL: baseUrl,
    MANAGEMENT_KEY,
    LOCAL_BACKEND: "memory",
    RUST_LOG: process.env.RUST_LOG || "info",
    ...env,
  };
  delete serverEnv.JWT_SIGNING_KEY_PEM;

  const logPath = join(tmpdir(), `local-api-browser-tests-${port}.log`);
  const log = createWriteStream(logPath);
  const child = spawn(binary, [], { cwd: REPO_ROOT, env: serverEnv, stdio: ["ignore", "pipe", "pipe"] });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const lines = [];
  let appId = null;
  let publicToken = null;
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    log.write(line + "\n");
    appId ??= line.match(APP_ID_RE)?.[1] ?? null;
    publicToken ??= line.match(PUBLIC_TOKEN_RE)?.[1] ?? null;
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
      if (answering && appId) break;
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

  return { baseUrl, appId, publicToken, lines, logPath, stop };
}

/** The outbox messages, newest first. */
export async function outbox(baseUrl) {
  const res = await fetch(`${baseUrl}/_dev/outbox`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /_dev/outbox: ${res.status} ${text}`);
  return JSON.parse(text).messages;
}
