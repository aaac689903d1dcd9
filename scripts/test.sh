#!/usr/bin/env bash
# Runs every test from a clean clone: formatting and lints (Rust and template.yaml), the Rust
# suites (domain, store contract on both adapters, handlers from events/, the AWS adapters and
# the full login flow against moto), then the official Stytch Python and Node SDKs against the
# local server, then the login page (web/dist is its build; the page in Chromium), then
# Schemathesis with openapi.json against the local server. Installs what it needs (.venv,
# .venv-sam, .venv-schemathesis from PyPI; tests/node, web, tests/browser from npm; Chromium
# from Debian when missing); leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "Python venv (.venv) with the pinned test requirements"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt

step "cargo fmt --check"
cargo fmt --all -- --check

step "template.yaml lint (SAM and cfn-lint, from PyPI into .venv-sam)"
scripts/lint-template.sh

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Benchmarks: the criterion benches build and run once each (test mode; scripts/bench.sh measures)"
cargo test --locked -p bench --benches

step "Rust tests (the AWS adapters against moto, started for them)"
if cargo nextest --version >/dev/null 2>&1; then
  scripts/with-moto.sh cargo nextest run --workspace --locked --no-fail-fast
else
  scripts/with-moto.sh cargo test --workspace --locked --no-fail-fast
fi

step "Stytch SDKs (Python, then Node) against the local server"
cargo build --locked --bin local-api
export LOCAL_API_BIN="$PWD/target/debug/local-api"
.venv/bin/python -m pytest -q tests/sdk
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error && npm test)

step "Login page: web/dist is the build of web/src (npm ci, npm run build, no difference)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
if [ -n "$(git status --porcelain -- web/dist)" ]; then
  git status --short -- web/dist
  echo "web/dist is not the build of web/src: run 'npm run build' in web/ and commit web/dist" >&2
  exit 1
fi

step "Login page in Chromium (playwright-core, the system Chromium) against the local server"
command -v chromium >/dev/null ||
  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)

step "Schemathesis against the local server with the committed openapi.json (bounded)"
scripts/schemathesis.sh
