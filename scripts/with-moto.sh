#!/usr/bin/env bash
# Runs a command with moto, a local stand-in for DynamoDB, SNS and SES v2, started for it and
# the standard AWS environment pointing at it; without a command, runs the AWS adapter tests
# (store-dynamodb, delivery-aws). `scripts/test.sh` runs the whole test suite through it.
#
# Two moto servers on free ports, each serving one request at a time (scripts/moto_serialized.py
# says why): one for DynamoDB (AWS_ENDPOINT_URL_DYNAMODB) and one for SNS and SES
# (AWS_ENDPOINT_URL). Apart, because moto's /moto-api/data.json, where the delivery tests read
# sent messages back, serialises every record moto ever tracked, and after the DynamoDB suite that
# takes tens of seconds. Both are stopped by PID when the script ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

mkdir -p target
PIDS=()
stop_moto() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_moto EXIT
trap 'exit 130' INT TERM

free_port() {
  .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_moto NAME: starts a server, leaves its URL in MOTO_URL.
start_moto() {
  local name=$1 port
  port=$(free_port)
  MOTO_PORT=$port .venv/bin/python scripts/moto_serialized.py 127.0.0.1 "$port" \
    > "target/moto-$name.log" 2>&1 &
  PIDS+=($!)
  MOTO_URL="http://127.0.0.1:$port"
  for _ in $(seq 300); do
    if curl -sf -o /dev/null "$MOTO_URL/moto-api/"; then
      return 0
    fi
    if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
      echo "moto ($name) did not start; see target/moto-$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "moto ($name) did not answer on $MOTO_URL within 30 s" >&2
  return 1
}

start_moto dynamodb
DYNAMODB_URL=$MOTO_URL
start_moto delivery
DELIVERY_URL=$MOTO_URL
echo "moto: DynamoDB on $DYNAMODB_URL, SNS and SES on $DELIVERY_URL (logs in target/moto-*.log)"

export AWS_ENDPOINT_URL=$DELIVERY_URL
export AWS_ENDPOINT_URL_DYNAMODB=$DYNAMODB_URL
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true

if [ $# -gt 0 ]; then
  "$@"
elif cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked -p store-dynamodb -p delivery-aws --no-fail-fast
else
  cargo test --locked -p store-dynamodb -p delivery-aws --no-fail-fast
fi
