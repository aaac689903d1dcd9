// The page's sentence for each error the Stytch SDK throws (web/src/messages.js), without a
// browser. The errors are shaped as the SDK's StytchAPIError: the server's body, of which the SDK
// keeps status_code, error_type, error_message, error_url, request_id and error_details.

import assert from "node:assert/strict";
import { test } from "node:test";

import { describe, duration, retryAfter } from "../../web/src/messages.js";

const apiError = (status_code, error_type, error_message, error_details) => ({
  name: "StytchAPIError",
  status_code,
  error_type,
  error_message,
  error_url: `https://stytch.com/docs/api/errors/${status_code}#${error_type}`,
  request_id: "request-id-1",
  error_details,
});

test("a wrong code says so, with the attempts left when the server gives them", () => {
  const message = "the code is wrong, or no code was sent to this method";
  assert.equal(
    describe(apiError(404, "otp_code_not_found", message, { attempts_remaining: 4 })),
    "That code is not right. 4 attempts left.",
  );
  assert.equal(
    describe(apiError(404, "otp_code_not_found", message, { attempts_remaining: 1 })),
    "That code is not right. 1 attempt left.",
  );
  assert.equal(
    describe(apiError(404, "otp_code_not_found", message, { attempts_remaining: 0 })),
    "That code is not right. No attempts left.",
  );
  assert.equal(
    describe(apiError(404, "otp_code_not_found", message)),
    "That code is not right. Check it and try again.",
  );
});

test("an expired or used code asks for a new one", () => {
  assert.equal(
    describe(apiError(401, "unable_to_auth_otp_code", "the code has expired")),
    "This code has expired or was already used. Send a new code.",
  );
});

test("the lock and too many requests give the wait, from error_details or from the message", () => {
  const lock = apiError(
    429,
    "user_lock_limit_reached",
    "the user is locked after too many wrong codes; retry in 3600 seconds",
  );
  assert.equal(retryAfter(lock), 3600);
  assert.equal(describe(lock), "Too many wrong codes: logging in is locked. Try again in 60 minutes.");
  const cooldown = apiError(429, "too_many_requests", "too many codes requested; retry in 1 seconds", {
    retry_after_seconds: 27,
  });
  assert.equal(retryAfter(cooldown), 27, "error_details first");
  assert.equal(describe(cooldown), "A code was sent a moment ago. You can send a new one in 27 seconds.");
  assert.equal(
    describe(apiError(429, "too_many_requests", "slow down")),
    "Too many codes were requested. Wait a little, then send a new code.",
  );
});

test("bad input, a foreign origin, an ended session, an unreachable server, anything else", () => {
  assert.match(describe(apiError(400, "invalid_phone_number", "x")), /international format, for example \+12025550100/);
  assert.equal(describe(apiError(400, "invalid_email", "x")), "That email address is not valid.");
  assert.match(
    describe(apiError(403, "origin_not_authorized", "x"), "https://login.example.com"),
    /\(https:\/\/login\.example\.com\) is not an authorized origin/,
  );
  assert.equal(describe(apiError(401, "unauthorized_credentials", "x")), "Your session has ended. Log in again.");
  const offline = Object.assign(new Error("Failed to fetch"), { name: "StytchAPIUnreachableError" });
  assert.match(describe(offline), /cannot be reached/);
  assert.equal(describe(apiError(400, "invalid_request", "the body is not JSON")), "the body is not JSON");
  assert.equal(describe(new TypeError("boom")), "Something went wrong. Try again.");
});

test("durations read naturally", () => {
  assert.equal(duration(1), "1 second");
  assert.equal(duration(29.2), "30 seconds");
  assert.equal(duration(60), "1 minute");
  assert.equal(duration(90), "1 minute 30 seconds");
  assert.equal(duration(-5), "0 seconds");
});
