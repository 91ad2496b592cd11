//! One-time invites, and the certificate pin they carry.
//!
//! An invite is the text `hotline:` followed by the unpadded base64url
//! encoding of a `hotline.v1.Invite` protobuf message. It carries everything
//! a new device needs: where to connect, which certificate to expect, and a
//! one-time token.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use ring::digest;

use crate::error::DecodeError;
use crate::identity::{hex, unhex};
use crate::pb;
use crate::role::Role;

/// The prefix of every invite string.
pub const INVITE_PREFIX: &str = "hotline:";
/// The longest invite string accepted (checked before decoding).
pub const MAX_INVITE_LEN: usize = 2048;
/// Bytes in an invite token.
pub const TOKEN_LEN: usize = 32;
/// Longest invite lifetime an admin may ask for: 30 days.
pub const MAX_INVITE_TTL_SECS: u64 = 30 * 24 * 3600;
const INVITE_VERSION: u32 = 1;
const MAX_HOST_LEN: usize = 255;

/// A one-time invite token: 32 random bytes. A secret until used.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteToken([u8; TOKEN_LEN]);

impl InviteToken {
    /// A fresh token from the system's secure random generator.
    pub fn random() -> Result<InviteToken, crate::identity::RandomnessUnavailable> {
        let mut t = [0u8; TOKEN_LEN];
        crate::identity::fill_random(&mut t)?;
        Ok(InviteToken(t))
    }

    /// The token from its bytes.
    pub fn from_bytes(bytes: [u8; TOKEN_LEN]) -> Self {
        InviteToken(bytes)
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    pub(crate) fn from_slice(bytes: &[u8], field: &'static str) -> Result<Self, DecodeError> {
        Ok(InviteToken(
            bytes.try_into().map_err(|_| DecodeError::Invalid(field))?,
        ))
    }

    /// `SHA-256(token)`: what a server stores, so its store alone cannot be
    /// used to enroll.
    pub fn digest(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

impl fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteToken(..)")
    }
}

/// The SHA-256 digest of the server's DER-encoded TLS certificate. Clients
/// accept a server only if its certificate has this digest.
///
/// Written as `sha256:` followed by 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin([u8; 32]);

impl CertPin {
    /// The pin of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> CertPin {
        let d = digest::digest(&digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        CertPin(out)
    }

    /// The pin from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CertPin(bytes)
    }

    /// The pin's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The pin as hex in groups of four, for reading aloud over a phone.
    pub fn grouped(&self) -> String {
        let h = hex(&self.0);
        h.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex(&self.0))
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertPin({self})")
    }
}

impl FromStr for CertPin {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let h = s.trim().strip_prefix("sha256:").unwrap_or(s.trim());
        let bytes = unhex(h).ok_or(DecodeError::Invalid("cert_sha256"))?;
        Ok(CertPin(
            bytes
                .try_into()
                .map_err(|_| DecodeError::Invalid("cert_sha256"))?,
        ))
    }
}

/// A parsed invite.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// `host:port` of the server.
    pub server_addr: String,
    /// The TLS server name to present.
    pub server_name: String,
    /// The certificate the server must present.
    pub cert_pin: CertPin,
    /// The one-time token.
    pub token: InviteToken,
    /// The role the new device will get (as announced; the server decides).
    pub role: Role,
    /// Seconds since the Unix epoch after which the server refuses it.
    pub expires_at: u64,
    /// The organisation root key that signs the staff roster, once the
    /// organisation has one. Clients pin it at enrollment.
    pub org_root: Option<crate::e2e::org::OrgPublicKey>,
    /// A name for the new device, chosen by whoever invites it (see
    /// [`check_label`]). The server never sees it.
    pub label: Option<String>,
}

/// Longest device label, in bytes of UTF-8.
pub const MAX_LABEL_BYTES: usize = 64;

/// A device label is 1 to [`MAX_LABEL_BYTES`] bytes of UTF-8 with no
/// control characters (nothing that could move a terminal's cursor or
/// colour it), and neither starts nor ends with a space.
pub fn check_label(label: &str) -> Result<(), DecodeError> {
    if label.is_empty()
        || label.len() > MAX_LABEL_BYTES
        || label.chars().any(char::is_control)
        || label.trim() != label
    {
        return Err(DecodeError::Invalid("label"));
    }
    Ok(())
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn check_host(s: String, field: &'static str) -> Result<String, DecodeError> {
    if s.is_empty() {
        return Err(DecodeError::Missing(field));
    }
    if s.len() > MAX_HOST_LEN || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(DecodeError::Invalid(field));
    }
    Ok(s)
}

impl Invite {
    /// Encodes the invite as its protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        pb::Invite {
            version: INVITE_VERSION,
            server_addr: self.server_addr.clone(),
            server_name: self.server_name.clone(),
            cert_sha256: self.cert_pin.0.to_vec().into(),
            token: self.token.0.to_vec().into(),
            role: self.role.to_wire(),
            expires_at: self.expires_at,
            org_root: self
                .org_root
                .map(|k| k.as_bytes().to_vec())
                .unwrap_or_default()
                .into(),
            label: self.label.clone().unwrap_or_default(),
        }
        .encode_to_vec()
    }

    /// Parses an invite's protobuf bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Invite, DecodeError> {
        let m = pb::Invite::decode(bytes)?;
        if m.version != INVITE_VERSION {
            return Err(DecodeError::UnsupportedVersion(m.version));
        }
        let cert: [u8; 32] = m
            .cert_sha256
            .as_ref()
            .try_into()
            .map_err(|_| DecodeError::Invalid("cert_sha256"))?;
        Ok(Invite {
            server_addr: check_host(m.server_addr, "server_addr")?,
            server_name: check_host(m.server_name, "server_name")?,
            cert_pin: CertPin(cert),
            token: InviteToken::from_slice(&m.token, "token")?,
            role: Role::from_wire(m.role).ok_or(DecodeError::Invalid("role"))?,
            expires_at: m.expires_at,
            org_root: match m.org_root.len() {
                0 => None,
                32 => Some(crate::e2e::org::OrgPublicKey::from_slice(
                    &m.org_root,
                    "org_root",
                )?),
                _ => return Err(DecodeError::Invalid("org_root")),
            },
            label: match m.label.as_str() {
                "" => None,
                label => {
                    check_label(label)?;
                    Some(m.label)
                }
            },
        })
    }
}

impl fmt::Display for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{INVITE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes())
        )
    }
}

impl FromStr for Invite {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // People paste invites from chat apps: tolerate surrounding space and
        // line breaks inside, nothing else.
        let s = s.trim();
        if s.len() > MAX_INVITE_LEN {
            return Err(DecodeError::NotAnInvite("too long"));
        }
        let body = s
            .strip_prefix(INVITE_PREFIX)
            .ok_or(DecodeError::NotAnInvite(
                "it does not start with \"hotline:\"",
            ))?;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = URL_SAFE_NO_PAD
            .decode(compact.as_bytes())
            .map_err(|_| DecodeError::NotAnInvite("damaged text (was it copied whole?)"))?;
        Invite::from_bytes(&bytes)
    }
}

/// The text is not a lifetime such as `90s`, `30m`, `24h` or `7d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a lifetime is a number followed by s, m, h or d (for example 24h), up to 30 days")]
pub struct BadLifetime;

/// Parses an invite lifetime (`90s`, `30m`, `24h`, `7d`; a bare number is
/// seconds) into seconds, between 1 second and 30 days.
pub fn parse_lifetime(s: &str) -> Result<u64, BadLifetime> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| BadLifetime)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(BadLifetime),
    };
    let secs = n.checked_mul(scale).ok_or(BadLifetime)?;
    if secs == 0 || secs > MAX_INVITE_TTL_SECS {
        return Err(BadLifetime);
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invite {
        Invite {
            server_addr: "203.0.113.7:4433".into(),
            server_name: "hotline.example.org".into(),
            cert_pin: CertPin::of_certificate(b"certificate"),
            token: InviteToken::from_bytes([7; 32]),
            role: Role::Officer,
            expires_at: 1_900_000_000,
            org_root: Some(crate::e2e::org::OrgPublicKey::from_bytes([9; 32])),
            label: Some("Ana P. (Bogotá)".into()),
        }
    }

    #[test]
    fn invite_text_round_trips() {
        let invite = sample();
        let text = invite.to_string();
        assert!(text.starts_with("hotline:"));
        assert!(text.len() < 260, "short enough to paste: {}", text.len());
        assert_eq!(text.parse::<Invite>(), Ok(invite.clone()));
        // Wrapped by a chat app, with a trailing newline.
        let wrapped = format!("  {}\n{}\n", &text[..40], &text[40..]);
        assert_eq!(wrapped.parse::<Invite>(), Ok(invite));
    }

    #[test]
    fn damaged_invites_are_refused_with_a_reason() {
        let text = sample().to_string();
        assert!(matches!(
            text.replace("hotline:", "hotlin:").parse::<Invite>(),
            Err(DecodeError::NotAnInvite(_))
        ));
        assert!(matches!(
            format!("{text}!").parse::<Invite>(),
            Err(DecodeError::NotAnInvite(_))
        ));
        assert!(text[..text.len() - 10].parse::<Invite>().is_err());
        assert!("hotline:".parse::<Invite>().is_err());
        let long = format!("hotline:{}", "A".repeat(MAX_INVITE_LEN));
        assert_eq!(
            long.parse::<Invite>(),
            Err(DecodeError::NotAnInvite("too long"))
        );
    }

    #[test]
    fn every_field_is_checked() {
        let good = pb::Invite::decode(sample().to_bytes().as_slice()).expect("decodes");
        let cases: Vec<(pb::Invite, DecodeError)> = vec![
            (
                pb::Invite {
                    version: 2,
                    ..good.clone()
                },
                DecodeError::UnsupportedVersion(2),
            ),
            (
                pb::Invite {
                    server_addr: String::new(),
                    ..good.clone()
                },
                DecodeError::Missing("server_addr"),
            ),
            (
                pb::Invite {
                    server_name: "a b".into(),
                    ..good.clone()
                },
                DecodeError::Invalid("server_name"),
            ),
            (
                pb::Invite {
                    cert_sha256: vec![1; 31].into(),
                    ..good.clone()
                },
                DecodeError::Invalid("cert_sha256"),
            ),
            (
                pb::Invite {
                    token: vec![].into(),
                    ..good.clone()
                },
                DecodeError::Invalid("token"),
            ),
            (
                pb::Invite {
                    role: 0,
                    ..good.clone()
                },
                DecodeError::Invalid("role"),
            ),
            (
                pb::Invite {
                    label: "Ana\u{1b}[2J".into(),
                    ..good.clone()
                },
                DecodeError::Invalid("label"),
            ),
            (
                pb::Invite {
                    label: "é".repeat(MAX_LABEL_BYTES / 2 + 1),
                    ..good.clone()
                },
                DecodeError::Invalid("label"),
            ),
            (
                pb::Invite {
                    label: " Ana".into(),
                    ..good.clone()
                },
                DecodeError::Invalid("label"),
            ),
        ];
        for (m, want) in cases {
            assert_eq!(Invite::from_bytes(&m.encode_to_vec()), Err(want));
        }
    }

    #[test]
    fn pins_parse_with_or_without_prefix() {
        let pin = CertPin::of_certificate(b"x");
        assert_eq!(pin.to_string().parse::<CertPin>(), Ok(pin));
        assert_eq!(hex(pin.as_bytes()).parse::<CertPin>(), Ok(pin));
        assert!("sha256:abcd".parse::<CertPin>().is_err());
        assert_eq!(pin.grouped().split(' ').count(), 16);
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("90"), Ok(90));
        assert_eq!(parse_lifetime("90s"), Ok(90));
        assert_eq!(parse_lifetime("30m"), Ok(1800));
        assert_eq!(parse_lifetime(" 24h "), Ok(86_400));
        assert_eq!(parse_lifetime("30d"), Ok(30 * 86_400));
        for bad in [
            "",
            "0",
            "31d",
            "h",
            "1w",
            "-1h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_lifetime(bad), Err(BadLifetime), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let invite = sample();
        let dbg = format!("{invite:?}");
        assert!(!dbg.contains(&URL_SAFE_NO_PAD.encode([7u8; 32])));
        assert!(!dbg.contains("7, 7"));
    }
}
