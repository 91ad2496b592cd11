//! `hotline-server`: run the server, or make the first admin invite.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hotline_proto::Role;
use hotline_proto::invite::parse_lifetime;
use hotline_server::{Config, DataDir, RunningServer};
use tracing_subscriber::EnvFilter;

/// The hotline server: a secure emergency line between human-rights
/// defenders and their duty team.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (see docs/operations.md).
    #[arg(short, long, global = true, env = "HOTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the store and the TLS key (default: ./hotline-data).
    #[arg(short, long, global = true, env = "HOTLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on (default: 127.0.0.1:4433, this machine only).
    #[arg(short, long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// host:port that clients connect to, written into invites.
    #[arg(long, global = true)]
    public_addr: Option<String>,
    /// TLS server name for the development certificate and invites.
    #[arg(long, global = true)]
    server_name: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Make a one-time invite on the server host. Stop the server first;
    /// with a server running, admins use `hotline invite` instead.
    Invite {
        /// defender, officer, coordinator or admin.
        #[arg(long)]
        role: Role,
        /// How long the invite stays valid: 90s, 30m, 24h, 7d (max 30d).
        #[arg(long, default_value = "24h", value_parser = parse_lifetime)]
        ttl: u64,
    },
    /// Print the certificate pin that clients check.
    Fingerprint,
}

/// Log filter when `RUST_LOG` is unset. The transport libraries log peer
/// addresses at their debug levels, so they are held at `warn`.
const DEFAULT_LOG_FILTER: &str = "info,quinn=warn,quinn_proto=warn,rustls=warn";

/// How long the first-run admin invite stays valid.
const BOOTSTRAP_INVITE_TTL: u64 = 24 * 3600;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    if let Some(p) = &cli.public_addr {
        config.public_addr = Some(p.clone());
    }
    if let Some(n) = &cli.server_name {
        config.server_name = n.clone();
    }
    config.validate()?;
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Invite { role, ttl } => {
            let data = DataDir::open(&config)?;
            let invite = data
                .create_invite(&config, role, ttl)
                .await
                .context("cannot create the invite")?;
            println!("One-time {role} invite, valid for {}:", human_ttl(ttl));
            println!();
            println!("  {invite}");
            println!();
            println!("On the new device: hotline enroll '{invite}'");
            Ok(())
        }
        Command::Fingerprint => {
            // Reads the certificate only, so it works beside a running server.
            let tls = hotline_server::tls::TlsIdentity::load_or_create(&config)?;
            println!("{}", tls.pin);
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let data = DataDir::open(&config)?;
    let created = data.tls.created;
    let server = RunningServer::start_with(config.clone(), data).await?;
    let pin = server.cert_pin();
    println!(
        "hotline-server {} listening on {} (QUIC/UDP)",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );
    println!("data directory: {}", config.data_dir.display());
    if created {
        println!("created a new TLS certificate for this server");
    }
    println!("certificate pin (clients check this): {pin}");
    println!("                              groups: {}", pin.grouped());
    if !server.has_active_admin().await? {
        let invite = server
            .create_invite(Role::Admin, BOOTSTRAP_INVITE_TTL)
            .await
            .context("cannot create the first admin invite")?;
        println!();
        println!("No admin device is enrolled yet. One-time admin invite (valid 24 hours):");
        println!();
        println!("  {invite}");
        println!();
        println!("Connect a client with:  hotline enroll '{invite}'");
        println!("then:                   hotline status");
    }
    println!();
    println!("Press Ctrl-C to stop.");
    server.run_until(shutdown_signal()).await;
    Ok(())
}

fn human_ttl(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} second(s)"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
