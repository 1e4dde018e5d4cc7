//! `kmipctl conformance run PATH...`: replays OASIS KMIP XML test cases
//! against any KMIP server and compares the responses (see
//! [`crate::conformance`] for the comparison and its rules).

use super::Conn;
use crate::conformance::{self, ExpectedFailures, Report, Verdict, RULES};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ConformanceCommand {
    /// Run test-case files or directories (recursively, sorted), one
    /// connection per file.
    #[command(
        after_help = "Examples:\n  kmipctl conformance run ../shared/kmip-testcases/v1.0 --dev ./kmipd-dev\n  kmipctl conformance run cases/ --server host:5696 --ca ca.crt --cert c.crt --key c.key \\\n      --expected-failures conformance/expected-failures.txt\n\nOutput: `PASS path` or `FAIL path: step N: <path> expected X got Y` per file, then `N passed, M failed`.\nExit codes: 0 all passed (or failed only as listed); 1 an unexpected failure, or a listed file passes now; 2 usage or connection error."
    )]
    Run {
        #[command(flatten)]
        conn: Conn,
        /// Test-case files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Files expected to fail: `relative/path.xml  reason` per line.
        #[arg(long, value_name = "FILE")]
        expected_failures: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// After each file, revoke and destroy the objects it created
        /// (breaks files that build on an earlier one, such as TL-M-3).
        #[arg(long)]
        cleanup: bool,
    },
}

/// Runs the command; returns the exit code.
pub async fn run(c: ConformanceCommand) -> anyhow::Result<u8> {
    let ConformanceCommand::Run {
        conn,
        paths,
        expected_failures,
        json,
        cleanup,
    } = c;
    let expected = match &expected_failures {
        Some(p) => ExpectedFailures::parse(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("in {}", p.display()))?,
        None => ExpectedFailures::default(),
    };
    let cfg = conn.config()?;
    let files = conformance::collect(&paths)?;
    let mut results = Vec::with_capacity(files.len());
    let mut session = conformance::Session::default();
    for (p, name) in &files {
        let r = conformance::run_file_in(&mut session, &cfg, p, name, cleanup).await;
        if !json {
            let mut line = r.line();
            if !r.passed {
                if let Some(reason) = expected.reason(&r.name) {
                    line.push_str(&format!(" (expected: {reason})"));
                }
            }
            println!("{line}");
        }
        results.push(r);
    }
    let verdict = Verdict::judge(&results, &expected);
    if json {
        let report = Report {
            files: &results,
            verdict: &verdict,
            rules: RULES,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if expected_failures.is_some() {
        for f in &verdict.unexpected_failures {
            eprintln!("unexpected failure: {f}");
        }
        for f in &verdict.now_passing {
            eprintln!("listed as expected to fail but passes now: {f} (remove it from the list)");
        }
    }
    if !json {
        println!("{} passed, {} failed", verdict.passed, verdict.failed);
    }
    Ok(if verdict.ok() { 0 } else { 1 })
}
