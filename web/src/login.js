// The login page: a phone number or an email address, then the one-time code, then the signed-in
// view. All calls go through the official Stytch headless client, pointed at this service.
//
// Configuration comes from config.js, loaded before this file:
//   window.OTP_LOGIN_CONFIG = {
//     publicToken: "public-token-test-…",   // the app's public token
//     apiBase: "https://login.example.com", // where /sdk/v1/... is served, no trailing slash
//     devOutbox: false,                     // true on the local server: show its /_dev/outbox
//     sendCooldownSeconds: 30,              // optional: the server's wait between two codes
//   };

import { StytchHeadlessClient } from "@stytch/vanilla-js/headless";

import { describe, retryAfter } from "./messages.js";

const SESSION_DURATION_MINUTES = 60;
const DEFAULT_COOLDOWN_SECONDS = 30;
const OUTBOX_POLL_MS = 1000;

const $ = (id) => document.getElementById(id);

const ui = {
  message: $("message"),
  identify: $("identify"),
  tabs: { phone: $("tab-phone"), email: $("tab-email") },
  forms: { phone: $("form-phone"), email: $("form-email") },
  inputs: { phone: $("phone"), email: $("email") },
  verify: $("verify"),
  sentTo: $("sent-to"),
  codeForm: $("form-code"),
  code: $("code"),
  resend: $("resend"),
  cooldown: $("cooldown"),
  change: $("change"),
  signedIn: $("signed-in"),
  userId: $("user-id"),
  userPhone: $("user-phone"),
  userPhoneLabel: $("user-phone-label"),
  userEmail: $("user-email"),
  userEmailLabel: $("user-email-label"),
  sessionId: $("session-id"),
  sessionExpires: $("session-expires"),
  signOut: $("sign-out"),
  outbox: $("outbox"),
  outboxRows: $("outbox-rows"),
};

/** What the page is doing: which channel, and the code sent last. */
const state = {
  channel: "phone", // or "email"
  identifier: null, // the phone number or email the code went to
  methodId: null, // the phone_id / email_id to authenticate the code against
  methodFor: null, // the identifier that methodId belongs to
  cooldownUntil: 0, // ms since the epoch; resend is disabled until then
  cooldownTimer: null,
};

// ---------------------------------------------------------------------------------------------
// Messages

function say(kind, text) {
  ui.message.className = `message ${kind}`;
  ui.message.textContent = text;
}

function clearMessage() {
  ui.message.className = "message";
  ui.message.textContent = "";
}

function fail(err) {
  console.error(err);
  say("error", describe(err));
}

// ---------------------------------------------------------------------------------------------
// Screens

function show(screen) {
  for (const section of [ui.identify, ui.verify, ui.signedIn]) {
    section.hidden = section !== screen;
  }
}

function selectChannel(channel) {
  state.channel = channel;
  for (const name of ["phone", "email"]) {
    const selected = name === channel;
    ui.tabs[name].setAttribute("aria-selected", String(selected));
    ui.tabs[name].tabIndex = selected ? 0 : -1;
    ui.forms[name].hidden = !selected;
  }
}

function showIdentify() {
  stopCooldown();
  show(ui.identify);
  ui.inputs[state.channel].focus();
}

function showVerify() {
  ui.sentTo.textContent = state.identifier;
  ui.code.value = "";
  show(ui.verify);
  ui.code.focus();
}

function showSignedIn(session, user) {
  stopCooldown();
  ui.userId.textContent = user?.user_id ?? session.user_id ?? "";
  const phone = user?.phone_numbers?.[0]?.phone_number ?? "";
  const email = user?.emails?.[0]?.email ?? "";
  ui.userPhone.textContent = phone;
  ui.userPhone.hidden = ui.userPhoneLabel.hidden = !phone;
  ui.userEmail.textContent = email;
  ui.userEmail.hidden = ui.userEmailLabel.hidden = !email;
  ui.sessionId.textContent = session.session_id ?? "";
  ui.sessionExpires.dateTime = session.expires_at ?? "";
  ui.sessionExpires.textContent = session.expires_at ? new Date(session.expires_at).toLocaleString() : "";
  show(ui.signedIn);
}

// ---------------------------------------------------------------------------------------------
// Resend cooldown

function startCooldown(seconds) {
  state.cooldownUntil = Date.now() + seconds * 1000;
  tickCooldown();
  clearInterval(state.cooldownTimer);
  state.cooldownTimer = setInterval(tickCooldown, 250);
}

function stopCooldown() {
  clearInterval(state.cooldownTimer);
  state.cooldownTimer = null;
  state.cooldownUntil = 0;
  ui.resend.disabled = false;
  ui.cooldown.textContent = "";
}

function tickCooldown() {
  const left = Math.ceil((state.cooldownUntil - Date.now()) / 1000);
  if (left <= 0) {
    stopCooldown();
    return;
  }
  ui.resend.disabled = true;
  ui.cooldown.textContent = `You can send a new code in ${left} s.`;
}

// ---------------------------------------------------------------------------------------------
// The client and the flow

const config = window.OTP_LOGIN_CONFIG;
let stytch = null;

async function sendCode() {
  const identifier = state.identifier;
  const response =
    state.channel === "phone"
      ? await stytch.otps.sms.loginOrCreate(identifier)
      : await stytch.otps.email.loginOrCreate(identifier);
  state.methodId = response.method_id ?? response.phone_id ?? response.email_id;
  state.methodFor = identifier;
  startCooldown(Number(config.sendCooldownSeconds ?? DEFAULT_COOLDOWN_SECONDS));
  pollOutboxSoon();
}

function busy(form, isBusy) {
  for (const element of form.elements) element.disabled = isBusy;
  form.setAttribute("aria-busy", String(isBusy));
}

async function onIdentify(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const value = ui.inputs[state.channel].value.trim();
  if (!value) {
    say("error", state.channel === "phone" ? "Enter your phone number." : "Enter your email address.");
    ui.inputs[state.channel].focus();
    return;
  }
  clearMessage();
  busy(form, true);
  try {
    state.identifier = state.channel === "phone" ? value.replace(/[\s().-]/g, "") : value;
    await sendCode();
    showVerify();
    say("info", `Code sent to ${state.identifier}.`);
  } catch (err) {
    fail(err);
    // Inside the cooldown a code was sent already: go on to the code screen with the wait shown.
    if (err?.error_type === "too_many_requests" && state.methodFor === state.identifier) {
      const wait = retryAfter(err);
      if (wait !== undefined) startCooldown(wait);
      showVerify();
    }
  } finally {
    busy(form, false);
  }
}

async function onResend() {
  clearMessage();
  ui.resend.disabled = true;
  try {
    await sendCode();
    ui.code.value = "";
    ui.code.focus();
    say("info", `A new code was sent to ${state.identifier}.`);
  } catch (err) {
    fail(err);
    const wait = retryAfter(err);
    if (wait !== undefined) startCooldown(wait);
    else ui.resend.disabled = false;
  }
}

async function onCode(event) {
  event.preventDefault();
  const code = ui.code.value.trim();
  if (!/^\d{6}$/.test(code)) {
    say("error", "Enter the 6 digits of the code.");
    ui.code.focus();
    return;
  }
  clearMessage();
  busy(ui.codeForm, true);
  try {
    await stytch.otps.authenticate(code, state.methodId, {
      session_duration_minutes: SESSION_DURATION_MINUTES,
    });
    const session = stytch.session.getSync();
    if (session) showSignedIn(session, stytch.user.getSync());
    say("info", "You are logged in.");
  } catch (err) {
    fail(err);
    ui.code.select();
  } finally {
    busy(ui.codeForm, false);
    if (!ui.verify.hidden) ui.code.focus();
  }
}

async function onSignOut() {
  ui.signOut.disabled = true;
  try {
    await stytch.session.revoke();
    showIdentify();
    say("info", "You are logged out.");
  } catch (err) {
    fail(err);
  } finally {
    ui.signOut.disabled = false;
  }
}

function onTabKey(event) {
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  const next = state.channel === "phone" ? "email" : "phone";
  selectChannel(next);
  ui.tabs[next].focus();
}

// ---------------------------------------------------------------------------------------------
// The development outbox

let outboxUrl = null;
let outboxShown = "";
let outboxTimer = null;

async function pollOutbox() {
  clearTimeout(outboxTimer);
  try {
    const response = await fetch(outboxUrl, { cache: "no-store" });
    if (response.ok) renderOutbox((await response.json()).messages ?? []);
  } catch {
    // The server is restarting or gone: keep the last list and try again.
  }
  outboxTimer = setTimeout(pollOutbox, OUTBOX_POLL_MS);
}

function pollOutboxSoon() {
  if (outboxUrl) pollOutbox();
}

function renderOutbox(messages) {
  const key = JSON.stringify(messages.map((m) => [m.sent_at, m.to, m.code]));
  if (key === outboxShown) return;
  outboxShown = key;
  const rows = messages.slice(0, 10).map((message) => {
    const row = document.createElement("tr");
    const sent = document.createElement("td");
    sent.textContent = message.sent_at ? new Date(message.sent_at).toLocaleTimeString() : "";
    const to = document.createElement("td");
    to.textContent = `${message.to} (${message.channel})`;
    const code = document.createElement("td");
    code.className = "code";
    code.textContent = message.code;
    row.dataset.to = message.to;
    row.dataset.code = message.code;
    row.append(sent, to, code);
    return row;
  });
  ui.outboxRows.replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------
// Start

function start() {
  if (!config?.publicToken || !config?.apiBase) {
    say(
      "error",
      "This page is not configured: config.js must set window.OTP_LOGIN_CONFIG = {publicToken, apiBase}.",
    );
    return;
  }
  const apiBase = String(config.apiBase).replace(/\/+$/, "");
  // `endpoints` keeps the scheme and port as given (`customBaseUrl` would force https:443).
  stytch = new StytchHeadlessClient(config.publicToken, {
    endpoints: { testAPIURL: apiBase, liveAPIURL: apiBase },
  });

  ui.tabs.phone.addEventListener("click", () => selectChannel("phone"));
  ui.tabs.email.addEventListener("click", () => selectChannel("email"));
  ui.tabs.phone.addEventListener("keydown", onTabKey);
  ui.tabs.email.addEventListener("keydown", onTabKey);
  ui.forms.phone.addEventListener("submit", onIdentify);
  ui.forms.email.addEventListener("submit", onIdentify);
  ui.codeForm.addEventListener("submit", onCode);
  ui.resend.addEventListener("click", onResend);
  ui.change.addEventListener("click", () => {
    clearMessage();
    showIdentify();
  });
  ui.signOut.addEventListener("click", onSignOut);

  // A session from before (cookie and local storage): the SDK checks it with the server in the
  // background and calls onChange with the fresh one, or with null when the server refused it.
  stytch.session.onChange((session) => {
    if (session) {
      showSignedIn(session, stytch.user.getSync());
    } else if (!ui.signedIn.hidden) {
      showIdentify();
      say("info", "You are logged out.");
    }
  });
  stytch.user.onChange((user) => {
    const session = stytch.session.getSync();
    if (user && session) showSignedIn(session, user);
  });
  const session = stytch.session.getSync();
  if (session) showSignedIn(session, stytch.user.getSync());
  else showIdentify();

  if (config.devOutbox) {
    // Only the local server has an outbox, and it serves this page too: ask the page's origin.
    outboxUrl = typeof config.devOutbox === "string" ? config.devOutbox : "/_dev/outbox";
    ui.outbox.hidden = false;
    pollOutbox();
  }
}

start();
