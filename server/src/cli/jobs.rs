//! `kmipctl jobs`: status, watch (a progress bar with rate and time left),
//! pause and resume of kmipd's background jobs (master-key rotation).

use super::{vendor, Conn};
use crate::client::Client;
use crate::ops::admin::{entries, op, tag};
use anyhow::{bail, Context};
use clap::Subcommand;
use kmip::{Ttlv, Value};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Every job, newest first.
    #[command(after_help = "Example:\n  kmipctl jobs status --dev ./kmipd-dev")]
    Status {
        #[command(flatten)]
        conn: Conn,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Follow a job with a progress bar until it completes or is paused.
    #[command(after_help = "Example:\n  kmipctl jobs watch --dev ./kmipd-dev")]
    Watch {
        #[command(flatten)]
        conn: Conn,
        /// Job number (default: the unfinished job, else the newest).
        id: Option<u64>,
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Pause a job at its next batch (persisted across restarts).
    Pause {
        #[command(flatten)]
        conn: Conn,
        /// Job number.
        id: u64,
    },
    /// Resume a paused job.
    Resume {
        #[command(flatten)]
        conn: Conn,
        /// Job number.
        id: u64,
    },
}

/// A job as the server reported it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct JobView {
    /// Job number.
    pub id: u64,
    /// Kind.
    pub kind: String,
    /// running, paused, completed.
    pub state: String,
    /// Version when requested.
    pub base_version: u64,
    /// Version re-wrapped to.
    pub target_version: Option<u64>,
    /// Objects to re-wrap.
    pub total: u64,
    /// Re-wrapped.
    pub done: u64,
    /// Could not be re-wrapped.
    pub failed: u64,
    /// Their first ids.
    pub failed_ids: Vec<String>,
    /// Who asked.
    pub requested_by: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339.
    pub updated: String,
    /// RFC 3339.
    pub finished: Option<String>,
    /// Restarts survived.
    pub resumes: u64,
    /// Last transient problem.
    pub message: Option<String>,
    /// Objects per second (running job).
    pub rate: Option<f64>,
}

fn num(v: &Ttlv) -> u64 {
    match v.value {
        Value::LongInteger(n) => n.max(0) as u64,
        Value::Integer(n) => n.max(0) as u64,
        _ => 0,
    }
}

fn txt(v: &Ttlv) -> String {
    match &v.value {
        Value::TextString(s) => s.clone(),
        Value::DateTime(t) => kmip::time::format_rfc3339(*t),
        _ => String::new(),
    }
}

/// Reads a JOB structure.
pub fn parse_job(t: &Ttlv) -> JobView {
    let mut j = JobView::default();
    for (name, v) in entries(t) {
        match name.as_str() {
            "id" => j.id = num(&v),
            "kind" => j.kind = txt(&v),
            "state" => j.state = txt(&v),
            "base_version" => j.base_version = num(&v),
            "target_version" => j.target_version = Some(num(&v)),
            "total" => j.total = num(&v),
            "done" => j.done = num(&v),
            "failed" => j.failed = num(&v),
            "failed_id" => j.failed_ids.push(txt(&v)),
            "requested_by" => j.requested_by = txt(&v),
            "created" => j.created = txt(&v),
            "updated" => j.updated = txt(&v),
            "finished" => j.finished = Some(txt(&v)),
            "resumes" => j.resumes = num(&v),
            "message" => j.message = Some(txt(&v)),
            "rate_milli" => j.rate = Some(num(&v) as f64 / 1000.0),
            _ => {}
        }
    }
    j
}

/// Every job the server reports, newest first.
pub async fn fetch(c: &mut Client) -> anyhow::Result<Vec<JobView>> {
    let p = vendor(c, op::JOBS_STATUS, vec![]).await?;
    Ok(p.children_with(tag::JOB).map(parse_job).collect())
}

/// The first JOB of a response payload.
pub fn first_job(p: &Ttlv) -> anyhow::Result<JobView> {
    p.children_with(tag::JOB)
        .next()
        .map(parse_job)
        .context("the server answered without a job")
}

/// One line describing a job.
pub fn describe(j: &JobView) -> String {
    let versions = match j.target_version {
        Some(t) => format!("v{} -> v{t}", j.base_version),
        None => format!("v{} -> (creating)", j.base_version),
    };
    let pct = if j.total > 0 {
        format!(" ({:.1}%)", j.done as f64 * 100.0 / j.total as f64)
    } else {
        String::new()
    };
    let mut s = format!(
        "job {} {} {versions}: {}, {}/{} re-wrapped{pct}",
        j.id, j.kind, j.state, j.done, j.total
    );
    if j.failed > 0 {
        s.push_str(&format!(", {} failed", j.failed));
    }
    if let Some(r) = j.rate {
        s.push_str(&format!(", {r:.0}/s"));
    }
    if j.resumes > 0 {
        s.push_str(&format!(", resumed {} time(s)", j.resumes));
    }
    if let Some(m) = &j.message {
        s.push_str(&format!(" [{m}]"));
    }
    s
}

async fn watch(conn: &Conn, id: Option<u64>, interval: f64) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let pick = |jobs: &[JobView]| -> Option<JobView> {
        match id {
            Some(id) => jobs.iter().find(|j| j.id == id).cloned(),
            None => jobs
                .iter()
                .find(|j| j.state != "completed")
                .or(jobs.first())
                .cloned(),
        }
    };
    let Some(mut j) = pick(&fetch(&mut c).await?) else {
        bail!("no job to watch");
    };
    let bar = indicatif::ProgressBar::new(j.total.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} left {eta}",
        )
        .context("progress bar template")?,
    );
    let interval = Duration::from_secs_f64(interval.clamp(0.1, 60.0));
    loop {
        bar.set_length(j.total.max(1));
        bar.set_position(j.done.min(j.total));
        bar.set_message(format!("job {} {}", j.id, j.state));
        if j.state != "running" {
            break;
        }
        tokio::time::sleep(interval).await;
        let jobs = match fetch(&mut c).await {
            Ok(jobs) => jobs,
            // The server closed an idle connection or restarted: reconnect.
            Err(_) => {
                c = conn.connect().await?;
                fetch(&mut c).await?
            }
        };
        j = pick(&jobs).with_context(|| format!("job {} disappeared", j.id))?;
    }
    bar.finish();
    println!("{}", describe(&j));
    Ok(())
}

async fn control(conn: &Conn, operation: kmip::tables::Operation, id: u64) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let p = vendor(
        &mut c,
        operation,
        vec![Ttlv::long(tag::NUMBER, id.min(i64::MAX as u64) as i64)],
    )
    .await?;
    println!("{}", describe(&first_job(&p)?));
    Ok(())
}

/// Runs a jobs command.
pub async fn run(cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::Status { conn, json } => {
            let mut c = conn.connect().await?;
            let jobs = fetch(&mut c).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else if jobs.is_empty() {
                println!("no jobs");
            } else {
                for j in &jobs {
                    println!("{}", describe(j));
                    if !j.failed_ids.is_empty() {
                        println!("  failed: {}", j.failed_ids.join(" "));
                    }
                }
            }
        }
        JobsCommand::Watch { conn, id, interval } => watch(&conn, id, interval).await?,
        JobsCommand::Pause { conn, id } => control(&conn, op::JOBS_PAUSE, id).await?,
        JobsCommand::Resume { conn, id } => control(&conn, op::JOBS_RESUME, id).await?,
    }
    Ok(())
}
