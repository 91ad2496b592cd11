//! Devices: enrolling this one, its status, and (for those allowed)
//! inviting, listing and revoking devices.

use anyhow::Context as _;
use hotline_client::StateDir;
use hotline_client::keystore::DEFAULT_ITERATIONS;
use hotline_client::messenger::Device;
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::identity::unhex;
use hotline_proto::{DeviceId, Invite, Role};

use super::date::date;
use super::unlock::{connect, passphrase};

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
    }
    session.close().await;
    Ok(())
}

/// `hotline status`.
pub(super) async fn status(state: &StateDir) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let status = session.status().await?;
    let profile = state.load_profile()?;
    println!(
        "connected to {} ({})",
        profile.server_addr, profile.cert_pin
    );
    println!("device id: {}", status.device_id);
    println!("role: {}", status.role);
    println!("server version: {}", status.server_version);
    if status.role.is_staff() {
        use hotline_proto::message::RosterStanding;
        let standing = match session.roster_standing() {
            RosterStanding::OnRoster => "this device is on it",
            RosterStanding::NotOnRoster => "this device is NOT on it",
            RosterStanding::NoRoster => "none has been signed yet",
            RosterStanding::Unknown => "the server did not say",
        };
        match session.roster_expires_at() {
            Some(at) => println!("staff roster: expires {}; {standing}", date(at)),
            None => println!("staff roster: {standing}"),
        }
    }
    session.close().await;
    Ok(())
}

/// `hotline invite`.
pub(super) async fn invite(state: &StateDir, role: Role, ttl: u64) -> anyhow::Result<()> {
    let session = connect(state).await?;
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
    Ok(())
}

/// `hotline devices`.
pub(super) async fn list(state: &StateDir) -> anyhow::Result<()> {
    let session = connect(state).await?;
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
    Ok(())
}

/// `hotline revoke`.
pub(super) async fn revoke(state: &StateDir, device_id: DeviceId) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let at = session.revoke(device_id).await?;
    println!(
        "device {device_id} revoked ({}); its connections were closed.",
        date(at)
    );
    session.close().await;
    Ok(())
}
