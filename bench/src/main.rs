//! `bench`: the measuring half of `scripts/bench.sh` (which builds, times the builds and
//! measures sizes, then calls this).
//!
//! - `bench lambda`: cold starts and first responses of function binaries through the Runtime
//!   API emulator, beside the bare baseline, then warm invocations with latency and RSS; against
//!   moto (run it under `scripts/with-moto.sh`).
//! - `bench flows`: full login flows per second through the local server.
//! - `bench report`: gathers every result into `bench/results/<label>.json` and writes
//!   `BENCHMARKS.md`.
//!
//! Figures are reported, never judged: no figure makes this fail.

mod flows;
mod lambda_runs;
mod report;

use std::collections::HashMap;
use std::process::ExitCode;

/// `--name value` options and `--flag` switches.
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let name = args[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {:?}", args[i]))?;
            match args.get(i + 1).filter(|next| !next.starts_with("--")) {
                Some(value) => {
                    values.insert(name.to_owned(), value.clone());
                    i += 2;
                }
                None => {
                    flags.push(name.to_owned());
                    i += 1;
                }
            }
        }
        Ok(Args { values, flags })
    }

    pub fn text(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    pub fn required(&self, name: &str) -> Result<String, String> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    pub fn number(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name} must be a whole number, not {text:?}")),
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|flag| flag == name)
    }
}

const USAGE: &str = "usage:
  bench lambda --bin-dir target/release --events events --jwt-key FILE --out FILE
               [--cold-runs 9] [--warm 1000] [--logs DIR] [--strace]
  bench flows  --local-api target/release/local-api --out FILE [--seconds 5] [--clients 4]
  bench report --dir target/bench --label NAME [--results bench/results]
               [--criterion target/criterion] [--markdown BENCHMARKS.md]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = Args::parse(rest).and_then(|args| match command.as_str() {
        "lambda" => lambda_runs::run(&args),
        "flows" => flows::run(&args),
        "report" => report::run(&args),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `value` as pretty JSON to `path`, creating its folder.
pub fn write_json(path: &str, value: &serde_json::Value) -> Result<(), String> {
    if let Some(parent) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {parent:?}: {e}"))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {path}: {e}"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Summary of durations in milliseconds: median, p99, min, max, count.
pub fn summary(values: &[f64]) -> serde_json::Value {
    let sorted = bench_harness::sorted(values);
    serde_json::json!({
        "n": sorted.len(),
        "median_ms": round3(bench_harness::percentile(&sorted, 0.5)),
        "p99_ms": round3(bench_harness::percentile(&sorted, 0.99)),
        "min_ms": round3(sorted.first().copied().unwrap_or(f64::NAN)),
        "max_ms": round3(sorted.last().copied().unwrap_or(f64::NAN)),
    })
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
