//! The benchmark harness of the Lambda artifacts. `scripts/bench.sh` drives it; `src/main.rs`
//! is its command line; this library holds the parts its tests exercise.

pub mod http1;
pub mod runtime_api;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use runtime_api::RuntimeApi;

/// Median, 99th percentile and the like over durations in milliseconds (nearest rank).
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

pub fn millis(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// A field of `/proc/<pid>/status` in KiB: `VmRSS` (resident now) or `VmHWM` (the peak).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The environment Lambda gives a `provided.al2023` function (no HOME, no AWS config files),
/// for `function_name` talking to the emulator at `runtime_api`. Credentials and region come
/// from the caller's environment when set (moto's), else placeholders.
pub fn lambda_environment(function_name: &str, runtime_api: &str) -> Vec<(String, String)> {
    let from_env = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let region = from_env("AWS_REGION", "us-east-1");
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef".to_owned(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
        ("AWS_REGION", region.clone()),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", from_env("AWS_ACCESS_KEY_ID", "test")),
        (
            "AWS_SECRET_ACCESS_KEY",
            from_env("AWS_SECRET_ACCESS_KEY", "test"),
        ),
        ("AWS_SESSION_TOKEN", from_env("AWS_SESSION_TOKEN", "test")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // Endpoints of a local stand-in (moto), which Lambda would not have.
    for name in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"] {
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            env.push((name.to_owned(), value));
        }
    }
    env
}

/// A function process started against its own Runtime API emulator.
pub struct Started {
    pub api: RuntimeApi,
    pub child: Child,
    /// Just before the process was spawned.
    pub at: Instant,
}

impl Started {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process and returns the CPU time it used, user and system, in milliseconds:
    /// a figure that, unlike wall time, hardly moves when the machine is busy, and that is what
    /// a function is throttled on at Lambda's low memory sizes.
    pub fn stop_with_cpu_ms(mut self) -> Option<f64> {
        let _ = self.child.kill();
        let pid = self.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: wait4 writes only to the two out-parameters, which live across the call; the
        // pid is this process's own child, which nothing else waits for.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped != pid {
            let _ = self.child.wait();
            return None;
        }
        let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        Some(ms(usage.ru_utime) + ms(usage.ru_stime))
    }
}

/// Starts `binary` with a Lambda environment plus `extra_env` and nothing else of this
/// process's environment; its output goes to `log` (appended).
pub fn start_function(
    binary: &Path,
    function_name: &str,
    extra_env: &[(String, String)],
    log: &Path,
    wrapper: &[String],
) -> std::io::Result<Started> {
    let api = RuntimeApi::start()?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .env_clear()
        .envs(lambda_environment(function_name, &api.address()))
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let at = Instant::now();
    let child = command.spawn()?;
    Ok(Started { api, child, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values = sorted(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(percentile(&values, 0.5), 3.0);
        assert_eq!(percentile(&values, 0.99), 5.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
