//! `bench lambda`: each function binary as Lambda runs it, through the Runtime API emulator,
//! against moto (DynamoDB, SNS), beside the bare `lambda_http` baseline.
//!
//! - Cold: `--cold-runs` rounds; each round starts every function once, in turn, and times
//!   process start -> first `GET next` (init) and -> first answer (first response). A round is a
//!   real login: `otp-sms-login-or-create` sends a code (read back from moto's SNS records),
//!   `otp-authenticate` spends it, `sessions-authenticate` checks the session it started.
//! - Warm: one process per function answers `--warm` events in a row: latency p50/p99, and RSS
//!   after 1, 10, 100 and all events, and its peak.
//! - `--strace`: one more cold start per function under strace, counting the files its init opens.
//!
//! The table and app come from the local server on the AWS backend (it creates both), with the
//! same keys as the functions.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench_harness::http1::Client;
use bench_harness::{Started, millis, proc_status_kib, start_function};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::flows::{LocalApi, MANAGEMENT_KEY};
use crate::{Args, round3, summary, write_json};

pub const BASELINE: &str = "hello-baseline";
const SEND: &str = "otp-sms-login-or-create";
const AUTHENTICATE: &str = "otp-authenticate";
const SESSIONS: &str = "sessions-authenticate";
/// The order of a round: the baseline first, then one login.
const FUNCTIONS: [&str; 4] = [BASELINE, SEND, AUTHENTICATE, SESSIONS];
const CODE_HASH_KEY: &str = "bench-code-hash-key-not-a-secret-0123456789";
const KEY_ENCRYPTION_KEY: &str = "bench-key-encryption-key-not-a-secret-0123456789";
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

struct Setup {
    bin_dir: PathBuf,
    logs: PathBuf,
    env: Vec<(String, String)>,
    auth: String,
    events: Value,
}

impl Setup {
    fn binary(&self, function: &str) -> PathBuf {
        self.bin_dir.join(function)
    }

    fn log(&self, function: &str) -> PathBuf {
        self.logs.join(format!("{function}.log"))
    }

    /// The function's event from `events/`, with this run's app credentials and `body`.
    fn event(&self, function: &str, body: Option<&Value>) -> Vec<u8> {
        let mut event = self.events[function].clone();
        if let Some(body) = body {
            let text = body.to_string();
            event["headers"]["content-length"] = json!(text.len().to_string());
            event["body"] = json!(text);
        }
        if event["headers"].get("authorization").is_some() {
            event["headers"]["authorization"] = json!(self.auth);
        }
        event.to_string().into_bytes()
    }

    /// The function's event body from `events/` with `changes` merged in.
    fn body_with(&self, function: &str, changes: Value) -> Value {
        let mut body: Value = self.events[function]["body"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_else(|| json!({}));
        if let (Some(body), Some(changes)) = (body.as_object_mut(), changes.as_object()) {
            for (key, value) in changes {
                body.insert(key.clone(), value.clone());
            }
        }
        body
    }
}

/// What one cold start measured.
struct Cold {
    /// CPU time (user + system) of a process stopped at its first `GET next`.
    init_cpu_ms: Option<f64>,
    /// CPU time of the process stopped after its first answer.
    first_response_cpu_ms: Option<f64>,
    init_ms: f64,
    first_invoke_ms: f64,
    first_response_ms: f64,
    status: u64,
    body: Value,
    rss_kib: Option<u64>,
}

/// The API Gateway response a function answered: its status and JSON body.
fn api_response(answer: &[u8]) -> (u64, Value) {
    let response: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    let status = response["statusCode"].as_u64().unwrap_or(0);
    let body = response["body"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn wait_ready(started: &Started, function: &str) -> Result<std::time::Instant, String> {
    started.api.wait_first_poll(INIT_TIMEOUT).ok_or_else(|| {
        format!(
            "{function} did not ask for an event within {INIT_TIMEOUT:?} (init error: {:?})",
            started.api.init_error()
        )
    })
}

fn cold_once(setup: &Setup, function: &str, event: &[u8]) -> Result<Cold, String> {
    // `BENCH_WRAP="strace -f -tt -o trace.txt"` runs each cold start under a tool, to see where
    // its time goes (the figures are then the tool's, not the function's).
    let wrapper: Vec<String> = std::env::var("BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let started = start_function(
        &setup.binary(function),
        function,
        &setup.env,
        &setup.log(function),
        &wrapper,
    )
    .map_err(|e| format!("cannot start {function}: {e}"))?;
    let result = (|| -> Result<Cold, String> {
        let first_poll = wait_ready(&started, function)?;
        let (queued, answer) = started.api.invoke(event, INVOKE_TIMEOUT)?;
        let (status, body) = api_response(&answer.body);
        Ok(Cold {
            init_cpu_ms: None,
            first_response_cpu_ms: None,
            init_ms: millis(started.at, first_poll),
            first_invoke_ms: millis(queued, answer.at),
            first_response_ms: millis(started.at, answer.at),
            status,
            body,
            rss_kib: proc_status_kib(started.pid(), "VmRSS"),
        })
    })();
    let cpu = started.stop_with_cpu_ms();
    let mut cold = result?;
    cold.first_response_cpu_ms = cpu;
    cold.init_cpu_ms = init_cpu_ms(setup, function);
    Ok(cold)
}

/// The CPU time of one more start of `function`, stopped as soon as it asks for an event.
fn init_cpu_ms(setup: &Setup, function: &str) -> Option<f64> {
    let started = start_function(
        &setup.binary(function),
        function,
        &setup.env,
        &setup.log(function),
        &[],
    )
    .ok()?;
    let ready = started.api.wait_first_poll(INIT_TIMEOUT);
    let cpu = started.stop_with_cpu_ms();
    ready.and(cpu)
}

/// Creates a secret in the Secrets Manager stand-in (moto, on `AWS_ENDPOINT_URL`) and returns
/// its ARN: the functions read theirs from there at cold start, as deployed ones do.
fn create_secret(name: &str, value: &str) -> Result<String, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|e| e.to_string())?;
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    // moto reads the region from the credential scope and checks no signature.
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/secretsmanager/aws4_request, \
         SignedHeaders=host, Signature=0"
    );
    let body = json!({"Name": name, "SecretString": value}).to_string();
    let response = Client::new(authority)
        .request(
            "POST",
            "/",
            &[
                ("connection", "close"),
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "secretsmanager.CreateSecret"),
                ("authorization", authorization.as_str()),
            ],
            body.as_bytes(),
        )
        .map_err(|e| format!("CreateSecret {name}: {e}"))?;
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    answer["ARN"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("CreateSecret {name}: {} {answer}", response.status()))
}

/// `GET /moto-api/data.json` of the SNS stand-in, and the code of the newest SMS to `phone`.
fn sms_code(phone: &str) -> Option<String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok()?;
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let response = Client::new(authority)
        .request(
            "GET",
            "/moto-api/data.json",
            &[("connection", "close")],
            b"",
        )
        .ok()?;
    let data: Value = serde_json::from_slice(&response.body).ok()?;
    let mut messages = Vec::new();
    collect_sms(&data, phone, &mut messages);
    let text = messages.last()?;
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

fn collect_sms(value: &Value, phone: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("phone_number").and_then(Value::as_str) == Some(phone)
                && let Some(message) = map.get("message").and_then(Value::as_str)
            {
                out.push(message.to_owned());
            }
            map.values().for_each(|v| collect_sms(v, phone, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_sms(v, phone, out)),
        _ => {}
    }
}

/// One cold round: the baseline, then a login through the three functions.
fn cold_round(setup: &Setup, round: usize, results: &mut [Vec<Cold>; 4]) -> Result<(), String> {
    let phone = format!("+120255501{:02}", 10 + round % 90);
    let baseline = cold_once(setup, BASELINE, &setup.event(SESSIONS, None))?;
    results[0].push(baseline);

    let body = setup.body_with(SEND, json!({"phone_number": phone}));
    let sent = cold_once(setup, SEND, &setup.event(SEND, Some(&body)))?;
    let method_id = sent.body["phone_id"].as_str().unwrap_or("").to_owned();
    results[1].push(sent);

    let code = sms_code(&phone).unwrap_or_else(|| "000000".to_owned());
    let body = setup.body_with(AUTHENTICATE, json!({"method_id": method_id, "code": code}));
    let authenticated = cold_once(setup, AUTHENTICATE, &setup.event(AUTHENTICATE, Some(&body)))?;
    let token = authenticated.body["session_token"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    results[2].push(authenticated);

    let body = setup.body_with(SESSIONS, json!({"session_token": token}));
    results[3].push(cold_once(
        setup,
        SESSIONS,
        &setup.event(SESSIONS, Some(&body)),
    )?);
    Ok(())
}

fn cold_summary(runs: &[Cold], baseline_init_median: f64, baseline_cpu_median: f64) -> Value {
    let init: Vec<f64> = runs.iter().map(|c| c.init_ms).collect();
    let init_cpu: Vec<f64> = runs.iter().filter_map(|c| c.init_cpu_ms).collect();
    let first_response_cpu: Vec<f64> = runs
        .iter()
        .filter_map(|c| c.first_response_cpu_ms)
        .collect();
    let init_cpu_summary = summary(&init_cpu);
    let cpu_ratio =
        init_cpu_summary["median_ms"].as_f64().unwrap_or(f64::NAN) / baseline_cpu_median;
    let first_invoke: Vec<f64> = runs.iter().map(|c| c.first_invoke_ms).collect();
    let first_response: Vec<f64> = runs.iter().map(|c| c.first_response_ms).collect();
    let init_summary = summary(&init);
    let ratio = init_summary["median_ms"].as_f64().unwrap_or(f64::NAN) / baseline_init_median;
    let mut statuses: Vec<u64> = runs.iter().map(|c| c.status).collect();
    statuses.sort_unstable();
    statuses.dedup();
    json!({
        "init": init_summary,
        "init_ratio_to_baseline": round3(ratio),
        "init_cpu": init_cpu_summary,
        "init_cpu_ratio_to_baseline": round3(cpu_ratio),
        "first_response_cpu": summary(&first_response_cpu),
        "first_invoke": summary(&first_invoke),
        "first_response": summary(&first_response),
        "statuses": statuses,
        "rss_kib_after_first": runs.iter().filter_map(|c| c.rss_kib).max(),
        "init_ms_each": init.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
    })
}

/// `count` events in a row to one process; `event(i)` makes the i-th.
fn warm(
    setup: &Setup,
    function: &str,
    count: usize,
    event: impl Fn(usize) -> Vec<u8>,
) -> Result<Value, String> {
    let started = start_function(
        &setup.binary(function),
        function,
        &setup.env,
        &setup.log(function),
        &[],
    )
    .map_err(|e| format!("cannot start {function}: {e}"))?;
    let result = (|| {
        wait_ready(&started, function)?;
        let mut latencies = Vec::with_capacity(count);
        let mut statuses = std::collections::BTreeMap::<u64, usize>::new();
        let mut rss = serde_json::Map::new();
        for i in 0..count {
            let (queued, answer) = started.api.invoke(&event(i), INVOKE_TIMEOUT)?;
            latencies.push(millis(queued, answer.at));
            *statuses.entry(api_response(&answer.body).0).or_default() += 1;
            if [1, 10, 100, count].contains(&(i + 1)) {
                rss.insert(
                    format!("after_{}", i + 1),
                    json!(proc_status_kib(started.pid(), "VmRSS")),
                );
            }
        }
        Ok(json!({
            "invocations": count,
            "latency": summary(&latencies),
            "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "rss_kib": rss,
            "peak_rss_kib": proc_status_kib(started.pid(), "VmHWM"),
        }))
    })();
    started.stop();
    result
}

/// One cold start under strace: how many files the init opens (before the first `GET next`).
fn files_opened(setup: &Setup, function: &str) -> Result<Value, String> {
    let trace = setup.logs.join(format!("strace-{function}.txt"));
    let wrapper: Vec<String> = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=open,openat,openat2",
        "-o",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([trace.display().to_string()])
    .collect();
    let mut started = start_function(
        &setup.binary(function),
        function,
        &setup.env,
        &setup.log(function),
        &wrapper,
    )
    .map_err(|e| format!("cannot start strace: {e}"))?;
    let ready = wait_ready(&started, function);
    // The traced process is strace's child: stop it, and strace ends with it.
    let children = std::fs::read_to_string(format!(
        "/proc/{pid}/task/{pid}/children",
        pid = started.pid()
    ))
    .unwrap_or_default();
    for pid in children.split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
    let _ = started.child.wait();
    started.stop();
    ready?;
    let text = std::fs::read_to_string(&trace).map_err(|e| format!("{trace:?}: {e}"))?;
    let opens: Vec<&str> = text.lines().filter(|line| line.contains("open")).collect();
    let opened: Vec<&str> = opens
        .iter()
        .filter(|line| !line.contains("= -1 "))
        .copied()
        .collect();
    let certificates = opened
        .iter()
        .filter(|line| line.contains("/ssl/") || line.contains("/pki/") || line.contains("cert"))
        .count();
    Ok(json!({
        "open_calls": opens.len(),
        "files_opened": opened.len(),
        "certificate_files_opened": certificates,
    }))
}

fn read_events(folder: &str) -> Result<Value, String> {
    let mut events = serde_json::Map::new();
    for function in [SEND, AUTHENTICATE, SESSIONS] {
        let path = Path::new(folder).join(format!("{function}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}"))?;
        let event: Value = serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
        events.insert(function.to_owned(), event);
    }
    Ok(Value::Object(events))
}

pub fn run(args: &Args) -> Result<(), String> {
    let bin_dir = PathBuf::from(args.text("bin-dir", "target/release"));
    let out = args.required("out")?;
    let cold_runs = args.number("cold-runs", 9)?;
    let warm_count = args.number("warm", 1000)?;
    let logs = PathBuf::from(args.text("logs", "target/bench/logs"));
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let key_path = args.required("jwt-key")?;
    let pem = std::fs::read_to_string(&key_path).map_err(|e| format!("{key_path}: {e}"))?;
    for name in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"] {
        if std::env::var(name).is_err() {
            return Err(format!(
                "{name} is not set: run this under scripts/with-moto.sh"
            ));
        }
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let table = format!("bench-{stamp}");
    let management_hash: String = Sha256::digest(MANAGEMENT_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The functions get their secrets as deployed ones do: ARNs, read at cold start.
    let secret_arns = [
        ("MANAGEMENT_KEY_SHA256_SECRET_ARN", management_hash.as_str()),
        ("CODE_HASH_KEY_SECRET_ARN", CODE_HASH_KEY),
        ("KEY_ENCRYPTION_KEY_SECRET_ARN", KEY_ENCRYPTION_KEY),
        ("JWT_SIGNING_KEY_SECRET_ARN", pem.as_str()),
    ]
    .iter()
    .map(|(variable, value)| {
        create_secret(&format!("{table}-{variable}"), value).map(|arn| (*variable, arn))
    })
    .collect::<Result<Vec<_>, String>>()?;
    let env: Vec<(String, String)> = [
        ("TABLE_NAME", table.as_str()),
        ("DEFAULT_EMAIL_FROM", "no-reply@example.com"),
        ("RUST_LOG", "info"),
        // Warm runs send to one number many times.
        ("SEND_COOLDOWN_SECONDS", "0"),
        ("SEND_WINDOW_MAX", "1000000"),
        ("IP_WINDOW_MAX", "1000000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain(
        secret_arns
            .iter()
            .map(|(k, arn)| ((*k).to_owned(), arn.clone())),
    )
    .collect();

    // The local server takes the values themselves, and seals the app's key under the same
    // key-encryption key.
    let seeding_env: Vec<(String, String)> = env
        .iter()
        .cloned()
        .chain([
            ("LOCAL_BACKEND".to_owned(), "aws".to_owned()),
            ("SES_FROM".to_owned(), "no-reply@example.com".to_owned()),
            ("CODE_HASH_KEY".to_owned(), CODE_HASH_KEY.to_owned()),
            (
                "KEY_ENCRYPTION_KEY".to_owned(),
                KEY_ENCRYPTION_KEY.to_owned(),
            ),
        ])
        .collect();
    let server = LocalApi::start(
        &bin_dir.join("local-api"),
        &seeding_env,
        &logs.join("local-api-seed.log"),
    )?;
    let auth = server.basic_auth();
    server.stop();

    let setup = Setup {
        bin_dir,
        logs,
        env,
        auth,
        events: read_events(&args.text("events", "events"))?,
    };

    let mut cold: [Vec<Cold>; 4] = Default::default();
    for round in 0..cold_runs {
        cold_round(&setup, round, &mut cold)?;
        eprint!(".");
    }
    eprintln!(" {cold_runs} cold rounds");
    let baseline_init = summary(&cold[0].iter().map(|c| c.init_ms).collect::<Vec<_>>());
    let baseline_median = baseline_init["median_ms"].as_f64().unwrap_or(f64::NAN);
    let baseline_cpu = summary(
        &cold[0]
            .iter()
            .filter_map(|c| c.init_cpu_ms)
            .collect::<Vec<_>>(),
    );
    let baseline_cpu_median = baseline_cpu["median_ms"].as_f64().unwrap_or(f64::NAN);
    let mut functions = serde_json::Map::new();
    for (i, function) in FUNCTIONS.iter().enumerate() {
        functions.insert(
            (*function).to_owned(),
            json!({"cold": cold_summary(&cold[i], baseline_median, baseline_cpu_median)}),
        );
    }

    // Warm: the baseline, a send to one number, and one session checked over and over.
    let token = cold[2]
        .last()
        .and_then(|c| c.body["session_token"].as_str())
        .unwrap_or("")
        .to_owned();
    let send_body = setup.body_with(SEND, json!({"phone_number": "+12025550199"}));
    let sessions_body = setup.body_with(SESSIONS, json!({"session_token": token}));
    let warm_runs: [(&str, Vec<u8>); 3] = [
        (BASELINE, setup.event(SESSIONS, None)),
        (SEND, setup.event(SEND, Some(&send_body))),
        (SESSIONS, setup.event(SESSIONS, Some(&sessions_body))),
    ];
    for (function, event) in &warm_runs {
        let figures = warm(&setup, function, warm_count, |_| event.clone())?;
        eprintln!("warm {function}: {}", figures["latency"]);
        functions[*function]["warm"] = figures;
    }

    if args.flag("strace") {
        for function in FUNCTIONS {
            let opened = files_opened(&setup, function).unwrap_or_else(|e| json!({"error": e}));
            functions[function]["init_files"] = opened;
        }
    }

    let result = json!({
        "cold_runs": cold_runs,
        "warm_invocations": warm_count,
        "baseline": BASELINE,
        "functions": functions,
    });
    write_json(&out, &result)?;
    for function in FUNCTIONS {
        let cold = &result["functions"][function]["cold"];
        println!(
            "{function:<26} init {} ms ({}x; CPU {} ms, {}x), first response {} ms (CPU {} ms), statuses {}",
            cold["init"]["median_ms"],
            cold["init_ratio_to_baseline"],
            cold["init_cpu"]["median_ms"],
            cold["init_cpu_ratio_to_baseline"],
            cold["first_response"]["median_ms"],
            cold["first_response_cpu"]["median_ms"],
            cold["statuses"]
        );
    }
    Ok(())
}
