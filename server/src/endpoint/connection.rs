//! One client connection: challenge, set-up (enroll or authenticate), then
//! request streams.
//!
//! Until set-up succeeds the connection reaches nothing but the set-up
//! step; a failure there closes the connection with the error code.
//! After set-up each request is a bidirectional stream carrying one frame
//! each way. A bad request stream gets an error frame and a closed stream;
//! the connection and other streams carry on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotline_proto::auth::{
    CHANNEL_BINDING_LEN, ChannelBinding, EXPORTER_CONTEXT, EXPORTER_LABEL, Nonce,
};
use hotline_proto::frame::{self, FrameError, MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN};
use hotline_proto::message::{Challenge, Response, SetupRequest, encode_setup_response};
use hotline_proto::{ALPN, ErrorCode, WireError};
use quinn::{Connection, RecvStream, SendStream};
use tokio::time::timeout;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Node;
use super::budget::{Enrolled, PreAuth};
use super::push;
use super::rate::RateLimiter;
use crate::requests::{self, Reply, Session};

/// The number the next accepted connection carries in logs.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The close reason of a connection superseded by a newer one of its
/// device (`SUPERSEDED`).
const SUPERSEDED_REASON: &str =
    "this device opened a newer connection; this, its oldest, is closed";

/// How long to let a refused peer read its error before closing.
const LINGER: Duration = Duration::from_secs(2);

/// Serves one connection to its end. `preauth` is its unauthenticated
/// place: given up when set-up succeeds (for a place in the device's
/// budget) or when the connection ends.
pub(crate) async fn serve(
    incoming: quinn::Incoming,
    node: Arc<Node>,
    preauth: PreAuth<Connection>,
) {
    // The set-up time counts from the first packet: a handshake that never
    // finishes holds its place no longer than one that never authenticates.
    let deadline = tokio::time::Instant::now() + node.shared.limits.auth_timeout();
    let conn = match tokio::time::timeout_at(deadline, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            debug!(reason = %e, "handshake failed");
            return;
        }
        Err(_) => {
            debug!("handshake timed out");
            return;
        }
    };
    // Numbered in the order they were accepted: quinn's stable id is an
    // address in the server's memory, and a freed one is used again.
    let span = info_span!("conn", id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed));
    serve_connection(conn, node, preauth, deadline)
        .instrument(span)
        .await;
}

async fn serve_connection(
    conn: Connection,
    node: Arc<Node>,
    preauth: PreAuth<Connection>,
    deadline: tokio::time::Instant,
) {
    let shared = &node.shared;
    if negotiated_alpn(&conn).as_deref() != Some(ALPN) {
        // rustls already refuses a different ALPN; this catches a client
        // that offered none at all.
        debug!("refused: no ALPN");
        close(
            &conn,
            ErrorCode::UnsupportedVersion,
            "ALPN hotline/1 required",
        );
        return;
    }
    debug!("connected");
    let (session, _enrolled) =
        match tokio::time::timeout_at(deadline, setup(&conn, shared, preauth)).await {
            Ok(Ok(set_up)) => set_up,
            Ok(Err(SetupFailed::Refused(e))) => {
                debug!(code = %e.code, "set-up refused");
                close(&conn, e.code, &e.detail);
                return;
            }
            Ok(Err(SetupFailed::Gone)) => {
                debug!("peer left during set-up");
                return;
            }
            Err(_) => {
                debug!("set-up timed out");
                close(
                    &conn,
                    ErrorCode::AuthTimeout,
                    "authenticate within the time limit",
                );
                return;
            }
        };
    info!(role = %session.role, "device authenticated");
    let _registration = node.registry.register(session.device_id, conn.clone());
    // A revocation that landed between the check in set-up and the
    // registration above would otherwise miss this connection.
    if let Ok(Some(d)) = shared.store_read(|s| s.device(&session.device_id))
        && d.revoked_at.is_some()
    {
        close(
            &conn,
            ErrorCode::DeviceRevoked,
            "this device has been revoked",
        );
        return;
    }
    // Pages this device missed while it was away.
    let missed = requests::alerts::catch_up(shared, session.device_id).await;
    push::send(&node.registry, &missed);
    let mut limiter = RateLimiter::new(
        shared.limits.request_burst,
        shared.limits.requests_per_second,
    );
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                debug!(reason = %e, "connection ended");
                return;
            }
        };
        let allowed = limiter.try_take(Instant::now());
        let node = Arc::clone(&node);
        let conn = conn.clone();
        let span = info_span!("stream", id = %send.id());
        tokio::spawn(
            async move { serve_request(conn, node, session, send, recv, allowed).await }
                .instrument(span),
        );
    }
}

fn negotiated_alpn(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

fn close(conn: &Connection, code: ErrorCode, reason: &str) {
    conn.close(code.to_u32().into(), reason.as_bytes());
}

enum SetupFailed {
    /// Refused with this error, already sent to the peer where possible.
    Refused(WireError),
    /// The peer went away.
    Gone,
}

impl From<quinn::WriteError> for SetupFailed {
    fn from(_: quinn::WriteError) -> Self {
        SetupFailed::Gone
    }
}

/// A connection that completed set-up: its session and its place in its
/// device's budget.
type SetUp = (Session, Enrolled<Connection>);

async fn setup(
    conn: &Connection,
    shared: &requests::Shared,
    preauth: PreAuth<Connection>,
) -> Result<SetUp, SetupFailed> {
    let nonce = Nonce::random().map_err(|_| internal("randomness unavailable"))?;
    let mut binding = [0u8; CHANNEL_BINDING_LEN];
    conn.export_keying_material(&mut binding, EXPORTER_LABEL, EXPORTER_CONTEXT)
        .map_err(|_| internal("keying material export failed"))?;
    let binding = ChannelBinding(binding);

    let challenge =
        frame::encode(&Challenge { nonce }.encode()).map_err(|_| internal("challenge encoding"))?;
    let mut uni = conn.open_uni().await.map_err(|_| SetupFailed::Gone)?;
    uni.write_all(&challenge).await?;
    let _ = uni.finish();

    let (mut send, mut recv) = conn.accept_bi().await.map_err(|_| SetupFailed::Gone)?;
    let mut enrolling = false;
    let result = match read_frame(&mut recv, MAX_SETUP_FRAME_LEN).await {
        Ok(payload) => match SetupRequest::decode(&payload) {
            Ok(req) => {
                enrolling = matches!(req, SetupRequest::Enroll { .. });
                requests::devices::setup(shared, req, &nonce, &binding)
                    .await
                    .map_err(WireError::from)
            }
            Err(e) => Err(WireError::from(e)),
        },
        Err(ReadFailed::Frame(e)) => {
            let _ = recv.stop(frame_error_code(e).to_u32().into());
            Err(frame_error(e))
        }
        Err(ReadFailed::Stream) => return Err(SetupFailed::Gone),
    };
    // From the unauthenticated budget to the device's, before the answer:
    // a device refused a place hears why on the set-up stream. An
    // enrollment has used its invite: it always gets its place.
    let mut places = None;
    let result = result.and_then(|w| {
        match preauth.authenticate(w.device_id, w.role.is_staff(), conn.clone(), enrolling) {
            Ok((enrolled, superseded)) => {
                // Closed at once: they no longer count in the budget.
                for old in superseded {
                    debug!("oldest connection of the device superseded");
                    close(&old, ErrorCode::Superseded, SUPERSEDED_REASON);
                }
                places = Some(enrolled);
                Ok(w)
            }
            Err(why) => {
                warn!(role = %w.role, reason = %why, "authenticated connection refused");
                Err(WireError::new(
                    ErrorCode::Unavailable,
                    "the server holds as many connections as it may; try again shortly",
                ))
            }
        }
    });
    send.write_all(&frame_bytes(&encode_setup_response(&result)))
        .await?;
    let _ = send.finish();
    match (result, places) {
        (Ok(w), Some(enrolled)) => Ok((
            Session {
                device_id: w.device_id,
                role: w.role,
                panic: w.panic,
            },
            enrolled,
        )),
        (Ok(_), None) => Err(internal("set-up without a place")),
        (Err(e), _) => {
            // Give the error frame time to arrive before the close, which
            // would discard it.
            let _ = timeout(LINGER, send.stopped()).await;
            Err(SetupFailed::Refused(e))
        }
    }
}

fn internal(what: &'static str) -> SetupFailed {
    warn!(what, "set-up failed on the server side");
    SetupFailed::Refused(WireError::new(ErrorCode::Internal, "server error"))
}

async fn serve_request(
    conn: Connection,
    node: Arc<Node>,
    session: Session,
    mut send: SendStream,
    mut recv: RecvStream,
    allowed: bool,
) {
    let reply: Reply = if !allowed {
        let _ = recv.stop(ErrorCode::RateLimited.to_u32().into());
        Response::Error(WireError::new(
            ErrorCode::RateLimited,
            "too many requests; slow down",
        ))
        .into()
    } else {
        match timeout(
            node.shared.limits.request_timeout(),
            read_frame(&mut recv, MAX_FRAME_LEN),
        )
        .await
        {
            Err(_) => {
                debug!("request timed out");
                let _ = recv.stop(ErrorCode::Malformed.to_u32().into());
                Response::Error(WireError::new(
                    ErrorCode::Malformed,
                    "the request did not arrive in time",
                ))
                .into()
            }
            Ok(Err(ReadFailed::Stream)) => return,
            Ok(Err(ReadFailed::Frame(e))) => {
                debug!(error = %e, "bad frame");
                let _ = recv.stop(frame_error_code(e).to_u32().into());
                Response::Error(frame_error(e)).into()
            }
            Ok(Ok(payload)) => requests::handle_payload(&node.shared, session, &payload).await,
        }
    };
    let Reply {
        response,
        pushes,
        close: close_with,
        disconnect,
        more,
    } = reply;
    // Pages first: an SOS reaches the officers before its defender hears
    // back.
    push::send(&node.registry, &pushes);
    for device in &disconnect {
        node.registry.disconnect(
            device,
            ErrorCode::DeviceRevoked,
            "this device has been revoked",
        );
    }
    if let Response::Error(e) = &response {
        debug!(code = %e.code, "request refused");
    }
    // One frame, or (a case sync) several on the same stream, each built
    // once the one before is written, then the finish. Each frame's write
    // has the request timeout (docs/protocol.md, section 9.3): a reader
    // that does not take a frame in time gets its stream reset, and the
    // frame it held is dropped; a slow link that keeps reading gets the
    // whole answer, however long it takes.
    let limit = node.shared.limits.request_timeout();
    let writes = async {
        let first = frame_bytes(&response.encode());
        drop(response);
        timeout(limit, send.write_all(&first)).await??;
        drop(first);
        let mut rest = more;
        while let Some(r) = rest {
            let frame = requests::cases::next_sync_frame(&node.shared, r).await;
            let bytes = frame_bytes(&frame.response.encode());
            drop(frame.response);
            timeout(limit, send.write_all(&bytes)).await??;
            rest = frame.rest;
        }
        Ok::<(), WriteFailed>(())
    };
    match writes.await {
        Ok(()) => {
            let _ = send.finish();
        }
        Err(WriteFailed::Stream) => {}
        Err(WriteFailed::TimedOut) => {
            debug!("answer not read in time");
            let _ = send.reset(ErrorCode::Unavailable.to_u32().into());
        }
    }
    if let Some(e) = close_with {
        // Give the answer time to arrive before the close, which would
        // discard it.
        let _ = timeout(LINGER, send.stopped()).await;
        close(&conn, e.code, &e.detail);
    }
}

/// Frames a payload this server built. Responses are bounded far below the
/// frame limit; should one ever exceed it, the peer gets an error instead.
fn frame_bytes(payload: &[u8]) -> Vec<u8> {
    frame::encode(payload).unwrap_or_else(|_| {
        tracing::error!("response larger than the frame limit");
        let fallback =
            Response::Error(WireError::new(ErrorCode::Internal, "response too large")).encode();
        frame::encode(&fallback).unwrap_or_default()
    })
}

fn frame_error_code(e: FrameError) -> ErrorCode {
    match e {
        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        FrameError::Truncated | FrameError::TrailingBytes => ErrorCode::Malformed,
    }
}

fn frame_error(e: FrameError) -> WireError {
    WireError::new(frame_error_code(e), e.to_string())
}

/// Why an answer's frames were not all written.
enum WriteFailed {
    /// A frame was not taken within the request timeout.
    TimedOut,
    /// The stream or connection failed underneath.
    Stream,
}

impl From<tokio::time::error::Elapsed> for WriteFailed {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        WriteFailed::TimedOut
    }
}

impl From<quinn::WriteError> for WriteFailed {
    fn from(_: quinn::WriteError) -> Self {
        WriteFailed::Stream
    }
}

enum ReadFailed {
    /// The bytes broke the framing rules.
    Frame(FrameError),
    /// The stream or connection failed underneath.
    Stream,
}

/// Reads the single frame a stream carries, then its end. The length is
/// checked against `max` before the payload buffer is allocated.
async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, ReadFailed> {
    use quinn::ReadExactError;
    let mut header = [0u8; frame::HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => {
            return Err(ReadFailed::Frame(FrameError::Truncated));
        }
        Err(ReadExactError::ReadError(_)) => return Err(ReadFailed::Stream),
    }
    let len = frame::payload_len(header, max).map_err(ReadFailed::Frame)?;
    let mut payload = vec![0u8; len];
    match recv.read_exact(&mut payload).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => {
            return Err(ReadFailed::Frame(FrameError::Truncated));
        }
        Err(ReadExactError::ReadError(_)) => return Err(ReadFailed::Stream),
    }
    match recv.read(&mut [0u8; 1]).await {
        Ok(None) => Ok(payload),
        Ok(Some(_)) => Err(ReadFailed::Frame(FrameError::TrailingBytes)),
        Err(_) => Err(ReadFailed::Stream),
    }
}
