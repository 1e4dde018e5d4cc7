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

/// Operation slots: standard operations 1..=62 by their code, kmipd's
/// vendor operations and anything else in slot 63.
const OPS: usize = 64;
/// Result slots: 0 success, reasons 1..=126 by code, 127 anything else.
const RESULTS: usize = 128;

fn op_slot(op: u32) -> usize {
    if (1..OPS as u32 - 1).contains(&op) {
        op as usize
    } else {
        OPS - 1
    }
}

fn result_slot(reason: Option<u32>) -> usize {
    match reason {
        None => 0,
        Some(r) if (1..RESULTS as u32 - 1).contains(&r) => r as usize,
        Some(_) => RESULTS - 1,
    }
}

/// Lock-free per-operation counters and latency histograms: the request
/// path only does atomic adds, names are rendered at scrape time.
#[derive(Debug)]
struct RequestCounters {
    counts: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    sum_us: Vec<AtomicU64>,
}

impl Default for RequestCounters {
    fn default() -> Self {
        Self {
            counts: (0..OPS * RESULTS).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..OPS * (BUCKETS_MS.len() + 1))
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_us: (0..OPS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: RequestCounters,
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
    /// Counts one batch item: its operation code, its Result Reason (none
    /// for success) and how long it took. Atomic adds only.
    pub fn request(&self, op: u32, reason: Option<u32>, took: Duration) {
        let o = op_slot(op);
        let r = &self.requests;
        r.counts[o * RESULTS + result_slot(reason)].fetch_add(1, Ordering::Relaxed);
        let ms = took.as_secs_f64() * 1000.0;
        let b = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        r.buckets[o * (BUCKETS_MS.len() + 1) + b].fetch_add(1, Ordering::Relaxed);
        r.sum_us[o].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
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
        let r = &self.requests;
        let op_name = |i: usize| match i {
            i if i == OPS - 1 => "other".to_owned(),
            i => kmip::tables::Operation(i as u32)
                .name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{i:02X}")),
        };
        let _ = writeln!(o, "# TYPE kmipd_requests_total counter");
        for op in 0..OPS {
            for res in 0..RESULTS {
                let n = r.counts[op * RESULTS + res].load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let result = match res {
                    0 => "success".to_owned(),
                    x if x == RESULTS - 1 => "other".to_owned(),
                    x => kmip::tables::ResultReason(x as u32)
                        .name()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("0x{x:02X}")),
                };
                let _ = writeln!(
                    o,
                    "kmipd_requests_total{{operation=\"{}\",result=\"{result}\"}} {n}",
                    op_name(op)
                );
            }
        }
        let _ = writeln!(o, "# TYPE kmipd_request_duration_milliseconds histogram");
        let per = BUCKETS_MS.len() + 1;
        for op in 0..OPS {
            let counts: Vec<u64> = (0..per)
                .map(|b| r.buckets[op * per + b].load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut h = Histogram {
                count: total,
                sum_ms: r.sum_us[op].load(Ordering::Relaxed) as f64 / 1000.0,
                ..Default::default()
            };
            let mut cum = 0;
            for (i, c) in counts.iter().take(BUCKETS_MS.len()).enumerate() {
                cum += c;
                h.buckets[i] = cum;
            }
            let labels = format!("operation=\"{}\",", op_name(op));
            hist(&mut o, "kmipd_request_duration_milliseconds", &labels, &h);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_and_result_with_cumulative_buckets() {
        let m = Metrics::default();
        let get = kmip::tables::Operation::GET.0;
        m.request(get, None, Duration::from_micros(200));
        m.request(get, None, Duration::from_millis(3));
        m.request(
            get,
            Some(kmip::tables::ResultReason::ITEM_NOT_FOUND.0),
            Duration::from_millis(1),
        );
        m.request(0x8000_0001, None, Duration::from_millis(1));
        let t = m.render(&[]);
        assert!(
            t.contains("kmipd_requests_total{operation=\"Get\",result=\"success\"} 2"),
            "{t}"
        );
        assert!(t.contains("kmipd_requests_total{operation=\"Get\",result=\"Item Not Found\"} 1"));
        assert!(t.contains("kmipd_requests_total{operation=\"other\",result=\"success\"} 1"));
        assert!(t.contains(
            "kmipd_request_duration_milliseconds_bucket{operation=\"Get\",le=\"0.25\"} 1"
        ));
        assert!(
            t.contains("kmipd_request_duration_milliseconds_bucket{operation=\"Get\",le=\"1\"} 2")
        );
        assert!(
            t.contains("kmipd_request_duration_milliseconds_bucket{operation=\"Get\",le=\"5\"} 3")
        );
        assert!(t.contains("kmipd_request_duration_milliseconds_count{operation=\"Get\"} 3"));
    }
}
