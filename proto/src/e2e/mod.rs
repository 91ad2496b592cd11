//! End-to-end encryption: the organisation root, the signed staff roster,
//! device prekeys and sealed envelopes. Pure functions, no I/O.
//!
//! * [`org`]: the organisation's offline root key.
//! * [`roster`]: the staff roster the root signs, and the rules a client
//!   applies before trusting it (signature, expiry, no rollback).
//! * [`prekey`]: X25519 keys a device publishes, signed by its identity.
//! * [`suite`]: the HPKE suite (RFC 9180) and randomness.
//! * [`content`]: what a sealed message says (kind, SOS category and
//!   priority, text, language) and how the old form reads.
//! * [`envelope`]: sealing one message for many devices, and opening it.
//! * [`replay`]: refusing an envelope seen before.
//!
//! Every signed structure is sent as the exact bytes that were signed and
//! verified before it is parsed. `docs/protocol.md` specifies every byte;
//! `docs/test-vectors/` holds vectors the tests check.

pub mod content;
pub mod envelope;
pub mod org;
pub mod prekey;
pub mod replay;
pub mod roster;
pub mod suite;

/// Builds `label || 0x00 || body`, the bytes every signature covers.
pub(crate) fn signed_message(label: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + 1 + body.len());
    m.extend_from_slice(label);
    m.push(0);
    m.extend_from_slice(body);
    m
}
