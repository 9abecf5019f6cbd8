//! Prometheus metrics on the `prometheus` crate: a registry of counter and gauge families,
//! the HTTP request statistics (by route pattern and status, with a latency histogram), and
//! [`RecordMetrics`], the middleware that feeds them. `GET /metrics` renders it all in the
//! Prometheus text format (version 0.0.4).
//!
//! # Adding a metric
//!
//! [`Metrics`] lives in [`crate::http::state::AppState`] as an `Arc`, so an actor can keep a clone.
//! Ask for a handle once (when the actor starts), keep it, and bump it lock-free:
//!
//! ```
//! # let metrics = tertulia::metrics::Metrics::new();
//! let open = metrics.gauge("tertulia_ws_connections", "Open WebSocket connections", &[]);
//! open.inc();
//! let frames = metrics.counter(
//!     "tertulia_ws_frames_total",
//!     "WebSocket frames received, by type",
//!     &[("type", "chat.send")],
//! );
//! frames.inc();
//! assert!(metrics.render().contains("tertulia_ws_frames_total{type=\"chat.send\"} 1"));
//! ```
//!
//! Asking again with the same name and labels returns the same series. Label values must come
//! from a small, fixed set (a frame type, a close code), never from user input, so the number
//! of series stays bounded. A value that is cheaper to read when scraped than to keep up to
//! date (the database pool) is a [`Metrics::gauge_fn`].

use std::{
    collections::HashMap,
    future::{ready, Ready},
    rc::Rc,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    http::Method,
};
use futures_util::future::LocalBoxFuture;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Upper bounds, in seconds, of the HTTP latency histogram's buckets (`+Inf` is implicit).
pub const LATENCY_BUCKETS_SECS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The `route` label of requests no route matched (unknown paths, static files): one series
/// for all of them, so scanning for random URLs cannot grow the registry.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A monotonically increasing count; cheap to clone, lock-free to bump. The default is a
/// detached counter (counts, but is not exported).
#[derive(Debug, Clone)]
pub struct Counter(IntCounter);

impl Default for Counter {
    fn default() -> Self {
        // A constant, valid name: `new` cannot fail on it.
        Counter(IntCounter::new("detached_total", "not exported").expect("a valid metric name"))
    }
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down; cheap to clone, lock-free to change. The default is a
/// detached gauge (not exported).
#[derive(Debug, Clone)]
pub struct Gauge(IntGauge);

impl Default for Gauge {
    fn default() -> Self {
        // A constant, valid name: `new` cannot fail on it.
        Gauge(IntGauge::new("detached", "not exported").expect("a valid metric name"))
    }
}

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.dec();
    }

    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.0.add(n);
    }

    /// Replaces the value.
    pub fn set(&self, value: i64) {
        self.0.set(value);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// A function sampled at scrape time.
type SampleFn = Box<dyn Fn() -> i64 + Send + Sync>;

/// A sampled gauge's key: its name and label values.
type SampledKey = (&'static str, Vec<String>);

/// All series of one metric name, and the label names every one of them has.
enum Family {
    Counters(IntCounterVec, Vec<String>),
    Gauges(IntGaugeVec, Vec<String>),
}

impl Family {
    fn kind(&self) -> &'static str {
        match self {
            Family::Counters(..) => "counter",
            Family::Gauges(..) => "gauge",
        }
    }
}

/// Every metric the server exports. Shared by the HTTP workers and the actors.
pub struct Metrics {
    registry: Registry,
    /// The families registered through [`Metrics::counter`] and [`Metrics::gauge`], by name.
    families: Mutex<HashMap<&'static str, Family>>,
    /// Gauges set from their function just before each scrape, by name and label values.
    sampled: Mutex<HashMap<SampledKey, (Gauge, SampleFn)>>,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    uptime: IntGauge,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the HTTP, uptime and build series.
    pub fn new() -> Self {
        let registry = Registry::new();
        // The names, help texts and buckets below are constants, valid and distinct, so
        // creating and registering them cannot fail.
        let http_requests = IntCounterVec::new(
            Opts::new(
                "tertulia_http_requests_total",
                "HTTP requests by method, route pattern and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid HTTP counter");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "tertulia_http_request_duration_seconds",
                "Time to answer HTTP requests, by method and route pattern.",
            )
            .buckets(LATENCY_BUCKETS_SECS.to_vec()),
            &["method", "route"],
        )
        .expect("valid HTTP histogram");
        let uptime = IntGauge::new(
            "tertulia_uptime_seconds",
            "Seconds since the server started.",
        )
        .expect("valid uptime gauge");
        let build = IntGaugeVec::new(
            Opts::new("tertulia_build_info", "The running version."),
            &["version"],
        )
        .expect("valid build gauge");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(uptime.clone()),
            Box::new(build),
        ] {
            registry.register(collector).expect("distinct names");
        }
        Metrics {
            registry,
            families: Mutex::new(HashMap::new()),
            sampled: Mutex::new(HashMap::new()),
            http_requests,
            http_duration,
            uptime,
            started: Instant::now(),
        }
    }

    /// The counter `name` with these labels, created at zero on first use. `name` should end
    /// in `_total`; `help` is the `# HELP` line (the first registration's wins).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        self.family(name, help, labels, true, |family, values| match family {
            Family::Counters(vec, _) => vec.get_metric_with_label_values(values).ok().map(Counter),
            Family::Gauges(..) => None,
        })
        .unwrap_or_default()
    }

    /// The gauge `name` with these labels, created at zero on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        self.family(name, help, labels, false, |family, values| match family {
            Family::Gauges(vec, _) => vec.get_metric_with_label_values(values).ok().map(Gauge),
            Family::Counters(..) => None,
        })
        .unwrap_or_default()
    }

    /// A gauge whose value `sample` computes at each scrape (it must be quick and must not
    /// block: it runs while the scrape waits). Registering it again replaces it.
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        sample: impl Fn() -> i64 + Send + Sync + 'static,
    ) {
        let gauge = self.gauge(name, help, labels);
        let values = labels.iter().map(|(_, v)| (*v).to_owned()).collect();
        lock(&self.sampled).insert((name, values), (gauge, Box::new(sample)));
    }

    /// Finds the family `name` (registering it if new, as counters or gauges) and lets
    /// `pick` take the series of these label values from it; `None`, logged, when the name
    /// is already used by another kind of metric or other label names: a programming error,
    /// for which the caller gets a detached handle and keeps working.
    fn family<T>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        counters: bool,
        pick: impl FnOnce(&Family, &[&str]) -> Option<T>,
    ) -> Option<T> {
        let names: Vec<String> = labels.iter().map(|(k, _)| (*k).to_owned()).collect();
        let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
        let mut families = lock(&self.families);
        if !families.contains_key(name) {
            let keys: Vec<&str> = names.iter().map(String::as_str).collect();
            let opts = Opts::new(name, help);
            let created = if counters {
                IntCounterVec::new(opts, &keys).and_then(|vec| {
                    self.registry.register(Box::new(vec.clone()))?;
                    Ok(Family::Counters(vec, names.clone()))
                })
            } else {
                IntGaugeVec::new(opts, &keys).and_then(|vec| {
                    self.registry.register(Box::new(vec.clone()))?;
                    Ok(Family::Gauges(vec, names.clone()))
                })
            };
            match created {
                Ok(family) => {
                    families.insert(name, family);
                }
                Err(e) => {
                    log::error!("metric {name} cannot be registered: {e}");
                    return None;
                }
            }
        }
        let family = families.get(name)?;
        let (Family::Counters(_, known) | Family::Gauges(_, known)) = family;
        let wanted = if counters { "counter" } else { "gauge" };
        if family.kind() != wanted || *known != names {
            log::error!(
                "metric {name} is a {} labelled {known:?}, not a {wanted} labelled {names:?}",
                family.kind()
            );
            return None;
        }
        pick(family, &values)
    }

    /// Records one finished HTTP request. `route` is the matched route *pattern*
    /// (`/api/admin/users/{id}`), or `None` when nothing matched.
    pub fn observe_http(
        &self,
        method: &Method,
        route: Option<String>,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        let route = route
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
        let mut status_text = itoa::Buffer::new();
        self.http_requests
            .with_label_values(&[method, &route, status_text.format(status)])
            .inc();
        self.http_duration
            .with_label_values(&[method, &route])
            .observe(elapsed.as_secs_f64());
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.uptime
            .set(i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX));
        for (gauge, sample) in lock(&self.sampled).values() {
            gauge.set(sample());
        }
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("cannot render the metrics: {e}");
        }
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// Locks a mutex, carrying on after a panic elsewhere: counts stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The method label: the standard methods by name, anything else as `OTHER` (bounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware that times every request and counts it by route pattern and status.
#[derive(Clone)]
pub struct RecordMetrics {
    metrics: Arc<Metrics>,
}

impl RecordMetrics {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RecordMetrics { metrics }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RecordMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RecordMetricsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RecordMetricsMiddleware {
            service: Rc::new(service),
            metrics: Arc::clone(&self.metrics),
        }))
    }
}

/// The per-worker service [`RecordMetrics`] builds.
pub struct RecordMetricsMiddleware<S> {
    service: Rc<S>,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<ServiceRequest> for RecordMetricsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = req.method().clone();
        // The request must not be cloned before routing (the router mutates it), so the route
        // pattern is read from the response's request afterwards.
        let service = Rc::clone(&self.service);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let result = service.call(req).await;
            let (route, status) = match &result {
                Ok(res) => (res.request().match_pattern(), res.status().as_u16()),
                Err(err) => (None, err.as_response_error().status_code().as_u16()),
            };
            metrics.observe_http(&method, route, status, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_and_labels_give_the_same_series() {
        let m = Metrics::new();
        m.counter("x_total", "x", &[("k", "a")]).inc();
        m.counter("x_total", "x", &[("k", "a")]).add(2);
        m.counter("x_total", "x", &[("k", "b")]).inc();
        let g = m.gauge("g", "g", &[]);
        g.inc();
        g.inc();
        g.dec();
        let text = m.render();
        assert!(text.contains("x_total{k=\"a\"} 3"), "{text}");
        assert!(text.contains("x_total{k=\"b\"} 1"));
        assert!(text.contains("# TYPE g gauge\ng 1\n"));
    }

    #[test]
    fn a_kind_clash_gives_a_detached_handle_instead_of_a_panic() {
        let m = Metrics::new();
        m.counter("clash", "c", &[]).inc();
        m.gauge("clash", "g", &[]).set(42);
        assert!(m.render().contains("clash 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.counter("esc_total", "e", &[("a", "x\"y\\z\n")]).inc();
        assert!(
            m.render().contains("esc_total{a=\"x\\\"y\\\\z\\n\"} 1"),
            "{}",
            m.render()
        );
    }

    #[test]
    fn a_sampled_gauge_is_read_at_each_scrape() {
        let m = Metrics::new();
        let n = Arc::new(std::sync::atomic::AtomicI64::new(3));
        let seen = Arc::clone(&n);
        m.gauge_fn("pool", "p", &[("state", "idle")], move || {
            seen.load(std::sync::atomic::Ordering::Relaxed)
        });
        assert!(m.render().contains("pool{state=\"idle\"} 3"));
        n.store(5, std::sync::atomic::Ordering::Relaxed);
        assert!(m.render().contains("pool{state=\"idle\"} 5"));
    }

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_request() {
        let m = Metrics::new();
        let route = Some("/api/x".to_owned());
        m.observe_http(&Method::GET, route.clone(), 200, Duration::from_millis(3));
        m.observe_http(&Method::GET, route.clone(), 404, Duration::from_millis(300));
        m.observe_http(&Method::GET, route, 200, Duration::from_secs(60));
        let text = m.render();
        let l = "method=\"GET\",route=\"/api/x\"";
        assert!(text.contains(&format!(
            "tertulia_http_requests_total{{{l},status=\"200\"}} 2"
        )));
        assert!(text.contains(&format!(
            "tertulia_http_requests_total{{{l},status=\"404\"}} 1"
        )));
        assert!(
            text.contains(&format!("_bucket{{{l},le=\"0.005\"}} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("_bucket{{{l},le=\"0.5\"}} 2")));
        assert!(text.contains(&format!("_bucket{{{l},le=\"10\"}} 2")));
        assert!(text.contains(&format!("_bucket{{{l},le=\"+Inf\"}} 3")));
        assert!(text.contains(&format!("_count{{{l}}} 3")));
    }
}
