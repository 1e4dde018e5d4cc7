//! `kmipctl status`: kmipd Status as a table or JSON.

use super::{vendor, Conn};
use crate::ops::admin::{entries, op};
use clap::Args;
use kmip::{Ttlv, Value};

/// `kmipctl status`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kmipctl status --dev ./kmipd-dev\n  kmipctl status --server kms.example.com:5696 --ca ca.crt --cert admin.crt --key admin.key --json\n\nShows version, start time and uptime, KMIP versions, objects by state, HSM backend and health,\nmaster key version, certificate expiry dates and background jobs."
)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn json_value(t: &Ttlv) -> serde_json::Value {
    match &t.value {
        Value::TextString(s) => s.clone().into(),
        Value::Integer(i) => (*i).into(),
        Value::LongInteger(i) => (*i).into(),
        Value::Boolean(b) => (*b).into(),
        Value::DateTime(d) => kmip::time::format_rfc3339(*d).into(),
        Value::Enumeration(e) => (*e).into(),
        other => format!("{other:?}").into(),
    }
}

fn text_value(t: &Ttlv) -> String {
    match json_value(t) {
        serde_json::Value::String(s) => s,
        v => v.to_string(),
    }
}

/// Runs `kmipctl status`.
pub async fn run(a: StatusArgs) -> anyhow::Result<()> {
    let mut c = a.conn.connect().await?;
    let r = vendor(&mut c, op::STATUS, vec![]).await?;
    let e = entries(&r);
    if a.json {
        let m: serde_json::Map<String, serde_json::Value> =
            e.iter().map(|(k, v)| (k.clone(), json_value(v))).collect();
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(());
    }
    for (k, v) in &e {
        let shown = match k.as_str() {
            "uptime_secs" => {
                let s = v.as_long().unwrap_or(0);
                format!(
                    "{}d {:02}h {:02}m {:02}s",
                    s / 86_400,
                    s / 3600 % 24,
                    s / 60 % 60,
                    s % 60
                )
            }
            _ => text_value(v),
        };
        let label = k.strip_prefix("objects.").map(|s| format!("  objects {s}"));
        println!(
            "{:<30} {shown}",
            label.unwrap_or_else(|| k.replace('_', " "))
        );
    }
    Ok(())
}
