//! Logs and metrics. One Prometheus recorder per process, shared by every
//! service in it; each service's `/metrics` renders the whole process, with
//! a `service` label telling them apart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use hyper::StatusCode;
use metrics::{Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, Env};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds), tuned for a hot path measured in milliseconds.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Buckets for counts (batch sizes and the like).
pub const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

/// How the process logs, read from `STAMPEDE_LOG` (a tracing filter,
/// default `info`) and `STAMPEDE_LOG_FORMAT` (`text`, the default, or
/// `json` for JSON lines). A value that does not parse is an error naming
/// its variable, as in [`Config`](crate::Config): a typo never silently
/// logs something else.
#[derive(Debug)]
pub struct LogSettings {
    filter: EnvFilter,
    json: bool,
}

impl LogSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let filter = match env.optional("STAMPEDE_LOG") {
            None => EnvFilter::new("info"),
            Some(s) => EnvFilter::try_new(&s)
                .map_err(|e| ConfigError { var: "STAMPEDE_LOG".into(), reason: format!("cannot parse {s:?}: {e}") })?,
        };
        let json = match env.optional("STAMPEDE_LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "STAMPEDE_LOG_FORMAT".into(),
                    reason: format!("{other:?} is neither text nor json"),
                });
            }
        };
        Ok(Self { filter, json })
    }
}

/// Starts structured logging as [`LogSettings`] reads it from the process
/// environment; fails, naming the variable, on a bad value.
pub fn init_tracing() -> Result<(), ConfigError> {
    let LogSettings { filter, json } = LogSettings::from_env(&Env::from_process())?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    Ok(())
}

/// Installs the process-wide recorder (once; later calls are no-ops) and
/// describes the metrics every service shares.
pub fn install_metrics() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(COUNT_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS));
        let handle = match builder.and_then(|b| b.install_recorder()) {
            Ok(h) => h,
            Err(e) => {
                // Another recorder is installed (a test harness); render ours anyway.
                tracing::warn!(error = %e, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .ok();
        describe_counter!("http_requests_total", Unit::Count, "HTTP requests answered, by service, route and status.");
        describe_histogram!(
            "http_request_duration_seconds",
            Unit::Seconds,
            "Time from request to response, by service and route."
        );
        handle
    });
}

/// The Prometheus text exposition of every metric in this process.
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

thread_local! {
    /// This thread's handles of the per-request series, by service, route
    /// and status (keyed by the labels' addresses: they are static strings,
    /// and two addresses of one text only make two handles of one series).
    /// Looking a labelled series up in the registry builds and hashes its
    /// key on every call: 3–4 % of the reservation process's CPU per hold.
    static REQUEST_SERIES: RefCell<HashMap<(usize, usize, u16), (Counter, Histogram)>> = RefCell::new(HashMap::new());
}

/// Records one answered request.
pub fn record_request(service: &'static str, route: &'static str, status: StatusCode, elapsed: Duration) {
    REQUEST_SERIES.with_borrow_mut(|series| {
        let (count, time) = series.entry((service.as_ptr() as usize, route.as_ptr() as usize, status.as_u16())).or_insert_with(|| {
            (
                counter!("http_requests_total", "service" => service, "route" => route, "status" => status_label(status)),
                histogram!("http_request_duration_seconds", "service" => service, "route" => route),
            )
        });
        count.increment(1);
        time.record(elapsed.as_secs_f64());
    });
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        402 => "402",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        410 => "410",
        412 => "412",
        413 => "413",
        428 => "428",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_settings_default_and_a_bad_value_names_the_variable() {
        assert!(!LogSettings::from_env(&Env::from_pairs([])).expect("defaults").json);
        let set = Env::from_pairs([("STAMPEDE_LOG", "info,stampede_reservation=debug"), ("STAMPEDE_LOG_FORMAT", "json")]);
        assert!(LogSettings::from_env(&set).expect("valid").json);
        assert!(!LogSettings::from_env(&Env::from_pairs([("STAMPEDE_LOG_FORMAT", "text")])).expect("valid").json);
        for (var, bad) in [("STAMPEDE_LOG", "info,stampede_reservation=loud"), ("STAMPEDE_LOG_FORMAT", "jsno")] {
            let err = LogSettings::from_env(&Env::from_pairs([(var, bad)])).expect_err(bad);
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
