//! Target `request`: every request an authenticated device can send (one
//! `Request` message per stream), and what the server reads from inside
//! it without verifying (envelope recipients, roster version, a case
//! event's header).

use hotline_proto::e2e::envelope::{MAX_RECIPIENTS, SignedEnvelope};
use hotline_proto::frame::MAX_FRAME_LEN;
use hotline_proto::message::{Request, RequestKind};

use crate::round_trip;
use crate::setup::within_limit;

pub fn check(data: &[u8]) {
    within_limit(data, MAX_FRAME_LEN);
    let Ok(request) = Request::decode(data) else {
        return;
    };
    round_trip("Request", &request, Request::encode, Request::decode);
    let kind = request.kind();
    assert!(RequestKind::ALL.contains(&kind), "a kind outside the table");
    let _ = (kind.name(), kind.log_name());
    match &request {
        Request::SendEnvelope(env)
        | Request::RequestCase(env)
        | Request::SendInThread { envelope: env, .. }
        | Request::RaiseAlert {
            envelope: Some(env),
            ..
        } => read_as_server(env),
        Request::PutRoster(roster) => {
            let version = roster.version_unverified();
            if let Ok(r) = roster.read_unverified() {
                assert_eq!(version.ok(), Some(r.version), "two readings of one version");
            }
            let _ = roster.chains_to(None);
        }
        Request::AppendCaseEvent(event) => {
            assert!(
                event.body.len() <= hotline_proto::case::MAX_EVENT_BODY_LEN,
                "a case event body over its limit"
            );
            if let Ok(h) = event.header_unverified() {
                assert_eq!(h.author, event.author, "a header of another author");
            }
        }
        _ => {}
    }
}

/// What the server reads from an envelope it cannot open.
pub(crate) fn read_as_server(env: &SignedEnvelope) {
    assert!(
        env.body.len() <= MAX_FRAME_LEN,
        "an envelope body over the frame limit"
    );
    if let Ok(recipients) = env.recipients_unverified() {
        assert!(
            (1..=MAX_RECIPIENTS).contains(&recipients.len()),
            "{} recipients accepted",
            recipients.len()
        );
        assert!(env.roster_version_unverified().is_ok());
    }
    let _ = env.digest();
}
