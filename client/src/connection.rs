//! Connecting to the server: certificate pinning, the set-up exchange and
//! request streams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hotline_proto::alert::{AlertInfo, CheckinKey, CloseReason, Priority, Push, checkin_digest};
use hotline_proto::auth::{
    self, CHANNEL_BINDING_LEN, ChannelBinding, EXPORTER_CONTEXT, EXPORTER_LABEL, Nonce,
};
use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::e2e::prekey::SignedPrekey;
use hotline_proto::e2e::roster::SignedRoster;
use hotline_proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN};
use hotline_proto::message::{
    Challenge, DeliveryState, DeviceInfo, DutyEntry, InboxItem, PrekeyBundle, Request, Response,
    SetupRequest, StatusInfo, Welcome, decode_setup_response,
};
use hotline_proto::{ALPN, CertPin, DeviceId, ErrorCode, IdentityKeyPair, Invite, Role, WireError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::time::timeout;

use crate::error::ClientError;

/// How long to wait for the server to answer the handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for any single answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Keep-alive interval: keeps NAT bindings open on mobile networks.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long closing waits for the close to reach the server.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How long a server this process found unreachable (no answer to the
/// handshake, [`CONNECT_TIMEOUT`]) is taken as still unreachable without
/// trying again: the later steps of one command (an SOS waiting, the
/// outbox, the command itself) each waited a full timeout before. Loops
/// that retry on purpose (`sos --wait`, `watch`) call [`try_again_now`].
pub const UNREACHABLE_KEPT: Duration = Duration::from_secs(3);

/// Whether this process takes a server found unreachable as still so for
/// [`UNREACHABLE_KEPT`] ([`keep_unreachable_briefly`]; off by default: a
/// library user decides its own retries).
static KEEP_UNREACHABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns on, for this process, taking a server found unreachable as still
/// unreachable for [`UNREACHABLE_KEPT`]: what the `hotline` binary does, so
/// that one command waits for one connect timeout, not one per step.
pub fn keep_unreachable_briefly() {
    KEEP_UNREACHABLE.store(true, Ordering::SeqCst);
}

/// The server address this process last found unreachable, why, and when
/// that try ended.
static UNREACHABLE: std::sync::Mutex<Option<(String, String, std::time::Instant)>> =
    std::sync::Mutex::new(None);

/// Forgets that the server was found unreachable: the next connect tries
/// again (a deliberate retry, after a pause).
pub fn try_again_now() {
    if let Ok(mut u) = UNREACHABLE.lock() {
        *u = None;
    }
}

/// The failure to reuse for `addr`, if this process found it unreachable
/// less than [`UNREACHABLE_KEPT`] ago.
fn known_unreachable(addr: &str) -> Option<ClientError> {
    if !KEEP_UNREACHABLE.load(Ordering::SeqCst) {
        return None;
    }
    let u = UNREACHABLE.lock().ok()?;
    let (at_addr, reason, at) = u.as_ref()?;
    (at_addr == addr && at.elapsed() < UNREACHABLE_KEPT).then(|| ClientError::Unreachable {
        addr: addr.to_owned(),
        reason: reason.clone(),
    })
}

/// Remembers that `addr` did not answer (`reason`).
fn remember_unreachable(addr: &str, reason: &str) {
    if let Ok(mut u) = UNREACHABLE.lock() {
        *u = Some((
            addr.to_owned(),
            reason.to_owned(),
            std::time::Instant::now(),
        ));
    }
}

/// Where a server is and which certificate it must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `host:port`.
    pub addr: String,
    /// The TLS server name to present.
    pub name: String,
    /// The certificate pin.
    pub pin: CertPin,
}

impl From<&Invite> for ServerInfo {
    fn from(i: &Invite) -> Self {
        ServerInfo {
            addr: i.server_addr.clone(),
            name: i.server_name.clone(),
            pin: i.cert_pin,
        }
    }
}

/// Accepts exactly one certificate: the pinned one. The TLS handshake
/// signature is still checked, so the server must hold its private key.
#[derive(Debug)]
struct PinVerifier {
    pin: CertPin,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if CertPin::of_certificate(end_entity.as_ref()) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.store(true, Ordering::SeqCst);
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS settings for a pinned server: TLS 1.3 only, ALPN `hotline/1`, no
/// early data, no session resumption (a resumed session would skip the
/// certificate check).
fn client_config(
    pin: CertPin,
    alpn: &[u8],
    mismatch: Arc<AtomicBool>,
) -> Result<quinn::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
        mismatch,
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::State(format!("TLS set-up failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.enable_early_data = false;
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::State(format!("TLS set-up failed: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(IDLE_TIMEOUT.try_into().ok())
        // The server never opens bidirectional streams.
        .max_concurrent_bidi_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

async fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable {
        addr: addr.to_owned(),
        reason,
    };
    let mut addrs = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| unreachable(format!("cannot resolve the address ({e})")))?;
    addrs
        .next()
        .ok_or_else(|| unreachable("the address resolves to nothing".into()))
}

/// Opens a QUIC connection to `server`, checking its certificate against
/// the pin. `alpn` is [`ALPN`] except in tests of the refusal path.
pub async fn connect_with_alpn(
    server: &ServerInfo,
    alpn: &[u8],
) -> Result<quinn::Connection, ClientError> {
    connect_endpoint(server, alpn).await.map(|(_, conn)| conn)
}

/// [`connect_with_alpn`], also returning the endpoint (to move the
/// connection to another socket when the network changes).
async fn connect_endpoint(
    server: &ServerInfo,
    alpn: &[u8],
) -> Result<(quinn::Endpoint, quinn::Connection), ClientError> {
    if let Some(e) = known_unreachable(&server.addr) {
        return Err(e);
    }
    // Counted by tests (RUST_LOG=hotline_client=debug): one failed
    // connect per command.
    tracing::debug!("connecting to the server");
    let result = connect_endpoint_now(server, alpn).await;
    if let Err(ClientError::Unreachable { reason, .. }) = &result {
        remember_unreachable(&server.addr, reason);
    }
    result
}

/// [`connect_endpoint`], trying whatever happened before.
async fn connect_endpoint_now(
    server: &ServerInfo,
    alpn: &[u8],
) -> Result<(quinn::Endpoint, quinn::Connection), ClientError> {
    let remote = resolve(&server.addr).await?;
    let bind: SocketAddr = if remote.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let unreachable = |reason: String| ClientError::Unreachable {
        addr: server.addr.clone(),
        reason,
    };
    let mut endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| unreachable(format!("cannot open a UDP socket ({e})")))?;
    let mismatch = Arc::new(AtomicBool::new(false));
    endpoint.set_default_client_config(client_config(server.pin, alpn, Arc::clone(&mismatch))?);
    let connecting = endpoint
        .connect(remote, &server.name)
        .map_err(|e| unreachable(e.to_string()))?;
    match timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => Ok((endpoint, conn)),
        Ok(Err(_)) if mismatch.load(Ordering::SeqCst) => Err(ClientError::PinMismatch),
        Ok(Err(e)) => Err(connection_error(e, &server.addr)),
        Err(_) => Err(unreachable("no answer (timed out)".into())),
    }
}

/// What a connection failure means to the user.
fn connection_error(e: quinn::ConnectionError, addr: &str) -> ClientError {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let code = u32::try_from(close.error_code.into_inner())
                .map_or(ErrorCode::Unknown(0), ErrorCode::from_u32);
            let reason = String::from_utf8_lossy(&close.reason)
                .chars()
                .take(200)
                .collect::<String>();
            ClientError::Refused(WireError::new(code, reason))
        }
        // TLS alert 120, no_application_protocol: the ALPN was refused.
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::crypto(120) =>
        {
            ClientError::IncompatibleServer
        }
        quinn::ConnectionError::TimedOut => ClientError::Unreachable {
            addr: addr.to_owned(),
            reason: "no answer (timed out)".into(),
        },
        other => ClientError::ConnectionLost(other.to_string()),
    }
}

fn read_error(e: quinn::ReadToEndError) -> ClientError {
    match e {
        quinn::ReadToEndError::TooLong => ClientError::Protocol("answer too large".into()),
        quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(c)) => connection_error(c, ""),
        quinn::ReadToEndError::Read(other) => ClientError::ConnectionLost(other.to_string()),
    }
}

fn write_error(e: quinn::WriteError) -> ClientError {
    match e {
        quinn::WriteError::ConnectionLost(c) => connection_error(c, ""),
        other => ClientError::ConnectionLost(other.to_string()),
    }
}

/// Reads the one frame a stream carries, up to its end.
async fn read_frame(recv: &mut quinn::RecvStream, max: usize) -> Result<Vec<u8>, ClientError> {
    let bytes = timeout(REQUEST_TIMEOUT, recv.read_to_end(HEADER_LEN + max))
        .await
        .map_err(|_| ClientError::ConnectionLost("the server did not answer in time".into()))?
        .map_err(read_error)?;
    let payload =
        frame::decode_exact(&bytes, max).map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(payload.to_vec())
}

/// Sends one frame on a new stream and reads the one frame of the answer.
async fn exchange(
    conn: &quinn::Connection,
    payload: &[u8],
    max_answer: usize,
) -> Result<Vec<u8>, ClientError> {
    let framed = frame::encode(payload).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| connection_error(e, ""))?;
    send.write_all(&framed).await.map_err(write_error)?;
    let _ = send.finish();
    read_frame(&mut recv, max_answer).await
}

/// The server's receipt for an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The server's id for it.
    pub id: u64,
    /// The server had it already (this was a retry).
    pub duplicate: bool,
}

/// An authenticated connection.
#[derive(Debug)]
pub struct Session {
    conn: quinn::Connection,
    welcome: Welcome,
    endpoint: Option<quinn::Endpoint>,
}

impl Session {
    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.welcome.device_id
    }

    /// This device's role.
    pub fn role(&self) -> Role {
        self.welcome.role
    }

    /// The server's clock at set-up, seconds since the Unix epoch.
    pub fn server_time(&self) -> u64 {
        self.welcome.server_time
    }

    /// Whether this session was opened with the panic key (it may only
    /// raise alerts and check in).
    pub fn is_panic(&self) -> bool {
        self.welcome.panic
    }

    /// When the newest roster the server holds expires (`None`: none, or
    /// an older server), as the server reads it.
    pub fn roster_expires_at(&self) -> Option<u64> {
        self.welcome.roster_expires_at
    }

    /// Whether this device is on the newest roster, as the server reads it.
    pub fn roster_standing(&self) -> hotline_proto::message::RosterStanding {
        self.welcome.roster_standing
    }

    /// The underlying QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Sends a request and returns the server's answer as it came, errors
    /// included.
    pub async fn request(&self, req: &Request) -> Result<Response, ClientError> {
        let bytes = exchange(&self.conn, &req.encode(), MAX_FRAME_LEN).await?;
        Response::decode(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends `req` and returns what `expected` takes from the answer. A
    /// refusal is [`ClientError::Refused`]; an answer `expected` does not
    /// take (`None`) is a protocol error.
    async fn ask<T>(
        &self,
        req: &Request,
        expected: impl FnOnce(Response) -> Option<T>,
    ) -> Result<T, ClientError> {
        match self.request(req).await? {
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => expected(other)
                .ok_or_else(|| ClientError::Protocol("an answer of the wrong kind".into())),
        }
    }

    /// Sends `req`, a change whose answer is [`Response::Done`].
    async fn change(&self, req: &Request) -> Result<(), ClientError> {
        self.ask(req, |r| matches!(r, Response::Done).then_some(()))
            .await
    }

    /// What the server knows about this device.
    pub async fn status(&self) -> Result<StatusInfo, ClientError> {
        self.ask(&Request::Status, |r| match r {
            Response::Status(s) => Some(s),
            _ => None,
        })
        .await
    }

    /// Makes a one-time invite for a new device.
    pub async fn create_invite(&self, role: Role, ttl_seconds: u64) -> Result<Invite, ClientError> {
        self.ask(&Request::CreateInvite { role, ttl_seconds }, |r| match r {
            Response::InviteCreated { invite } => Some(invite),
            _ => None,
        })
        .await
    }

    /// Every enrolled device (admins only).
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, ClientError> {
        self.ask(&Request::ListDevices, |r| match r {
            Response::DeviceList(d) => Some(d),
            _ => None,
        })
        .await
    }

    /// Revokes a device (admins only); returns when it was revoked.
    pub async fn revoke(&self, device_id: DeviceId) -> Result<u64, ClientError> {
        self.ask(&Request::RevokeDevice { device_id }, |r| match r {
            Response::DeviceRevoked { revoked_at, .. } => Some(revoked_at),
            _ => None,
        })
        .await
    }

    /// The newest roster the server stores, if any (not yet verified).
    pub async fn get_roster(&self) -> Result<Option<SignedRoster>, ClientError> {
        self.get_roster_version(0).await
    }

    /// The roster of `version` the server accepted (0: the newest), if it
    /// has it (not yet verified). A version it never accepted is an error
    /// (`NOT_FOUND`).
    pub async fn get_roster_version(
        &self,
        version: u64,
    ) -> Result<Option<SignedRoster>, ClientError> {
        self.ask(&Request::GetRoster { version }, |r| match r {
            Response::Roster(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Stores a roster signed by the organisation root (admins only).
    pub async fn put_roster(&self, roster: SignedRoster) -> Result<(), ClientError> {
        self.change(&Request::PutRoster(roster)).await
    }

    /// Publishes this device's prekeys (none: only asks). Returns how many
    /// unexpired one-time prekeys of this device the server holds now
    /// (`None` from a server that does not say).
    pub async fn publish_prekeys(
        &self,
        prekeys: Vec<SignedPrekey>,
    ) -> Result<Option<u32>, ClientError> {
        self.ask(&Request::PublishPrekeys(prekeys), |r| match r {
            Response::PrekeysPublished { one_time } => Some(Some(one_time)),
            Response::Done => Some(None),
            _ => None,
        })
        .await
    }

    /// One prekey bundle for each listed device the server knows.
    pub async fn fetch_prekeys(
        &self,
        devices: Vec<DeviceId>,
    ) -> Result<Vec<PrekeyBundle>, ClientError> {
        self.ask(&Request::FetchPrekeys(devices), |r| match r {
            Response::PrekeyBundles(b) => Some(b),
            _ => None,
        })
        .await
    }

    /// The last-resort prekey of each of `devices` (read, never taken).
    /// A server older than this request hands out one-time prekeys
    /// instead: the caller keeps only what is verified as last-resort.
    pub async fn fetch_last_resort_prekeys(
        &self,
        devices: Vec<DeviceId>,
    ) -> Result<Vec<PrekeyBundle>, ClientError> {
        self.ask(&Request::FetchLastResortPrekeys(devices), |r| match r {
            Response::PrekeyBundles(b) => Some(b),
            _ => None,
        })
        .await
    }

    /// Hands an envelope to the server for its recipients.
    pub async fn send_envelope(&self, envelope: SignedEnvelope) -> Result<Accepted, ClientError> {
        self.ask(&Request::SendEnvelope(envelope), |r| match r {
            Response::EnvelopeAccepted { id, duplicate } => Some(Accepted { id, duplicate }),
            _ => None,
        })
        .await
    }

    /// Hands a defender's case request (an envelope of kind CASE_REQUEST
    /// to the staff) to the server, which opens a case in state requested;
    /// returns the case and the envelope's id (the same for a resend,
    /// marked as a duplicate).
    pub async fn request_case(
        &self,
        envelope: SignedEnvelope,
    ) -> Result<(hotline_proto::case::CaseId, Accepted), ClientError> {
        self.ask(&Request::RequestCase(envelope), |r| match r {
            Response::CaseRequestAccepted {
                case_id,
                envelope_id,
                duplicate,
            } => Some((
                case_id,
                Accepted {
                    id: envelope_id,
                    duplicate,
                },
            )),
            _ => None,
        })
        .await
    }

    /// Registers a panic key for this defender device (one enrolled
    /// before panic keys existed).
    pub async fn register_panic_key(
        &self,
        key: hotline_proto::IdentityPublicKey,
    ) -> Result<(), ClientError> {
        self.change(&Request::RegisterPanicKey(key)).await
    }

    /// Raises an alert (defenders) with the envelope that says what
    /// happened; returns the alert.
    pub async fn raise_alert(
        &self,
        priority: Priority,
        envelope: SignedEnvelope,
    ) -> Result<AlertInfo, ClientError> {
        self.raise_alert_with(priority, Some(envelope)).await
    }

    /// Raises an alert (defenders), with its envelope or, when the device
    /// has no verified roster to seal to, without content.
    pub async fn raise_alert_with(
        &self,
        priority: Priority,
        envelope: Option<SignedEnvelope>,
    ) -> Result<AlertInfo, ClientError> {
        self.raise_alert_joining(priority, envelope, 0).await
    }

    /// [`Session::raise_alert_with`], joining the open SOS alert
    /// `join_alert` of this device (0: none) rather than raising one of
    /// its own: SOSes queued together go out as one alert
    /// (docs/protocol.md, section 4.4.1).
    pub async fn raise_alert_joining(
        &self,
        priority: Priority,
        envelope: Option<SignedEnvelope>,
        join_alert: u64,
    ) -> Result<AlertInfo, ClientError> {
        let request = Request::RaiseAlert {
            priority,
            envelope,
            join_alert,
        };
        self.ask(&request, |r| match r {
            Response::Alerts(mut a) if a.len() == 1 => Some(a.remove(0)),
            _ => None,
        })
        .await
    }

    /// Up to `limit` envelopes waiting for this device, after id `after`.
    pub async fn fetch_inbox(&self, after: u64, limit: u32) -> Result<Vec<InboxItem>, ClientError> {
        self.ask(&Request::FetchInbox { after, limit }, |r| match r {
            Response::Inbox(items) => Some(items),
            _ => None,
        })
        .await
    }

    /// Tells the server everything up to id `up_to` is stored on the device.
    pub async fn ack_inbox(&self, up_to: u64) -> Result<(), ClientError> {
        self.change(&Request::AckInbox { up_to }).await
    }

    /// Alerts this device may see (staff: all; defenders: their own).
    pub async fn alerts(&self, open_only: bool) -> Result<Vec<AlertInfo>, ClientError> {
        self.ask(&Request::ListAlerts { open_only }, |r| match r {
            Response::Alerts(a) => Some(a),
            _ => None,
        })
        .await
    }

    /// Claims an alert. `Ok(Ok(()))` if this device now holds it,
    /// `Ok(Err(holder))` if another device already does.
    pub async fn claim_alert(&self, alert_id: u64) -> Result<Result<(), DeviceId>, ClientError> {
        self.ask(&Request::ClaimAlert { alert_id }, |r| match r {
            Response::Claim { granted: true, .. } => Some(Ok(())),
            Response::Claim {
                granted: false,
                holder,
            } => Some(Err(holder)),
            _ => None,
        })
        .await
    }

    /// Resolves, cancels or calls a false alarm on an alert.
    pub async fn close_alert(&self, alert_id: u64, reason: CloseReason) -> Result<(), ClientError> {
        self.change(&Request::CloseAlert { alert_id, reason }).await
    }

    /// Sets (interval 0: stops) this defender's check-in schedule, with its
    /// normal and duress codes, sent as tags under the device's check-in
    /// `key` (which never leaves the device).
    pub async fn set_checkin(
        &self,
        interval_secs: u64,
        grace_secs: u64,
        key: &CheckinKey,
        code: &str,
        duress: &str,
    ) -> Result<(), ClientError> {
        let me = self.device_id();
        self.change(&Request::SetCheckin {
            interval_secs,
            grace_secs,
            code_digest: key.tag(&me, code),
            duress_digest: key.tag(&me, duress),
        })
        .await
    }

    /// Checks in with the code typed, as a tag under the device's check-in
    /// `key`; without one (a schedule set by an earlier client), as the
    /// unkeyed digest that schedule holds. A duress code is answered
    /// exactly like the normal one.
    pub async fn checkin(&self, key: Option<&CheckinKey>, code: &str) -> Result<(), ClientError> {
        let me = self.device_id();
        let code_digest = match key {
            Some(k) => k.tag(&me, code),
            None => checkin_digest(&me, code),
        };
        self.change(&Request::Checkin { code_digest }).await
    }

    /// Hands an envelope to the server as a reply in alert `alert_id`'s
    /// thread (the server refuses it if the alert must stay hidden from
    /// a recipient).
    pub async fn send_in_thread(
        &self,
        envelope: SignedEnvelope,
        alert_id: u64,
    ) -> Result<Accepted, ClientError> {
        self.ask(&Request::SendInThread { envelope, alert_id }, |r| match r {
            Response::EnvelopeAccepted { id, duplicate } => Some(Accepted { id, duplicate }),
            _ => None,
        })
        .await
    }

    /// Tells senders these messages were shown to the person.
    pub async fn mark_read(&self, ids: Vec<u64>) -> Result<(), ClientError> {
        self.change(&Request::MarkRead(ids)).await
    }

    /// How far messages this device sent got: recipients, delivered, read.
    pub async fn delivery(&self, ids: Vec<u64>) -> Result<Vec<DeliveryState>, ClientError> {
        self.ask(&Request::Delivery(ids), |r| match r {
            Response::Delivery(d) => Some(d),
            _ => None,
        })
        .await
    }

    /// Goes on or off duty.
    pub async fn set_duty(&self, on_duty: bool) -> Result<(), ClientError> {
        self.change(&Request::SetDuty { on_duty }).await
    }

    /// Who is on duty now, and this device's own duty state (staff).
    pub async fn duty_status(&self) -> Result<Vec<DutyEntry>, ClientError> {
        self.ask(&Request::DutyStatus, |r| match r {
            Response::Duty(d) => Some(d),
            _ => None,
        })
        .await
    }

    /// Waits (up to `wait`) for the next push from the server, and confirms
    /// receipt of a page. `None` if nothing came.
    pub async fn next_push(&self, wait: Duration) -> Result<Option<Push>, ClientError> {
        self.next_push_shown(wait, |_| {}).await
    }

    /// As [`Session::next_push`], calling `show` with the push before a
    /// page is confirmed: a page the device confirms has been put in front
    /// of its person (if this stops in between, the server pages again).
    pub async fn next_push_shown(
        &self,
        wait: Duration,
        show: impl FnOnce(&Push),
    ) -> Result<Option<Push>, ClientError> {
        let mut stream = match timeout(wait, self.conn.accept_uni()).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(connection_error(e, "")),
            Ok(Ok(s)) => s,
        };
        let bytes = read_frame(&mut stream, MAX_FRAME_LEN).await?;
        let push = Push::decode(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
        show(&push);
        if let Push::Alert(a) = &push {
            self.change(&Request::AlertDelivered { alert_id: a.id })
                .await?;
        }
        Ok(Some(push))
    }

    /// Moves the connection to a new local UDP socket, as when a phone
    /// switches from Wi-Fi to mobile data: QUIC migrates the connection and
    /// the session carries on without a new handshake.
    pub fn rebind(&self) -> Result<(), ClientError> {
        let endpoint = self
            .endpoint
            .as_ref()
            .ok_or_else(|| ClientError::State("this session cannot change sockets".into()))?;
        let local = endpoint
            .local_addr()
            .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
        let bind: SocketAddr = if local.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(bind)
            .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
        endpoint
            .rebind(socket)
            .map_err(|e| ClientError::ConnectionLost(e.to_string()))
    }

    /// The local address the session currently sends from.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref().and_then(|e| e.local_addr().ok())
    }

    /// Closes the connection politely, and waits (briefly) until the
    /// server has been told: a device that has gone must not count as
    /// connected (the server tells a defender how many staff devices it
    /// reached at once).
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        if let Some(endpoint) = &self.endpoint {
            let _ = timeout(CLOSE_WAIT, endpoint.wait_idle()).await;
        }
    }
}

/// Receives the server's challenge and the channel binding for `conn`.
pub async fn challenge(conn: &quinn::Connection) -> Result<(Nonce, ChannelBinding), ClientError> {
    let mut uni = timeout(REQUEST_TIMEOUT, conn.accept_uni())
        .await
        .map_err(|_| ClientError::ConnectionLost("the server did not send its challenge".into()))?
        .map_err(|e| connection_error(e, ""))?;
    let bytes = read_frame(&mut uni, MAX_SETUP_FRAME_LEN).await?;
    let challenge = Challenge::decode(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut binding = [0u8; CHANNEL_BINDING_LEN];
    conn.export_keying_material(&mut binding, EXPORTER_LABEL, EXPORTER_CONTEXT)
        .map_err(|_| ClientError::Protocol("TLS keying material export failed".into()))?;
    Ok((challenge.nonce, ChannelBinding(binding)))
}

/// Sends a set-up request and reads the answer.
pub async fn setup(
    conn: quinn::Connection,
    request: &SetupRequest,
) -> Result<Session, ClientError> {
    let answer = exchange(&conn, &request.encode(), MAX_SETUP_FRAME_LEN).await;
    let answer = match answer {
        Ok(bytes) => {
            decode_setup_response(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?
        }
        // The server may have closed the connection with its reason.
        Err(e) => return Err(closed_reason(&conn).unwrap_or(e)),
    };
    match answer {
        Ok(welcome) => Ok(Session {
            conn,
            welcome,
            endpoint: None,
        }),
        Err(e) => {
            conn.close(0u32.into(), b"");
            Err(ClientError::Refused(e))
        }
    }
}

fn closed_reason(conn: &quinn::Connection) -> Option<ClientError> {
    conn.close_reason().map(|e| connection_error(e, ""))
}

/// Connects and authenticates as an enrolled device.
pub async fn authenticate(
    server: &ServerInfo,
    identity: &IdentityKeyPair,
) -> Result<Session, ClientError> {
    let (endpoint, conn) = connect_endpoint(server, ALPN).await?;
    let (nonce, binding) = challenge(&conn).await?;
    let device_id = identity.device_id();
    let signature = identity.sign(&auth::device_auth_transcript(&nonce, &binding, &device_id));
    let mut session = setup(
        conn,
        &SetupRequest::Auth {
            device_id,
            signature,
        },
    )
    .await?;
    session.endpoint = Some(endpoint);
    Ok(session)
}

/// Connects and authenticates as an enrolled defender device with its
/// panic key: a session that may only raise alerts and check in (and
/// fetch what sealing an SOS needs).
pub async fn authenticate_panic(
    server: &ServerInfo,
    device_id: DeviceId,
    panic_key: &IdentityKeyPair,
) -> Result<Session, ClientError> {
    let (endpoint, conn) = connect_endpoint(server, ALPN).await?;
    let (nonce, binding) = challenge(&conn).await?;
    let signature = panic_key.sign(&auth::panic_auth_transcript(&nonce, &binding, &device_id));
    let mut session = setup(
        conn,
        &SetupRequest::PanicAuth {
            device_id,
            signature,
        },
    )
    .await?;
    session.endpoint = Some(endpoint);
    Ok(session)
}

/// Connects and enrolls a new device with an invite.
pub async fn enroll(invite: &Invite, identity: &IdentityKeyPair) -> Result<Session, ClientError> {
    enroll_with_panic_key(invite, identity, None).await
}

/// Connects and enrolls a new device with an invite, registering a
/// defender device's panic key with it.
pub async fn enroll_with_panic_key(
    invite: &Invite,
    identity: &IdentityKeyPair,
    panic_key: Option<&IdentityKeyPair>,
) -> Result<Session, ClientError> {
    let (endpoint, conn) = connect_endpoint(&ServerInfo::from(invite), ALPN).await?;
    let (nonce, binding) = challenge(&conn).await?;
    let identity_key = identity.public_key();
    let panic_key = panic_key.map(IdentityKeyPair::public_key);
    let signature = identity.sign(&auth::enroll_transcript_with_panic_key(
        &nonce,
        &binding,
        &identity_key,
        &invite.token,
        panic_key.as_ref(),
    ));
    let mut session = setup(
        conn,
        &SetupRequest::Enroll {
            token: invite.token.clone(),
            identity_key,
            signature,
            panic_key,
        },
    )
    .await?;
    session.endpoint = Some(endpoint);
    Ok(session)
}
