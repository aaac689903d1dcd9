// The official `stytch` npm SDK, unchanged, against the local development server.
// Run: cd tests/node && npm ci && npm test   (LOCAL_API_BIN overrides target/debug/local-api)

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import * as stytch from "stytch";

import { startServer } from "./local-server.mjs";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

/** A fresh app and a client for it: every test has its own users, codes and limits. */
async function freshClient(t) {
  const app = await server.createApp(`node sdk ${t.name} ${randomUUID().slice(0, 8)}`);
  return { app, client: server.client(app) };
}

/** An `assert.rejects` matcher for a StytchError with this error_type and HTTP status. */
function stytchError(errorType, statusCode) {
  return (err) => {
    assert.ok(err instanceof stytch.StytchError, `expected a StytchError, got ${err?.stack ?? err}`);
    assert.equal(err.error_type, errorType, err.message);
    assert.equal(err.status_code, statusCode, err.message);
    assert.match(err.request_id, /^request-id-/, err.message);
    assert.equal(typeof err.error_message, "string", err.message);
    assert.ok(err.error_message.length > 0, err.message);
    return true;
  };
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

test("sms: login_or_create, authenticate, sessions by token / JWT / local JWT, list, revoke", async (t) => {
  const { client } = await freshClient(t);
  const phone = "+12025550142";

  const sent = await client.otps.sms.loginOrCreate({ phone_number: phone });
  assert.equal(sent.status_code, 200);
  assert.match(sent.request_id, /^request-id-/);
  assert.match(sent.user_id, /^user-/);
  assert.match(sent.phone_id, /^phone-number-/);
  assert.equal(sent.user_created, true);

  const message = await server.newestMessage(phone);
  assert.equal(message.channel, "sms");
  assert.match(message.code, /^\d{6}$/);
  assert.ok(message.text.includes(message.code), `the SMS text carries the code: ${message.text}`);

  const auth = await client.otps.authenticate({
    method_id: sent.phone_id,
    code: message.code,
    session_duration_minutes: 60,
  });
  assert.equal(auth.status_code, 200);
  assert.equal(auth.user_id, sent.user_id);
  assert.equal(auth.method_id, sent.phone_id);
  assert.equal(auth.reset_sessions, false);
  assert.match(auth.session_token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(auth.session_jwt.split(".").length, 3);
  assert.match(auth.session.session_id, /^session-/);
  assert.equal(auth.session.user_id, sent.user_id);
  assert.match(auth.session.expires_at, RFC3339);
  const minutesLeft = (Date.parse(auth.session.expires_at) - Date.now()) / 60_000;
  assert.ok(minutesLeft > 58 && minutesLeft <= 61, `session lasts 60 minutes, got ${minutesLeft}`);
  assert.equal(auth.session.authentication_factors.length, 1);
  const factor = auth.session.authentication_factors[0];
  assert.equal(factor.type, "otp");
  assert.equal(factor.delivery_method, "sms");
  assert.deepEqual(factor.phone_number_factor, { phone_id: sent.phone_id, phone_number: phone });
  assert.equal(auth.user.user_id, sent.user_id);
  assert.equal(auth.user.status, "active");
  assert.deepEqual(
    auth.user.phone_numbers.map(({ phone_id, phone_number, verified }) => ({ phone_id, phone_number, verified })),
    [{ phone_id: sent.phone_id, phone_number: phone, verified: true }],
  );
  const sessionId = auth.session.session_id;

  // By token: the same session, the presented token echoed.
  const byToken = await client.sessions.authenticate({ session_token: auth.session_token });
  assert.equal(byToken.status_code, 200);
  assert.equal(byToken.session.session_id, sessionId);
  assert.equal(byToken.session_token, auth.session_token);
  assert.equal(byToken.user.user_id, sent.user_id);
  assert.equal(byToken.session_jwt.split(".").length, 3);

  // Local JWT verification: JWKS fetched unauthenticated from /v1/sessions/jwks/<app_id>,
  // issuer = the base URL, audience = the app id.
  const local = await client.sessions.authenticateJwtLocal({ session_jwt: auth.session_jwt });
  assert.equal(local.session_id, sessionId);
  assert.equal(local.user_id, sent.user_id);
  assert.equal(local.expires_at, new Date(auth.session.expires_at).toISOString());
  assert.equal(local.started_at, auth.session.started_at);
  assert.deepEqual(local.roles, auth.session.roles);
  assert.equal(local.authentication_factors.length, 1);
  assert.equal(local.authentication_factors[0].delivery_method, "sms");
  assert.deepEqual(local.custom_claims, {});

  // authenticateJwt verifies locally when it can (it falls back to the API on *any* local
  // failure, so the local path is asserted through the shape: no status_code, same JWT back).
  const byJwt = await client.sessions.authenticateJwt({ session_jwt: auth.session_jwt });
  assert.equal(byJwt.session.session_id, sessionId);
  assert.equal(byJwt.session.user_id, sent.user_id);
  assert.equal(byJwt.session_jwt, auth.session_jwt);
  assert.equal(byJwt.status_code, undefined, "authenticateJwt should have verified locally");

  // max_token_age_seconds: 0 forces the remote path: POST /v1/sessions/authenticate {session_jwt}.
  const remote = await client.sessions.authenticateJwt({ session_jwt: auth.session_jwt, max_token_age_seconds: 0 });
  assert.equal(remote.status_code, 200);
  assert.equal(remote.session.session_id, sessionId);
  assert.equal(remote.session_token, "", "authenticated by JWT alone, the token is not known");
  assert.equal(remote.session_jwt.split(".").length, 3);
  // ...and a JWT the API hands out verifies locally as well.
  const localAgain = await client.sessions.authenticateJwtLocal({ session_jwt: remote.session_jwt });
  assert.equal(localAgain.session_id, sessionId);

  const listed = await client.sessions.get({ user_id: sent.user_id });
  assert.equal(listed.status_code, 200);
  assert.deepEqual(listed.sessions.map((s) => s.session_id), [sessionId]);

  const revoked = await client.sessions.revoke({ session_token: auth.session_token });
  assert.equal(revoked.status_code, 200);
  assert.match(revoked.request_id, /^request-id-/);

  await assert.rejects(
    client.sessions.authenticate({ session_token: auth.session_token }),
    stytchError("session_not_found", 404),
  );
  await assert.rejects(
    client.sessions.authenticateJwt({ session_jwt: auth.session_jwt, max_token_age_seconds: 0 }),
    stytchError("session_not_found", 404),
  );
  const listedAfter = await client.sessions.get({ user_id: sent.user_id });
  assert.deepEqual(listedAfter.sessions, []);

  // The JWKS is per app: another app's client does not accept this app's JWT locally.
  const other = server.client(await server.createApp(`node sdk other ${randomUUID().slice(0, 8)}`));
  await assert.rejects(other.sessions.authenticateJwtLocal({ session_jwt: auth.session_jwt }), (err) => {
    assert.ok(err instanceof stytch.ClientError, `expected a ClientError, got ${err?.stack ?? err}`);
    assert.equal(err.code, "jwt_invalid");
    return true;
  });
});

test("email: login_or_create, authenticate, users.get shows the email verified, users.delete", async (t) => {
  const { client } = await freshClient(t);
  const email = `ada.${randomUUID().slice(0, 8)}@example.com`;

  const sent = await client.otps.email.loginOrCreate({ email });
  assert.equal(sent.status_code, 200);
  assert.match(sent.user_id, /^user-/);
  assert.match(sent.email_id, /^email-/);
  assert.equal(sent.user_created, true);

  const message = await server.newestMessage(email);
  assert.equal(message.channel, "email");
  assert.match(message.code, /^\d{6}$/);

  const before = await client.users.get({ user_id: sent.user_id });
  assert.deepEqual(
    before.emails.map(({ email_id, email: address, verified }) => ({ email_id, email: address, verified })),
    [{ email_id: sent.email_id, email, verified: false }],
  );

  const auth = await client.otps.authenticate({
    method_id: sent.email_id,
    code: message.code,
    session_duration_minutes: 60,
  });
  assert.equal(auth.status_code, 200);
  assert.equal(auth.user_id, sent.user_id);
  assert.equal(auth.method_id, sent.email_id);
  assert.equal(auth.session.authentication_factors[0].delivery_method, "email");
  assert.deepEqual(auth.session.authentication_factors[0].email_factor, {
    email_id: sent.email_id,
    email_address: email,
  });

  const user = await client.users.get({ user_id: sent.user_id });
  assert.equal(user.status_code, 200);
  assert.equal(user.user_id, sent.user_id);
  assert.equal(user.status, "active");
  assert.equal(user.is_locked, false);
  assert.deepEqual(user.phone_numbers, []);
  assert.deepEqual(
    user.emails.map(({ email_id, email: address, verified }) => ({ email_id, email: address, verified })),
    [{ email_id: sent.email_id, email, verified: true }],
  );

  const deleted = await client.users.delete({ user_id: sent.user_id });
  assert.equal(deleted.status_code, 200);
  assert.equal(deleted.user_id, sent.user_id);

  await assert.rejects(client.users.get({ user_id: sent.user_id }), stytchError("user_not_found", 404));
  // Deleting a user deletes its sessions.
  await assert.rejects(
    client.sessions.authenticate({ session_token: auth.session_token }),
    stytchError("session_not_found", 404),
  );
});

test("a wrong code rejects with otp_code_not_found (404); the right code still works", async (t) => {
  const { client } = await freshClient(t);
  const phone = "+12025550143";

  const sent = await client.otps.sms.loginOrCreate({ phone_number: phone });
  const code = await server.newestCode(phone);
  const wrong = code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10);

  await assert.rejects(
    client.otps.authenticate({ method_id: sent.phone_id, code: wrong, session_duration_minutes: 60 }),
    (err) => {
      stytchError("otp_code_not_found", 404)(err);
      // Additive field (API.md): wrong attempts the code still accepts.
      assert.equal(JSON.parse(err.message).attempts_remaining, 4, err.message);
      return true;
    },
  );
  // An unknown method id is answered the same way.
  await assert.rejects(
    client.otps.authenticate({ method_id: `phone-number-${randomUUID()}`, code }),
    stytchError("otp_code_not_found", 404),
  );

  const auth = await client.otps.authenticate({ method_id: sent.phone_id, code });
  assert.equal(auth.user_id, sent.user_id);
  // Without session_duration_minutes no session is created.
  assert.equal(auth.session_token, "");
  assert.equal(auth.session_jwt, "");
  assert.equal(auth.session ?? null, null);

  // The code was single-use.
  await assert.rejects(
    client.otps.authenticate({ method_id: sent.phone_id, code }),
    stytchError("unable_to_auth_otp_code", 401),
  );
});

test("the send cooldown answers 429 too_many_requests with retry_after_seconds", async (t) => {
  const { client } = await freshClient(t);
  const email = `grace.${randomUUID().slice(0, 8)}@example.com`;

  const first = await client.otps.email.loginOrCreate({ email });
  assert.equal(first.user_created, true);
  await assert.rejects(client.otps.email.loginOrCreate({ email }), (err) => {
    stytchError("too_many_requests", 429)(err);
    const retry = JSON.parse(err.message).retry_after_seconds;
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 2, err.message);
    return true;
  });
});
