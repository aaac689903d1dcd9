"""moto's server with one request at a time: `python moto_serialized.py HOST PORT`.

Stock `moto_server` handles requests on concurrent threads without a lock around its
backends, so under load its conditional writes race (two winners of one conditional update,
lost `ADD` increments) and a cancelled `TransactWriteItems` rolls the table back to a copy taken
before it started, wiping items that concurrent requests wrote meanwhile (both seen with 100
concurrent callers). DynamoDB makes every request atomic, and that is what the adapter's
conditions rely on. This runs moto's own WSGI application on a threaded server (so keep-alive
connections never starve each other) behind one lock, which gives every request the
atomicity DynamoDB gives it; the tests then check that the adapter's conditions are right
under any interleaving of requests.
"""

import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


class Serialized:
    """A WSGI application that lets one request at a time into `app`."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Produce the whole body under the lock: moto may compute it lazily.
            return [b"".join(self.app(environ, start_response))]


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
