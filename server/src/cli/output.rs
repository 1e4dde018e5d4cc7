//! Output helpers: aligned tables, attribute values as text, dates, and
//! progress bars (drawn on stderr only when it is a terminal, so scripts
//! and `--json` output stay clean).

use kmip::messages::attributes::Attribute;
use kmip::Value;
use std::time::Duration;

/// Prints rows as columns separated by two spaces, the header first.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// A date as RFC 3339, or `-`.
pub fn date(t: Option<i64>) -> String {
    t.map(kmip::time::format_rfc3339)
        .unwrap_or_else(|| "-".into())
}

/// A progress bar of `len` steps on stderr; hidden when stderr is not a
/// terminal. Shown only once the work has taken a second.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::hidden(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        if !b.is_finished() {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    });
    bar
}

/// Progress in bytes.
pub fn progress_bytes(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = progress(len, what);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// An attribute's value as text (enumerations by name, structures as
/// their fields' values joined by spaces, byte strings by length only).
pub fn attr_text(a: &Attribute) -> String {
    value_text(&a.name, &a.value)
}

fn value_text(name: &str, v: &Value) -> String {
    match v {
        Value::TextString(s) => s.clone(),
        Value::Integer(i) if name == "Cryptographic Usage Mask" => usage_mask(*i as u32),
        Value::Integer(i) => i.to_string(),
        Value::LongInteger(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::DateTime(d) => kmip::time::format_rfc3339(*d),
        Value::Interval(i) => format!("{i}s"),
        Value::Enumeration(e) => {
            kmip::tables::enum_for_tag(kmip::Tag::from_name(name).unwrap_or(kmip::Tag(0)))
                .and_then(|t| t.name_of(*e))
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{e:08X}"))
        }
        Value::Structure(c) => c
            .iter()
            .map(|t| match &t.value {
                Value::Enumeration(e) => kmip::tables::enum_for_tag(t.tag)
                    .and_then(|x| x.name_of(*e))
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("0x{e:08X}")),
                other => value_text(t.tag.name().unwrap_or(""), other),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::ByteString(b) => format!("<{} bytes>", b.len()),
        Value::BigInteger(_) | Value::DateTimeExtended(_) => "…".to_owned(),
    }
}

fn usage_mask(m: u32) -> String {
    const BITS: &[(u32, &str)] = &[
        (0x1, "Sign"),
        (0x2, "Verify"),
        (0x4, "Encrypt"),
        (0x8, "Decrypt"),
        (0x10, "Wrap Key"),
        (0x20, "Unwrap Key"),
        (0x40, "Export"),
        (0x80, "MAC Generate"),
        (0x100, "MAC Verify"),
        (0x200, "Derive Key"),
        (0x400, "Content Commitment"),
        (0x800, "Key Agreement"),
        (0x1000, "Certificate Sign"),
        (0x2000, "CRL Sign"),
    ];
    let names: Vec<&str> = BITS
        .iter()
        .filter(|(b, _)| m & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        m.to_string()
    } else {
        names.join("|")
    }
}
