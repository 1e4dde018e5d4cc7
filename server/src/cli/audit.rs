//! `kmipctl audit verify FILE...` and `kmipctl audit tail`: the audit log
//! is a file on the server's host (JSON lines, hash-chained, rotated by
//! size; see [`crate::audit`]). Both read it directly: verification must
//! not depend on the server whose trail it checks.

use super::output::progress;
use super::{exit, Exit};
use crate::audit::{self, Record};
use anyhow::{bail, Context};
use clap::Subcommand;
use std::io::{BufRead, Seek};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit files (rotated ones and the current one, any order).
    #[command(
        after_help = "Examples:\n  kmipctl audit verify /var/lib/kmipd/audit.log*\n  kmipctl audit verify --dev ./kmipd-dev\n  kmipctl audit verify old/audit.log.000000100000 --partial\n\nDetects a changed record (hash), a removed record (sequence gap or broken link, also a whole rotated file),\nand reordered records. Prints the head hash: note it elsewhere to detect a later rewrite of the tail.\nExit codes: 0 intact; 2 cannot read; 4 the chain is broken."
    )]
    Verify {
        /// Audit files. With --dev and none given: DIR/audit.log and its rotated files.
        files: Vec<PathBuf>,
        /// The data directory of `kmipd --dev`.
        #[arg(long, value_name = "DIR")]
        dev: Option<PathBuf>,
        /// Accept a chain that does not start at record 0 (older files pruned).
        #[arg(long)]
        partial: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the last records of the audit log, and optionally follow it.
    #[command(
        after_help = "Examples:\n  kmipctl audit tail --dev ./kmipd-dev\n  kmipctl audit tail /var/lib/kmipd/audit.log -n 100 --json\n  kmipctl audit tail --dev ./kmipd-dev --follow"
    )]
    Tail {
        /// The audit log (default with --dev: DIR/audit.log).
        file: Option<PathBuf>,
        /// The data directory of `kmipd --dev`.
        #[arg(long, value_name = "DIR")]
        dev: Option<PathBuf>,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing new records (also across a rotation).
        #[arg(short, long)]
        follow: bool,
        /// JSON lines output (the records as stored).
        #[arg(long)]
        json: bool,
    },
}

fn print_record(r: &Record, json: bool) {
    if json {
        if let Ok(s) = serde_json::to_string(r) {
            println!("{s}");
        }
    } else {
        println!(
            "{:>8} {} {:<16} {:<22} {:<28} {:<38} {}",
            r.seq,
            r.time,
            r.identity,
            r.peer,
            r.operation,
            r.object.as_deref().unwrap_or("-"),
            r.result
        );
    }
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            mut files,
            dev,
            partial,
            json,
        } => {
            if files.is_empty() {
                let Some(d) = dev else {
                    bail!("give the audit files to verify, or --dev DIR");
                };
                let current = d.join("audit.log");
                files = audit::rotated_files(&current);
                files.push(current);
            }
            let bar = progress(files.len() as u64, "verifying");
            let r =
                tokio::task::spawn_blocking(move || audit::verify_files(&files, true, !partial))
                    .await?;
            bar.finish_and_clear();
            match r {
                Ok(v) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&serde_json::json!({
                                "valid": true,
                                "records": v.records,
                                "first_seq": v.seqs.map(|s| s.0),
                                "last_seq": v.seqs.map(|s| s.1),
                                "head": v.head,
                                "files": v.files,
                            }))?
                        );
                    } else {
                        let range = v
                            .seqs
                            .map(|(a, b)| format!(" (records {a}..={b})"))
                            .unwrap_or_default();
                        println!(
                            "audit chain intact: {} records in {} file(s){range}",
                            v.records,
                            v.files.len()
                        );
                        println!("head {}", v.head);
                    }
                    Ok(())
                }
                Err(b) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&serde_json::json!({
                                "valid": false, "line": b.line, "problem": b.problem,
                            }))?
                        );
                    }
                    Err(Exit::error(
                        exit::INVALID,
                        format!("audit chain broken at line {}: {}", b.line, b.problem),
                    ))
                }
            }
        }
        AuditCommand::Tail {
            file,
            dev,
            lines,
            follow,
            json,
        } => {
            let path = match (file, dev) {
                (Some(f), _) => f,
                (None, Some(d)) => d.join("audit.log"),
                (None, None) => bail!("give the audit log FILE, or --dev DIR"),
            };
            let f = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut last: std::collections::VecDeque<Record> =
                std::collections::VecDeque::with_capacity(lines + 1);
            let mut reader = std::io::BufReader::new(f);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                if let Ok(r) = serde_json::from_str::<Record>(line.trim_end()) {
                    last.push_back(r);
                    if last.len() > lines {
                        last.pop_front();
                    }
                }
                line.clear();
            }
            for r in &last {
                print_record(r, json);
            }
            if !follow {
                return Ok(());
            }
            let mut pos = reader.stream_position()?;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if len < pos {
                    // Rotated: the new file starts from the beginning.
                    pos = 0;
                }
                let mut f = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(_) => continue,
                };
                f.seek(std::io::SeekFrom::Start(pos))?;
                let mut reader = std::io::BufReader::new(f);
                loop {
                    line.clear();
                    let n = reader.read_line(&mut line)?;
                    if n == 0 || !line.ends_with('\n') {
                        break;
                    }
                    pos += n as u64;
                    if let Ok(r) = serde_json::from_str::<Record>(line.trim_end()) {
                        print_record(&r, json);
                    }
                }
            }
        }
    }
}
