//! The organisation root: pinning it on this device, and (admins, on a
//! machine the key never leaves) creating it and signing the roster.

use std::path::Path;

use anyhow::Context as _;
use hotline_client::StateDir;
use hotline_client::keystore::DEFAULT_ITERATIONS;
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::identity::{hex, unhex};

use super::date::date;
use super::unlock::{open_device, org_passphrase};

/// `hotline trust-org`.
pub(super) fn trust(state: &StateDir, public_key: &str) -> anyhow::Result<()> {
    let bytes: [u8; 32] = unhex(public_key.trim())
        .and_then(|b| b.try_into().ok())
        .context("an organisation root key is 64 hexadecimal digits")?;
    let root = OrgPublicKey::from_bytes(bytes);
    let mut device = open_device(state)?;
    device.pin_org_root(root)?;
    println!(
        "pinned organisation root, fingerprint {}",
        root.fingerprint()
    );
    Ok(())
}

/// `hotline org init`.
pub(super) fn init(state: &StateDir, out: &Path) -> anyhow::Result<()> {
    let pass = org_passphrase(true)?;
    let root = hotline_client::org::create_org_key(out, &pass, DEFAULT_ITERATIONS)?;
    println!(
        "organisation root key written to {} — keep it offline",
        out.display()
    );
    println!("public key:  {}", hex(root.as_bytes()));
    println!("fingerprint: {}", root.fingerprint());
    if state.is_enrolled() {
        let mut device = open_device(state)?;
        device.pin_org_root(root)?;
        println!(
            "pinned on this device; next: hotline org sign-roster --key {}",
            out.display()
        );
    }
    Ok(())
}

/// `hotline org sign-roster`.
pub(super) async fn sign_roster(state: &StateDir, key: &Path, valid: u64) -> anyhow::Result<()> {
    let pass = org_passphrase(false)?;
    let root = hotline_client::org::load_org_key(key, &pass)?;
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    let now = hotline_client::unix_now();
    let roster = hotline_client::org::sign_roster(&session, &mut device, &root, now, valid).await?;
    println!(
        "roster version {} signed and uploaded: {} staff devices, valid until {}",
        roster.version,
        roster.entries.len(),
        date(roster.expires_at)
    );
    session.close().await;
    Ok(())
}
