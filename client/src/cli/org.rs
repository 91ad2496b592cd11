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

/// What to paste into `trust-org`, said whenever something else was.
const PASTE_THE_KEY: &str = "trust-org needs the root's public key: 64 hexadecimal digits \
     without spaces, as `hotline org show` prints them on an admin's device. Then compare \
     the fingerprint this command prints with the one the admin reads to you";

/// Reads a root public key as a person pasted it, refusing a fingerprint
/// (groups of four hex digits) however it was pasted: it is 32 bytes of hex
/// too, and pinning it would pin a root nobody holds.
fn parse_public_key(text: &str) -> anyhow::Result<OrgPublicKey> {
    let text = text.trim();
    let groups: Vec<&str> = text.split_whitespace().collect();
    if groups.len() > 1 {
        if groups.len() == 16 && groups.iter().all(|g| g.len() == 4 && unhex(g).is_some()) {
            anyhow::bail!("this is a root's fingerprint, not its public key. {PASTE_THE_KEY}");
        }
        anyhow::bail!("a root public key has no spaces. {PASTE_THE_KEY}");
    }
    let bytes: [u8; 32] = unhex(text)
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("this is not a root public key. {PASTE_THE_KEY}"))?;
    Ok(OrgPublicKey::from_bytes(bytes))
}

/// `hotline trust-org`.
pub(super) fn trust(state: &StateDir, public_key: &str, replace: bool) -> anyhow::Result<()> {
    let root = parse_public_key(public_key)?;
    let mut device = open_device(state)?;
    match device.org_root() {
        Some(pinned) if pinned == root => {
            println!(
                "this root is already pinned; fingerprint {}",
                root.fingerprint()
            );
            return Ok(());
        }
        Some(pinned) if !replace => anyhow::bail!(
            "another organisation root is already pinned on this device.\n  \
             pinned:   {}\n  \
             this key: {}\n\
             If your admins told you the root changed, and the second fingerprint is the \
             one they read to you, run this again with --replace.",
            pinned.fingerprint(),
            root.fingerprint()
        ),
        Some(pinned) => {
            device.replace_org_root(root)?;
            println!("replaced the pinned organisation root");
            println!("  was: {}", pinned.fingerprint());
            println!("  now: {}", root.fingerprint());
        }
        None => {
            device.pin_org_root(root)?;
            println!(
                "pinned organisation root, fingerprint {}",
                root.fingerprint()
            );
        }
    }
    println!("Compare this fingerprint with an admin's, by another channel, before relying on it.");
    Ok(())
}

/// `hotline org show`: the root this device trusts, or (with `--key`)
/// the root of a key file, in the form `trust-org` takes.
pub(super) fn show(state: &StateDir, key: Option<&Path>) -> anyhow::Result<()> {
    let root = match key {
        Some(key) => {
            let pass = org_passphrase(false)?;
            hotline_client::org::load_org_key(key, &pass)?.public_key()
        }
        None => {
            let profile = state.load_profile()?;
            let pinned = profile.org_root.as_deref().and_then(unhex);
            let bytes: [u8; 32] = pinned.and_then(|b| b.try_into().ok()).context(
                "no organisation root is pinned on this device. On the machine that holds \
                 the root key: hotline org show --key <file>",
            )?;
            OrgPublicKey::from_bytes(bytes)
        }
    };
    println!("public key:  {}", hex(root.as_bytes()));
    println!("fingerprint: {}", root.fingerprint());
    println!(
        "On another device: hotline trust-org {}",
        hex(root.as_bytes())
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
