//! Devices: enrolling this one, its status, and (for those allowed)
//! inviting, listing and revoking devices.

use anyhow::Context as _;
use hotline_client::StateDir;
use hotline_client::keystore::DEFAULT_ITERATIONS;
use hotline_client::messenger::Device;
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::identity::unhex;
use hotline_proto::invite::{MAX_LABEL_BYTES, check_label};
use hotline_proto::{Invite, Role};

use super::date::{date, date_time};
use super::names::device_arg;
use super::unlock::{connect, open_device, passphrase};

/// `hotline enroll`.
pub(super) async fn enroll(state: &StateDir, invite: &str) -> anyhow::Result<()> {
    let invite: Invite = invite.parse().context("this is not a valid invite")?;
    let new_key = !state.has_identity();
    let prompt = if new_key {
        "Choose a passphrase to protect this device's key: "
    } else {
        "Passphrase for this device's key: "
    };
    let pass = passphrase(prompt, new_key)?;
    let session = hotline_client::enroll(state, &invite, &pass, DEFAULT_ITERATIONS).await?;
    // Publish prekeys now, so that messages can reach this device
    // before it first looks at its inbox.
    let mut device = Device::open(state, &pass)?;
    device.sync_prekeys(&session).await?;
    println!("Enrolled as {} on {}.", session.role(), invite.server_addr);
    println!("device id: {}", session.device_id());
    println!("state directory: {}", state.path().display());
    if hotline_client::sos::has_panic_key(state) {
        println!(
            "`hotline sos` and `hotline checkin` work without the passphrase on this device (its panic key can do nothing else)"
        );
        // The staff's public keys, for an SOS raised offline with the
        // panic key (a roster not signed yet: kept by a later command).
        let _ = hotline_client::staff_keys::refresh(state, &session).await;
    }
    session.close().await;
    Ok(())
}

/// What an admin reads of the server's storage in `hotline status`.
fn storage_line(s: &hotline_proto::message::StorageInfo) -> String {
    let free = s.free_bytes.map_or_else(
        || "free space unknown".to_owned(),
        |b| format!("{} free", human_bytes(b)),
    );
    let free = match (s.free_bytes, s.warn_below) {
        (Some(b), Some(below)) if b < below => format!(
            "{free}: LOW, under the warning threshold of {} \
             (when the disk is full, nothing new can be saved, SOSes included)",
            human_bytes(below)
        ),
        _ => free,
    };
    match (&s.degraded, s.read_only) {
        (Some((since, reason)), _) => format!(
            "server storage: DEGRADED since {}: writes are refused (nothing new can be saved; \
             SOSes wait on the defenders' devices), reads work; the server retries by itself \
             ({reason}); {free}",
            date_time(*since)
        ),
        (None, true) => {
            format!("server storage: READ-ONLY (recovery): writes are refused, reads work; {free}")
        }
        (None, false) => format!("server storage: ok; {free}"),
    }
}

/// What officers and coordinators read of the server's storage when it
/// is not ok (the server tells them the state and since when, nothing
/// more); `None` while it is ok.
pub(super) fn staff_storage_line(s: &hotline_proto::message::StorageInfo) -> Option<String> {
    match (&s.degraded, s.read_only) {
        (Some((since, _)), _) => Some(format!(
            "server storage: DEGRADED since {} — writes refused, SOSes are being refused (defenders' devices keep them and retry); tell an admin",
            date_time(*since)
        )),
        (None, true) => Some(
            "server storage: READ-ONLY (recovery) — writes refused, SOSes are being refused (defenders' devices keep them and retry); tell an admin"
                .to_owned(),
        ),
        (None, false) => None,
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `hotline status`.
pub(super) async fn status(state: &StateDir) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let status = session.status().await?;
    let profile = state.load_profile()?;
    let server = state.server(&profile)?;
    println!("connected to {} ({})", server.addr, server.pin);
    println!("device id: {}", status.device_id);
    println!("role: {}", status.role);
    println!("server version: {}", status.server_version);
    match &status.storage {
        Some(storage) if status.role == hotline_proto::Role::Admin => {
            println!("{}", storage_line(storage))
        }
        Some(storage) => {
            if let Some(line) = staff_storage_line(storage) {
                println!("{line}");
            }
        }
        None => {}
    }
    if let Some(alarm) = profile.roster_alarm_text() {
        println!("staff roster: {alarm}");
    }
    if status.role.is_staff() {
        use hotline_proto::message::RosterStanding;
        let standing = match session.roster_standing() {
            RosterStanding::OnRoster => "this device is on it",
            RosterStanding::NotOnRoster => "this device is NOT on it",
            RosterStanding::NoRoster => "none has been signed yet",
            RosterStanding::Unknown => "the server did not say",
        };
        match session.roster_expires_at() {
            Some(at) => println!("staff roster: expires {}; {standing}", date_time(at)),
            None => println!("staff roster: {standing}"),
        }
    }
    session.close().await;
    Ok(())
}

/// `hotline invite`.
pub(super) async fn invite(
    state: &StateDir,
    role: Role,
    ttl: u64,
    label: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(label) = label {
        check_label(label).map_err(|_| {
            anyhow::anyhow!(
                "{label:?} cannot be a label: 1 to {MAX_LABEL_BYTES} bytes, no control characters, \
                 no spaces at either end"
            )
        })?;
    }
    let session = connect(state).await?;
    let mut invite = session.create_invite(role, ttl).await?;
    // The label goes to the new device only, never to the server.
    invite.label = label.map(str::to_owned);
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
    if invite.org_root.is_none() {
        eprintln!(
            "warning: this device has no organisation root pinned, so the invite carries none: \
             the new device will need `hotline trust-org` before its messages and SOS texts \
             can be protected. Create the root first (`hotline org init`), or pin it here."
        );
    }
    println!(
        "One-time {role} invite, valid until {}. Hand it over by a safe channel; it works once.",
        date_time(invite.expires_at)
    );
    println!();
    println!("  {invite}");
    println!();
    println!("On the new device: hotline enroll '{invite}'");
    if let Some(label) = label {
        // The server never learns the label; it keeps the invite's digest
        // with the device that uses it, and this device keeps the label by
        // that digest, so `hotline devices` names the device.
        let kept = open_device(state)
            .map_err(anyhow::Error::from)
            .and_then(|mut device| {
                device
                    .remember_invite_label(invite.token.digest(), label, invite.expires_at)
                    .map_err(anyhow::Error::from)
            });
        match kept {
            Ok(()) => println!(
                "Once a device has enrolled with it, `hotline devices` here names it {label:?} \
                 (and `hotline revoke {label:?}` or `hotline label {label:?} …` find it)."
            ),
            Err(e) => eprintln!(
                "warning: this device could not keep the label {label:?} of this invite ({e:#}): \
                 once the new device has enrolled, name it with hotline label <its id from \
                 `hotline devices`> {label:?}"
            ),
        }
    }
    session.close().await;
    Ok(())
}

/// `hotline devices`.
pub(super) async fn list(state: &StateDir) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    let devices = session.devices().await?;
    super::names::learn_invite_labels(&mut device, &devices);
    println!(
        "{:<32}  {:<11}  {:<10}  {:<18}  name",
        "device id", "role", "enrolled", "status"
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
        let name = device
            .contact(&d.device_id)
            .and_then(|c| c.called().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{}  {:<11}  {:<10}  {status:<18}  {name}{me}",
            d.device_id,
            d.role,
            date(d.enrolled_at)
        );
    }
    session.close().await;
    Ok(())
}

/// `hotline revoke`: the device named by its id, the start of it or a
/// name, among the devices the server lists and those known here. A
/// device revoked already is not revoked again: the command says when it
/// was and changes nothing.
pub(super) async fn revoke(state: &StateDir, named: &str) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    // One rule for naming a device everywhere (names::DEVICE_RULE); a
    // prefix is matched against every device the server lists and those
    // known here, so it names exactly one or is refused as ambiguous.
    let listed = session.devices().await.unwrap_or_default();
    super::names::learn_invite_labels(&mut device, &listed);
    let mut ids = device.known_device_ids();
    ids.extend(listed.iter().map(|d| d.device_id));
    let device_id = device_arg(&device, named, &ids)?;
    if let Some(at) = listed
        .iter()
        .find(|d| d.device_id == device_id)
        .and_then(|d| d.revoked_at)
    {
        session.close().await;
        anyhow::bail!(
            "device {} was already revoked on {}; nothing changed",
            device.shown(&device_id),
            date(at)
        );
    }
    let at = session.revoke(device_id).await?;
    println!(
        "device {} revoked ({}); its connections were closed, and any alert it held is back with the team.",
        device.shown(&device_id),
        date(at)
    );
    if listed
        .iter()
        .any(|d| d.device_id == device_id && d.role.is_staff())
    {
        println!(
            "It was a staff device: sign a new roster now (hotline org sign-roster --key <file>), \
             so that defenders stop sealing their messages to it."
        );
    }
    session.close().await;
    Ok(())
}

/// `hotline label`: lists the devices known here by name, or names one:
/// among the devices known here and, on a staff device that reaches the
/// server, those it lists (every device, for an admin; the alerts'
/// defenders).
pub(super) async fn label(
    state: &StateDir,
    named: Option<&str>,
    name: Option<&str>,
    forget: bool,
) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let Some(named) = named else {
        let contacts = device.contacts();
        if contacts.is_empty() {
            println!("no device is known here by name yet");
        }
        for c in contacts {
            let mut notes = Vec::new();
            match (&c.name, &c.invited_as) {
                (Some(_), Some(invited)) => notes.push(format!("invited as {invited:?}")),
                (None, Some(_)) => notes.push("the label of the invite it enrolled with".into()),
                _ => {}
            }
            if let Some(l) = &c.label {
                notes.push(format!("calls itself {l:?}"));
            }
            let line = format!(
                "{}  {:<24}  {}",
                c.device_id,
                c.name.as_deref().or(c.invited_as.as_deref()).unwrap_or("-"),
                notes.join("; ")
            );
            println!("{}", line.trim_end());
        }
        if let Some(own) = device.own_label() {
            println!("this device calls itself {own:?} to those it writes to");
        }
        return Ok(());
    };
    let session = match device.profile().role() {
        Ok(role) if role.is_staff() => match device.connect().await {
            Ok(session) => Some(session),
            Err(e) => {
                eprintln!(
                    "note: the server could not be reached ({e}): the device is looked for among those known on this device only"
                );
                None
            }
        },
        _ => None,
    };
    let ids = super::names::known_devices(&mut device, session.as_ref()).await;
    if let Some(session) = session {
        session.close().await;
    }
    let id = device_arg(&device, named, &ids)?;
    match (name, forget) {
        (Some(name), _) => {
            device.set_name(id, Some(name))?;
            println!("device {} is now called {name:?} here", device.shown(&id));
        }
        (None, true) => {
            device.set_name(id, None)?;
            println!("device {} has no name given here", device.shown(&id));
        }
        (None, false) => println!("{}", device.shown(&id)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::message::StorageInfo;

    #[test]
    fn an_admin_reads_the_storage_state_and_free_space() {
        let ok = StorageInfo {
            degraded: None,
            free_bytes: Some(3 * 1024 * 1024 * 1024 / 2),
            read_only: false,
            warn_below: None,
        };
        assert_eq!(storage_line(&ok), "server storage: ok; 1.5 GiB free");
        let full = StorageInfo {
            degraded: Some((1_700_000_000, "No space left on device".into())),
            free_bytes: Some(0),
            read_only: false,
            warn_below: None,
        };
        let line = storage_line(&full);
        assert!(
            line.starts_with("server storage: DEGRADED since "),
            "{line}"
        );
        assert!(line.contains("writes are refused"), "{line}");
        assert!(line.contains("No space left on device"), "{line}");
        assert!(line.ends_with("0 B free"), "{line}");
        let ro = StorageInfo {
            degraded: None,
            free_bytes: None,
            read_only: true,
            warn_below: None,
        };
        assert_eq!(
            storage_line(&ro),
            "server storage: READ-ONLY (recovery): writes are refused, reads work; free space unknown"
        );
    }

    #[test]
    fn free_space_under_the_servers_warning_threshold_is_flagged_low() {
        let low = StorageInfo {
            degraded: None,
            free_bytes: Some(512 * 1024 * 1024),
            read_only: false,
            warn_below: Some(1024 * 1024 * 1024),
        };
        assert_eq!(
            storage_line(&low),
            "server storage: ok; 512.0 MiB free: LOW, under the warning threshold of 1.0 GiB \
             (when the disk is full, nothing new can be saved, SOSes included)"
        );
        let plenty = StorageInfo {
            free_bytes: Some(2 * 1024 * 1024 * 1024),
            ..low.clone()
        };
        assert_eq!(storage_line(&plenty), "server storage: ok; 2.0 GiB free");
        // An earlier server sends no threshold: nothing is claimed.
        let unknown = StorageInfo {
            warn_below: None,
            ..low
        };
        assert_eq!(storage_line(&unknown), "server storage: ok; 512.0 MiB free");
    }

    /// The officers' banner is one sentence, without a run of spaces from
    /// a line continuation in the string.
    #[test]
    fn the_staff_storage_banner_reads_as_one_sentence() {
        let full = StorageInfo {
            degraded: Some((1_700_000_000, "No space left on device".into())),
            free_bytes: Some(0),
            read_only: false,
            warn_below: None,
        };
        assert_eq!(
            staff_storage_line(&full).expect("a banner"),
            format!(
                "server storage: DEGRADED since {} — writes refused, SOSes are being refused (defenders' devices keep them and retry); tell an admin",
                date_time(1_700_000_000)
            )
        );
        let ro = StorageInfo {
            degraded: None,
            free_bytes: None,
            read_only: true,
            warn_below: None,
        };
        assert_eq!(
            staff_storage_line(&ro).expect("a banner"),
            "server storage: READ-ONLY (recovery) — writes refused, SOSes are being refused (defenders' devices keep them and retry); tell an admin"
        );
    }
}
