//! A case key of one epoch and its commitment (docs/protocol.md, section
//! 9.2). Apart from [`super::seal`] so that the content of a CASE_KEYS
//! envelope ([`crate::e2e::content`]) can hold keys without the sealing
//! of events (which pads as envelopes do) in its imports.

use ring::aead::{CHACHA20_POLY1305, LessSafeKey, UnboundKey};
use ring::digest;
use zeroize::Zeroizing;

use super::{COMMITMENT_LABEL, CaseId};
use crate::e2e::suite::Randomness;

/// A case key of one epoch: 32 random bytes, never sent to the server.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaseKey(..)")
    }
}

impl CaseKey {
    /// A fresh key.
    pub fn generate(rng: &mut impl Randomness) -> CaseKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill(k.as_mut());
        CaseKey(k)
    }

    /// The key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> CaseKey {
        CaseKey(Zeroizing::new(bytes))
    }

    /// Its bytes (to store it sealed, or send it in a CASE_KEYS content).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `SHA-256("hotline/1 case key" || 0x00 || case_id || u32be(epoch) || key)`.
    pub fn commitment(&self, case_id: &CaseId, epoch: u32) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(COMMITMENT_LABEL);
        ctx.update(&[0]);
        ctx.update(case_id.as_bytes());
        ctx.update(&epoch.to_be_bytes());
        ctx.update(self.0.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// The ChaCha20-Poly1305 key (section 9.1).
    pub(crate) fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, self.0.as_ref())
                .expect("a 32-byte ChaCha20-Poly1305 key"),
        )
    }
}
