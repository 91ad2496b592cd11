//! The `hotline` commands: their arguments and the one dispatch over
//! them. Each group of commands has its own file:
//!
//! * `devices`: enroll, status, invite, devices, revoke.
//! * `messages`: send (and reply), outbox, delivery, inbox, messages.
//! * `alerts`: sos, alerts, ack, resolve, cancel, duty, watch.
//! * `checkins`: checkin, checkin-setup.
//! * `org`: trust-org, org init, org show, org sign-roster.
//! * `cases`: case …, relocation … (staff); `case_view`: how cases read;
//!   `case_erase`: case erase, hold and stats.
//! * `case_share`: case share (staff); `case_links`: the defender's side
//!   of a case as staff read it (request words, linked devices, replies,
//!   the case a missed check-in in transit names).
//! * `my_case`: request, my-case, my-case reply (defenders);
//!   `request_words`: how a defender's device names its own requests.
//!
//! They share `unlock` (the state directory, passphrases, unlocking the
//! device, connecting), `date` (how a time is shown)
//! `panic` (sending the SOS queued without the passphrase first) and
//! `waiting_sos` (sending the SOS queued with the passphrase first).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hotline_client::StateDir;
use hotline_proto::Role;
use hotline_proto::alert::Priority;
use hotline_proto::e2e::content::CheckinOffer;
use hotline_proto::invite::parse_lifetime;

mod alert_copy;
mod alert_sync;
mod alert_view;
mod alerts;
mod case_erase;
mod case_links;
mod case_share;
mod case_view;
mod cases;
mod checkins;
mod coerced;
mod countries;
mod date;
mod devices;
mod messages;
mod my_case;
mod names;
mod org;
mod panic;
mod request_words;
mod screen;
mod unlock;
mod waiting_sos;

/// The exit status of a command whose message or SOS was not sent now and
/// waits in the outbox (it said so).
pub(crate) const EXIT_QUEUED: u8 = 3;

/// What `--help` says about exit statuses.
const EXIT_STATUSES: &str = "Exit status: 0 done (a message or SOS was sent now); 1 error (nothing was queued, or the item can never be sent and was removed); 2 the command line was not understood (nothing was done); 3 queued: NOT sent yet, it waits in this device's outbox and goes out, once, with the next command that reaches the server (`hotline outbox`).";

/// A command's message or SOS waits in the outbox, and the command has
/// said so: it ends with [`EXIT_QUEUED`], not as an error.
#[derive(Debug)]
pub(crate) struct Queued;

impl std::fmt::Display for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not sent yet: it waits in the outbox")
    }
}

impl std::error::Error for Queued {}

/// hotline: reach the duty team securely.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = EXIT_STATUSES)]
pub(crate) struct Cli {
    /// State directory holding this device's key and profile
    /// (default: $HOME/.hotline).
    #[arg(long, global = true, env = "HOTLINE_HOME")]
    home: Option<PathBuf>,
    /// Connect to this server address (host:port) instead of the one the
    /// device was enrolled with, for this run only (the profile is not
    /// changed): for a restored or moved server. Its certificate must
    /// still match the pinned one.
    #[arg(long, global = true, env = "HOTLINE_SERVER", value_parser = parse_server_addr)]
    server: Option<String>,
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
        /// A name for the new device, shown to the people it writes to next
        /// to its id (end-to-end encrypted; the server never sees it).
        #[arg(long)]
        label: Option<String>,
    },
    /// List enrolled devices (admins).
    Devices,
    /// Revoke a device so it can no longer connect (admins).
    Revoke {
        #[arg(help = DEVICE_ARG)]
        device: String,
    },
    /// Name a device for yourself (shown instead of its own label, next to
    /// its id), or list the devices known here by name.
    Label {
        #[arg(help = DEVICE_ARG)]
        device: Option<String>,
        /// The name to give it.
        name: Option<String>,
        /// Forget the name given here.
        #[arg(long, conflicts_with = "name")]
        forget: bool,
    },
    /// Send an end-to-end encrypted message to the duty team (every staff
    /// device on the signed roster), and to one more device with --to.
    #[command(after_help = EXIT_STATUSES)]
    Send {
        /// The message, quoted or not: every word after the options.
        #[arg(num_args = 1.., required = true)]
        message: Vec<String>,
        /// Also send to this device (staff only; for example a defender): its
        /// id (at least 4 hex digits, as shown next to names), or its name.
        #[arg(long)]
        to: Option<String>,
        /// In the thread of this alert, to its defender (staff): 35 or #35.
        #[arg(long, conflicts_with = "to", value_parser = names::parse_alert_id)]
        alert: Option<u64>,
    },
    /// Write in the thread of an alert: staff to its defender and the
    /// team, a defender to the team (a follow-up to its SOS).
    #[command(after_help = EXIT_STATUSES)]
    Reply {
        /// The alert: 35 or #35.
        #[arg(long, value_parser = names::parse_alert_id)]
        alert: u64,
        /// The message.
        message: String,
    },
    /// List what is waiting to be sent (SOS first, as it will go), then
    /// try to send it.
    #[command(after_help = EXIT_STATUSES)]
    Outbox {
        /// Only list; send nothing.
        #[arg(long)]
        list: bool,
        /// Remove item N (as listed now: SOSes are listed first) from the
        /// outbox, for good.
        #[arg(long, value_name = "N", conflicts_with = "list")]
        drop: Option<usize>,
        /// With --drop: remove it even though it is an SOS.
        #[arg(long, requires = "drop")]
        sos_too: bool,
    },
    /// How far messages you sent got: delivered to and read by how many devices.
    Delivery {
        /// Message ids, as `hotline send` printed them.
        ids: Vec<u64>,
    },
    /// Fetch, verify and decrypt the messages waiting for this device,
    /// and show those not shown before.
    Inbox,
    /// Show the messages this device keeps (after fetching new ones):
    /// all, or the thread of one alert.
    Messages {
        /// Only the thread of this alert: 35 or #35.
        #[arg(long, value_parser = names::parse_alert_id)]
        alert: Option<u64>,
    },
    /// Pin the organisation root key (64 hex digits, as `hotline org show`
    /// prints it; not the fingerprint), after comparing its fingerprint with
    /// an admin over another channel.
    TrustOrg {
        /// The root public key, in hex.
        public_key: String,
        /// Replace a different root pinned before (shows both fingerprints).
        #[arg(long)]
        replace: bool,
        /// Pin it even if the server's roster is not signed by it.
        #[arg(long)]
        force: bool,
    },
    /// Organisation root key tasks (admins, on a machine the key never leaves).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Raise an alert (defenders): the duty team is paged at once and the
    /// alert escalates until someone answers. Offline, it keeps trying for
    /// --wait seconds, saying that nobody has been alerted yet; two SOSes
    /// still waiting in the outbox go out together as one alert.
    #[command(after_help = EXIT_STATUSES)]
    Sos {
        /// What is happening (end-to-end encrypted), quoted or not: every
        /// word after the options is the text; without any, "SOS — I need
        /// help now" (in French or Spanish if HOTLINE_LANG or the locale
        /// says so).
        #[arg(num_args = 0..)]
        message: Vec<String>,
        /// How long to keep trying while the server cannot be reached, in
        /// seconds (0: try once).
        #[arg(long, env = "HOTLINE_SOS_WAIT", default_value_t = 90)]
        wait: u64,
        /// immediate, urgent or routine (anything else: immediate, with a
        /// warning; an SOS is never refused for a typo).
        #[arg(long, default_value = "immediate")]
        priority: String,
        /// arrest, attack, surveillance, leave-country, medical, legal, other
        /// (anything else: other, with a warning and the word kept in the
        /// text). Staff see it with the language of the text (HOTLINE_LANG,
        /// else the locale; English if neither says).
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
        /// The alert id, as `hotline alerts` shows it: 35 or #35.
        #[arg(value_parser = names::parse_alert_id)]
        alert: u64,
    },
    /// Mark an alert resolved (staff).
    Resolve {
        /// The alert id, as `hotline alerts` shows it: 35 or #35.
        #[arg(value_parser = names::parse_alert_id)]
        alert: u64,
    },
    /// Call an alert off; everyone paged gets the all clear.
    Cancel {
        /// The alert id, as `hotline alerts` shows it: 35 or #35.
        #[arg(value_parser = names::parse_alert_id)]
        alert: u64,
        /// It never was an emergency.
        #[arg(long)]
        false_alarm: bool,
    },
    /// Staff: `duty` shows your duty state, `duty on`/`duty off` changes
    /// it, `duty who` shows who is on duty now.
    Duty {
        /// on, off or who (nothing: your own state).
        state: Option<DutyArg>,
    },
    /// Show pages, all clears and messages (in their threads) live as
    /// they arrive; sends what waits in the outbox. Ctrl-C stops. Staff
    /// also see when the server's storage stops taking writes (SOSes
    /// bounce) and when it heals.
    Watch {
        /// How often the server's storage state is checked, in seconds.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        storage_check_every: u64,
    },
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
    /// Cases (staff): open, list, show and change them. Every command but
    /// `list` syncs first when the server can be reached; offline, it works
    /// from what this device holds and changes wait in its case outbox.
    #[command(subcommand)]
    Case(CaseCommand),
    /// Relocations of a case (staff): start, advance a stage, show.
    #[command(subcommand)]
    Relocation(RelocationCommand),
    /// Ask the team for help (defenders): relocation, legal, medical or
    /// subsistence, with a few words (end-to-end encrypted). The team
    /// answers in `hotline my-case`. Offline, the request waits in the
    /// outbox and goes, once, with the next command that reaches the
    /// server.
    #[command(after_help = EXIT_STATUSES)]
    Request {
        /// relocation, legal, medical or subsistence.
        programme: String,
        /// What you need, quoted or not: every word after the programme.
        #[arg(num_args = 1.., required = true)]
        text: Vec<String>,
    },
    /// Your case (defenders): what the team shared with you (newest last),
    /// your requests and replies, and check-ins offered for a journey with
    /// the command that accepts them, each request or case under a number.
    /// `my-case reply [--case NUMBER] "…"` answers the team.
    MyCase {
        #[command(subcommand)]
        command: Option<MyCaseCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum MyCaseCommand {
    /// Answer the team about one of your requests or cases. With more
    /// than one, say which with --case and its number in `hotline my-case`.
    #[command(after_help = EXIT_STATUSES)]
    Reply {
        /// The request or case this reply is about: its number in
        /// `hotline my-case` (needed only when it lists more than one).
        #[arg(long = "case", value_name = "NUMBER")]
        case: Option<String>,
        /// Your answer, quoted or not.
        #[arg(num_args = 1.., required = true)]
        text: Vec<String>,
    },
}

/// A case as a person names it: at least 4 hex digits of its id (as `hotline
/// case list` shows it), or its reference ("C-2026-0042").
const DEVICE_ARG: &str = "The device: at least 4 hex digits of its id (its start) that match no other device known here, its whole id, or its name";

const CASE_ARG: &str = "The case: at least 4 hex digits of its id, or its reference";

#[derive(Debug, Subcommand)]
enum CaseCommand {
    /// Open a case (the case key is drawn on this device).
    #[command(after_help = EXIT_STATUSES)]
    Open {
        /// The alert it grows from: 35 or #35 (linked to the case).
        #[arg(long, value_parser = names::parse_alert_id)]
        from_alert: Option<u64>,
        /// What the case is about.
        #[arg(long)]
        summary: String,
        /// Country of origin: ISO 3166-1 two-letter code.
        #[arg(long)]
        country: Option<String>,
        /// low, medium, high or critical.
        #[arg(long)]
        risk: Option<String>,
        /// relocation, legal, medical or subsistence.
        #[arg(long)]
        programme: Option<String>,
        /// A short reference ("C-2026-0042").
        #[arg(long)]
        reference: Option<String>,
        /// With --from-alert: open a second case for an alert a case on
        /// this device already links.
        #[arg(long, requires = "from_alert")]
        again: bool,
    },
    /// List the cases this device holds (no round trip to the server).
    List {
        /// requested, open or closed.
        #[arg(long)]
        state: Option<String>,
        /// Cases with a relocation at this stage ("in transit").
        #[arg(long)]
        stage: Option<String>,
        /// Cases this coordinator is assigned to: a device id, its start, a
        /// name, or "me".
        #[arg(long)]
        coordinator: Option<String>,
        /// Country of origin (two-letter code).
        #[arg(long)]
        country: Option<String>,
        /// Closed cases past the retention period, without a legal hold,
        /// and cases whose erasure waits for a confirmation. Syncs first
        /// (the retention period is the server's).
        #[arg(long)]
        erasable: bool,
        /// Sync with the server first (as every other case command does).
        #[arg(long)]
        sync: bool,
    },
    /// Share something with the case's defender (its linked defender
    /// devices; end-to-end encrypted), recorded in the case so every
    /// staff member sees what was shared and when. With --checkin-every,
    /// offers the defender check-ins for a journey.
    #[command(after_help = EXIT_STATUSES)]
    Share {
        #[arg(help = CASE_ARG)]
        case: String,
        /// What to tell the defender ("travel booked for 12 May").
        text: String,
        /// Offer check-ins this often for the journey: 30m, 2h, 1d.
        #[arg(long, value_parser = parse_lifetime)]
        checkin_every: Option<u64>,
        /// With --checkin-every: how late a check-in may be.
        #[arg(long, default_value = "30m", value_parser = parse_lifetime, requires = "checkin_every")]
        grace: u64,
    },
    /// Erase a closed case past its retention period (two staff: the
    /// first asks, writing its statistics into the ledger; a coordinator
    /// or admin on another device confirms with --confirm).
    Erase {
        #[arg(help = CASE_ARG)]
        case: String,
        /// Confirm another staff member's request (coordinators, admins).
        #[arg(long)]
        confirm: bool,
    },
    /// Put a case under a legal hold, which prevents its erasure, or lift
    /// it (coordinators, admins).
    #[command(after_help = EXIT_STATUSES)]
    Hold {
        #[arg(help = CASE_ARG)]
        case: String,
        /// Lift the hold.
        #[arg(long)]
        lift: bool,
        /// Why (kept in the case's timeline).
        #[arg(long)]
        note: Option<String>,
    },
    /// Figures of the erased cases, from the statistics ledger: people,
    /// relocation outcomes, countries, programmes, months.
    Stats,
    /// Show a case: fields, people, relocations with their stages,
    /// timeline, conflicts and warnings.
    Show {
        #[arg(help = CASE_ARG)]
        case: String,
    },
    /// Add a note to a case.
    #[command(after_help = EXIT_STATUSES)]
    Note {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The note.
        text: String,
        /// Taking on a defender's request whose words this device does
        /// not hold (sealed to the staff of an earlier roster): go ahead
        /// anyway; the case says its words were not copied.
        #[arg(long)]
        without_words: bool,
    },
    /// Set a case's coordinators (device ids, their starts, names or "me").
    #[command(after_help = EXIT_STATUSES)]
    Assign {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The coordinators.
        #[arg(num_args = 1.., required = true)]
        coordinators: Vec<String>,
    },
    /// Close a case, with the reason.
    #[command(after_help = EXIT_STATUSES)]
    Close {
        #[arg(help = CASE_ARG)]
        case: String,
        /// Why it is closed (kept among staff: never sent to the defender).
        #[arg(long)]
        reason: String,
        /// Declining a defender's request: do not tell the defender (by
        /// default their device is told, in neutral words, that the team
        /// has closed the request).
        #[arg(long)]
        no_notice: bool,
        /// Close the case even though a colleague took the request on
        /// while you were looking at it.
        #[arg(long)]
        taken_on_ok: bool,
    },
    /// Reopen a closed case.
    #[command(after_help = EXIT_STATUSES)]
    Reopen {
        #[arg(help = CASE_ARG)]
        case: String,
    },
    /// Set a field of a case: reference, summary, country, risk, programme,
    /// coordinators, defender devices, linked alerts. Setting a field in
    /// conflict resolves the conflict.
    #[command(after_help = EXIT_STATUSES)]
    Set {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The field.
        field: String,
        /// Its new value.
        value: String,
        /// Setting "defender devices" without the device that made the
        /// request: go ahead anyway (what is shared then no longer goes
        /// to it).
        #[arg(long)]
        drop_requester: bool,
        /// Taking on a defender's request whose words this device does
        /// not hold (sealed to the staff of an earlier roster): go ahead
        /// anyway; the case says its words were not copied.
        #[arg(long)]
        without_words: bool,
    },
    /// The people a case covers.
    #[command(subcommand)]
    Person(PersonCommand),
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// Add a person to a case.
    #[command(after_help = EXIT_STATUSES)]
    Add {
        #[arg(help = CASE_ARG)]
        case: String,
        /// Their name.
        #[arg(long)]
        name: String,
        /// self, spouse or partner, child, parent, sibling, other.
        #[arg(long)]
        relationship: String,
        /// Year of birth.
        #[arg(long)]
        born: Option<String>,
        /// Travel document: none, valid, expired, applied for.
        #[arg(long)]
        document: Option<String>,
        /// Specific needs.
        #[arg(long)]
        needs: Option<String>,
    },
    /// Change a field of a person: name, relationship, born, document,
    /// needs, removed.
    #[command(after_help = EXIT_STATUSES)]
    Edit {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The person: at least 4 hex digits of their id, or their name.
        person: String,
        /// The field.
        field: String,
        /// Its new value.
        value: String,
    },
    /// List the people of a case.
    List {
        #[arg(help = CASE_ARG)]
        case: String,
    },
}

#[derive(Debug, Subcommand)]
enum RelocationCommand {
    /// Start a relocation (at stage requested).
    #[command(after_help = EXIT_STATUSES)]
    Start {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The people it covers: person ids (4 hex digits or more) or
        /// names, separated by commas.
        #[arg(long)]
        people: String,
        /// Where they leave from.
        #[arg(long)]
        origin: String,
        /// Host country (two-letter code).
        #[arg(long)]
        to: String,
        /// Host city.
        #[arg(long)]
        city: String,
        /// Planned departure, YYYY-MM-DD.
        #[arg(long)]
        depart: Option<String>,
        /// Planned arrival, YYYY-MM-DD.
        #[arg(long)]
        arrive: Option<String>,
        /// Accommodation.
        #[arg(long)]
        accommodation: Option<String>,
    },
    /// Move a relocation to its next stage (refused here if the lifecycle
    /// does not allow it). A stage in conflict is settled by this move: give
    /// one of the conflicting stages, or a stage that follows one of them.
    #[command(after_help = EXIT_STATUSES)]
    Advance {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The relocation: at least 4 hex digits of its id.
        relocation: String,
        /// The stage: assessed, approved, travel booked, in transit,
        /// arrived, hosted, extended, returned, resettled, closed,
        /// cancelled.
        stage: String,
        /// A note for this move.
        #[arg(long)]
        note: Option<String>,
        /// Moving to "in transit": offer the defender check-ins this often
        /// for the journey (30m, 2h), shared with the case's defender.
        #[arg(long, value_parser = parse_lifetime)]
        checkin_every: Option<u64>,
        /// With --checkin-every: how late a check-in may be.
        #[arg(long, default_value = "30m", value_parser = parse_lifetime, requires = "checkin_every")]
        grace: u64,
    },
    /// Show a relocation with its stage history (every relocation of the
    /// case when none is named).
    Show {
        #[arg(help = CASE_ARG)]
        case: String,
        /// The relocation: at least 4 hex digits of its id (all of the
        /// case's when left out).
        relocation: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DutyArg {
    /// Go on duty: pages reach you first.
    On,
    /// Go off duty.
    Off,
    /// Who is on duty now.
    Who,
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
    /// Print the organisation root's public key and fingerprint: the one
    /// pinned on this device, or that of a key file.
    Show {
        /// The organisation root key file (asks its passphrase).
        #[arg(long)]
        key: Option<PathBuf>,
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

/// `--server`: `host:port`, the port a number (`[v6]:port` for IPv6).
fn parse_server_addr(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(s.to_owned())
        }
        _ => Err("give the server as host:port, e.g. 192.0.2.10:4433".into()),
    }
}

/// Runs one command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    // One failed connect per command: its later steps do not each wait
    // for another timeout (retry loops try again on purpose).
    hotline_client::connection::keep_unreachable_briefly();
    let mut state = unlock::home(cli.home.as_deref())?;
    if let Some(addr) = cli.server {
        state = state.with_server_addr(addr);
    }
    // The roster alarm is loud on every command, before and (if the
    // command raised it) after.
    let alarm_before = roster_alarm(&state);
    let result = run_command(cli.command, state.clone()).await;
    let alarm_after = roster_alarm(&state);
    if alarm_after.is_some() && alarm_after != alarm_before {
        warn_roster_alarm(&state);
    }
    result
}

/// How long `command` tries to send an SOS waiting in the panic outbox
/// before doing its own work; `None`: it does not (it never connects, or
/// only lists or drops what waits). `sos` tries briefly: its own SOS must
/// not wait for the earlier one.
fn sends_waiting_panic_sos(command: &Command) -> Option<std::time::Duration> {
    use std::time::Duration;
    match command {
        Command::Enroll { .. }
        | Command::Label { .. }
        | Command::Org(OrgCommand::Init { .. } | OrgCommand::Show { .. }) => None,
        Command::Outbox { list, drop, .. } if *list || drop.is_some() => None,
        Command::Case(CaseCommand::List {
            sync: false,
            erasable: false,
            ..
        }) => None,
        Command::Sos { .. } => Some(Duration::from_secs(5)),
        Command::Status
        | Command::Invite { .. }
        | Command::Devices
        | Command::Revoke { .. }
        | Command::Send { .. }
        | Command::Reply { .. }
        | Command::Outbox { .. }
        | Command::Delivery { .. }
        | Command::Inbox
        | Command::Messages { .. }
        | Command::TrustOrg { .. }
        | Command::Org(OrgCommand::SignRoster { .. })
        | Command::Alerts { .. }
        | Command::Ack { .. }
        | Command::Resolve { .. }
        | Command::Cancel { .. }
        | Command::Duty { .. }
        | Command::Watch { .. }
        | Command::Checkin { .. }
        | Command::CheckinSetup { .. }
        | Command::Case(_)
        | Command::Relocation(_)
        | Command::Request { .. }
        | Command::MyCase { .. } => Some(Duration::from_secs(20)),
    }
}

/// How long `command` tries to send an SOS waiting in the device's
/// (passphrase) outbox before doing its own work; `None`: it does not.
/// Every command that connects with the passphrase does, but `sos` and
/// `outbox` (they send the whole outbox, SOSes first, themselves) and a
/// `checkin` made with the panic key (the outbox needs the passphrase).
fn sends_waiting_outbox_sos(command: &Command, state: &StateDir) -> Option<std::time::Duration> {
    match command {
        Command::Sos { .. } | Command::Outbox { .. } => None,
        Command::Checkin { .. } if unlock::use_panic_key(state) => None,
        _ => sends_waiting_panic_sos(command),
    }
}

/// The roster alarm's version in this state directory's profile, if any.
fn roster_alarm(state: &StateDir) -> Option<u64> {
    state.load_profile().ok().and_then(|p| p.roster_alarm)
}

/// Prints the roster alarm, if raised, on standard error.
fn warn_roster_alarm(state: &StateDir) {
    if let Some(text) = state
        .load_profile()
        .ok()
        .and_then(|p| p.roster_alarm_text())
    {
        eprintln!("WARNING: {text}");
    }
}

async fn run_command(command: Command, state: StateDir) -> anyhow::Result<()> {
    warn_roster_alarm(&state);
    // An SOS queued on this device without the passphrase goes out first,
    // with the panic key: before any passphrase is asked for, and whatever
    // becomes of the command itself.
    let mut panic_sent = 0;
    if let Some(within) = sends_waiting_panic_sos(&command) {
        panic_sent = panic::flush_panic_outbox(&state, within).await;
    }
    // An SOS queued in the device's outbox (raised with the passphrase
    // while the server could not be reached) goes out next, whatever the
    // command is.
    let mut locked_sos = None;
    if let Some(within) = sends_waiting_outbox_sos(&command, &state) {
        locked_sos = waiting_sos::send_waiting_sos(&state, within).await;
    }
    // An SOS queued with the passphrase that this run could not send (no
    // passphrase at hand): said, whatever the command (`status` says it
    // on standard output, and ends there).
    if let Some(notice) = &locked_sos
        && !matches!(command, Command::Status)
    {
        eprintln!("WARNING: {notice}");
    }
    match command {
        Command::Enroll { invite } => devices::enroll(&state, &invite).await,
        Command::Status if locked_sos.is_some() => {
            if panic_sent > 0 {
                println!("your SOS queued without the passphrase was sent.");
            }
            println!("{}", locked_sos.unwrap_or_default());
            Err(Queued.into())
        }
        // Sent the waiting SOS, with no passphrase to show the rest: the
        // defender must read that it worked, not an error.
        Command::Status if panic_sent > 0 && unlock::device_passphrase().is_err() => {
            println!(
                "your waiting SOS was sent. The rest of status (this device's role, server and roster) needs the passphrase, which could not be asked for here (no terminal): run `hotline status` at a terminal, or with HOTLINE_PASSPHRASE set, to see it."
            );
            Ok(())
        }
        // An SOS queued without the passphrase still waits (the server
        // out of reach), and the rest of status needs the passphrase, not
        // at hand: the defender reads that it is queued (status 3), never
        // an error about the passphrase.
        Command::Status
            if panic::panic_sos_waiting(&state) > 0 && unlock::device_passphrase().is_err() =>
        {
            println!(
                "NOBODY HAS BEEN ALERTED YET: your SOS queued without the passphrase still waits on this device and goes out with the next command that connects. The rest of status (this device's role, server and roster) needs the passphrase, which could not be asked for here (no terminal)."
            );
            Err(Queued.into())
        }
        Command::Status => devices::status(&state).await,
        Command::Invite { role, ttl, label } => {
            devices::invite(&state, role, ttl, label.as_deref()).await
        }
        Command::Devices => devices::list(&state).await,
        Command::Revoke { device } => devices::revoke(&state, &device).await,
        Command::Label {
            device,
            name,
            forget,
        } => devices::label(&state, device.as_deref(), name.as_deref(), forget).await,
        Command::Send { message, to, alert } => {
            messages::send(&state, &message.join(" "), to, alert).await
        }
        Command::Outbox {
            list,
            drop,
            sos_too,
        } => messages::outbox(&state, list, drop, sos_too).await,
        Command::Delivery { ids } => messages::delivery(&state, ids).await,
        Command::Reply { alert, message } => {
            messages::send(&state, &message, None, Some(alert)).await
        }
        Command::Inbox => messages::inbox(&state).await,
        Command::Messages { alert } => messages::messages(&state, alert).await,
        Command::TrustOrg {
            public_key,
            replace,
            force,
        } => org::trust(&state, &public_key, replace, force).await,
        Command::Org(OrgCommand::Init { out }) => org::init(&state, &out),
        Command::Org(OrgCommand::Show { key }) => org::show(&state, key.as_deref()),
        Command::Org(OrgCommand::SignRoster { key, valid }) => {
            org::sign_roster(&state, &key, valid).await
        }
        Command::Sos {
            message,
            wait,
            priority,
            category,
        } => {
            let priority = priority.parse::<Priority>().unwrap_or_else(|_| {
                eprintln!(
                    "WARNING: {priority:?} is not a priority (immediate, urgent, routine): raising it as immediate"
                );
                Priority::Immediate
            });
            let text = message.join(" ");
            let text = (!text.trim().is_empty()).then_some(text.as_str());
            alerts::sos(&state, text, priority, &category, wait).await
        }
        Command::Alerts { all } => alerts::list(&state, all).await,
        Command::Ack { alert } => alerts::ack(&state, alert).await,
        Command::Resolve { alert } => alerts::resolve(&state, alert).await,
        Command::Cancel { alert, false_alarm } => alerts::cancel(&state, alert, false_alarm).await,
        Command::Duty { state: arg } => match arg {
            None => alerts::duty_show(&state, false).await,
            Some(DutyArg::Who) => alerts::duty_show(&state, true).await,
            Some(DutyArg::On) => alerts::duty(&state, true).await,
            Some(DutyArg::Off) => alerts::duty(&state, false).await,
        },
        Command::Watch {
            storage_check_every,
        } => alerts::watch(&state, std::time::Duration::from_secs(storage_check_every)).await,
        Command::Checkin { code } => checkins::checkin(&state, code).await,
        Command::CheckinSetup {
            every,
            grace,
            code,
            duress_code,
        } => checkins::setup(&state, &every, grace, code, duress_code).await,
        Command::Case(c) => run_case(c, &state).await,
        Command::Relocation(r) => run_relocation(r, &state).await,
        Command::Request { programme, text } => {
            my_case::request(&state, &programme, &text.join(" ")).await
        }
        Command::MyCase { command: None } => my_case::show(&state).await,
        Command::MyCase {
            command: Some(MyCaseCommand::Reply { case, text }),
        } => my_case::reply(&state, case.as_deref(), &text.join(" ")).await,
    }
}

async fn run_case(command: CaseCommand, state: &StateDir) -> anyhow::Result<()> {
    use cases::Write;
    match command {
        CaseCommand::Open {
            from_alert,
            summary,
            country,
            risk,
            programme,
            reference,
            again,
        } => {
            cases::open(
                state,
                from_alert.map(|a| (a, again)),
                &summary,
                country.as_deref(),
                risk.as_deref(),
                programme.as_deref(),
                reference.as_deref(),
            )
            .await
        }
        CaseCommand::List {
            state: case_state,
            stage,
            coordinator,
            country,
            erasable,
            sync,
        } => {
            // What is erasable depends on the server's retention period,
            // which only a sync brings: --erasable syncs first (offline,
            // it goes on from the replica).
            if sync || erasable {
                case_share::sync_now(state).await?;
            }
            cases::list(
                state,
                &cases::ListFilter {
                    state: case_state,
                    stage,
                    coordinator,
                    country,
                    erasable,
                },
            )
        }
        CaseCommand::Share {
            case,
            text,
            checkin_every,
            grace,
        } => {
            let offer = checkin_every.map(|interval_secs| CheckinOffer {
                interval_secs,
                grace_secs: grace,
            });
            case_share::share(state, &case, &text, offer).await
        }
        CaseCommand::Show { case } => cases::show(state, &case).await,
        CaseCommand::Erase { case, confirm } => case_erase::erase(state, &case, confirm).await,
        CaseCommand::Hold { case, lift, note } => {
            case_erase::hold(state, &case, lift, note.as_deref()).await
        }
        CaseCommand::Stats => case_erase::show_stats(state).await,
        CaseCommand::Note {
            case,
            text,
            without_words,
        } => {
            let allow = cases::Allow {
                without_words,
                ..Default::default()
            };
            cases::write_allowing(state, &case, Write::Note(text), allow).await
        }
        CaseCommand::Assign { case, coordinators } => {
            cases::write(state, &case, Write::Assign(coordinators)).await
        }
        CaseCommand::Close {
            case,
            reason,
            no_notice,
            taken_on_ok,
        } => case_share::close(state, &case, reason, !no_notice, taken_on_ok).await,
        CaseCommand::Reopen { case } => cases::write(state, &case, Write::Reopen).await,
        CaseCommand::Set {
            case,
            field,
            value,
            drop_requester,
            without_words,
        } => {
            let allow = cases::Allow {
                drop_requester,
                without_words,
            };
            cases::write_allowing(state, &case, Write::Set { field, value }, allow).await
        }
        CaseCommand::Person(PersonCommand::Add {
            case,
            name,
            relationship,
            born,
            document,
            needs,
        }) => {
            cases::write(
                state,
                &case,
                Write::PersonAdd {
                    name,
                    relationship,
                    born,
                    document,
                    needs,
                },
            )
            .await
        }
        CaseCommand::Person(PersonCommand::Edit {
            case,
            person,
            field,
            value,
        }) => {
            cases::write(
                state,
                &case,
                Write::PersonEdit {
                    person,
                    field,
                    value,
                },
            )
            .await
        }
        CaseCommand::Person(PersonCommand::List { case }) => cases::people(state, &case).await,
    }
}

async fn run_relocation(command: RelocationCommand, state: &StateDir) -> anyhow::Result<()> {
    use cases::Write;
    match command {
        RelocationCommand::Start {
            case,
            people,
            origin,
            to,
            city,
            depart,
            arrive,
            accommodation,
        } => {
            cases::write(
                state,
                &case,
                Write::RelocationStart {
                    people,
                    origin,
                    to,
                    city,
                    depart,
                    arrive,
                    accommodation,
                },
            )
            .await
        }
        RelocationCommand::Advance {
            case,
            relocation,
            stage,
            note,
            checkin_every,
            grace,
        } => {
            let in_transit = stage
                .parse::<hotline_proto::case::relocation::Stage>()
                .is_ok_and(|s| s == hotline_proto::case::relocation::Stage::InTransit);
            if checkin_every.is_some() && !in_transit {
                anyhow::bail!(
                    "check-ins are offered for a journey: --checkin-every goes with the move to \"in transit\"; nothing was written"
                );
            }
            let moved = cases::write(
                state,
                &case,
                Write::Advance {
                    relocation,
                    stage,
                    note,
                },
            )
            .await;
            // A move waiting in the case outbox (offline) still offers the
            // check-ins: the share waits with it.
            let queued = match moved {
                Ok(()) => false,
                Err(e) if e.is::<Queued>() && checkin_every.is_some() => true,
                Err(e) => return Err(e),
            };
            let shared = match checkin_every {
                Some(interval_secs) => {
                    let offer = CheckinOffer {
                        interval_secs,
                        grace_secs: grace,
                    };
                    let text = format!(
                        "Your journey has started. Check in every {} while you travel (grace {}).",
                        case_links::duration(interval_secs),
                        case_links::duration(grace)
                    );
                    case_share::share(state, &case, &text, Some(offer)).await
                }
                None if in_transit => {
                    println!(
                        "to offer the defender check-ins for the journey: hotline case share {case} \"…\" --checkin-every 2h --grace 30m"
                    );
                    Ok(())
                }
                None => Ok(()),
            };
            match (shared, queued) {
                (Ok(()), true) => Err(Queued.into()),
                (Err(e), _) if checkin_every.is_some() && !e.is::<Queued>() => Err(e.context(format!(
                    "the move to \"in transit\" is recorded{}, but the check-ins were not offered: to offer them, hotline case share {case} \"…\" --checkin-every 2h --grace 30m",
                    if queued { " (it waits in the outbox)" } else { "" }
                ))),
                (r, _) => r,
            }
        }
        RelocationCommand::Show { case, relocation } => {
            cases::relocation_show(state, &case, relocation.as_deref()).await
        }
    }
}
