//! Host names and local addresses for server certificate SANs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// This machine's host name, from `/proc/sys/kernel/hostname` (Linux) or `/etc/hostname`,
/// if it is a usable DNS name. std has no portable `gethostname` and this crate forbids
/// `unsafe`, hence the files.
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty() && s != "localhost" && check_dns_name(s).is_ok())
}

/// The addresses of the local interfaces (loopback included), without IPv4/IPv6 link-local
/// addresses, which make no sense in a certificate. Falls back to the loopback addresses if
/// the interfaces cannot be listed.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if let Ok(ifaces) = if_addrs::get_if_addrs() {
        for iface in ifaces {
            let ip = iface.ip();
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            };
            if !link_local && !ip.is_unspecified() && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

/// Checks a DNS name for a SAN: labels of `a-z A-Z 0-9 -` (a leading `*.` wildcard label is
/// allowed), 1 to 63 characters each, 253 in all.
pub fn check_dns_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidSan {
            value: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() || name.len() > 253 {
        return bad("a DNS name has 1 to 253 characters");
    }
    if name.parse::<IpAddr>().is_ok() {
        return bad("this is an IP address: give it with --ip");
    }
    let body = name.strip_prefix("*.").unwrap_or(name);
    for label in body.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("empty or too long label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("use only a-z A-Z 0-9 - in labels");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}
