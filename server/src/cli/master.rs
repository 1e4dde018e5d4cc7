//! `kmipctl master`: rotate the master key (a background job re-wraps every
//! key), list master key versions with their object counts, retire an
//! unused version.

use super::jobs::{describe, first_job};
use super::{vendor, Conn};
use crate::ops::admin::{entries, op, tag};
use clap::Subcommand;
use kmip::{Ttlv, Value};

#[derive(Debug, Subcommand)]
pub enum MasterCommand {
    /// Create a new master key version (used at once by new writes) and
    /// start the job that re-wraps every stored key under it.
    #[command(
        after_help = "Example:\n  kmipctl master rotate --dev ./kmipd-dev && kmipctl jobs watch --dev ./kmipd-dev"
    )]
    Rotate {
        #[command(flatten)]
        conn: Conn,
        /// Follow the job with a progress bar.
        #[arg(long)]
        watch: bool,
    },
    /// Master key versions, which one is current, and how many objects each wraps.
    #[command(after_help = "Example:\n  kmipctl master list --dev ./kmipd-dev --json")]
    List {
        #[command(flatten)]
        conn: Conn,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Destroy an old master key version in the HSM (or key file). Refused
    /// for the current version, during a rotation, and while any object
    /// is still wrapped under it.
    #[command(after_help = "Example:\n  kmipctl master retire 1 --dev ./kmipd-dev")]
    Retire {
        #[command(flatten)]
        conn: Conn,
        /// The version to retire.
        version: u32,
    },
}

/// One master key version as listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VersionView {
    /// Version.
    pub version: u64,
    /// Used by new writes.
    pub current: bool,
    /// Held by the key protector.
    pub held: bool,
    /// Label.
    pub label: String,
    /// Objects wrapped under it.
    pub objects: u64,
}

/// Reads a Master List response.
pub fn parse_versions(p: &Ttlv) -> Vec<VersionView> {
    p.children_with(tag::ENTRY)
        .map(|e| {
            let mut v = VersionView::default();
            for (name, x) in entries(e) {
                match (name.as_str(), &x.value) {
                    ("version", Value::LongInteger(n)) => v.version = (*n).max(0) as u64,
                    ("objects", Value::LongInteger(n)) => v.objects = (*n).max(0) as u64,
                    ("current", Value::Boolean(b)) => v.current = *b,
                    ("held", Value::Boolean(b)) => v.held = *b,
                    ("label", Value::TextString(s)) => v.label = s.clone(),
                    _ => {}
                }
            }
            v
        })
        .collect()
}

/// Runs a master command.
pub async fn run(cmd: MasterCommand) -> anyhow::Result<()> {
    match cmd {
        MasterCommand::Rotate { conn, watch } => {
            let mut c = conn.connect().await?;
            let p = vendor(&mut c, op::MASTER_ROTATE, vec![]).await?;
            let j = first_job(&p)?;
            println!("{}", describe(&j));
            if watch {
                super::jobs::run(super::jobs::JobsCommand::Watch {
                    conn,
                    id: Some(j.id),
                    interval: 1.0,
                })
                .await?;
            } else {
                println!("follow it with: kmipctl jobs watch {}", j.id);
            }
        }
        MasterCommand::List { conn, json } => {
            let mut c = conn.connect().await?;
            let versions = parse_versions(&vendor(&mut c, op::MASTER_LIST, vec![]).await?);
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else {
                println!(
                    "{:>7}  {:>10}  {:<8}  label",
                    "version", "objects", "status"
                );
                for v in versions {
                    let status = match (v.current, v.held) {
                        (true, _) => "current",
                        (false, true) => "old",
                        (false, false) => "MISSING",
                    };
                    println!(
                        "{:>7}  {:>10}  {:<8}  {}",
                        v.version, v.objects, status, v.label
                    );
                }
            }
        }
        MasterCommand::Retire { conn, version } => {
            let mut c = conn.connect().await?;
            vendor(
                &mut c,
                op::MASTER_RETIRE,
                vec![Ttlv::long(tag::NUMBER, version as i64)],
            )
            .await?;
            println!("master key version {version} retired");
        }
    }
    Ok(())
}
