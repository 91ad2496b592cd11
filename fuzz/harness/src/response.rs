//! Target `response`: what a client reads from the server: every response
//! (selector 0) and every push on a server-opened stream (selector 1).

use hotline_proto::alert::Push;
use hotline_proto::frame::MAX_FRAME_LEN;
use hotline_proto::message::Response;

use crate::setup::within_limit;
use crate::{round_trip, select};

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 2) else {
        return;
    };
    within_limit(bytes, MAX_FRAME_LEN);
    match which {
        0 => {
            if let Ok(r) = Response::decode(bytes) {
                round_trip("Response", &r, Response::encode, Response::decode);
                if let Response::Alerts(alerts) = &r {
                    for a in alerts {
                        // What a client shows of each alert.
                        let _ = (a.status.as_str(), a.priority.as_str(), a.origin.as_str());
                    }
                }
            }
        }
        _ => {
            if let Ok(p) = Push::decode(bytes) {
                round_trip("Push", &p, Push::encode, Push::decode);
            }
        }
    }
}
