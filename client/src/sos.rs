//! An SOS whatever state the roster is in, and with or without the
//! passphrase.
//!
//! An SOS is never refused for a reason the defender cannot fix on the
//! spot. Its text is sealed to the newest roster this device verifies
//! against its pinned root; if that roster has expired, to its last
//! members anyway (with a warning: staff added since cannot read it); and
//! if the device has no verified roster at all (no root pinned, a wrong
//! root, no roster published), the alert is raised without its text, and
//! the defender is told so plainly.
//!
//! [`raise_with_panic_key`] and [`checkin_with_panic_key`] do the same
//! with the defender device's panic key, which opens without the
//! passphrase and which the server allows nothing but this.

use hotline_proto::alert::{AlertInfo, CheckinKey, Priority};
use hotline_proto::e2e::content::{Category, Message};
use hotline_proto::e2e::envelope::{self, Content, EnvelopeError, SignedEnvelope};
use hotline_proto::e2e::roster::{Roster, SeenRoster, SignedRoster};
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::identity::unhex;
use hotline_proto::{DeviceId, IdentityKeyPair};

use crate::connection::{Session, authenticate_panic};
use crate::error::ClientError;
use crate::state::{Profile, StateDir};

/// The roster an SOS is sealed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SosRoster {
    /// Verified and current.
    Current(Roster),
    /// Verified, but expired: the SOS is sealed to the members it had at
    /// its last valid moment.
    Expired(Roster),
    /// No roster verifies on this device: the alert goes without its
    /// text. Why, for the defender.
    Unavailable(String),
}

/// Chooses the roster to seal an SOS to from the one the server holds
/// (`signed`), checked against the root pinned in `profile` and the
/// newest version it saw (rollback is never accepted, expiry is). A
/// roster newer than the one seen is remembered in `profile`, saved in
/// `state`.
pub fn choose_roster(
    state: &StateDir,
    profile: &mut Profile,
    signed: Option<&SignedRoster>,
    now: u64,
) -> Result<SosRoster, ClientError> {
    let Some(root) = profile.org_root_key() else {
        return Ok(SosRoster::Unavailable(
            "no organisation root is pinned on this device".into(),
        ));
    };
    let Some(signed) = signed else {
        return Ok(SosRoster::Unavailable(
            "the organisation has not published a staff roster yet".into(),
        ));
    };
    let seen = profile
        .roster_version
        .zip(profile.roster_hash.as_deref().and_then(unhex))
        .and_then(|(version, hash)| {
            Some(SeenRoster {
                version,
                hash: hash.try_into().ok()?,
            })
        });
    let outcome = signed.verify_even_if_expired(&root, seen);
    if profile.record_roster(signed, &outcome) {
        state.save_profile(profile)?;
    }
    let roster = match outcome {
        Ok(r) => r,
        Err(e) => return Ok(SosRoster::Unavailable(e.to_string())),
    };
    Ok(if now >= roster.expires_at {
        SosRoster::Expired(roster)
    } else {
        SosRoster::Current(roster)
    })
}

/// What sealing an SOS gave: the envelope, or none, and what the
/// defender must be told.
#[derive(Debug)]
pub struct SealedSos {
    /// The envelope; `None`: raise the alert without its text.
    pub envelope: Option<SignedEnvelope>,
    /// Warnings for the defender.
    pub warnings: Vec<String>,
}

/// The warning for an SOS raised without its text, for `reason`.
pub fn not_sent_warning(reason: &str) -> String {
    format!(
        "your text could not be protected ({reason}) and was NOT sent; the alert itself is raised without it"
    )
}

/// Seals an SOS's `body` from device `sender`, signed by `signer` (its
/// identity key, or its panic key), to the roster the server holds, as
/// [`choose_roster`] chooses it. Sealing problems that a retry cannot fix
/// (no roster, keys that do not check out, nobody with keys) give no
/// envelope and a warning; only a failure to reach the server is an
/// error.
#[allow(clippy::too_many_arguments)]
pub async fn seal_sos(
    session: &Session,
    state: &StateDir,
    profile: &mut Profile,
    sender: DeviceId,
    signer: &IdentityKeyPair,
    content: Content,
    now: u64,
) -> Result<SealedSos, ClientError> {
    let signed = session.get_roster().await?;
    let mut warnings = Vec::new();
    let (roster, at) = match choose_roster(state, profile, signed.as_ref(), now)? {
        SosRoster::Current(r) => (r, now),
        SosRoster::Expired(r) => {
            warnings.push(
                "the organisation's staff roster has EXPIRED: your SOS was sealed to its last members anyway; staff added since cannot read it. Tell the team when you can".into(),
            );
            let at = r.last_valid_moment();
            (r, at)
        }
        SosRoster::Unavailable(reason) => {
            warnings.push(not_sent_warning(&reason));
            return Ok(SealedSos {
                envelope: None,
                warnings,
            });
        }
    };
    let ids: Vec<DeviceId> = roster
        .members(at)
        .map(|e| e.device_id)
        .filter(|d| *d != sender)
        .collect();
    if ids.is_empty() {
        warnings.push(not_sent_warning("nobody is on the staff roster"));
        return Ok(SealedSos {
            envelope: None,
            warnings,
        });
    }
    use hotline_proto::ErrorCode::{Internal, RateLimited, Unavailable};
    let recipients = match session.fetch_prekeys(ids).await {
        Ok(bundles) => crate::recipients::check_bundles(&roster, bundles, None, false, at, now),
        // Refused for good while sealing: the alert still goes.
        Err(ClientError::Refused(e)) if !matches!(e.code, Unavailable | RateLimited | Internal) => {
            Err(ClientError::Refused(e))
        }
        Err(e) => return Err(e),
    };
    let recipients = match recipients {
        Ok(r) => r,
        Err(e) => {
            warnings.push(not_sent_warning(&e.to_string()));
            return Ok(SealedSos {
                envelope: None,
                warnings,
            });
        }
    };
    match envelope::seal_signed_by(
        sender,
        signer,
        roster.version,
        &recipients,
        &content,
        &mut SystemRandomness,
    ) {
        Ok(env) => Ok(SealedSos {
            envelope: Some(env),
            warnings,
        }),
        Err(EnvelopeError::TooLarge) => Err(ClientError::TooLarge),
        Err(e) => {
            warnings.push(not_sent_warning(&e.to_string()));
            Ok(SealedSos {
                envelope: None,
                warnings,
            })
        }
    }
}

/// Whether `e`, the server's answer to an SOS with its sealed text, is a
/// refusal for good (anything but UNAVAILABLE, RATE_LIMITED, INTERNAL, on a
/// connection the server has not closed): the same envelope can never be
/// accepted, but the alert without it can.
pub fn text_refused_for_good(session: &Session, e: &ClientError) -> bool {
    use hotline_proto::ErrorCode::{Internal, RateLimited, Unavailable};
    matches!(e, ClientError::Refused(w)
        if session.connection().close_reason().is_none()
            && !matches!(w.code, Unavailable | RateLimited | Internal))
}

/// Raises an SOS of `priority` with `envelope`. If the server refuses the
/// envelope for good ([`text_refused_for_good`]: too large, a bad
/// signature, already sent as a message, ...), the alert is raised again
/// without its text, and `warnings` tell the defender the text was not
/// sent: an SOS is never dropped for its text. Any other failure (the
/// network, the server busy) is the error, for the caller to retry.
pub async fn raise_text_or_alone(
    session: &Session,
    priority: Priority,
    envelope: Option<SignedEnvelope>,
    warnings: &mut Vec<String>,
) -> Result<AlertInfo, ClientError> {
    raise_text_or_alone_joining(session, priority, envelope, 0, warnings).await
}

/// [`raise_text_or_alone`], joining the open SOS alert `join_alert` of
/// this device (0: none): an SOS queued together with the one that raised
/// it goes out as part of that alert (docs/protocol.md, section 4.4.1).
pub async fn raise_text_or_alone_joining(
    session: &Session,
    priority: Priority,
    envelope: Option<SignedEnvelope>,
    join_alert: u64,
    warnings: &mut Vec<String>,
) -> Result<AlertInfo, ClientError> {
    let had_text = envelope.is_some();
    match session
        .raise_alert_joining(priority, envelope, join_alert)
        .await
    {
        Err(e) if had_text && text_refused_for_good(session, &e) => {
            let alert = session
                .raise_alert_joining(priority, None, join_alert)
                .await?;
            warnings.push(not_sent_warning(&format!("the server refused it: {e}")));
            Ok(alert)
        }
        other => other,
    }
}

/// The panic key of the enrolled device in `state`, and its profile.
fn panic_identity(state: &StateDir) -> Result<(Profile, IdentityKeyPair), ClientError> {
    let profile = state.load_profile()?;
    let key = state.load_panic_key()?.ok_or_else(|| {
        ClientError::State(
            "this device has no panic key (enrolled before panic keys existed); the passphrase is needed"
                .into(),
        )
    })?;
    Ok((profile, key))
}

/// Gives the defender device of `session` (opened with the passphrase) a
/// panic key if it has none (it was enrolled before panic keys existed):
/// made and saved as pending, registered, then made this device's panic
/// key, so that it is never used before the server knows it. Returns
/// whether it did.
pub async fn ensure_panic_key(state: &StateDir, session: &Session) -> Result<bool, ClientError> {
    if session.role() != hotline_proto::Role::Defender
        || session.is_panic()
        || state.load_panic_key()?.is_some()
    {
        return Ok(false);
    }
    let key = match state.load_pending_panic_key()? {
        Some(k) => k,
        None => {
            let (pair, seed) = IdentityKeyPair::generate().map_err(|_| {
                ClientError::State("the system random number generator failed".into())
            })?;
            state.save_pending_panic_key(&seed)?;
            pair
        }
    };
    session.register_panic_key(key.public_key()).await?;
    state.promote_pending_panic_key()?;
    Ok(true)
}

/// Whether the enrolled device in `state` has a panic key.
pub fn has_panic_key(state: &StateDir) -> bool {
    matches!(state.load_panic_key(), Ok(Some(_)))
}

/// Raises an SOS with the panic key, without the passphrase: connects
/// with the panic key, seals `text` (an SOS of `category`, in the
/// language of [`crate::language`]) as [`seal_sos`] does (signed by the
/// panic key) and raises the alert. Returns the alert and the warnings for
/// the defender. Nothing is queued: if the server cannot be reached, the
/// error says so and nobody has been alerted.
pub async fn raise_with_panic_key(
    state: &StateDir,
    priority: Priority,
    category: Category,
    text: &str,
) -> Result<(AlertInfo, Vec<String>), ClientError> {
    raise_with_panic_key_keeping(state, priority, category, text, &mut None).await
}

/// [`raise_with_panic_key`], keeping in `kept` the SOS as sealed (its
/// envelope, or none, and the sealing's warnings) once it is: a retry
/// raises the same envelope (which the server answers with the same
/// alert if an earlier try reached it), and a caller that gives up can
/// queue it in the [`crate::panic_outbox`] without ever holding its text
/// in a readable form.
pub async fn raise_with_panic_key_keeping(
    state: &StateDir,
    priority: Priority,
    category: Category,
    text: &str,
    kept: &mut Option<SealedSos>,
) -> Result<(AlertInfo, Vec<String>), ClientError> {
    let (mut profile, key) = panic_identity(state)?;
    let device = profile.device_id()?;
    let full = text.len();
    let body = envelope::cut_to_fit(text.as_bytes());
    let session = authenticate_panic(&state.server(&profile)?, device, &key).await?;
    let sealed = match kept {
        Some(sealed) => SealedSos {
            envelope: sealed.envelope.clone(),
            warnings: sealed.warnings.clone(),
        },
        None => {
            let sealed = seal_panic_sos(
                &session,
                state,
                &mut profile,
                device,
                &key,
                priority,
                category,
                body,
            )
            .await;
            let sealed = match sealed {
                Ok(s) => s,
                Err(e) => {
                    session.close().await;
                    return Err(e);
                }
            };
            *kept = Some(SealedSos {
                envelope: sealed.envelope.clone(),
                warnings: sealed.warnings.clone(),
            });
            sealed
        }
    };
    let mut warnings = sealed.warnings;
    let alert = raise_text_or_alone(&session, priority, sealed.envelope, &mut warnings).await;
    session.close().await;
    if body.len() < full {
        warnings.push(format!(
            "the alert's text was too long and was cut to its first {} bytes",
            body.len()
        ));
    }
    Ok((alert?, warnings))
}

/// Seals a panic-key SOS's `body` as [`seal_sos`] does, signed by the
/// panic key `key`.
#[allow(clippy::too_many_arguments)]
async fn seal_panic_sos(
    session: &Session,
    state: &StateDir,
    profile: &mut Profile,
    device: DeviceId,
    key: &IdentityKeyPair,
    priority: Priority,
    category: Category,
    body: &[u8],
) -> Result<SealedSos, ClientError> {
    let (content, now) = panic_content(state, priority, category, body)?;
    // Sealing may save the profile (a newer roster seen): under the state
    // directory's lock, over the profile as it is now, so that a command
    // of this device running meanwhile (a `watch`) neither loses its
    // own change nor has its save of the same file cut short.
    let _lock = state.lock()?;
    *profile = state.load_profile()?;
    seal_sos(session, state, profile, device, key, content, now).await
}

/// What a panic-key SOS's envelope holds, and the time it was made.
fn panic_content(
    state: &StateDir,
    priority: Priority,
    category: Category,
    body: &[u8],
) -> Result<(Content, u64), ClientError> {
    let mut message_id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut message_id)
        .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
    let now = crate::unix_now();
    let content = Content {
        message_id,
        // The message counter lives in the sealed device state, out of
        // reach without the passphrase: 0 marks a panic-key message.
        counter: 0,
        timestamp: now,
        message: Message::sos(
            category,
            priority,
            &String::from_utf8_lossy(body),
            &crate::language(),
        ),
        thread: 0,
        // Saved next to the panic key at enrollment (a defender's own
        // label): staff see even a first SOS by name.
        sender_label: state.load_panic_label().unwrap_or_default(),
    };
    Ok((content, now))
}

/// Seals a panic-key SOS's `text` while the server cannot be reached: to
/// the staff keys this device keeps ([`crate::staff_keys`]), signed by
/// the panic key, so that it can be queued sealed and its words reach
/// the staff when it goes out. No envelope, and a warning saying why, if
/// the kept keys cannot be used.
pub fn seal_panic_offline(
    state: &StateDir,
    priority: Priority,
    category: Category,
    text: &str,
) -> SealedSos {
    let failed = |reason: String| SealedSos {
        envelope: None,
        warnings: vec![not_sent_warning(&reason)],
    };
    let (profile, key) = match panic_identity(state) {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()),
    };
    let device = match profile.device_id() {
        Ok(d) => d,
        Err(e) => return failed(e.to_string()),
    };
    let body = envelope::cut_to_fit(text.as_bytes());
    let (content, now) = match panic_content(state, priority, category, body) {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let mut sealed = match crate::staff_keys::seal_offline(state, device, &key, &content, now) {
        Ok((envelope, warnings)) => SealedSos {
            envelope: Some(envelope),
            warnings,
        },
        Err(reason) => failed(reason),
    };
    if body.len() < text.len() {
        sealed.warnings.push(format!(
            "the alert's text was too long and was cut to its first {} bytes",
            body.len()
        ));
    }
    sealed
}

/// Checks in with `code`, with the panic key, without the passphrase.
pub async fn checkin_with_panic_key(
    state: &StateDir,
    checkin_key: Option<&CheckinKey>,
    code: &str,
) -> Result<(), ClientError> {
    let (profile, key) = panic_identity(state)?;
    let session = authenticate_panic(&state.server(&profile)?, profile.device_id()?, &key).await?;
    let done = session.checkin(checkin_key, code).await;
    session.close().await;
    done
}
