//! Where this device's state is, and unlocking it: passphrases (from the
//! environment or asked at the terminal), the device, a session.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hotline_client::messenger::Device;
use hotline_client::{ClientError, Session, StateDir};

/// The environment variable that supplies the passphrase without a prompt
/// (for automation; anyone who can read this process's environment can
/// read it).
const PASSPHRASE_ENV: &str = "HOTLINE_PASSPHRASE";

/// The environment variable for the organisation key's passphrase.
const ORG_PASSPHRASE_ENV: &str = "HOTLINE_ORG_PASSPHRASE";

/// The state directory: `home` if given, else `$HOME/.hotline`.
pub(super) fn home(home: Option<&Path>) -> anyhow::Result<StateDir> {
    if let Some(h) = home {
        return Ok(StateDir::new(h));
    }
    let Some(user_home) = std::env::var_os("HOME") else {
        bail!("no state directory: set HOTLINE_HOME or pass --home");
    };
    Ok(StateDir::new(PathBuf::from(user_home).join(".hotline")))
}

/// The passphrase from the environment, or asked at the terminal (twice
/// when `confirm`).
pub(super) fn passphrase(prompt: &str, confirm: bool) -> anyhow::Result<String> {
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

/// The organisation key's passphrase, as [`passphrase`] for the device's.
pub(super) fn org_passphrase(confirm: bool) -> anyhow::Result<String> {
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

/// Unlocks the enrolled device in `state`, holding the state directory's
/// lock (so that a `hotline watch` running meanwhile does not write back
/// an older copy of what this command changes).
pub(super) fn open_device(state: &StateDir) -> Result<Device, ClientError> {
    state.load_profile()?;
    if let Some(mut device) = take_unlocked(state) {
        device.hold()?;
        return Ok(device);
    }
    let pass = device_passphrase()?;
    let mut device = Device::open(state, &pass)?;
    device.hold()?;
    Ok(device)
}

/// The device's passphrase ([`passphrase`]), asked at most once per run:
/// a command that first sent the SOS waiting in the outbox does not ask
/// again.
pub(super) fn device_passphrase() -> Result<zeroize::Zeroizing<String>, ClientError> {
    static ASKED: std::sync::OnceLock<zeroize::Zeroizing<String>> = std::sync::OnceLock::new();
    if let Some(p) = ASKED.get() {
        return Ok(p.clone());
    }
    let pass = zeroize::Zeroizing::new(
        passphrase("Passphrase: ", false).map_err(|e| ClientError::State(format!("{e:#}")))?,
    );
    Ok(ASKED.get_or_init(|| pass).clone())
}

/// The device unlocked earlier in this run (to send the SOS waiting in
/// its outbox), kept so that the command does not unlock it again.
static UNLOCKED: std::sync::Mutex<Option<Device>> = std::sync::Mutex::new(None);

/// Keeps `device` (its lock released) for the command that runs next.
pub(super) fn keep_unlocked(mut device: Device) {
    device.release();
    if let Ok(mut kept) = UNLOCKED.lock() {
        *kept = Some(device);
    }
}

/// The device kept by [`keep_unlocked`], if it is `state`'s.
fn take_unlocked(state: &StateDir) -> Option<Device> {
    let device = UNLOCKED.lock().ok()?.take()?;
    (device.state().path() == state.path()).then_some(device)
}

/// Connects and authenticates as the enrolled device in `state`.
pub(super) async fn connect(state: &StateDir) -> Result<Session, ClientError> {
    // Fail on a missing profile before asking for a passphrase.
    state.load_profile()?;
    let session = match take_unlocked(state) {
        Some(device) => {
            let session = device.connect().await;
            keep_unlocked(device);
            session?
        }
        None => hotline_client::connect(state, &device_passphrase()?).await?,
    };
    after_unlock(state, &session).await;
    Ok(session)
}

/// What every session opened with the passphrase does first: warn staff
/// about the roster, and give a defender device enrolled before panic keys
/// existed its panic key (a failure there is reported, never fatal).
pub(super) async fn after_unlock(state: &StateDir, session: &Session) {
    warn_staff(session);
    match hotline_client::sos::ensure_panic_key(state, session).await {
        Ok(true) => eprintln!(
            "note: this device now has a panic key: `hotline sos` and `hotline checkin` work without the passphrase"
        ),
        Ok(false) => {}
        Err(e) => eprintln!("WARNING: could not register a panic key for this device: {e}"),
    }
}

/// Whether `hotline sos` and `hotline checkin` use the panic key: the
/// device has one and no passphrase is given in the environment (with
/// one, the unlocked device is used, outbox included).
pub(super) fn use_panic_key(state: &StateDir) -> bool {
    std::env::var_os(PASSPHRASE_ENV).is_none() && hotline_client::sos::has_panic_key(state)
}

/// What staff must hear about the roster, from what the server said at
/// set-up: it expires within a week (or has), or this device is not on it.
pub(super) fn roster_notices(session: &Session) -> Vec<String> {
    use hotline_proto::message::RosterStanding;
    let mut out = Vec::new();
    if !session.role().is_staff() {
        return out;
    }
    if let Some(w) = hotline_proto::e2e::roster::expiry_warning(
        session.roster_expires_at(),
        hotline_client::unix_now(),
    ) {
        out.push(w);
    }
    if session.roster_standing() == RosterStanding::NotOnRoster {
        out.push(
            "this device is NOT on the organisation's signed roster: it is not paged, cannot read SOSes, and may not claim alerts or answer defenders. Ask an admin to run `hotline org sign-roster` (it lists every active staff device)".into(),
        );
    }
    out
}

/// Prints [`roster_notices`] on standard error: every command of a staff
/// device shows them.
pub(super) fn warn_staff(session: &Session) {
    for n in roster_notices(session) {
        eprintln!("WARNING: {n}");
    }
}
