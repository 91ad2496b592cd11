//! The hotline client library, and the `hotline` command built on it.
//!
//! # Layout
//!
//! * [`keystore`]: the identity key sealed under a passphrase.
//! * [`state`]: the state directory (sealed key, server profile).
//! * [`connection`]: certificate pinning, the set-up exchange (enroll or
//!   authenticate) and the request calls of an authenticated [`Session`].
//! * [`messenger`]: end-to-end messaging on an unlocked device: prekeys,
//!   the roster it trusts, sealing to the right devices, opening.
//! * [`outbox`]: what waits to be sent, as stored in the device's sealed
//!   state; the messenger sends it.
//! * [`panic_outbox`]: an SOS raised without the passphrase that could not
//!   go out yet, its text already sealed; sent first by the next run.
//! * [`cases`]: a staff device's cases: the fold, the sealed local
//!   replica, the sync and the outbox of case events.
//! * [`history`]: the messages a device received and sent, kept sealed.
//! * [`org`]: the organisation root key (offline) and roster signing.
//! * [`recipients`]: the devices a message is sealed to, checked against
//!   the roster.
//! * [`rosters`]: every staff roster a staff device accepted, by version,
//!   that the case checks look an event's author up in.
//! * [`sos`]: sealing an SOS whatever the roster's state (or raising it
//!   without its text), and the panic key: SOS and check-in without the
//!   passphrase.
//! * [`staff_keys`]: the staff's public keys a defender device keeps, so
//!   that an SOS raised with the panic key offline is sealed all the same.
//! * [`error`]: every failure, worded for the person at the keyboard.
//! * [`enroll`] and [`connect`]: the flows the commands use.

pub mod cases;
pub mod connection;
pub mod contacts;
pub mod error;
pub mod history;
pub mod keystore;
pub mod messenger;
pub mod org;
pub mod outbox;
pub mod panic_outbox;
pub mod recipients;
pub mod rosters;
pub mod sos;
pub mod sos_waiting;
pub mod staff_keys;
pub mod state;

pub use connection::{ServerInfo, Session, authenticate};
pub use error::ClientError;
pub use state::{Profile, StateDir};

use hotline_proto::{ErrorCode, IdentityKeyPair, Invite, Role};

/// The language this device's person writes in, as a BCP 47 tag: from
/// `HOTLINE_LANG`, else the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`: the
/// first one set), `fr_FR.UTF-8` read as `fr-FR`; "en" when none is set
/// or it names no language (`C`, `POSIX`). Sealed with every message and
/// SOS, so staff know what they are reading.
pub fn language() -> String {
    ["HOTLINE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|l| !l.is_empty()))
        .and_then(|l| hotline_proto::e2e::content::language_of_locale(&l))
        .unwrap_or_else(|| "en".to_owned())
}

/// Seconds since the Unix epoch, by this device's clock (0 if the clock
/// is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Enrolls a new device with `invite`, saving its sealed identity and its
/// profile in `state`.
///
/// The identity is saved before contacting the server, so that a crash
/// after the server accepted cannot lose the key the server now knows; if
/// such a half-finished enrollment is found, its key is reused (and the
/// invite, already spent by it, is recognised).
pub async fn enroll(
    state: &StateDir,
    invite: &Invite,
    passphrase: &str,
    iterations: u32,
) -> Result<Session, ClientError> {
    if state.is_enrolled() {
        return Err(ClientError::State(format!(
            "{} already holds an enrolled device; choose another directory with --home",
            state.path().display()
        )));
    }
    let (identity, fresh) = if state.has_identity() {
        (state.load_identity(passphrase)?, false)
    } else {
        let (identity, seed) = IdentityKeyPair::generate()
            .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
        state.save_identity(&seed, passphrase, iterations)?;
        (identity, true)
    };
    // A defender's device also gets a panic key, saved (like the identity)
    // before the server learns it: `hotline sos` uses it without the
    // passphrase.
    let panic_key = if invite.role != Role::Defender {
        None
    } else if let Some(existing) = state.load_panic_key()?.filter(|_| !fresh) {
        Some(existing)
    } else {
        let (pair, seed) = IdentityKeyPair::generate()
            .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
        state.save_panic_key(&seed)?;
        Some(pair)
    };
    let session =
        match connection::enroll_with_panic_key(invite, &identity, panic_key.as_ref()).await {
            Ok(session) => session,
            Err(e)
                if !fresh
                    && matches!(
                        e.code(),
                        Some(ErrorCode::InviteUsed | ErrorCode::AlreadyEnrolled)
                    ) =>
            {
                // An earlier attempt enrolled this key but did not save the
                // profile: authenticating proves it.
                authenticate(&ServerInfo::from(invite), &identity).await?
            }
            Err(e) => {
                if fresh && matches!(e, ClientError::Refused(_) | ClientError::PinMismatch) {
                    // The server never accepted this key: don't leave it behind.
                    let _ = state.remove_identity();
                    let _ = state.remove_panic_key();
                }
                return Err(e);
            }
        };
    state.save_profile(&Profile {
        server_addr: invite.server_addr.clone(),
        server_name: invite.server_name.clone(),
        cert_pin: invite.cert_pin.to_string(),
        device_id: session.device_id().to_string(),
        role: session.role().to_string(),
        org_root: invite
            .org_root
            .map(|k| hotline_proto::identity::hex(k.as_bytes())),
        roster_version: None,
        roster_hash: None,
        roster_alarm: None,
    })?;
    if let Some(label) = &invite.label {
        // Sealed with the device's state, never in the plain profile; a
        // defender's also next to its panic key, so that an SOS sent
        // without the passphrase says who it is from.
        messenger::Device::open(state, passphrase)?.set_own_label(label)?;
        if sos::has_panic_key(state) {
            state.save_panic_label(label)?;
        }
    }
    Ok(session)
}

/// Opens the enrolled identity in `state` and authenticates to its server.
pub async fn connect(state: &StateDir, passphrase: &str) -> Result<Session, ClientError> {
    let profile = state.load_profile()?;
    let identity = state.load_identity(passphrase)?;
    if identity.device_id() != profile.device_id()? {
        return Err(ClientError::State(
            "the identity key does not match the profile (state directory damaged)".into(),
        ));
    }
    authenticate(&state.server(&profile)?, &identity).await
}
