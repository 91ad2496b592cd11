//! Admin tooling for the organisation root key, which lives offline (on
//! the admin's machine or removable media, never on the server): creating
//! it, and signing and uploading a new staff roster.

use std::path::Path;

use hotline_proto::e2e::org::{OrgKeyPair, OrgPublicKey};
use hotline_proto::e2e::roster::{Roster, RosterEntry, SignedRoster};

use crate::connection::Session;
use crate::error::ClientError;
use crate::keystore;
use crate::messenger::Device;

/// How long a roster signed by [`sign_roster`] stays valid by default.
pub const ROSTER_VALIDITY_SECS: u64 = 30 * 24 * 3600;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_owned();
    move |source| ClientError::Io { what, path, source }
}

/// Creates a new organisation root key, sealed under `passphrase` in a new
/// file at `path` (refuses to overwrite). Returns its public key.
pub fn create_org_key(
    path: &Path,
    passphrase: &str,
    iterations: u32,
) -> Result<OrgPublicKey, ClientError> {
    let (pair, seed) = OrgKeyPair::generate()
        .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
    let sealed = keystore::seal(&seed, passphrase, iterations)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io("cannot create", path))?;
    std::io::Write::write_all(&mut f, &sealed).map_err(io("cannot write", path))?;
    f.sync_all().map_err(io("cannot write", path))?;
    Ok(pair.public_key())
}

/// Opens the organisation root key file.
pub fn load_org_key(path: &Path, passphrase: &str) -> Result<OrgKeyPair, ClientError> {
    let sealed = std::fs::read(path).map_err(io("cannot read", path))?;
    let seed = keystore::open_seed(&sealed, passphrase)?;
    Ok(OrgKeyPair::from_seed(&seed))
}

/// Signs a roster of every active staff device the server lists, one
/// version above the current one, uploads it, and accepts it on `device`
/// (pinning the root there if it had none). Run by an admin.
pub async fn sign_roster(
    session: &Session,
    device: &mut Device,
    root: &OrgKeyPair,
    now: u64,
    validity_secs: u64,
) -> Result<Roster, ClientError> {
    device.pin_org_root(root.public_key())?;
    let current = session.get_roster().await?;
    let (version, previous_hash) = match &current {
        Some(signed) => {
            let r = signed
                .verify(&root.public_key(), 0, None)
                .map_err(|e| ClientError::State(format!("the stored roster: {e}")))?;
            (r.version + 1, signed.hash())
        }
        None => (1, [0; 32]),
    };
    let devices = session.devices().await?;
    let expires_at = now + validity_secs;
    let roster = Roster {
        version,
        issued_at: now,
        expires_at,
        previous_hash,
        entries: devices
            .into_iter()
            .filter(|d| d.role.is_staff() && d.revoked_at.is_none())
            .map(|d| RosterEntry {
                device_id: d.device_id,
                role: d.role,
                identity_key: d.identity_key,
                valid_from: now.saturating_sub(300),
                valid_until: expires_at,
            })
            .collect(),
    };
    let signed: SignedRoster = roster.sign(root);
    session.put_roster(signed.clone()).await?;
    device.accept_roster(&root.public_key(), &signed)?;
    Ok(roster)
}
