//! `kmipd`: the KMIP server.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use kmipd_server::{app, config::Config, dev};
use std::path::PathBuf;

/// kmipd: a KMIP key manager for VMware vCenter and ESXi over mutual TLS.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  kmipd --dev                       # try it: certificates, master key and store in ./kmipd-dev\n  kmipd --config /etc/kmipd/kmipd.toml\n  kmipd restore kmipd.backup --data-dir /var/lib/kmipd-new"
)]
struct Args {
    /// Development mode: generate certificates, a software master key and a
    /// sled store under the data directory, and serve on 127.0.0.1:5696.
    #[arg(long)]
    dev: bool,
    /// Data directory for --dev.
    #[arg(long, default_value = "kmipd-dev")]
    data_dir: PathBuf,
    /// With --dev: ECDSA P-256 certificates instead of RSA-2048.
    #[arg(long)]
    ecdsa: bool,
    /// Production configuration (TOML).
    #[arg(long, conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// Override the listen address.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file and exit.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Restore a `kmipctl backup` file into a new data directory (its
    /// `store/`), refusing a directory that is not empty. The server must
    /// then run with the same master key (HSM or master.key): the material
    /// in a backup stays wrapped.
    #[command(
        after_help = "Example:\n  kmipd restore kmipd-2024-05-01.backup --data-dir /var/lib/kmipd-restored\n  cp kmipd-dev/master.key kmipd-dev/certs -r /var/lib/kmipd-restored/   # dev mode: same master key\n\nExit status: 0 restored; 1 the file is damaged or the directory is not empty."
    )]
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The data directory to create (must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmipd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmipd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn restore(file: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use kmipd_server::ops::backup;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let b = backup::parse(&bytes).with_context(|| format!("{}", file.display()))?;
    let total = b.entries.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("restoring {bar:40} {pos}/{len} entries")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let n = backup::restore(&b, data_dir, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    println!(
        "restored {n} entries ({} objects, taken {}) into {}",
        b.manifest.entries.get("objects").copied().unwrap_or(0),
        b.manifest.created,
        data_dir.join("store").display()
    );
    println!(
        "material is wrapped under master key version(s) {:?}: run kmipd there with the same master key",
        b.manifest.master_key_versions
    );
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Command::CheckConfig { file }) => {
            Config::load(file)?;
            println!("{}: ok", file.display());
            return Ok(());
        }
        Some(Command::Restore { file, data_dir }) => return restore(file, data_dir),
        None => {}
    }
    let (mut config, dev_paths) = if let Some(path) = &args.config {
        (Config::load(path)?, None)
    } else if args.dev {
        let (c, p) = dev::prepare(&args.data_dir, args.ecdsa)?;
        (c, Some(p))
    } else {
        anyhow::bail!("give --dev to try kmipd, or --config FILE (see docs/configuration.md)");
    };
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    init_logging(config.log.json, &config.log.level);
    let running = app::start(&config, None).await?;
    let dir = config.server.data_dir.display();
    println!(
        "kmipd {} serving KMIP on {}",
        env!("CARGO_PKG_VERSION"),
        running.addr
    );
    if let Some(p) = dev_paths {
        println!("data directory: {dir}");
        println!("  CA certificate:      {}", p.ca_cert.display());
        println!("  server certificate:  {}", p.server_cert.display());
        println!(
            "  admin client:        {} / {}",
            p.admin_cert.display(),
            p.admin_key.display()
        );
        println!(
            "  vCenter client:      {} / {}",
            p.vcenter_cert.display(),
            p.vcenter_key.display()
        );
        println!(
            "  master key (software): {}",
            config.server.data_dir.join("master.key").display()
        );
        println!(
            "  store (sled):        {}",
            config.server.data_dir.join("store").display()
        );
        println!("try: cargo run -p kmipd-server --bin kmipctl -- keys create --dev {dir}");
    }
    if let Some(m) = running.metrics_addr {
        println!("metrics on http://{m}/metrics");
    }
    wait_for_signals(&running)
        .await
        .context("signal handling")?;
    println!("kmipd: shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signals(running: &app::Running) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => match running.tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS configuration reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: cannot reload certificates; keeping the old ones"),
            },
        }
    }
}
