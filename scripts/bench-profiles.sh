#!/usr/bin/env bash
# Release profiles compared: for each, the size of the functions, their cold init beside the bare
# baseline (through the harness's Runtime API emulator, against moto), and the build time from a
# built dependency cache. This is how the `[profile.release]` of Cargo.toml was chosen; the
# results go to bench/results/profiles.json, which BENCHMARKS.md shows.
#
# Each profile builds in its own target folder (target/profiles/<name>), from the profile given
# through CARGO_PROFILE_RELEASE_* variables, so Cargo.toml is not edited. The first build of each
# compiles every dependency (minutes); the timed builds after it do not. Run
# scripts/bench.sh first: it builds the harness this uses.
#
# Usage: scripts/bench-profiles.sh [name:opt-level:lto:codegen-units[:rustflags] ...]
# (rustflags: extra RUSTFLAGS, spaces written as commas, e.g. -C,relocation-model=static)
# BENCH_NICE (0) is the niceness of the builds; BENCH_ALL_FUNCTIONS=1 also times the build of
# every function (29 links) for the profiles without fat or thin LTO (with them it is 29 times
# the one-function link).
set -euo pipefail
cd "$(dirname "$0")/.."

NICE=${BENCH_NICE:-0}
PROFILES=("$@")
if [ ${#PROFILES[@]} -eq 0 ]; then
  PROFILES=(fat-s:s:fat:1 fat-z:z:fat:1 thin-s:s:thin:16 off-s:s:false:16 off-z:z:false:16)
fi
HARNESS=target/release/bench
if [ ! -x "$HARNESS" ]; then
  echo "build the harness first: cargo build --release -p bench (scripts/bench.sh does)" >&2
  exit 1
fi
OUT=target/bench/profiles
mkdir -p "$OUT"
KEY=target/bench/jwt-key.pem
if [ ! -s "$KEY" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEY" 2>/dev/null
fi
since() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'; }
BINS=(--bin otp-sms-login-or-create --bin otp-authenticate --bin sessions-authenticate)

for spec in "${PROFILES[@]}"; do
  IFS=: read -r name opt lto cgu flags <<< "$spec"
  flags=${flags//,/ }
  printf '\n== %s: opt-level %s, lto %s, codegen-units %s %s\n' "$name" "$opt" "$lto" "$cgu" "$flags"
  export RUSTFLAGS=$flags
  export CARGO_TARGET_DIR=target/profiles/$name
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt CARGO_PROFILE_RELEASE_LTO=$lto
  export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=$cgu
  build() { nice -n "$NICE" cargo build --release --locked "$@"; }
  build -p bench -p local-api
  build -p login-functions -p otp-send-functions "${BINS[@]}"
  touch functions/login/src/bin/sessions-authenticate.rs
  start=$EPOCHREALTIME
  build -p login-functions --bin sessions-authenticate
  one=$(since "$start")
  touch shared/src/lib.rs
  start=$EPOCHREALTIME
  build -p login-functions -p otp-send-functions "${BINS[@]}"
  three=$(since "$start")
  all=null
  if [ "${BENCH_ALL_FUNCTIONS:-0}" = 1 ] && [ "$lto" != fat ] && [ "$lto" != thin ]; then
    touch shared/src/lib.rs
    start=$EPOCHREALTIME
    build -p management-functions -p login-functions -p otp-send-functions
    all=$(since "$start")
  fi
  build -p bench -p local-api -p login-functions -p otp-send-functions "${BINS[@]}"
  scripts/with-moto.sh "$HARNESS" lambda --bin-dir "$CARGO_TARGET_DIR/release" --events events \
    --jwt-key "$KEY" --cold-runs "${BENCH_COLD_RUNS:-9}" --warm 100 \
    --out "$OUT/$name-lambda.json" --logs "$OUT/logs-$name"
  python3 - "$OUT/$name.json" "$CARGO_TARGET_DIR/release" "$name" "$opt" "$lto" "$cgu" \
    "$one" "$three" "$all" "$OUT/$name-lambda.json" "$flags" <<'EOF'
import io, json, os, sys, zipfile
out, folder, name, opt, lto, cgu, one, three, every, lambda_path, flags = sys.argv[1:]
sizes = {}
for binary in ["otp-sms-login-or-create", "otp-authenticate", "sessions-authenticate", "hello-baseline"]:
    path = os.path.join(folder, binary)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bootstrap", open(path, "rb").read())
    sizes[binary] = {"binary_bytes": os.path.getsize(path), "zip_bytes": len(buffer.getvalue())}
cold = json.load(open(lambda_path))["functions"]
json.dump({
    "name": name, "opt_level": opt, "lto": lto, "codegen_units": int(cgu), "rustflags": flags,
    "one_function_link_s": float(one), "three_functions_after_shared_s": float(three),
    "all_functions_after_shared_s": None if every == "null" else float(every),
    "sizes": sizes,
    "cold": {f: {"init_median_ms": c["cold"]["init"]["median_ms"],
                 "init_ratio_to_baseline": c["cold"]["init_ratio_to_baseline"],
                 "init_cpu_ratio_to_baseline": c["cold"].get("init_cpu_ratio_to_baseline"),
                 "first_response_cpu_median_ms": c["cold"].get("first_response_cpu", {}).get("median_ms"),
                 "first_response_median_ms": c["cold"]["first_response"]["median_ms"]}
             for f, c in cold.items()},
}, open(out, "w"), indent=2)
EOF
done

python3 - "$OUT" bench/results/profiles.json <<'EOF'
import glob, json, os, sys
folder, out = sys.argv[1:]
runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "*.json")))
        if not p.endswith("-lambda.json")]
previous = json.load(open(out)) if os.path.exists(out) else {}
previous.update({r["name"]: r for r in runs})
json.dump(previous, open(out, "w"), indent=2)
print("\n%-14s %-5s %-5s %-4s %-9s %-9s %-9s %-10s %-10s %-8s" % (
    "profile", "opt", "lto", "cgu", "link 1 s", "3 fns s", "29 fns s", "zip send", "zip auth", "init x"))
for r in previous.values():
    print("%-14s %-5s %-5s %-4s %-9s %-9s %-9s %-10.2f %-10.2f %-8s" % (
        r["name"], r["opt_level"], r["lto"], r["codegen_units"], r["one_function_link_s"],
        r["three_functions_after_shared_s"], r["all_functions_after_shared_s"],
        r["sizes"]["otp-sms-login-or-create"]["zip_bytes"] / 1e6,
        r["sizes"]["otp-authenticate"]["zip_bytes"] / 1e6,
        r["cold"]["sessions-authenticate"]["init_ratio_to_baseline"]))
EOF
