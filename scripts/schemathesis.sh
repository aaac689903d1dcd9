#!/usr/bin/env bash
# Schemathesis against the local server with the committed openapi.json: no 5xx, and every
# response as the document describes it. Starts target/debug/local-api (or $LOCAL_API_BIN) on a
# free port with the in-memory backend, authenticates with the management key and the
# development app it prints, and stops it at the end. Bounded: a few examples per operation.
# Tools in .venv-schemathesis, pinned (tests/openapi/requirements.txt), from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv-schemathesis/bin/python ]; then
  python3 -m venv .venv-schemathesis
fi
.venv-schemathesis/bin/pip install -q --disable-pip-version-check -r tests/openapi/requirements.txt

binary="${LOCAL_API_BIN:-target/debug/local-api}"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export BASE_URL="http://127.0.0.1:$port"
export MANAGEMENT_KEY=schemathesis-management-key
log=$(mktemp)
PORT="$port" PUBLIC_BASE_URL="$BASE_URL" LOCAL_BACKEND=memory RUST_LOG=warn \
  "$binary" >"$log" 2>&1 </dev/null &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT

printed() { sed -n "s/^development app: $1=\(.*\)$/\1/p" "$log"; }
for _ in $(seq 1 300); do
  if [ -n "$(printed PUBLIC_TOKEN)" ]; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$log"
    echo "local-api exited before it answered" >&2
    exit 1
  fi
  sleep 0.1
done
APP_ID=$(printed APP_ID)
APP_SECRET=$(printed APP_SECRET)
PUBLIC_TOKEN=$(printed PUBLIC_TOKEN)
export APP_ID APP_SECRET PUBLIC_TOKEN
if [ -z "$PUBLIC_TOKEN" ]; then
  cat "$log"
  echo "local-api printed no development app" >&2
  exit 1
fi

.venv-schemathesis/bin/schemathesis --config-file tests/openapi/schemathesis.toml run openapi.json \
  --url "$BASE_URL" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-15}" \
  --max-time "${SCHEMATHESIS_MAX_SECONDS:-240}" \
  --workers 2 \
  --seed 1 \
  --report junit --report-dir target/schemathesis
