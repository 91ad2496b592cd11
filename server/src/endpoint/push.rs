//! Pushes: each to every live connection of its devices, on a
//! unidirectional stream of its own. Devices offline now get their pages
//! when they connect (the request layer's catch-up).

use std::future::Future;
use std::task::{Context, Waker};

use hotline_proto::frame;
use tracing::{Instrument, info_span};

use super::registry::Registry;
use crate::requests::PushTo;

/// Sends every push in `pushes`, in order.
///
/// A push nearly always goes out at once (a stream is free and it fits the
/// flow-control window): that first attempt is made here, saving a task's
/// trip through the scheduler on the way to a duty officer; a push that
/// has to wait is finished by a task of its own.
pub(crate) fn send(registry: &Registry, pushes: &[PushTo]) {
    for PushTo { devices, push } in pushes {
        let Ok(bytes) = frame::encode(&push.encode()) else {
            tracing::error!("a push larger than the frame limit");
            continue;
        };
        for device in devices {
            for conn in registry.connections(device) {
                let bytes = bytes.clone();
                let mut send = Box::pin(
                    async move {
                        if let Ok(mut stream) = conn.open_uni().await
                            && stream.write_all(&bytes).await.is_ok()
                        {
                            let _ = stream.finish();
                        }
                    }
                    .instrument(info_span!("push")),
                );
                // Polling with a waker that does nothing is allowed: a
                // pending future registers the task's real waker when
                // polled again.
                let mut cx = Context::from_waker(Waker::noop());
                if send.as_mut().poll(&mut cx).is_pending() {
                    tokio::spawn(send);
                }
            }
        }
    }
}
