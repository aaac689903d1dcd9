//! `bench report`: one JSON record of the run (`bench/results/<label>.json`: what `bench lambda`,
//! `bench flows`, criterion and `scripts/bench.sh` measured, with the date, machine, commit and
//! release profile), and `BENCHMARKS.md` from it, with one history row per record in the results
//! folder and `bench/NOTES.md` (the prose: what each step changed and why) at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::{Args, write_json};

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": command_output("uname", &["-sr"]),
        "rustc": command_output("rustc", &["-V"]),
        "arch": std::env::consts::ARCH,
    })
}

/// The `[profile.release]` table of the workspace's Cargo.toml, as `key = value` lines.
fn release_profile() -> Vec<String> {
    let text = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
    text.lines()
        .skip_while(|line| line.trim() != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Median and mean (ns) of each criterion bench of the `handlers` group.
fn criterion_figures(folder: &Path) -> Value {
    let mut out = serde_json::Map::new();
    let Ok(entries) = std::fs::read_dir(folder.join("handlers")) else {
        return Value::Object(out);
    };
    for entry in entries.flatten() {
        let estimates = read_json(&entry.path().join("new").join("estimates.json"));
        if estimates.is_null() {
            continue;
        }
        out.insert(
            entry.file_name().to_string_lossy().into_owned(),
            json!({
                "median_ns": estimates["median"]["point_estimate"],
                "mean_ns": estimates["mean"]["point_estimate"],
            }),
        );
    }
    Value::Object(out)
}

pub fn run(args: &Args) -> Result<(), String> {
    let dir = Path::new(&args.required("dir")?).to_owned();
    let label = args.required("label")?;
    let results = args.text("results", "bench/results");
    let markdown = args.text("markdown", "BENCHMARKS.md");
    let criterion = args.text("criterion", "target/criterion");
    let now = chrono::DateTime::from_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs() as i64,
        0,
    )
    .ok_or("a bad date")?;
    let record = json!({
        "label": label,
        "date": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "commit": command_output("git", &["rev-parse", "--short", "HEAD"]),
        "dirty": !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "machine": machine(),
        "release_profile": release_profile(),
        "lambda": read_json(&dir.join("lambda.json")),
        "flows": read_json(&dir.join("flows.json")),
        "criterion": criterion_figures(Path::new(&criterion)),
        "sizes": read_json(&dir.join("sizes.json")),
        "build": read_json(&dir.join("build.json")),
    });
    write_json(&format!("{results}/{label}.json"), &record)?;

    let mut history: Vec<Value> = std::fs::read_dir(&results)
        .map_err(|e| format!("{results}: {e}"))?
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
        .map(|entry| read_json(&entry.path()))
        .filter(|record| record["label"].is_string())
        .collect();
    history.sort_by(|a, b| {
        a["date"]
            .as_str()
            .unwrap_or("")
            .cmp(b["date"].as_str().unwrap_or(""))
    });
    let notes = std::fs::read_to_string("bench/NOTES.md").unwrap_or_default();
    let profiles = read_json(&Path::new(&results).join("profiles.json"));
    let mut text = render(&record, &history, &notes, &results);
    if let Some(table) = profiles_table(&profiles) {
        // Before the notes, which discuss it.
        match text.find("\n## Notes") {
            Some(at) => text.insert_str(at, &table),
            None => text.push_str(&table),
        }
    }
    std::fs::write(&markdown, text).map_err(|e| format!("{markdown}: {e}"))?;
    println!("wrote {results}/{label}.json and {markdown}");
    Ok(())
}

/// The release profiles `scripts/bench-profiles.sh` compared (`bench/results/profiles.json`).
fn profiles_table(profiles: &Value) -> Option<String> {
    let profiles = profiles.as_object().filter(|p| !p.is_empty())?;
    let mut out = String::from(
        "\n## Release profiles compared\n\n`scripts/bench-profiles.sh`: each profile in its own target folder, \
         from a built dependency cache; x86-64. Build times: one function's link (its `main` touched), \
         the three emulated functions after touching `shared/src/lib.rs`, and every function (29) \
         after touching it where measured. Init ratio: median cold init over the bare function \
         built with the same profile, same rounds.\n\n\
         | profile | opt-level | lto | codegen-units | rustflags | one link | 3 functions | 29 functions | zip send / session MB | init ratio send / session | init CPU ratio send / session |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, p) in profiles {
        let zip = |f: &str| mb(&p["sizes"][f]["zip_bytes"]);
        let init = |f: &str| ratio(&p["cold"][f]["init_ratio_to_baseline"]);
        let cpu = |f: &str| ratio(&p["cold"][f]["init_cpu_ratio_to_baseline"]);
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} / {} |",
            p["opt_level"].as_str().unwrap_or("?"),
            p["lto"].as_str().unwrap_or("?"),
            p["codegen_units"],
            p["rustflags"]
                .as_str()
                .filter(|f| !f.is_empty())
                .unwrap_or("–"),
            seconds(&p["one_function_link_s"]),
            seconds(&p["three_functions_after_shared_s"]),
            seconds(&p["all_functions_after_shared_s"]),
            zip(SEND),
            zip(SESSIONS),
            init(SEND),
            init(SESSIONS),
            cpu(SEND),
            cpu(SESSIONS),
        );
    }
    Some(out)
}

const SEND: &str = "otp-sms-login-or-create";
const SESSIONS: &str = "sessions-authenticate";
const AUTHENTICATE: &str = "otp-authenticate";
const BASELINE: &str = "hello-baseline";
/// The zip goal: 3 MB, read as 3,000,000 bytes (the stricter reading).
const ZIP_GOAL_BYTES: f64 = 3_000_000.0;

fn ms(value: &Value) -> String {
    match value.as_f64() {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "–".to_owned(),
    }
}

fn ns_as_ms(value: &Value) -> String {
    value
        .as_f64()
        .map(|ns| format!("{:.3}", ns / 1e6))
        .unwrap_or_else(|| "–".to_owned())
}

fn mb(value: &Value) -> String {
    value
        .as_f64()
        .map(|bytes| format!("{:.2}", bytes / 1e6))
        .unwrap_or_else(|| "–".to_owned())
}

fn kib_as_mb(value: &Value) -> String {
    value
        .as_f64()
        .map(|kib| format!("{:.1}", kib * 1024.0 / 1e6))
        .unwrap_or_else(|| "–".to_owned())
}

fn seconds(value: &Value) -> String {
    match value.as_f64() {
        Some(s) if s >= 60.0 => format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0),
        Some(s) => format!("{s:.1}s"),
        None => "–".to_owned(),
    }
}

fn ratio(value: &Value) -> String {
    value
        .as_f64()
        .filter(|v| v.is_finite())
        .map(|v| format!("{v:.2}x"))
        .unwrap_or_else(|| "–".to_owned())
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// The largest zip of an architecture's functions (the baseline excluded) and its function.
fn largest_zip(sizes: &Value, arch: &str) -> Option<(String, f64)> {
    sizes[arch]
        .as_object()?
        .iter()
        .fold(None, |best, (name, size)| {
            let zip = size["zip_bytes"].as_f64()?;
            if name == BASELINE || name == "local-api" {
                return best;
            }
            match best {
                Some((_, top)) if top >= zip => best,
                _ => Some((name.clone(), zip)),
            }
        })
}

fn goals(record: &Value) -> String {
    let functions = &record["lambda"]["functions"];
    let mut out = String::from("| goal | target | measured | verdict |\n|---|---|---|---|\n");

    let ratios: Vec<(String, Option<f64>)> = [SESSIONS, SEND, AUTHENTICATE]
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                functions[*f]["cold"]["init_ratio_to_baseline"].as_f64(),
            )
        })
        .collect();
    let worst = ratios
        .iter()
        .filter_map(|(_, r)| *r)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let cpu_ratios: Vec<String> = [SESSIONS, SEND, AUTHENTICATE]
        .iter()
        .map(|f| ratio(&functions[*f]["cold"]["init_cpu_ratio_to_baseline"]))
        .collect();
    let _ = writeln!(
        out,
        "| cold init | <= 1.3x the bare function, same run | wall: {} (bare {} ms); CPU: {} (bare {} ms) | {} |",
        ratios
            .iter()
            .map(|(f, r)| format!("`{f}` {}", ratio(&json!(r))))
            .collect::<Vec<_>>()
            .join(", "),
        ms(&functions[BASELINE]["cold"]["init"]["median_ms"]),
        cpu_ratios.join(", "),
        ms(&functions[BASELINE]["cold"]["init_cpu"]["median_ms"]),
        verdict(worst.map(|w| w <= 1.3))
    );

    let init_files: Vec<String> = [SESSIONS, SEND]
        .iter()
        .filter_map(|f| {
            let files = &functions[*f]["init_files"];
            files["files_opened"].as_u64().map(|n| {
                format!(
                    "`{f}` {n} files ({} certificates; bare {})",
                    files["certificate_files_opened"],
                    functions[BASELINE]["init_files"]["files_opened"]
                )
            })
        })
        .collect();
    let cert_free = [SESSIONS, SEND]
        .iter()
        .all(|f| functions[*f]["init_files"]["certificate_files_opened"].as_u64() == Some(0));
    let _ = writeln!(
        out,
        "| what init opens | nothing a request does not need | {} | {} |",
        if init_files.is_empty() {
            "–".to_owned()
        } else {
            init_files.join("; ")
        },
        verdict((!init_files.is_empty()).then_some(cert_free))
    );

    let sizes = &record["sizes"];
    let mut zip_texts = Vec::new();
    let mut zip_met = None;
    for arch in ["x86_64", "aarch64"] {
        if let Some((name, bytes)) = largest_zip(sizes, arch) {
            zip_texts.push(format!("{arch}: largest {:.2} MB (`{name}`)", bytes / 1e6));
            zip_met = Some(zip_met.unwrap_or(true) && bytes <= ZIP_GOAL_BYTES);
        }
    }
    let _ = writeln!(
        out,
        "| zipped `bootstrap` | <= 3 MB each (10^6 bytes) | {} | {} |",
        zip_texts.join("; "),
        verdict(zip_met)
    );

    let build = &record["build"];
    let arm64 = build["arm64_all_functions_s"].as_f64();
    let _ = writeln!(
        out,
        "| build every function for arm64 from a built dependency cache | <= 5 min on 2 cores | {} (`cargo lambda build --release --arm64`); x86-64 {}; one function's release link {} | {} |",
        seconds(&build["arm64_all_functions_s"]),
        seconds(&build["x86_64_all_functions_s"]),
        seconds(&build["x86_64_one_function_s"]),
        verdict(arm64.map(|s| s <= 300.0))
    );

    let sign = record["criterion"]["rs256_sign"]["median_ns"].as_f64();
    let local = record["flows"]["sequential"]["authenticate"]["median_ms"].as_f64();
    let in_process = record["criterion"]["authenticate"]["median_ns"].as_f64();
    let local_ratio = match (local, sign) {
        (Some(l), Some(s)) => Some(l * 1e6 / s),
        _ => None,
    };
    let _ = writeln!(
        out,
        "| warm authenticate with a new session | <= 1.5x one RSA-2048 signature (same backend, in-process) | local server p50 {} ms, in-process {} ms; one signature {} ms: {} | {} |",
        ms(&json!(local)),
        ns_as_ms(&json!(in_process)),
        ns_as_ms(&json!(sign)),
        ratio(&json!(local_ratio)),
        verdict(local_ratio.map(|r| r <= 1.5))
    );

    let mut rss_texts = Vec::new();
    let mut rss_met = None;
    for f in [SESSIONS, SEND] {
        let warm = &functions[f]["warm"];
        let (Some(peak), Some(after_100), Some(last)) = (
            warm["peak_rss_kib"].as_f64(),
            warm["rss_kib"]["after_100"].as_f64(),
            warm["rss_kib"]
                .as_object()
                .and_then(|m| m.values().filter_map(Value::as_f64).next_back()),
        ) else {
            continue;
        };
        rss_texts.push(format!(
            "`{f}` peak {:.1} MB, {:.1} -> {:.1} MB from the 100th to the last",
            peak * 1024.0 / 1e6,
            after_100 * 1024.0 / 1e6,
            last * 1024.0 / 1e6
        ));
        // Flat: the last 900 invocations add less than 1 MB.
        let met = peak * 1024.0 <= 32e6 && (last - after_100) * 1024.0 < 1e6;
        rss_met = Some(rss_met.unwrap_or(true) && met);
    }
    let _ = writeln!(
        out,
        "| peak RSS over {} warm invocations | flat, <= 32 MB | {} | {} |",
        record["lambda"]["warm_invocations"],
        rss_texts.join("; "),
        verdict(rss_met)
    );

    let rsa = &build["rsa_in_functions"];
    let _ = writeln!(
        out,
        "| RUSTSEC-2023-0071 (Marvin) | the `rsa` crate on no request path | {} | {} |",
        match rsa.as_bool() {
            Some(true) => "`rsa` is in the functions' dependency tree",
            Some(false) => "`rsa` is in no function's dependency tree (`cargo tree -e normal`)",
            None => "–",
        },
        verdict(rsa.as_bool().map(|present| !present))
    );
    out
}

fn render(record: &Value, history: &[Value], notes: &str, results: &str) -> String {
    let machine = &record["machine"];
    let lambda = &record["lambda"];
    let functions = &lambda["functions"];
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `scripts/bench.sh` (see the README's *Benchmarks* section) on {}, commit `{}`{}, run `{}`; \
         raw numbers in `{results}/{}.json`.\n",
        record["date"].as_str().unwrap_or("?"),
        record["commit"].as_str().unwrap_or("?"),
        if record["dirty"].as_bool() == Some(true) {
            " with uncommitted changes"
        } else {
            ""
        },
        record["label"].as_str().unwrap_or("?"),
        record["label"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "Machine: {}, {} cores, {} GiB, {}; {}. Release profile: `{}`. Sizes in MB are 10^6 bytes; \
         times are medians unless said otherwise. The machine is shared: other builds may have run \
         at the same time (load average when the run started: {}), which is why every cold start is \
         compared with the bare function of the same round.\n",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["rustc"].as_str().unwrap_or("?"),
        record["release_profile"]
            .as_array()
            .map(|lines| lines
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        record["build"]["loadavg_at_start"].as_str().unwrap_or("?"),
    );

    let _ = writeln!(out, "## Goals\n\n{}", goals(record));

    let _ = writeln!(
        out,
        "## Cold start\n\nProcess start to its first `GET /2018-06-01/runtime/invocation/next` on \
         the harness's Runtime API emulator (init), then the first event (first invoke) and the two \
         together (first response); {} cold starts of each, round by round (bare function, then a \
         login: send, authenticate the code, authenticate the session), the functions on DynamoDB \
         and SNS in moto. Environment as Lambda's (`env_clear`, no HOME), 256 MB declared.\n",
        lambda["cold_runs"]
    );
    let _ = writeln!(
        out,
        "CPU: user + system time of the process, from `wait4`, stopped at its first `GET next` (a start of its own) or after \
         its first answer; it hardly moves with the machine's load, and at Lambda's 256 MB (about 0.14 vCPU after \
         init) CPU time is what a request waits for.\n\n\
         | function | init (min–max) ms | ratio to bare | init CPU ms | CPU ratio | first invoke ms | first response ms | first response CPU ms | status | RSS after first, MB |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in [BASELINE, SEND, AUTHENTICATE, SESSIONS] {
        let cold = &functions[f]["cold"];
        if cold.is_null() {
            continue;
        }
        let _ = writeln!(
            out,
            "| `{f}` | {} ({}–{}) | {} | {} | {} | {} | {} | {} | {} | {} |",
            ms(&cold["init"]["median_ms"]),
            ms(&cold["init"]["min_ms"]),
            ms(&cold["init"]["max_ms"]),
            ratio(&cold["init_ratio_to_baseline"]),
            ms(&cold["init_cpu"]["median_ms"]),
            ratio(&cold["init_cpu_ratio_to_baseline"]),
            ms(&cold["first_invoke"]["median_ms"]),
            ms(&cold["first_response"]["median_ms"]),
            ms(&cold["first_response_cpu"]["median_ms"]),
            cold["statuses"],
            kib_as_mb(&cold["rss_kib_after_first"]),
        );
    }

    if [BASELINE, SEND, SESSIONS]
        .iter()
        .any(|f| !functions[*f]["init_files"].is_null())
    {
        let _ = writeln!(
            out,
            "\nFiles the init opens (one more cold start under `strace -f -e trace=open,openat,openat2`, up to the first `GET next`):\n\n| function | open calls | files opened | of them certificates |\n|---|---|---|---|"
        );
        for f in [BASELINE, SEND, AUTHENTICATE, SESSIONS] {
            let files = &functions[f]["init_files"];
            if files.is_null() {
                continue;
            }
            let _ = writeln!(
                out,
                "| `{f}` | {} | {} | {} |",
                files["open_calls"], files["files_opened"], files["certificate_files_opened"]
            );
        }
    }

    let _ = writeln!(
        out,
        "\n## Warm\n\n{} events in a row to one process per function (through the emulator, against moto, \
         which dominates the latency of the functions: it is a single-threaded Python server). RSS \
         from `/proc/<pid>/status`.\n\n| function | p50 ms | p99 ms | RSS after 1 / 10 / 100 / all, MB | peak RSS MB | statuses |\n|---|---|---|---|---|---|",
        lambda["warm_invocations"]
    );
    for f in [BASELINE, SEND, SESSIONS] {
        let warm = &functions[f]["warm"];
        if warm.is_null() {
            continue;
        }
        let rss = warm["rss_kib"]
            .as_object()
            .map(|m| m.values().map(kib_as_mb).collect::<Vec<_>>().join(" / "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{f}` | {} | {} | {rss} | {} | {} |",
            ms(&warm["latency"]["median_ms"]),
            ms(&warm["latency"]["p99_ms"]),
            kib_as_mb(&warm["peak_rss_kib"]),
            warm["statuses"]
        );
    }

    let criterion = &record["criterion"];
    let _ = writeln!(
        out,
        "\n## In-process (criterion)\n\n`shared::api::handle` on the in-memory adapters (`bench/benches/handlers.rs`), \
         one request at a time; `rs256_sign` is one session JWT signed by `JwtKeys::sign`, the floor of \
         any request that starts a session.\n\n| bench | median ms | mean ms |\n|---|---|---|"
    );
    if let Some(benches) = criterion.as_object() {
        for (name, figures) in benches {
            let _ = writeln!(
                out,
                "| `{name}` | {} | {} |",
                ns_as_ms(&figures["median_ns"]),
                ns_as_ms(&figures["mean_ns"])
            );
        }
    }

    let flows = &record["flows"];
    let _ = writeln!(
        out,
        "\n## Local server\n\nFull login flows (`login_or_create`, then `authenticate` with the code, \
         which starts a session) against `local-api` on the in-memory store, over HTTP/1.1 keep-alive \
         from the harness on the same machine.\n\n| figure | value |\n|---|---|"
    );
    let _ = writeln!(
        out,
        "| one client: flows per second | {} |\n| one client: `login_or_create` p50 / p99 ms | {} / {} |\n| one client: `authenticate` p50 / p99 ms | {} / {} |\n| {} clients at once: flows per second | {} |\n| server peak RSS MB | {} |",
        flows["sequential"]["flows_per_second"],
        ms(&flows["sequential"]["login_or_create"]["median_ms"]),
        ms(&flows["sequential"]["login_or_create"]["p99_ms"]),
        ms(&flows["sequential"]["authenticate"]["median_ms"]),
        ms(&flows["sequential"]["authenticate"]["p99_ms"]),
        flows["concurrent"]["clients"],
        flows["concurrent"]["flows_per_second"],
        kib_as_mb(&flows["server_peak_rss_kib"]),
    );

    let sizes = &record["sizes"];
    let _ = writeln!(
        out,
        "\n## Sizes\n\nThe release binary (stripped by the profile) and the `bootstrap` zip Lambda gets \
         (deflate, as `cargo lambda` and `sam build` package it). x86-64 from `cargo build --release`, \
         arm64 from `cargo lambda build --release --arm64`.\n\n| function | x86-64 binary MB | x86-64 zip MB | arm64 binary MB | arm64 zip MB |\n|---|---|---|---|---|"
    );
    let mut names: Vec<String> = sizes["x86_64"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for name in sizes["aarch64"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names.sort();
    for name in &names {
        let (x86, arm) = (&sizes["x86_64"][name], &sizes["aarch64"][name]);
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} | {} |",
            mb(&x86["binary_bytes"]),
            mb(&x86["zip_bytes"]),
            mb(&arm["binary_bytes"]),
            mb(&arm["zip_bytes"])
        );
    }

    let build = &record["build"];
    let _ = writeln!(
        out,
        "\n## Build times\n\nFrom a built dependency cache: `shared/src/lib.rs` touched, so the \
         workspace's own crates compile again and every function links again.\n\n| build | time |\n|---|---|"
    );
    for (key, what) in [
        (
            "x86_64_one_function_s",
            "one function, x86-64 (`cargo build --release --bin sessions-authenticate`, after touching its `main`): the link",
        ),
        (
            "x86_64_all_functions_s",
            "every function, x86-64 (`cargo build --release` of the three function packages)",
        ),
        (
            "arm64_all_functions_s",
            "every function, arm64 (`cargo lambda build --release --arm64`, the documented command)",
        ),
        (
            "sam_build_s",
            "`sam build` (arm64, one `cargo lambda build` per function)",
        ),
        (
            "x86_64_first_build_s",
            "the script's first step, `cargo build --release --workspace --bins` (all of it on a fresh clone; little when the target folder is warm)",
        ),
    ] {
        if !build[key].is_null() {
            let _ = writeln!(out, "| {what} | {} |", seconds(&build[key]));
        }
    }

    let _ = writeln!(
        out,
        "\n## History\n\nOne row per record in `{results}/` (each step of the work measured by the same \
         script), oldest first.\n\n| run | date | load at start | commit | init ratio send / session | init CPU ratio send / session | first response send / session ms | zip x86-64 / arm64 max MB | build all arm64 | sign ms | authenticate local p50 ms | peak RSS send / session MB |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for past in history {
        let f = &past["lambda"]["functions"];
        let zip = |arch| {
            largest_zip(&past["sizes"], arch)
                .map(|(_, b)| format!("{:.2}", b / 1e6))
                .unwrap_or_else(|| "–".to_owned())
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | `{}` | {} / {} | {} / {} | {} / {} | {} / {} | {} | {} | {} | {} / {} |",
            past["label"].as_str().unwrap_or("?"),
            past["date"]
                .as_str()
                .unwrap_or("?")
                .get(..10)
                .unwrap_or("?"),
            past["build"]["loadavg_at_start"]
                .as_str()
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?"),
            past["commit"].as_str().unwrap_or("?"),
            ratio(&f[SEND]["cold"]["init_ratio_to_baseline"]),
            ratio(&f[SESSIONS]["cold"]["init_ratio_to_baseline"]),
            ratio(&f[SEND]["cold"]["init_cpu_ratio_to_baseline"]),
            ratio(&f[SESSIONS]["cold"]["init_cpu_ratio_to_baseline"]),
            ms(&f[SEND]["cold"]["first_response"]["median_ms"]),
            ms(&f[SESSIONS]["cold"]["first_response"]["median_ms"]),
            zip("x86_64"),
            zip("aarch64"),
            seconds(&past["build"]["arm64_all_functions_s"]),
            ns_as_ms(&past["criterion"]["rs256_sign"]["median_ns"]),
            ms(&past["flows"]["sequential"]["authenticate"]["median_ms"]),
            kib_as_mb(&f[SEND]["warm"]["peak_rss_kib"]),
            kib_as_mb(&f[SESSIONS]["warm"]["peak_rss_kib"]),
        );
    }
    if !notes.trim().is_empty() {
        let _ = writeln!(out, "\n{}", notes.trim_end());
    }
    out
}
