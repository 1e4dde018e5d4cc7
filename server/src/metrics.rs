//! Prometheus metrics: requests by operation and result, latency
//! histograms, open connections, handshake failures by cause, HSM call
//! latency and errors. Objects by state are counted from the index when
//! scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS_MS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; 12],
    count: u64,
    sum_ms: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum_ms += ms;
    }
}

/// The metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    handshake_failures: Mutex<BTreeMap<String, u64>>,
    hsm: Mutex<Histogram>,
    hsm_errors: AtomicU64,
    /// Open connections.
    pub connections: AtomicI64,
    /// Connections accepted in total.
    pub accepted: AtomicU64,
    certificates: Mutex<Vec<(String, String, i64)>>,
}

impl Metrics {
    /// Counts one batch item.
    pub fn request(&self, op: &str, result: &str, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op.to_owned(), result.to_owned()))
            .or_default() += 1;
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op.to_owned())
            .or_default()
            .observe(took);
    }

    /// Counts a failed handshake.
    pub fn handshake_failure(&self, cause: &str) {
        *self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cause.to_owned())
            .or_default() += 1;
    }

    /// Records one HSM call.
    pub fn hsm_call(&self, took: Duration, ok: bool) {
        self.hsm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(took);
        if !ok {
            self.hsm_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the certificates whose expiry is exported: (kind, subject, not_after).
    pub fn set_certificates(&self, certs: Vec<(String, String, i64)>) {
        *self.certificates.lock().unwrap_or_else(|p| p.into_inner()) = certs;
    }

    /// Handshake failures by cause (for tests and status).
    pub fn handshake_failures(&self) -> BTreeMap<String, u64> {
        self.handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Renders the Prometheus text format; `objects_by_state` comes from the store.
    pub fn render(&self, objects_by_state: &[(String, u64)]) -> String {
        let mut o = String::new();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let _ = writeln!(o, "# TYPE kmipd_certificate_expiry_days gauge");
        for (kind, subject, not_after) in self
            .certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let subject = subject.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                o,
                "kmipd_certificate_expiry_days{{kind=\"{kind}\",subject=\"{subject}\"}} {}",
                (not_after - now) as f64 / 86400.0
            );
        }
        let _ = writeln!(o, "# TYPE kmipd_requests_total counter");
        for ((op, res), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "kmipd_requests_total{{operation=\"{op}\",result=\"{res}\"}} {n}"
            );
        }
        let _ = writeln!(o, "# TYPE kmipd_request_duration_milliseconds histogram");
        for (op, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            hist(
                &mut o,
                "kmipd_request_duration_milliseconds",
                &format!("operation=\"{op}\","),
                h,
            );
        }
        let _ = writeln!(o, "# TYPE kmipd_connections_open gauge");
        let _ = writeln!(
            o,
            "kmipd_connections_open {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# TYPE kmipd_connections_accepted_total counter");
        let _ = writeln!(
            o,
            "kmipd_connections_accepted_total {}",
            self.accepted.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# TYPE kmipd_handshake_failures_total counter");
        for (cause, n) in self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(o, "kmipd_handshake_failures_total{{cause=\"{cause}\"}} {n}");
        }
        let _ = writeln!(o, "# TYPE kmipd_hsm_call_duration_milliseconds histogram");
        hist(
            &mut o,
            "kmipd_hsm_call_duration_milliseconds",
            "",
            &self.hsm.lock().unwrap_or_else(|p| p.into_inner()),
        );
        let _ = writeln!(o, "# TYPE kmipd_hsm_errors_total counter");
        let _ = writeln!(
            o,
            "kmipd_hsm_errors_total {}",
            self.hsm_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# TYPE kmipd_objects gauge");
        for (state, n) in objects_by_state {
            let _ = writeln!(o, "kmipd_objects{{state=\"{state}\"}} {n}");
        }
        o
    }
}

fn hist(o: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (i, b) in BUCKETS_MS.iter().enumerate() {
        let _ = writeln!(o, "{name}_bucket{{{labels}le=\"{b}\"}} {}", h.buckets[i]);
    }
    let _ = writeln!(o, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
    let l = labels.trim_end_matches(',');
    let braces = if l.is_empty() {
        String::new()
    } else {
        format!("{{{l}}}")
    };
    let _ = writeln!(o, "{name}_sum{braces} {}", h.sum_ms);
    let _ = writeln!(o, "{name}_count{braces} {}", h.count);
}
