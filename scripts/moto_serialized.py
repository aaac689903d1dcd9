"""moto's server with one request at a time, and DynamoDB's transaction idempotency:
`python moto_serialized.py HOST PORT`.

One request at a time. Stock `moto_server` handles requests on concurrent threads without a
lock around its backends, so under load its conditional writes race (two winners of one
conditional update, lost `ADD` increments) and a cancelled `TransactWriteItems` rolls the table
back to a copy taken before it started, wiping items that concurrent requests wrote meanwhile
(both seen with 100 concurrent callers). DynamoDB makes every request atomic, and that is what
the adapter's conditions rely on. This runs moto's own WSGI application on a threaded server (so
keep-alive connections never starve each other) behind one lock, which gives every request the
atomicity DynamoDB gives it; the tests then check that the adapter's conditions are right under
any interleaving of requests.

Idempotent transactions. moto 5.2.5 ignores `ClientRequestToken`; DynamoDB does not: a
`TransactWriteItems` repeated with the token of an earlier successful call, within 10 minutes,
is not applied again and gets the earlier call's answer, while the same token with other
parameters is refused with `IdempotentParameterMismatchException`. The adapter relies on that
when an answer is lost and the SDK resends the request. So, for a request whose `X-Amz-Target`
is `DynamoDB_20120810.TransactWriteItems` and whose JSON body has a `ClientRequestToken`:

- the answer of a successful call (HTTP 200) is remembered for 10 minutes, keyed by the token,
  together with a SHA-256 of the body without its volatile fields (the token itself, and
  `ReturnConsumedCapacity` / `ReturnItemCollectionMetrics`, which shape only the answer), as
  canonical JSON (sorted keys);
- a later call with that token and the same body, within the 10 minutes, gets the remembered
  answer (status, headers, body) without reaching moto;
- a later call with that token and another body gets HTTP 400
  `com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException`, without reaching moto;
- a call that failed (cancelled, refused, any status but 200) is not remembered: its token can
  be used again, as the transaction wrote nothing.

Every request, these included, is handled under the one lock.
"""

import hashlib
import io
import json
import signal
import sys
import threading
import time

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

TRANSACT_WRITE_ITEMS = "DynamoDB_20120810.TransactWriteItems"
# How long DynamoDB honours a client request token.
TOKEN_SECONDS = 600
# Fields of a TransactWriteItems body that do not change what it writes.
VOLATILE_FIELDS = ("ClientRequestToken", "ReturnConsumedCapacity", "ReturnItemCollectionMetrics")
MISMATCH = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
        "message": "The request uses the same client token as a previous, but non-identical "
        "request. Do not reuse a client token with different requests, unless the requests "
        "are identical.",
    }
).encode()


def fingerprint(body: dict) -> str:
    """A SHA-256 of the body without its volatile fields, as canonical JSON."""
    kept = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Serialized:
    """A WSGI application that lets one request at a time into `app`, and answers repeated
    `TransactWriteItems` calls as DynamoDB does (see the module docstring)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        # token -> (expires at (monotonic seconds), fingerprint, status, headers, body)
        self.tokens = {}

    def __call__(self, environ, start_response):
        with self.lock:
            token = None
            if environ.get("HTTP_X_AMZ_TARGET") == TRANSACT_WRITE_ITEMS:
                token, digest = self.read_token(environ)
            if token is None:
                # Produce the whole body under the lock: moto may compute it lazily.
                return [b"".join(self.app(environ, start_response))]

            now = time.monotonic()
            self.forget_expired(now)
            remembered = self.tokens.get(token)
            if remembered is not None:
                _, seen_digest, status, headers, body = remembered
                if seen_digest != digest:
                    start_response(
                        "400 Bad Request",
                        [
                            ("Content-Type", "application/x-amz-json-1.0"),
                            ("Content-Length", str(len(MISMATCH))),
                        ],
                    )
                    return [MISMATCH]
                start_response(status, headers)
                return [body]

            captured = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, list(headers)
                return start_response(status, headers, exc_info)

            body = b"".join(self.app(environ, capture))
            status = captured.get("status", "")
            if status.startswith("200"):
                self.tokens[token] = (
                    now + TOKEN_SECONDS,
                    digest,
                    status,
                    captured["headers"],
                    body,
                )
            return [body]

    @staticmethod
    def read_token(environ):
        """The token and body fingerprint of a TransactWriteItems request, or (None, None);
        the body is put back for moto to read."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None, None
        token = body.get("ClientRequestToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return None, None
        return token, fingerprint(body)

    def forget_expired(self, now):
        for token in [t for t, entry in self.tokens.items() if entry[0] <= now]:
            del self.tokens[token]


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        host,
        port,
        Serialized(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
