//! The staff's public keys a defender device keeps, so that an SOS raised
//! with the panic key while the server is out of reach is sealed all the
//! same, and its words reach the staff when it goes out.
//!
//! The file `staff-keys` holds the signed staff roster and each staff
//! device's signed last-resort prekey, as the server handed them out to a
//! session opened with the passphrase. Everything in it is public (the
//! roster is signed by the organisation root, each prekey by its device's
//! identity key): it opens without the passphrase, and a seized phone
//! learns from it which staff devices exist, which the roster says
//! already. It is checked again whenever it is used: the roster against
//! the pinned root and the newest version this device saw, each prekey
//! against the roster's identity key of its device and its expiry.

use hotline_proto::DeviceId;
use hotline_proto::IdentityKeyPair;
use hotline_proto::e2e::envelope::{self, Content, Recipient, SignedEnvelope};
use hotline_proto::e2e::prekey::{PrekeyKind, SignedPrekey};
use hotline_proto::e2e::roster::{Roster, SeenRoster, SignedRoster};
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::identity::unhex;
use prost::Message;

use crate::connection::Session;
use crate::error::ClientError;
use crate::state::{Profile, StateDir};

/// The file's name in the state directory.
pub const FILE: &str = "staff-keys";

/// Kept keys are fetched again after this long.
const REFRESH_AFTER_SECS: u64 = 24 * 3600;

/// Kept keys are fetched again when one expires within this.
const EXPIRING_SECS: u64 = 7 * 24 * 3600;

#[derive(Clone, PartialEq, Message)]
struct KeptPrekey {
    #[prost(bytes = "vec", tag = "1")]
    device_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    signed: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct StaffKeysFile {
    /// The signed roster (`SignedRoster::encode`).
    #[prost(bytes = "vec", tag = "1")]
    roster: Vec<u8>,
    /// Its version, as read when it was kept.
    #[prost(uint64, tag = "2")]
    roster_version: u64,
    /// When they were fetched (this device's clock).
    #[prost(uint64, tag = "3")]
    fetched_at: u64,
    /// The earliest expiry of the prekeys kept.
    #[prost(uint64, tag = "4")]
    expires_at: u64,
    #[prost(message, repeated, tag = "5")]
    prekeys: Vec<KeptPrekey>,
}

fn load(state: &StateDir) -> Option<StaffKeysFile> {
    let bytes = std::fs::read(state.path().join(FILE)).ok()?;
    StaffKeysFile::decode(bytes.as_slice()).ok()
}

fn seen(profile: &Profile) -> Option<SeenRoster> {
    profile
        .roster_version
        .zip(profile.roster_hash.as_deref().and_then(unhex))
        .and_then(|(version, hash)| {
            Some(SeenRoster {
                version,
                hash: hash.try_into().ok()?,
            })
        })
}

/// Whether the kept keys must be fetched again: none kept, kept over a
/// day ago, one expires within a week, or a newer roster was seen since.
pub fn due(state: &StateDir, now: u64) -> bool {
    let Some(kept) = load(state) else {
        return true;
    };
    let newer_roster = state
        .load_profile()
        .ok()
        .and_then(|p| p.roster_version)
        .is_some_and(|v| v > kept.roster_version);
    newer_roster
        || kept.fetched_at.saturating_add(REFRESH_AFTER_SECS) <= now
        || kept.expires_at <= now.saturating_add(EXPIRING_SECS)
}

/// Fetches the roster and the staff's last-resort prekeys over `session`
/// (opened with the passphrase), checks them, and keeps them in
/// [`FILE`]. Returns how many staff devices' keys are kept.
pub async fn refresh(state: &StateDir, session: &Session) -> Result<usize, ClientError> {
    let now = crate::unix_now();
    let profile = state.load_profile()?;
    let Some(root) = profile.org_root_key() else {
        return Err(ClientError::State(
            "no organisation root is pinned on this device".into(),
        ));
    };
    let Some(signed) = session.get_roster().await? else {
        return Err(ClientError::State(
            "the organisation has not published a staff roster yet".into(),
        ));
    };
    let roster = signed
        .verify_even_if_expired(&root, seen(&profile))
        .map_err(|e| ClientError::State(e.to_string()))?;
    let at = members_at(&roster, now);
    let ids: Vec<DeviceId> = roster.members(at).map(|e| e.device_id).collect();
    if ids.is_empty() {
        return Err(ClientError::State("nobody is on the staff roster".into()));
    }
    let bundles = session.fetch_last_resort_prekeys(ids).await?;
    let mut prekeys = Vec::new();
    let mut expires_at = u64::MAX;
    for b in bundles {
        let Some(entry) = roster.member(&b.device_id, at) else {
            continue;
        };
        let Some(signed_prekey) = b.prekey else {
            continue;
        };
        // Only a last-resort prekey signed by the roster's key of its
        // device (an older server hands out one-time ones: not kept).
        let Ok(prekey) = signed_prekey.verify(&entry.identity_key, now) else {
            continue;
        };
        if prekey.kind != PrekeyKind::LastResort || prekey.device_id != b.device_id {
            continue;
        }
        expires_at = expires_at.min(prekey.expires_at);
        prekeys.push(KeptPrekey {
            device_id: b.device_id.as_bytes().to_vec(),
            signed: signed_prekey.encode(),
        });
    }
    let count = prekeys.len();
    let file = StaffKeysFile {
        roster: signed.encode(),
        roster_version: roster.version,
        fetched_at: now,
        expires_at,
        prekeys,
    };
    state.write_private(FILE, &file.encode_to_vec())?;
    Ok(count)
}

/// The moment whose members an SOS is sealed to: now, or an expired
/// roster's last valid moment.
fn members_at(roster: &Roster, now: u64) -> u64 {
    if now >= roster.expires_at {
        roster.last_valid_moment()
    } else {
        now
    }
}

/// An SOS sealed to the kept staff keys, and what the defender must be
/// told (an expired roster).
pub type SealedOffline = (SignedEnvelope, Vec<String>);

/// Seals an SOS's `content` from `sender`, signed by its panic key
/// `signer`, to the staff keys kept on this device, without the server.
/// What cannot be used (none kept, a roster that no longer checks out,
/// every kept key expired) is the error, saying exactly that.
pub fn seal_offline(
    state: &StateDir,
    sender: DeviceId,
    signer: &IdentityKeyPair,
    content: &Content,
    now: u64,
) -> Result<SealedOffline, String> {
    let not_sent = |reason: &str| Err(format!("the server cannot be reached now, and {reason}"));
    let Some(kept) = load(state) else {
        return not_sent(
            "this device keeps no staff keys yet (it keeps them after any command run with the passphrase while connected)",
        );
    };
    let Ok(profile) = state.load_profile() else {
        return not_sent("this device's profile cannot be read");
    };
    let Some(root) = profile.org_root_key() else {
        return not_sent("no organisation root is pinned on this device");
    };
    let roster = match SignedRoster::decode(&kept.roster)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.verify_even_if_expired(&root, seen(&profile))
                .map_err(|e| e.to_string())
        }) {
        Ok(r) => r,
        Err(e) => {
            return not_sent(&format!(
                "the staff keys kept on this device do not check out ({e})"
            ));
        }
    };
    let mut warnings: Vec<String> = Vec::new();
    if now >= roster.expires_at {
        warnings.push(
            "the organisation's staff roster has EXPIRED: your SOS was sealed to its last members anyway; staff added since cannot read it. Tell the team when you can".into(),
        );
    }
    let at = members_at(&roster, now);
    let mut recipients = Vec::new();
    for k in &kept.prekeys {
        let Ok(device) = <[u8; 16]>::try_from(k.device_id.as_slice()).map(DeviceId::from_bytes)
        else {
            continue;
        };
        if device == sender {
            continue;
        }
        let Some(entry) = roster.member(&device, at) else {
            continue;
        };
        let Ok(signed) = SignedPrekey::decode(&k.signed) else {
            continue;
        };
        let Ok(prekey) = signed.verify(&entry.identity_key, now) else {
            continue;
        };
        if prekey.kind != PrekeyKind::LastResort || prekey.device_id != device {
            continue;
        }
        recipients.push(Recipient {
            device_id: device,
            prekey_id: prekey.id,
            key: prekey.public_key,
        });
    }
    if recipients.is_empty() {
        return not_sent(
            "none of the staff keys kept on this device is valid any more (they expired)",
        );
    }
    envelope::seal_signed_by(
        sender,
        signer,
        roster.version,
        &recipients,
        content,
        &mut SystemRandomness,
    )
    .map(|env| (env, warnings))
    .map_err(|e| e.to_string())
}
