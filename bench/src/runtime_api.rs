//! A minimal Lambda Runtime API (`/2018-06-01/runtime/...`): hands out queued events on
//! `GET invocation/next`, records answers posted to `invocation/{id}/response` and `/error`, and
//! failures posted to `init/error`. It notes when the first `GET next` arrived: a function's init
//! ends there, as on Lambda.
//!
//! One instance serves one function process, on its own port; each connection gets a thread.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http1::read_message;

const PREFIX: &str = "/2018-06-01/runtime/";

/// What a function answered to one event.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `false` when the function posted to `invocation/{id}/error`.
    pub ok: bool,
    pub body: Vec<u8>,
    /// When the answer arrived.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    pending: VecDeque<(String, Vec<u8>)>,
    answers: HashMap<String, Answer>,
    first_poll: Option<Instant>,
    init_error: Option<String>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl RuntimeApi {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.lock().closed {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let serving = accepting.clone();
                thread::spawn(move || serve_connection(stream, &serving));
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            next_id: AtomicU64::new(1),
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// When the function first asked for an event, waiting up to `timeout`.
    pub fn wait_first_poll(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.first_poll.is_some() || state.init_error.is_some() {
                return state.first_poll;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// What the function posted to `init/error`, if it did.
    pub fn init_error(&self) -> Option<String> {
        self.shared.lock().init_error.clone()
    }

    /// Queues `event` and waits up to `timeout` for the function's answer; the answer's `at`
    /// minus the returned queue time is the invocation's duration as the caller sees it.
    pub fn invoke(&self, event: &[u8], timeout: Duration) -> Result<(Instant, Answer), String> {
        let id = format!(
            "bench-{:08}-0000-4000-8000-000000000000",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let queued = Instant::now();
        let deadline = queued + timeout;
        let mut state = self.shared.lock();
        state.pending.push_back((id.clone(), event.to_vec()));
        self.shared.changed.notify_all();
        loop {
            if let Some(answer) = state.answers.remove(&id) {
                return Ok((queued, answer));
            }
            if let Some(error) = &state.init_error {
                return Err(format!("the function failed its init: {error}"));
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(format!("no answer within {timeout:?}"));
            };
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        // Wakes the accept loop so that it sees `closed`.
        let _ = TcpStream::connect(self.address);
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).is_ok()
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(reader_stream) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader_stream);
    let mut writer = stream;
    while let Ok(Some(request)) = read_message(&mut reader, false) {
        let arrived = Instant::now();
        let mut parts = request.start_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let route = path.strip_prefix(PREFIX).unwrap_or("");
        let written = match (method, route) {
            ("GET", "invocation/next") => {
                let Some((id, event)) = next_event(shared, arrived) else {
                    return;
                };
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() + 10_000)
                    .unwrap_or(0);
                let headers = [
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
                    ),
                ];
                respond(&mut writer, "200 OK", &headers, &event)
            }
            ("POST", "init/error") => {
                let mut state = shared.lock();
                state.init_error = Some(String::from_utf8_lossy(&request.body).into_owned());
                shared.changed.notify_all();
                drop(state);
                respond(&mut writer, "202 Accepted", &[], b"{}")
            }
            ("POST", route) if route.starts_with("invocation/") => {
                let rest = &route["invocation/".len()..];
                let answer = rest
                    .strip_suffix("/response")
                    .map(|id| (id, true))
                    .or_else(|| rest.strip_suffix("/error").map(|id| (id, false)));
                match answer {
                    Some((id, ok)) => {
                        let mut state = shared.lock();
                        state.answers.insert(
                            id.to_owned(),
                            Answer {
                                ok,
                                body: request.body,
                                at: arrived,
                            },
                        );
                        shared.changed.notify_all();
                        drop(state);
                        respond(&mut writer, "202 Accepted", &[], b"{}")
                    }
                    None => respond(&mut writer, "404 Not Found", &[], b"{}"),
                }
            }
            _ => respond(&mut writer, "404 Not Found", &[], b"{}"),
        };
        if !written {
            return;
        }
    }
}

/// Blocks until an event is queued; `None` once the emulator is dropped.
fn next_event(shared: &Shared, arrived: Instant) -> Option<(String, Vec<u8>)> {
    let mut state = shared.lock();
    if state.first_poll.is_none() {
        state.first_poll = Some(arrived);
        shared.changed.notify_all();
    }
    loop {
        if state.closed {
            return None;
        }
        if let Some(event) = state.pending.pop_front() {
            return Some(event);
        }
        state = shared
            .changed
            .wait_timeout(state, Duration::from_millis(500))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}
