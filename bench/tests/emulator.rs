//! The Runtime API emulator drives a real `lambda_http` function: the baseline binary starts,
//! asks for an event, and answers it (and a second one on the same process).

use std::path::Path;
use std::time::Duration;

use bench_harness::{millis, proc_status_kib, start_function};
use serde_json::Value;

#[test]
fn the_baseline_starts_and_answers_events() {
    let event =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/sessions-jwks.json"))
            .expect("an API Gateway event");
    let log = std::env::temp_dir().join(format!("bench-emulator-{}.log", std::process::id()));
    let started = start_function(
        Path::new(env!("CARGO_BIN_EXE_hello-baseline")),
        "hello-baseline",
        &[],
        &log,
        &[],
    )
    .expect("the baseline starts");

    let first_poll = started
        .api
        .wait_first_poll(Duration::from_secs(30))
        .expect("the function asks for an event");
    assert!(millis(started.at, first_poll) > 0.0);
    for _ in 0..2 {
        let (queued, answer) = started
            .api
            .invoke(&event, Duration::from_secs(30))
            .expect("an answer");
        assert!(answer.ok);
        assert!(answer.at >= queued);
        let response: Value = serde_json::from_slice(&answer.body).expect("JSON");
        assert_eq!(response["statusCode"], 200);
        assert_eq!(response["body"], "hello");
    }
    assert!(proc_status_kib(started.pid(), "VmRSS").is_some_and(|kib| kib > 0));
    assert!(started.api.init_error().is_none());
    started.stop();
    let _ = std::fs::remove_file(log);
}
