//! The live, authenticated connections, by device.
//!
//! Used to cut a device off the moment it is revoked, to push to the
//! devices that are online, and to tell the request layer who is
//! connected (`requests::Presence`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hotline_proto::{DeviceId, ErrorCode};

type Connections = HashMap<DeviceId, HashMap<usize, quinn::Connection>>;

/// Live connections of authenticated devices.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Connections>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Connections> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (each operation is a single insert or remove): keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `conn` as belonging to `device` until the returned guard is
    /// dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        device: DeviceId,
        conn: quinn::Connection,
    ) -> Registration {
        let key = conn.stable_id();
        self.lock().entry(device).or_default().insert(key, conn);
        Registration {
            registry: Arc::clone(self),
            device,
            key,
        }
    }

    /// The live connections of `device`.
    pub(crate) fn connections(&self, device: &DeviceId) -> Vec<quinn::Connection> {
        self.lock()
            .get(device)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Closes every connection of `device` with `code`.
    pub(crate) fn disconnect(&self, device: &DeviceId, code: ErrorCode, reason: &str) {
        let conns = self.lock().remove(device).unwrap_or_default();
        for conn in conns.into_values() {
            conn.close(code.to_u32().into(), reason.as_bytes());
        }
    }
}

impl crate::requests::Presence for Registry {
    fn is_connected(&self, device: &DeviceId) -> bool {
        self.lock().get(device).is_some_and(|c| !c.is_empty())
    }
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    device: DeviceId,
    key: usize,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.registry.lock();
        if let Some(conns) = map.get_mut(&self.device) {
            conns.remove(&self.key);
            if conns.is_empty() {
                map.remove(&self.device);
            }
        }
    }
}
