// The login page in a real browser: the system Chromium, driven by playwright-core, against the
// local development server, which serves both the page (web/dist) and the API it calls.
// Run: cd tests/browser && npm ci && npm test
//   LOCAL_API_BIN overrides target/debug/local-api; CHROMIUM_PATH overrides /usr/bin/chromium.
// Screenshots of every step go to tests/browser/output/.

import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { outbox, startServer } from "./local-server.mjs";

const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "output");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 15_000;

let server;
let browser;

before(async () => {
  rmSync(OUTPUT, { recursive: true, force: true });
  mkdirSync(OUTPUT, { recursive: true });
  server = await startServer();
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh browser profile (no cookies, no local storage) on the login page at `base`. */
async function openPage(t, base = server.baseUrl) {
  const context = await browser.newContext({ viewport: { width: 720, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const problems = [];
  page.on("pageerror", (err) => problems.push(`uncaught: ${err.stack ?? err}`));
  page.on("console", (message) => {
    // The browser reports every non-2xx answer as a console error; the page's own wrong-code
    // and similar answers are expected. Anything from the SDK ("[Stytch] ...") is not.
    if (message.type() === "error" && message.text().startsWith("[Stytch]")) {
      problems.push(`console: ${message.text()}`);
    }
  });
  t.after(async () => {
    await context.close();
  });
  await page.goto(`${base}/`);
  return { page, problems };
}

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: join(OUTPUT, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}

const message = (page) => page.locator("#message");

/** Waits until the page's message says `pattern`; fails with what it says otherwise. */
async function waitForMessage(page, pattern) {
  try {
    await page.locator("#message", { hasText: pattern }).waitFor();
  } catch (err) {
    const said = await message(page).textContent();
    throw new Error(`message ${JSON.stringify(said)} does not match ${pattern}: ${err.message}`);
  }
}

/** The code the outbox panel shows for `to`, checked against the server's outbox itself. */
async function codeFromPanel(page, to) {
  const row = page.locator(`#outbox-rows tr[data-to="${to}"]`).first();
  await row.waitFor();
  const code = await row.getAttribute("data-code");
  assert.match(code, /^\d{6}$/);
  const newest = (await outbox(server.baseUrl)).find((m) => m.to === to);
  assert.equal(code, newest?.code, "the panel shows the newest code sent to this identifier");
  return code;
}

const otherCode = (code) => (code === "000000" ? "111111" : "000000");

test("phone: a wrong code is refused with the attempts left, the right one logs in, a reload keeps the session, log out", async (t) => {
  const { page, problems } = await openPage(t);
  const phone = "+12025550100";

  await page.locator("#identify").waitFor();
  await page.locator("#outbox").waitFor();
  await screenshot(page, "phone-form");

  await page.getByLabel("Phone number").fill(phone);
  await page.getByRole("button", { name: "Text me a code" }).click();
  await page.locator("#verify").waitFor();
  await waitForMessage(page, `Code sent to ${phone}`);
  assert.equal(await page.locator("#sent-to").textContent(), phone);
  // The resend button waits out the server's cooldown (30 s by default).
  assert.equal(await page.locator("#resend").isDisabled(), true);
  assert.match(await page.locator("#cooldown").textContent(), /You can send a new code in \d+ s/);
  const code = await codeFromPanel(page, phone);
  await screenshot(page, "phone-code-sent");

  const refused = page.waitForResponse((r) => r.url().endsWith("/sdk/v1/otps/authenticate"));
  await page.getByLabel("Code", { exact: true }).fill(otherCode(code));
  await page.getByRole("button", { name: "Log in" }).click();
  const wrong = await refused;
  const wrongBody = await wrong.json();
  assert.equal(wrong.status(), 404, JSON.stringify(wrongBody));
  assert.equal(wrongBody.error_type, "otp_code_not_found");
  // The SDK keeps only status_code, error_type, error_message, error_url, request_id and
  // error_details of an error: the page can show the attempts left only from error_details.
  const left = wrongBody.error_details?.attempts_remaining;
  await waitForMessage(
    page,
    left === undefined
      ? "That code is not right. Check it and try again."
      : `That code is not right. ${left} attempts left.`,
  );
  assert.equal(await page.locator("#verify").isVisible(), true, "still on the code screen");
  await screenshot(page, "phone-wrong-code");

  await page.getByLabel("Code", { exact: true }).fill(code);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#signed-in").waitFor();
  await waitForMessage(page, "You are logged in.");
  const userId = await page.locator("#user-id").textContent();
  const sessionId = await page.locator("#session-id").textContent();
  assert.match(userId, /^user-/);
  assert.match(sessionId, /^session-/);
  assert.equal(await page.locator("#user-phone").textContent(), phone);
  assert.match(await page.locator("#session-expires").getAttribute("datetime"), /^\d{4}-\d{2}-\d{2}T/);
  await screenshot(page, "phone-signed-in");

  // After a reload the SDK shows the session it kept, then checks it with the server.
  const refreshed = page.waitForResponse((r) => r.url().endsWith("/sdk/v1/sessions/authenticate"));
  await page.reload();
  assert.equal((await refreshed).status(), 200, "the kept session is still valid on the server");
  await page.locator("#signed-in").waitFor();
  assert.equal(await page.locator("#user-id").textContent(), userId);
  assert.equal(await page.locator("#session-id").textContent(), sessionId);
  assert.equal(await page.locator("#user-phone").textContent(), phone);
  await screenshot(page, "phone-reloaded");

  const revoked = page.waitForResponse((r) => r.url().endsWith("/sdk/v1/sessions/revoke"));
  await page.getByRole("button", { name: "Log out" }).click();
  assert.equal((await revoked).status(), 200);
  await page.locator("#identify").waitFor();
  await waitForMessage(page, "You are logged out.");
  assert.doesNotMatch(await page.evaluate(() => document.cookie), /stytch_session=/);
  await screenshot(page, "phone-signed-out");

  await page.reload();
  await page.locator("#identify").waitFor();
  assert.equal(await page.locator("#signed-in").isVisible(), false);

  assert.deepEqual(problems, []);
});

test("email: the email tab sends a code, the resend countdown runs, asking again too soon says the wait, the code logs in", async (t) => {
  const { page, problems } = await openPage(t);
  const email = "browser-test@example.com";

  await page.getByRole("tab", { name: "Email" }).click();
  assert.equal(await page.getByRole("tab", { name: "Email" }).getAttribute("aria-selected"), "true");
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Email me a code" }).click();
  await page.locator("#verify").waitFor();
  assert.equal(await page.locator("#sent-to").textContent(), email);
  const countdown = page.locator("#cooldown");
  const first = Number((await countdown.textContent()).match(/(\d+) s/)[1]);
  assert.ok(first > 0 && first <= 30, `countdown ${first}`);
  await page.waitForFunction(
    (start) => Number(document.getElementById("cooldown").textContent.match(/(\d+) s/)?.[1]) < start,
    first,
  );
  assert.equal(await page.locator("#resend").isDisabled(), true);
  const code = await codeFromPanel(page, email);
  await screenshot(page, "email-code-sent");

  // Asking again inside the cooldown: the server refuses with the wait, the page says it and
  // goes back to the code already sent.
  await page.getByRole("button", { name: "Use another phone number or email" }).click();
  await page.locator("#identify").waitFor();
  const again = page.waitForResponse((r) => r.url().endsWith("/sdk/v1/otps/email/login_or_create"));
  await page.getByRole("button", { name: "Email me a code" }).click();
  const refused = await again;
  const refusedBody = await refused.json();
  assert.equal(refused.status(), 429, JSON.stringify(refusedBody));
  assert.equal(refusedBody.error_type, "too_many_requests");
  await waitForMessage(page, /A code was sent a moment ago\. You can send a new one in \d+ seconds?\./);
  await page.locator("#verify").waitFor();
  assert.equal(await page.locator("#resend").isDisabled(), true);
  await screenshot(page, "email-too-many-requests");

  await page.getByLabel("Code", { exact: true }).fill(code);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#signed-in").waitFor();
  assert.equal(await page.locator("#user-email").textContent(), email);
  await screenshot(page, "email-signed-in");

  await page.getByRole("button", { name: "Log out" }).click();
  await page.locator("#identify").waitFor();

  assert.deepEqual(problems, []);
});

test("on localhost the page calls the API on 127.0.0.1 across origins (CORS) and logs in", async (t) => {
  const localhost = server.baseUrl.replace("127.0.0.1", "localhost");
  const { page, problems } = await openPage(t, localhost);
  const phone = "+12025550101";
  const config = await page.evaluate(() => window.OTP_LOGIN_CONFIG);
  assert.equal(config.apiBase, server.baseUrl, "the API is on the server's public base URL");

  await page.getByLabel("Phone number").fill(phone);
  await page.getByRole("button", { name: "Text me a code" }).click();
  await page.locator("#verify").waitFor();
  const code = await codeFromPanel(page, phone);
  await page.getByLabel("Code", { exact: true }).fill(code);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#signed-in").waitFor();
  assert.equal(await page.locator("#user-phone").textContent(), phone);
  await screenshot(page, "localhost-signed-in");

  await page.reload();
  await page.locator("#signed-in").waitFor();
  await page.getByRole("button", { name: "Log out" }).click();
  await page.locator("#identify").waitFor();

  assert.deepEqual(problems, []);
});
