// What the page says for each error the Stytch SDK throws. The SDK keeps, of a server error,
// status_code, error_type, error_message, error_url, request_id and error_details: the attempts
// left and the wait are read from error_details (the wait also from the message's "retry in N
// seconds"). Tested without a browser in tests/browser/messages.test.mjs.

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** "45 seconds", "3 minutes", "1 minute 30 seconds". */
export function duration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return plural(s, "second");
  const minutes = Math.floor(s / 60);
  const rest = s % 60;
  return rest === 0 ? plural(minutes, "minute") : `${plural(minutes, "minute")} ${plural(rest, "second")}`;
}

/** A number the server put on the error. The SDK keeps `error_details`; older shapes are flat. */
export function errorNumber(err, key) {
  const value = err?.error_details?.[key] ?? err?.[key];
  return Number.isFinite(value) ? value : undefined;
}

/** The wait the server asked for, in seconds, if it said one. */
export function retryAfter(err) {
  const seconds = errorNumber(err, "retry_after_seconds");
  if (seconds !== undefined) return seconds;
  const match = /retry in (\d+) seconds?/i.exec(err?.error_message ?? "");
  return match ? Number(match[1]) : undefined;
}

/** The sentence to show for an error thrown by the SDK. */
export function describe(err, origin = globalThis.location?.origin) {
  const type = err?.error_type;
  const wait = retryAfter(err);
  switch (type) {
    case "otp_code_not_found": {
      const left = errorNumber(err, "attempts_remaining");
      return left === undefined
        ? "That code is not right. Check it and try again."
        : `That code is not right. ${left === 0 ? "No attempts" : plural(left, "attempt")} left.`;
    }
    case "unable_to_auth_otp_code":
      return "This code has expired or was already used. Send a new code.";
    case "user_lock_limit_reached":
      return wait === undefined
        ? "Too many wrong codes: logging in is locked for a while. Try again later."
        : `Too many wrong codes: logging in is locked. Try again in ${duration(wait)}.`;
    case "too_many_requests":
      return wait === undefined
        ? "Too many codes were requested. Wait a little, then send a new code."
        : `A code was sent a moment ago. You can send a new one in ${duration(wait)}.`;
    case "invalid_phone_number":
      return "That phone number is not valid. Use the international format, for example +12025550100.";
    case "invalid_email":
      return "That email address is not valid.";
    case "origin_not_authorized":
      return `This page's address (${origin}) is not an authorized origin of the app. Add it to the app's authorized origins.`;
    case "unauthorized_credentials":
    case "session_not_found":
      return "Your session has ended. Log in again.";
    default:
      break;
  }
  if (err?.name === "StytchAPIUnreachableError" || err?.name === "SDKAPIUnreachableError") {
    return "The login service cannot be reached. Check your connection and try again.";
  }
  if (typeof err?.error_message === "string" && err.error_message) return err.error_message;
  return "Something went wrong. Try again.";
}
