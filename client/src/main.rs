//! `hotline`: the command-line client.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use hotline_client::keystore::DEFAULT_ITERATIONS;
use hotline_client::{ClientError, StateDir};
use hotline_proto::invite::parse_lifetime;
use hotline_proto::{DeviceId, Invite, Role};
use tracing_subscriber::EnvFilter;

/// The environment variable that supplies the passphrase without a prompt
/// (for automation; anyone who can read this process's environment can
/// read it).
const PASSPHRASE_ENV: &str = "HOTLINE_PASSPHRASE";

/// hotline: reach the duty team securely.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// State directory holding this device's key and profile
    /// (default: $HOME/.hotline).
    #[arg(long, global = true, env = "HOTLINE_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this device with an invite ("hotline:...").
    Enroll {
        /// The invite text, as you received it.
        invite: String,
    },
    /// Connect, authenticate and show this device's role and server.
    Status,
    /// Make a one-time invite (admins: any role; officers and
    /// coordinators: defenders).
    Invite {
        /// defender, officer, coordinator or admin.
        #[arg(long)]
        role: Role,
        /// How long it stays valid: 90s, 30m, 24h, 7d (max 30d).
        #[arg(long, default_value = "24h", value_parser = parse_lifetime)]
        ttl: u64,
    },
    /// List enrolled devices (admins).
    Devices,
    /// Revoke a device so it can no longer connect (admins).
    Revoke {
        /// The device id, as shown by `hotline devices`.
        device_id: DeviceId,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

fn home(cli: &Cli) -> anyhow::Result<StateDir> {
    if let Some(h) = &cli.home {
        return Ok(StateDir::new(h));
    }
    let Some(user_home) = std::env::var_os("HOME") else {
        bail!("no state directory: set HOTLINE_HOME or pass --home");
    };
    Ok(StateDir::new(PathBuf::from(user_home).join(".hotline")))
}

/// The passphrase from the environment, or asked at the terminal (twice
/// when `confirm`).
fn passphrase(prompt: &str, confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(p);
    }
    let first = rpassword::prompt_password(prompt).with_context(|| {
        format!("cannot ask for the passphrase (no terminal?); set {PASSPHRASE_ENV}")
    })?;
    if confirm {
        let again = rpassword::prompt_password("Repeat the passphrase: ")
            .context("cannot read the passphrase")?;
        if again != first {
            bail!("the two passphrases differ; nothing was saved");
        }
    }
    Ok(first)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let state = home(&cli)?;
    match cli.command {
        Command::Enroll { invite } => {
            let invite: Invite = invite.parse().context("this is not a valid invite")?;
            let new_key = !state.has_identity();
            let prompt = if new_key {
                "Choose a passphrase to protect this device's key: "
            } else {
                "Passphrase for this device's key: "
            };
            let pass = passphrase(prompt, new_key)?;
            let session =
                hotline_client::enroll(&state, &invite, &pass, DEFAULT_ITERATIONS).await?;
            println!("Enrolled as {} on {}.", session.role(), invite.server_addr);
            println!("device id: {}", session.device_id());
            println!("state directory: {}", state.path().display());
            session.close().await;
        }
        Command::Status => {
            let session = connect(&state).await?;
            let status = session.status().await?;
            let profile = state.load_profile()?;
            println!(
                "connected to {} ({})",
                profile.server_addr, profile.cert_pin
            );
            println!("device id: {}", status.device_id);
            println!("role: {}", status.role);
            println!("server version: {}", status.server_version);
            session.close().await;
        }
        Command::Invite { role, ttl } => {
            let session = connect(&state).await?;
            let invite = session.create_invite(role, ttl).await?;
            println!("One-time {role} invite. Hand it over by a safe channel; it works once.");
            println!();
            println!("  {invite}");
            println!();
            println!("On the new device: hotline enroll '{invite}'");
            session.close().await;
        }
        Command::Devices => {
            let session = connect(&state).await?;
            let devices = session.devices().await?;
            println!(
                "{:<32}  {:<11}  {:<10}  status",
                "device id", "role", "enrolled"
            );
            for d in devices {
                let status = match d.revoked_at {
                    Some(t) => format!("revoked {}", date(t)),
                    None => "active".to_owned(),
                };
                let me = if d.device_id == session.device_id() {
                    "  (this device)"
                } else {
                    ""
                };
                println!(
                    "{}  {:<11}  {:<10}  {status}{me}",
                    d.device_id,
                    d.role,
                    date(d.enrolled_at)
                );
            }
            session.close().await;
        }
        Command::Revoke { device_id } => {
            let session = connect(&state).await?;
            let at = session.revoke(device_id).await?;
            println!(
                "device {device_id} revoked ({}); its connections were closed.",
                date(at)
            );
            session.close().await;
        }
    }
    Ok(())
}

async fn connect(state: &StateDir) -> Result<hotline_client::Session, ClientError> {
    // Fail on a missing profile before asking for a passphrase.
    state.load_profile()?;
    let pass =
        passphrase("Passphrase: ", false).map_err(|e| ClientError::State(format!("{e:#}")))?;
    hotline_client::connect(state, &pass).await
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn date(unix: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate.
    let days = (unix / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The error and its causes on one line, skipping a cause whose text the
/// line already holds (many errors quote their source).
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_910_400), "2026-11-29");
    }
}
