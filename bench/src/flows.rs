//! `bench flows`: full login flows per second through the local server on the in-memory store,
//! and the latency of each step of one flow. A flow is `POST /v1/otps/sms/login_or_create` then
//! `POST /v1/otps/authenticate` with the code, which starts a new session (an RS256 JWT).
//! Each client logs in as its own test identifier (a fixed code, no send limits), so reading the
//! code costs nothing and the development outbox need not be read.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bench_harness::http1::Client;
use bench_harness::{millis, proc_status_kib};
use serde_json::{Value, json};

use crate::{Args, free_port, round3, summary, write_json};

pub const MANAGEMENT_KEY: &str = "bench-management-key";
const TEST_CODE: &str = "123456";

/// A running local server and its development app.
pub struct LocalApi {
    pub child: Child,
    pub authority: String,
    pub app_id: String,
    pub secret: String,
}

impl LocalApi {
    /// Starts `binary` with `env` on a free port and reads the development app it prints; the
    /// rest of its output goes to `log`.
    pub fn start(binary: &Path, env: &[(String, String)], log: &Path) -> Result<LocalApi, String> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log).map_err(|e| format!("{log:?}: {e}"))?;
        let mut child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PORT", port.to_string())
            .env("MANAGEMENT_KEY", MANAGEMENT_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start {binary:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut app_id, mut secret) = (None, None);
        while app_id.is_none() || secret.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{binary:?} stopped before printing its app; see {log:?}"
                ));
            };
            if let Some(value) = line.split("APP_ID=").nth(1) {
                app_id = Some(value.trim().to_owned());
            }
            if let Some(value) = line.split("APP_SECRET=").nth(1) {
                secret = Some(value.trim().to_owned());
            }
        }
        // Its request logs must be drained, or the server blocks on a full pipe.
        thread::spawn(move || {
            let mut log_file = log_file;
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(log_file, "{line}");
            }
        });
        Ok(LocalApi {
            child,
            authority: format!("127.0.0.1:{port}"),
            app_id: app_id.unwrap_or_default(),
            secret: secret.unwrap_or_default(),
        })
    }

    pub fn basic_auth(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.app_id, self.secret))
        )
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(client: &mut Client, path: &str, auth: &str, body: &Value) -> Result<Value, String> {
    let response = client
        .request(
            "POST",
            path,
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .map_err(|e| format!("POST {path}: {e}"))?;
    let json: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !(200..300).contains(&response.status()) {
        return Err(format!("POST {path}: {} {json}", response.status()));
    }
    Ok(json)
}

/// One login: send a code, authenticate it. Returns each step's duration in milliseconds.
fn login(client: &mut Client, auth: &str, phone: &str) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let sent = post(
        client,
        "/v1/otps/sms/login_or_create",
        auth,
        &json!({"phone_number": phone}),
    )?;
    let sent_at = Instant::now();
    let method_id = sent["phone_id"].as_str().ok_or("no phone_id")?.to_owned();
    let authenticated = post(
        client,
        "/v1/otps/authenticate",
        auth,
        &json!({"method_id": method_id, "code": TEST_CODE, "session_duration_minutes": 60}),
    )?;
    let done = Instant::now();
    if authenticated["session_jwt"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err("authenticate returned no session_jwt".into());
    }
    Ok((millis(start, sent_at), millis(sent_at, done)))
}

fn phone_of(client: usize) -> String {
    format!("+120255502{:02}", client % 100)
}

pub fn run(args: &Args) -> Result<(), String> {
    let binary = args.text("local-api", "target/release/local-api");
    let out = args.required("out")?;
    let seconds = args.number("seconds", 5)?;
    let clients = args.number("clients", 4)?.max(1);
    let sequential = args.number("sequential", 500)?;
    let log = args.text("logs", "target/bench/logs");
    std::fs::create_dir_all(&log).map_err(|e| e.to_string())?;

    let server = LocalApi::start(
        Path::new(&binary),
        &[("LOCAL_BACKEND".to_owned(), "memory".to_owned())],
        &Path::new(&log).join("local-api-flows.log"),
    )?;
    let result = measure(&server, seconds, clients, sequential);
    let peak_rss_kib = proc_status_kib(server.child.id(), "VmHWM");
    server.stop();
    let mut result = result?;
    result["server_peak_rss_kib"] = json!(peak_rss_kib);
    write_json(&out, &result)?;
    println!(
        "flows: {} per second with {clients} clients; authenticate p50 {} ms",
        result["concurrent"]["flows_per_second"], result["sequential"]["authenticate"]["median_ms"]
    );
    Ok(())
}

fn measure(
    server: &LocalApi,
    seconds: usize,
    clients: usize,
    sequential: usize,
) -> Result<Value, String> {
    let auth = server.basic_auth();
    let mut client = Client::new(&server.authority);
    let valid_until = chrono::DateTime::from_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs() as i64
            + 30 * 86_400,
        0,
    )
    .ok_or("a bad date")?
    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let management = format!("Bearer {MANAGEMENT_KEY}");
    for c in 0..clients {
        post(
            &mut client,
            &format!("/v2/session/apps/{}/test_identifiers", server.app_id),
            &management,
            &json!({"identifier": phone_of(c), "code": TEST_CODE, "valid_until": valid_until}),
        )?;
    }

    // Warm-up, then one client alone for the latency of each step.
    for _ in 0..50 {
        login(&mut client, &auth, &phone_of(0))?;
    }
    let (mut sends, mut auths) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for _ in 0..sequential {
        let (send, authenticate) = login(&mut client, &auth, &phone_of(0))?;
        sends.push(send);
        auths.push(authenticate);
    }
    let sequential_seconds = started.elapsed().as_secs_f64();

    // Then `clients` clients at once, for throughput.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            let authority = server.authority.clone();
            let auth = auth.clone();
            thread::spawn(move || {
                let mut client = Client::new(&authority);
                while !stop.load(Ordering::Relaxed) {
                    match login(&mut client, &auth, &phone_of(c)) {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(seconds as u64));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let flows = done.load(Ordering::Relaxed);
    Ok(json!({
        "sequential": {
            "flows": sequential,
            "flows_per_second": round3(sequential as f64 / sequential_seconds),
            "login_or_create": summary(&sends),
            "authenticate": summary(&auths),
        },
        "concurrent": {
            "clients": clients,
            "seconds": round3(elapsed),
            "flows": flows,
            "failed": failed.load(Ordering::Relaxed),
            "flows_per_second": round3(flows as f64 / elapsed),
        },
    }))
}
