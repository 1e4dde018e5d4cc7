//! `kmipctl backup FILE` and `kmipctl backup verify FILE`.
//!
//! The snapshot is taken by kmipd (kmipd Backup, see
//! [`crate::ops::backup`]): consistent, durable, material still wrapped
//! under the master key. kmipctl downloads it in chunks, checks the
//! SHA-256 kmipd announced, verifies the file as `backup verify` would,
//! and only then moves it into place.

use super::output::progress_bytes;
use super::{exit, vendor, Conn, Exit};
use crate::ops::admin::{entries, op, tag};
use crate::ops::backup;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kmip::Ttlv;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `kmipctl backup`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  kmipctl backup /var/backups/kmipd-$(date +%F).backup --dev ./kmipd-dev\n  kmipctl backup verify /var/backups/kmipd-2024-05-01.backup\n  kmipd restore /var/backups/kmipd-2024-05-01.backup --data-dir /var/lib/kmipd-restored\n\nThe backup is a consistent online snapshot (no transaction half in it), durable on the server before it is\nsent, with a manifest and SHA-256 checksums. Key material stays wrapped under the master key: keep the\nmaster key (HSM or master.key) safe separately; a backup cannot be used without it.\nExit codes: 0 success; 1 the server refused; 2 usage, connection or local error; 4 the file is damaged."
)]
pub struct BackupArgs {
    #[command(subcommand)]
    cmd: Option<BackupCommand>,
    /// Where to write the backup (refuses to overwrite unless --overwrite).
    file: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
    /// Replace FILE if it exists.
    #[arg(long)]
    overwrite: bool,
    /// JSON output (the manifest).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Check a backup file: checksums, manifest, every record, the index.
    #[command(
        after_help = "Example:\n  kmipctl backup verify kmipd.backup --json\n\nExit codes: 0 valid; 2 cannot read the file; 4 damaged or inconsistent."
    )]
    Verify {
        /// The backup file.
        file: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn verify_file(file: &Path) -> anyhow::Result<backup::Backup> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    backup::parse(&bytes)
        .map_err(|e| Exit::error(exit::INVALID, format!("{}: {e}", file.display())))
}

fn print_manifest(m: &backup::Manifest, file: &Path, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"file": file, "valid": true, "manifest": m}))?
        );
    } else {
        println!("{}: valid kmipd backup", file.display());
        println!(
            "  taken            {} (kmipd {})",
            m.created, m.kmipd_version
        );
        println!(
            "  objects          {}",
            m.entries.get("objects").copied().unwrap_or(0)
        );
        for (s, n) in &m.objects_by_state {
            println!("    {s:<22} {n}");
        }
        println!("  master key versions {:?}", m.master_key_versions);
        println!("  schema version   {}", m.schema_version);
        println!("  body sha256      {}", m.body_sha256);
    }
    Ok(())
}

/// Runs `kmipctl backup`.
pub async fn run(a: BackupArgs) -> anyhow::Result<()> {
    if let Some(BackupCommand::Verify { file, json }) = a.cmd {
        let b = verify_file(&file)?;
        return print_manifest(&b.manifest, &file, json);
    }
    let Some(file) = a.file else {
        bail!("give the backup FILE to write (or `kmipctl backup verify FILE`)");
    };
    if file.exists() && !a.overwrite {
        bail!(
            "{} exists: choose another name or give --overwrite",
            file.display()
        );
    }
    let mut c = a.conn.connect().await?;
    let r = vendor(&mut c, op::BACKUP, vec![]).await?;
    let e = entries(&r);
    let get = |n: &str| e.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let id = get("backup")
        .and_then(|v| v.as_text().ok().map(str::to_owned))
        .context("kmipd answered Backup without an identifier")?;
    let size = get("size")
        .and_then(|v| v.as_long().ok())
        .context("kmipd answered Backup without a size")? as u64;
    let sha = get("sha256")
        .and_then(|v| v.as_text().ok().map(str::to_owned))
        .context("kmipd answered Backup without a checksum")?;
    let mut tmp_name = file.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = PathBuf::from(tmp_name);
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let bar = progress_bytes(size, "downloading");
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    while offset < size {
        let r = vendor(
            &mut c,
            op::BACKUP,
            vec![
                Ttlv::text(tag::JOB, id.clone()),
                Ttlv::long(tag::OFFSET, offset as i64),
            ],
        )
        .await?;
        let chunk = r
            .child(tag::BLOB)
            .and_then(|b| b.as_bytes().ok())
            .context("kmipd answered a Backup chunk without data")?;
        if chunk.is_empty() {
            bail!("kmipd sent an empty chunk at {offset} of {size}");
        }
        hasher.update(chunk);
        out.write_all(chunk)?;
        offset += chunk.len() as u64;
        bar.set_position(offset);
    }
    out.sync_all()?;
    drop(out);
    bar.finish_and_clear();
    let got = hex::encode(hasher.finalize());
    if got != sha {
        let _ = std::fs::remove_file(&tmp);
        return Err(Exit::error(
            exit::INVALID,
            format!("the download does not match kmipd's checksum ({got} != {sha}); nothing was written"),
        ));
    }
    let b = match verify_file(&tmp) {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &file)
        .with_context(|| format!("moving the backup to {}", file.display()))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"file": file, "size": size, "sha256": sha, "manifest": b.manifest})
            )?
        );
    } else {
        println!(
            "{}: {} objects, {size} bytes, sha256 {sha}",
            file.display(),
            b.manifest.entries.get("objects").copied().unwrap_or(0)
        );
    }
    Ok(())
}
