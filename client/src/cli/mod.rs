//! `hotline`: the command-line client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use hotline_client::keystore::DEFAULT_ITERATIONS;
use hotline_client::messenger::Device;
use hotline_client::outbox::Outgoing;
use hotline_client::{ClientError, StateDir};
use hotline_proto::alert::{CloseReason, Priority, Push};
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::identity::{hex, unhex};
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
    /// Send an end-to-end encrypted message to the duty team (every staff
    /// device on the signed roster), and to one more device with --to.
    #[command(alias = "reply")]
    Send {
        /// The message.
        message: String,
        /// Also send to this device (staff only; for example a defender).
        #[arg(long)]
        to: Option<DeviceId>,
        /// In the thread of this alert, to its defender (staff).
        #[arg(long, conflicts_with = "to")]
        alert: Option<u64>,
    },
    /// Show what is waiting to be sent, and try to send it.
    Outbox,
    /// How far messages you sent got: delivered to and read by how many devices.
    Delivery {
        /// Message ids, as `hotline send` printed them.
        ids: Vec<u64>,
    },
    /// Fetch, verify and decrypt the messages waiting for this device.
    #[command(alias = "messages")]
    Inbox,
    /// Pin the organisation root key (64 hex digits), after comparing its
    /// fingerprint with an admin over another channel.
    TrustOrg {
        /// The root public key, in hex.
        public_key: String,
    },
    /// Organisation root key tasks (admins, on a machine the key never leaves).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Raise an alert (defenders): the duty team is paged at once and the
    /// alert escalates until someone answers.
    Sos {
        /// What is happening (end-to-end encrypted).
        message: String,
        /// immediate, urgent or routine.
        #[arg(long, default_value = "immediate")]
        priority: Priority,
        /// arrest, attack, surveillance, leave-country, medical, legal, other.
        #[arg(long, default_value = "other")]
        category: String,
    },
    /// List alerts: open ones (--all for every one), with state, age and holder.
    Alerts {
        /// Include closed alerts.
        #[arg(long)]
        all: bool,
    },
    /// Claim an alert (staff).
    Ack {
        /// The alert id.
        alert: u64,
    },
    /// Mark an alert resolved (staff).
    Resolve {
        /// The alert id.
        alert: u64,
    },
    /// Call an alert off; everyone paged gets the all clear.
    Cancel {
        /// The alert id.
        alert: u64,
        /// It never was an emergency.
        #[arg(long)]
        false_alarm: bool,
    },
    /// Go on or off duty (staff).
    Duty {
        /// on or off.
        state: OnOff,
    },
    /// Show pages and all clears live as they arrive (staff). Ctrl-C stops.
    Watch,
    /// Check in with your code (defenders).
    Checkin {
        /// The code (asked for if not given).
        #[arg(long)]
        code: Option<String>,
    },
    /// Set up safety check-ins (defenders): if you miss one, the duty team
    /// is alerted. Also sets the duress code: typed instead of the normal
    /// code, it looks the same but silently raises an immediate alert.
    CheckinSetup {
        /// How often: 30m, 6h, 1d (or "off").
        #[arg(long)]
        every: String,
        /// Grace after a missed check-in before the alert.
        #[arg(long, default_value = "15m", value_parser = parse_lifetime)]
        grace: u64,
        /// The normal code (asked for if not given).
        #[arg(long)]
        code: Option<String>,
        /// The duress code (asked for if not given).
        #[arg(long)]
        duress_code: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create the organisation root key in a new file (keep it offline),
    /// and pin it on this device.
    Init {
        /// Where to write the key (sealed under a passphrase).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a roster of every active staff device and upload it.
    SignRoster {
        /// The organisation root key file.
        #[arg(long)]
        key: PathBuf,
        /// How long the roster stays valid: 7d, 30d (max 30d).
        #[arg(long, default_value = "30d", value_parser = parse_lifetime)]
        valid: u64,
    },
}

/// The environment variable for the organisation key's passphrase.
const ORG_PASSPHRASE_ENV: &str = "HOTLINE_ORG_PASSPHRASE";

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
            // Publish prekeys now, so that messages can reach this device
            // before it first looks at its inbox.
            let mut device = Device::open(&state, &pass)?;
            device.sync_prekeys(&session).await?;
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
            let mut invite = session.create_invite(role, ttl).await?;
            // Vouch with what this device trusts, not what the server says:
            // the pin it checked and the organisation root it pinned.
            let profile = state.load_profile()?;
            invite.cert_pin = profile.server()?.pin;
            if let Some(root) = profile
                .org_root
                .as_deref()
                .and_then(unhex)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                invite.org_root = Some(OrgPublicKey::from_bytes(root));
            }
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
        Command::Send { message, to, alert } => {
            let mut device = open_device(&state)?;
            match alert {
                Some(alert_id) => {
                    // Threads need the alert's defender: this asks the server.
                    let session = device.connect().await?;
                    let found = session
                        .alerts(false)
                        .await?
                        .into_iter()
                        .find(|a| a.id == alert_id);
                    let Some(a) = found else {
                        bail!("no alert {alert_id} visible to this device");
                    };
                    device.queue(
                        message.as_bytes(),
                        Outgoing::Reply {
                            alert: alert_id,
                            to: a.defender,
                        },
                    )?;
                    session.close().await;
                }
                None => {
                    device.queue(message.as_bytes(), Outgoing::Message { to })?;
                }
            }
            if let Some(sent) = deliver(&mut device).await? {
                for s in sent {
                    if let hotline_client::messenger::Sent::Message { id, .. } = s {
                        println!(
                            "message {id} sent, end-to-end encrypted, to the staff on the signed roster"
                        );
                    }
                }
            }
        }
        Command::Delivery { ids } => {
            let session = connect(&state).await?;
            let states = session.delivery(ids).await?;
            if states.is_empty() {
                println!("no such messages sent by this device");
            }
            for d in states {
                println!(
                    "message {}: delivered to {} of {} devices, read on {}",
                    d.id, d.delivered, d.recipients, d.read
                );
            }
            session.close().await;
        }
        Command::Outbox => {
            let mut device = open_device(&state)?;
            if device.pending().is_empty() {
                println!("nothing waiting to be sent");
            } else if deliver(&mut device).await?.is_some() {
                println!("everything waiting was sent");
            }
        }
        Command::Inbox => {
            let mut device = open_device(&state)?;
            let session = device.connect().await?;
            device.sync_prekeys(&session).await?;
            let waiting = device.pending().len();
            if waiting > 0 {
                device.flush(&session).await?;
                println!("sent {waiting} item(s) that were waiting in the outbox");
            }
            let messages = device.receive(&session).await?;
            for w in device.take_warnings() {
                eprintln!("WARNING: {w}");
            }
            if messages.is_empty() {
                println!("no new messages");
            }
            let shown: Vec<u64> = messages.iter().map(|m| m.id).collect();
            for m in messages {
                let who = match m.sender_role {
                    Some(role) => format!("{role} {}", m.sender),
                    None => format!("defender {}", m.sender),
                };
                let thread = if m.thread != 0 {
                    format!(" [alert #{}]", m.thread)
                } else {
                    String::new()
                };
                println!("[{}] from {who}{thread}:", date(m.timestamp));
                println!("  {}", String::from_utf8_lossy(&m.body));
            }
            if !shown.is_empty() {
                session.mark_read(shown).await?;
            }
            session.close().await;
        }
        Command::Sos {
            message,
            priority,
            category,
        } => {
            let mut device = open_device(&state)?;
            let body = format!("category: {category}\n{message}");
            device.queue(body.as_bytes(), Outgoing::Alert(priority))?;
            if let Some(sent) = deliver(&mut device).await? {
                for s in sent {
                    if let hotline_client::messenger::Sent::Alert(alert) = s {
                        println!(
                            "alert {} raised ({}); {} duty staff paged. You will be contacted.",
                            alert.id, alert.priority, alert.paged
                        );
                    }
                }
            }
        }
        Command::Alerts { all } => {
            let session = connect(&state).await?;
            let alerts = session.alerts(!all).await?;
            if alerts.is_empty() {
                println!("no open alerts");
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            for a in alerts {
                let holder = a
                    .holder
                    .map(|h| format!(" held by {h}"))
                    .unwrap_or_default();
                println!(
                    "#{:<6} {:<9} {:<15} {:<12} {:>5} min  defender {}  paged {}{holder}",
                    a.id,
                    a.priority,
                    a.origin.as_str(),
                    a.status,
                    now.saturating_sub(a.raised_at) / 60,
                    a.defender,
                    a.paged
                );
            }
            session.close().await;
        }
        Command::Ack { alert } => {
            let session = connect(&state).await?;
            match session.claim_alert(alert).await? {
                Ok(()) => println!("you hold alert {alert}; the defender sees it is claimed"),
                Err(holder) => bail!("alert {alert} is already held by device {holder}"),
            }
            session.close().await;
        }
        Command::Resolve { alert } => {
            let session = connect(&state).await?;
            session.close_alert(alert, CloseReason::Resolved).await?;
            println!("alert {alert} resolved");
            session.close().await;
        }
        Command::Cancel { alert, false_alarm } => {
            let session = connect(&state).await?;
            let reason = if false_alarm {
                CloseReason::FalseAlarm
            } else {
                CloseReason::Cancelled
            };
            session.close_alert(alert, reason).await?;
            println!("alert {alert} called off; everyone paged gets the all clear");
            session.close().await;
        }
        Command::Duty { state: on_off } => {
            let session = connect(&state).await?;
            session.set_duty(matches!(on_off, OnOff::On)).await?;
            println!(
                "you are {} duty",
                if matches!(on_off, OnOff::On) {
                    "on"
                } else {
                    "off"
                }
            );
            session.close().await;
        }
        Command::Watch => watch(&state).await?,
        Command::Checkin { code } => {
            let code = match code {
                Some(c) => c,
                None => {
                    rpassword::prompt_password("Check-in code: ").context("cannot read the code")?
                }
            };
            let session = connect(&state).await?;
            session.checkin(&code).await?;
            println!("checked in");
            session.close().await;
        }
        Command::CheckinSetup {
            every,
            grace,
            code,
            duress_code,
        } => {
            let session = connect(&state).await?;
            if every.trim() == "off" {
                session.set_checkin(0, 0, "-", "--").await?;
                println!("check-ins stopped");
            } else {
                let interval =
                    parse_lifetime(&every).map_err(|e| anyhow::anyhow!("--every: {e}"))?;
                let code = match code {
                    Some(c) => c,
                    None => rpassword::prompt_password("Normal check-in code: ")
                        .context("cannot read the code")?,
                };
                let duress = match duress_code {
                    Some(c) => c,
                    None => rpassword::prompt_password("Duress code: ")
                        .context("cannot read the code")?,
                };
                session.set_checkin(interval, grace, &code, &duress).await?;
                println!(
                    "check in every {every}; the duty team is alerted if you miss one by more than the grace"
                );
            }
            session.close().await;
        }
        Command::TrustOrg { public_key } => {
            let bytes: [u8; 32] = unhex(public_key.trim())
                .and_then(|b| b.try_into().ok())
                .context("an organisation root key is 64 hexadecimal digits")?;
            let root = OrgPublicKey::from_bytes(bytes);
            let mut device = open_device(&state)?;
            device.pin_org_root(root)?;
            println!(
                "pinned organisation root, fingerprint {}",
                root.fingerprint()
            );
        }
        Command::Org(OrgCommand::Init { out }) => {
            let pass = org_passphrase(true)?;
            let root = hotline_client::org::create_org_key(&out, &pass, DEFAULT_ITERATIONS)?;
            println!(
                "organisation root key written to {} — keep it offline",
                out.display()
            );
            println!("public key:  {}", hex(root.as_bytes()));
            println!("fingerprint: {}", root.fingerprint());
            if state.is_enrolled() {
                let mut device = open_device(&state)?;
                device.pin_org_root(root)?;
                println!(
                    "pinned on this device; next: hotline org sign-roster --key {}",
                    out.display()
                );
            }
        }
        Command::Org(OrgCommand::SignRoster { key, valid }) => {
            let pass = org_passphrase(false)?;
            let root = hotline_client::org::load_org_key(&key, &pass)?;
            let mut device = open_device(&state)?;
            let session = device.connect().await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let roster =
                hotline_client::org::sign_roster(&session, &mut device, &root, now, valid).await?;
            println!(
                "roster version {} signed and uploaded: {} staff devices, valid until {}",
                roster.version,
                roster.entries.len(),
                date(roster.expires_at)
            );
            session.close().await;
        }
    }
    Ok(())
}

fn open_device(state: &StateDir) -> Result<Device, ClientError> {
    state.load_profile()?;
    let pass =
        passphrase("Passphrase: ", false).map_err(|e| ClientError::State(format!("{e:#}")))?;
    Device::open(state, &pass)
}

/// Sends what the outbox holds. If the server cannot be reached, says what
/// is waiting and returns `None`: it goes out on the next command that
/// reaches the server.
async fn deliver(
    device: &mut Device,
) -> Result<Option<Vec<hotline_client::messenger::Sent>>, ClientError> {
    let session = match device.connect().await {
        Ok(s) => s,
        Err(ClientError::Unreachable { .. } | ClientError::ConnectionLost(_)) => {
            let n = device.pending().len();
            println!(
                "the server cannot be reached: {n} item(s) waiting in the outbox, sent as soon as it can be (try `hotline outbox`)"
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    device.sync_prekeys(&session).await?;
    let sent = device.flush(&session).await?;
    session.close().await;
    Ok(Some(sent))
}

fn org_passphrase(confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(ORG_PASSPHRASE_ENV) {
        return Ok(p);
    }
    let first = rpassword::prompt_password("Organisation key passphrase: ").with_context(|| {
        format!("cannot ask for the passphrase (no terminal?); set {ORG_PASSPHRASE_ENV}")
    })?;
    if confirm {
        let again =
            rpassword::prompt_password("Repeat it: ").context("cannot read the passphrase")?;
        if again != first {
            bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(first)
}

/// The live view: pages and all clears as they arrive. A dropped
/// connection (network change, server restart) is retried with backoff
/// for as long as it takes; pages sent meanwhile are pushed again by the
/// server on reconnection, so none is missed. Refusals (a revoked device)
/// end it.
async fn watch(state: &StateDir) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    const FIRST_RETRY: Duration = Duration::from_secs(1);
    const LAST_RETRY: Duration = Duration::from_secs(30);
    state.load_profile()?;
    // Asked once: reconnecting at 3 a.m. must not wait for a person.
    let pass = zeroize::Zeroizing::new(passphrase("Passphrase: ", false)?);
    let bell = if std::io::stdout().is_terminal() {
        "\x07"
    } else {
        ""
    };
    println!("watching for alerts (Ctrl-C to stop)");
    let mut retry = FIRST_RETRY;
    let mut away = false;
    loop {
        let connected = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            c = hotline_client::connect(state, &pass) => c,
        };
        let session = match connected {
            Ok(s) => s,
            Err(e) if e.is_transient() => {
                eprintln!("{e}; trying again in {} s", retry.as_secs());
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if away {
            println!("reconnected; pages sent while away follow");
        }
        retry = FIRST_RETRY;
        let lost = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break None,
                // Shown first, confirmed after: a confirmed page was seen.
                push = session.next_push_shown(Duration::from_secs(3600), |push| match push {
                    Push::Alert(a) => println!(
                        "{bell}[{}] ALERT #{} {} {} from defender {}: {} (step {}.{}, {} paged)",
                        date(a.raised_at), a.id, a.priority, a.origin.as_str(), a.defender, a.status, a.position.0 + 1, a.position.1 + 1, a.paged
                    ),
                    Push::AllClear(id) => println!("all clear: alert #{id} was called off"),
                }) => match push {
                    Ok(_) => {}
                    Err(e) => break Some(e),
                },
            }
        };
        match lost {
            None => {
                session.close().await;
                return Ok(());
            }
            Some(e) if e.is_transient() => {
                eprintln!("{e}; reconnecting");
                away = true;
            }
            Some(e) => return Err(e.into()),
        }
    }
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
