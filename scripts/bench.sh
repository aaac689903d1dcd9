#!/usr/bin/env bash
# The benchmark: builds the release binaries (and the bare `lambda_http` baseline, same profile),
# times the builds, measures binary and zip sizes, runs the criterion benches of the handlers,
# cold and warm starts through the harness's own Lambda Runtime API emulator against moto, and
# login flows through the local server; then writes bench/results/$BENCH_LABEL.json and
# BENCHMARKS.md. Reports figures, never fails on one. README: "Benchmarks".
#
# Settings (environment): BENCH_LABEL (latest), BENCH_COLD_RUNS (9), BENCH_WARM (1000),
# BENCH_ARM64 (1: also build for arm64 with cargo-lambda and Zig from PyPI, and time it),
# BENCH_SAM (0: 1 also times `sam build`), BENCH_NICE (0: niceness of the builds, for a shared
# machine), BENCH_FUNCTIONS (every function: a list builds and sizes only those, plus the three the
# emulator runs, and skips the every-function build times; for a quick look at a slow profile).
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL=${BENCH_LABEL:-latest}
COLD_RUNS=${BENCH_COLD_RUNS:-9}
WARM=${BENCH_WARM:-1000}
ARM64=${BENCH_ARM64:-1}
SAM=${BENCH_SAM:-0}
NICE=${BENCH_NICE:-0}
CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.15.2
OUT=target/bench
mkdir -p "$OUT/logs"
rm -f "$OUT"/{lambda,flows,sizes,build}.json

step() { printf '\n== %s\n' "$*"; }
cargo_() { nice -n "$NICE" cargo "$@"; }
since() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'; }
ALL_FUNCTIONS=$(ls functions/*/src/bin/*.rs | xargs -n1 basename | sed 's/\.rs$//' | sort)
FUNCTION_PACKAGES=(-p management-functions -p login-functions -p otp-send-functions)
if [ -n "${BENCH_FUNCTIONS:-}" ]; then
  FUNCTIONS=$(printf '%s\n' $BENCH_FUNCTIONS otp-sms-login-or-create otp-authenticate \
    sessions-authenticate | sort -u)
  SELECTED=("${FUNCTION_PACKAGES[@]}")
  for function in $FUNCTIONS; do SELECTED+=(--bin "$function"); done
  LAMBDA_SELECTED=()
  for function in $FUNCTIONS; do LAMBDA_SELECTED+=(--bin "$function"); done
else
  FUNCTIONS=$ALL_FUNCTIONS
  SELECTED=("${FUNCTION_PACKAGES[@]}")
  LAMBDA_SELECTED=()
fi
declare -A BUILD=([loadavg_at_start]="\"$(cut -d' ' -f1-3 /proc/loadavg)\"")

# sizes ARCH DIR PATTERN: each function's binary and its zipped `bootstrap` (deflate, as
# cargo-lambda packages it), into $OUT/sizes.json under ARCH. PATTERN turns a name into a path.
sizes() {
  python3 - "$OUT/sizes.json" "$1" "$2" "$3" $FUNCTIONS hello-baseline <<'EOF'
import io, json, os, sys, zipfile
out, arch, folder, pattern, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
data = json.load(open(out)) if os.path.exists(out) else {}
figures = {}
for name in names:
    path = os.path.join(folder, pattern.replace("NAME", name))
    if not os.path.exists(path):
        continue
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, open(path, "rb").read())
    figures[name] = {"binary_bytes": os.path.getsize(path), "zip_bytes": len(buffer.getvalue())}
data[arch] = figures
json.dump(data, open(out, "w"), indent=2)
EOF
}

step "Release build, x86-64: the functions, the local server, the harness and the baseline"
start=$EPOCHREALTIME
cargo_ build --release --locked -p bench -p local-api
cargo_ build --release --locked "${SELECTED[@]}"
BUILD[x86_64_first_build_s]=$(since "$start")

step "Build times from a built dependency cache"
touch functions/login/src/bin/sessions-authenticate.rs
start=$EPOCHREALTIME
cargo_ build --release --locked -p login-functions --bin sessions-authenticate
BUILD[x86_64_one_function_s]=$(since "$start")
if [ -z "${BENCH_FUNCTIONS:-}" ]; then
  touch shared/src/lib.rs
  start=$EPOCHREALTIME
  cargo_ build --release --locked "${FUNCTION_PACKAGES[@]}"
  BUILD[x86_64_all_functions_s]=$(since "$start")
fi
cargo_ build --release --locked -p bench -p local-api
cargo_ build --release --locked "${SELECTED[@]}"
if cargo_ tree --locked -e normal "${FUNCTION_PACKAGES[@]}" | grep -q ' rsa v'; then
  BUILD[rsa_in_functions]=true
else
  BUILD[rsa_in_functions]=false
fi

step "Sizes, x86-64"
sizes x86_64 target/release NAME

step "Criterion benches of the handlers (in-memory adapters)"
cargo_ bench --locked -p bench --bench handlers

step "Cold and warm starts through the Runtime API emulator, against moto"
if [ ! -s "$OUT/jwt-key.pem" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/jwt-key.pem" 2>/dev/null
fi
STRACE=()
if command -v strace >/dev/null; then
  STRACE=(--strace)
fi
scripts/with-moto.sh target/release/bench lambda --bin-dir target/release --events events \
  --jwt-key "$OUT/jwt-key.pem" --cold-runs "$COLD_RUNS" --warm "$WARM" \
  --out "$OUT/lambda.json" --logs "$OUT/logs" "${STRACE[@]}"

step "Login flows through the local server"
target/release/bench flows --local-api target/release/local-api --out "$OUT/flows.json" \
  --logs "$OUT/logs"

if [ "$ARM64" = 1 ] || [ "$SAM" = 1 ]; then
  step "cargo-lambda and Zig (PyPI, into .venv-bench); the arm64 Rust target"
  if [ ! -x .venv-bench/bin/python ]; then
    python3 -m venv .venv-bench
  fi
  if ! .venv-bench/bin/cargo-lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION" \
    || ! .venv-bench/bin/python -m ziglang version 2>/dev/null | grep -q "$ZIGLANG_VERSION"; then
    .venv-bench/bin/pip install -q --disable-pip-version-check \
      "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
  fi
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
  fi
  export PATH="$PWD/.venv-bench/bin:$PATH"
fi

if [ "$ARM64" = 1 ]; then
  step "arm64: cargo lambda build --release --arm64 (dependencies first, then timed)"
  cargo_ lambda build --release --arm64 --locked "${LAMBDA_SELECTED[@]}"
  if [ -z "${BENCH_FUNCTIONS:-}" ]; then
    touch shared/src/lib.rs
    start=$EPOCHREALTIME
    cargo_ lambda build --release --arm64 --locked
    BUILD[arm64_all_functions_s]=$(since "$start")
  fi
  sizes aarch64 target/lambda NAME/bootstrap
fi

if [ "$SAM" = 1 ]; then
  step "sam build (after touching shared/src/lib.rs)"
  scripts/lint-template.sh >/dev/null
  touch shared/src/lib.rs
  start=$EPOCHREALTIME
  SAM_CLI_TELEMETRY=0 nice -n "$NICE" .venv-sam/bin/sam build
  BUILD[sam_build_s]=$(since "$start")
fi

step "Report"
{
  printf '{'
  sep=
  for key in "${!BUILD[@]}"; do
    printf '%s"%s": %s' "$sep" "$key" "${BUILD[$key]}"
    sep=', '
  done
  printf '}\n'
} > "$OUT/build.json"
target/release/bench report --dir "$OUT" --label "$LABEL"
