//! The organisation root: pinning it on this device, and (admins, on a
//! machine the key never leaves) creating it and signing the roster.

use std::path::Path;

use anyhow::Context as _;
use hotline_client::StateDir;
use hotline_client::keystore::DEFAULT_ITERATIONS;
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::identity::{hex, unhex};

use super::date::date_time;
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
pub(super) async fn trust(
    state: &StateDir,
    public_key: &str,
    replace: bool,
    force: bool,
) -> anyhow::Result<()> {
    let root = parse_public_key(public_key)?;
    let mut device = open_device(state)?;
    let pinned = device.org_root();
    if !force && pinned != Some(root) && (pinned.is_none() || replace) {
        check_against_the_servers_roster(&device, &root).await?;
    }
    match pinned {
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

/// A fingerprint pasted without its spaces is 64 hex digits too, and
/// would pin a root nobody holds. The server's roster tells them apart:
/// one signed by another key refuses the pin (the server cannot make a
/// key trusted this way, only refused; `--force` pins it regardless).
/// With no roster yet, or no server, nothing can be checked.
async fn check_against_the_servers_roster(
    device: &hotline_client::messenger::Device,
    root: &OrgPublicKey,
) -> anyhow::Result<()> {
    let roster = match device.connect().await {
        Ok(session) => {
            let roster = session.get_roster().await;
            session.close().await;
            roster
        }
        Err(e) => Err(e),
    };
    match roster {
        Ok(Some(signed)) => match signed.verify_even_if_expired(root, None) {
            Ok(_) => Ok(()),
            Err(_) => anyhow::bail!(
                "the staff roster on the server is not signed by this key, so it is not your \
                 organisation's root. If you pasted the fingerprint, paste the public key instead. \
                 {PASTE_THE_KEY}. (If you are sure, --force pins it anyway.)"
            ),
        },
        Ok(None) => {
            eprintln!(
                "note: the organisation has no roster on the server yet, so this key could not be \
                 checked against one: compare its fingerprint with an admin's"
            );
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "WARNING: could not check this key against the server's roster ({e}): compare its \
                 fingerprint with an admin's"
            );
            Ok(())
        }
    }
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
    // Checked before anything is written: a second root is almost always a
    // mistake, and its key file would be left behind.
    if state.is_enrolled()
        && let Some(pinned) = state.load_profile()?.org_root
    {
        let pinned = unhex(&pinned)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|b| OrgPublicKey::from_bytes(b).fingerprint())
            .unwrap_or_default();
        anyhow::bail!(
            "this device already trusts an organisation root (fingerprint {pinned}): nothing was \
             written. To see it: hotline org show. A new root would make every device re-pin; if \
             that is really meant, run org init with another --home, then hotline trust-org --replace"
        );
    }
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
        date_time(roster.expires_at)
    );
    session.close().await;
    Ok(())
}
