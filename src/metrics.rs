//! Prometheus metrics, hand-written: a small registry of counters and gauges, the HTTP
//! request statistics (by route pattern and status, with a latency histogram), and
//! [`RecordMetrics`], the middleware that feeds them. `GET /metrics` renders it all in the
//! Prometheus text format (version 0.0.4).
//!
//! # Adding a metric
//!
//! [`Metrics`] lives in [`crate::startup::AppState`] as an `Arc`, so an actor can keep a clone.
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
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    future::{ready, Ready},
    rc::Rc,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    http::Method,
};
use futures_util::future::LocalBoxFuture;

/// Upper bounds, in seconds, of the HTTP latency histogram's buckets (`+Inf` is implicit).
pub const LATENCY_BUCKETS_SECS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The `route` label of requests no route matched (unknown paths, static files): one series
/// for all of them, so scanning for random URLs cannot grow the registry.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A monotonically increasing count; cheap to clone, lock-free to bump.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down; cheap to clone, lock-free to change.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Replaces the value.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A function sampled at scrape time.
type SampleFn = Box<dyn Fn() -> i64 + Send + Sync>;

/// One labelled series of a family.
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Sampled(SampleFn),
}

impl Series {
    fn value(&self) -> i64 {
        match self {
            Series::Counter(c) => i64::try_from(c.get()).unwrap_or(i64::MAX),
            Series::Gauge(g) => g.get(),
            Series::Sampled(f) => f(),
        }
    }
}

/// Prometheus metric types this registry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// All series of one metric name, keyed by their rendered label set (`{a="x",b="y"}`).
struct Family {
    help: &'static str,
    kind: Kind,
    series: BTreeMap<String, Series>,
}

/// Latency and status counts of one (method, route pattern).
#[derive(Default)]
struct HttpSeries {
    /// Cumulative-on-render bucket counts: `buckets[i]` counts requests in bucket `i` only.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECS.len()],
    /// Requests slower than the last bucket.
    overflow: AtomicU64,
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Responses by status code (a handful per route, so a small locked map).
    statuses: Mutex<BTreeMap<u16, u64>>,
}

/// Every metric the server exports. Shared by the HTTP workers and the actors.
pub struct Metrics {
    /// Keyed by (method, route pattern).
    http: RwLock<HashMap<(&'static str, String), Arc<HttpSeries>>>,
    families: Mutex<BTreeMap<&'static str, Family>>,
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
    /// An empty registry.
    pub fn new() -> Self {
        Metrics {
            http: RwLock::new(HashMap::new()),
            families: Mutex::new(BTreeMap::new()),
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
        self.series(name, help, Kind::Counter, labels, |series| match series {
            Series::Counter(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_default()
    }

    /// The gauge `name` with these labels, created at zero on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        self.series(name, help, Kind::Gauge, labels, |series| match series {
            Series::Gauge(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap_or_default()
    }

    /// A gauge whose value `sample` computes at each scrape (it must be quick and must not
    /// block: it runs while the registry is locked). Registering it again replaces it.
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        sample: impl Fn() -> i64 + Send + Sync + 'static,
    ) {
        let mut families = lock(&self.families);
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind: Kind::Gauge,
            series: BTreeMap::new(),
        });
        if family.kind != Kind::Gauge {
            log::error!("metric {name} is a {}, not a gauge", family.kind.as_str());
            return;
        }
        family
            .series
            .insert(label_set(labels), Series::Sampled(Box::new(sample)));
    }

    /// Finds the series (creating it if new) and lets `pick` take a handle from it; `None`
    /// when the name is already used by another kind of metric.
    fn series<T>(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
        pick: impl FnOnce(&Series) -> Option<T>,
    ) -> Option<T> {
        let mut families = lock(&self.families);
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        if family.kind != kind {
            // A programming error; the caller gets a detached handle and keeps working.
            log::error!(
                "metric {name} is a {}, not a {}",
                family.kind.as_str(),
                kind.as_str()
            );
            return None;
        }
        let series = family
            .series
            .entry(label_set(labels))
            .or_insert_with(|| match kind {
                Kind::Counter => Series::Counter(Counter::default()),
                Kind::Gauge => Series::Gauge(Gauge::default()),
            });
        pick(series)
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
        let key = (method, route);
        let existing = self
            .http
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&key)
            .cloned();
        let series = match existing {
            Some(series) => series,
            None => Arc::clone(
                self.http
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .entry(key)
                    .or_default(),
            ),
        };
        let secs = elapsed.as_secs_f64();
        match LATENCY_BUCKETS_SECS.iter().position(|&le| secs <= le) {
            Some(i) => series.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => series.overflow.fetch_add(1, Ordering::Relaxed),
        };
        series.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        series.sum_micros.fetch_add(micros, Ordering::Relaxed);
        *lock(&series.statuses).entry(status).or_insert(0) += 1;
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_http(&mut out);
        let families = lock(&self.families);
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, series) in &family.series {
                let _ = writeln!(out, "{name}{labels} {}", series.value());
            }
        }
        let _ = writeln!(
            out,
            "# HELP tertulia_uptime_seconds Seconds since the server started.\n\
             # TYPE tertulia_uptime_seconds gauge\n\
             tertulia_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );
        let _ = writeln!(
            out,
            "# HELP tertulia_build_info The running version.\n\
             # TYPE tertulia_build_info gauge\n\
             tertulia_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }

    fn render_http(&self, out: &mut String) {
        let http = self
            .http
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut keys: Vec<_> = http.keys().collect();
        keys.sort();
        out.push_str(
            "# HELP tertulia_http_requests_total HTTP requests by method, route pattern and status.\n\
             # TYPE tertulia_http_requests_total counter\n",
        );
        for key in &keys {
            let (method, route) = key;
            let route = escape_value(route);
            for (status, n) in lock(&http[*key].statuses).iter() {
                let _ = writeln!(
                    out,
                    "tertulia_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP tertulia_http_request_duration_seconds Time to answer HTTP requests, by method and route pattern.\n\
             # TYPE tertulia_http_request_duration_seconds histogram\n",
        );
        for key in &keys {
            let (method, route) = key;
            let route = escape_value(route);
            let series = &http[*key];
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (le, bucket) in LATENCY_BUCKETS_SECS.iter().zip(&series.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tertulia_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let count = series.count.load(Ordering::Relaxed);
            // Read separately from the buckets, so under load `+Inf` may lag by a request
            // or two; Prometheus tolerates that, and it is never below the last bucket.
            let inf = (cumulative + series.overflow.load(Ordering::Relaxed)).max(count);
            let sum = series.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "tertulia_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {inf}\n\
                 tertulia_http_request_duration_seconds_sum{{{labels}}} {sum}\n\
                 tertulia_http_request_duration_seconds_count{{{labels}}} {inf}"
            );
        }
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

/// Renders labels as `{a="x",b="y"}` (empty for none), values escaped.
fn label_set(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Escapes a help text: backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
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
        assert_eq!(label_set(&[("a", "x\"y\\z\n")]), "{a=\"x\\\"y\\\\z\\n\"}");
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
