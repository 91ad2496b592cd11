//! Connection budgets: who may hold a connection, and how many.
//!
//! Two separate budgets, so that neither a flood from one address nor one
//! device can keep the duty team or a defender out:
//!
//! * **Unauthenticated** connections (from the first packet until set-up
//!   succeeds), per source address and in total. The address is known
//!   when the first packet arrives ([`Budget::admit`]); an IPv6 address
//!   counts by its /64 prefix (one host is usually given a whole /64 and
//!   could rotate through it), an IPv4 address (or an IPv4-mapped IPv6
//!   one) by itself. An address that has no unauthenticated connection is
//!   not remembered at all: its count is dropped as soon as it reaches
//!   zero, and nothing of it is ever written anywhere.
//! * **Authenticated** connections, per device and in total, with a share
//!   of the total reserved for staff devices. Set-up moves a connection
//!   from the first budget to this one ([`PreAuth::authenticate`]): the
//!   unauthenticated place is released at that moment, whatever the
//!   outcome. A device that opens one connection more than its limit has
//!   its oldest closed (the caller closes the connections handed back).
//!
//! The bookkeeping is generic over the connection handle, so it is tested
//! without sockets; the endpoint uses `quinn::Connection`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hotline_proto::DeviceId;

use crate::config::Limits;

/// Where unauthenticated connections are counted: an IPv4 address, or the
/// /64 prefix of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddressBucket {
    /// An IPv4 address (also when it arrives IPv4-mapped in IPv6).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl AddressBucket {
    /// The bucket `ip` counts in.
    pub(crate) fn of(ip: IpAddr) -> AddressBucket {
        match ip {
            IpAddr::V4(v4) => AddressBucket::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressBucket::V4(u32::from(v4)),
                // The high 64 bits of a 128-bit number always fit.
                None => AddressBucket::V6(u64::try_from(u128::from(v6) >> 64).unwrap_or(u64::MAX)),
            },
        }
    }
}

/// Why a connection was not let in. Carries no address or id: it is
/// logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// One address (or IPv6 /64) holds as many unauthenticated
    /// connections as it may.
    #[error("unauthenticated connections from one address at their limit")]
    PerAddress,
    /// The server holds as many unauthenticated connections as it may.
    #[error("unauthenticated connections at their limit")]
    Unauthenticated,
    /// The server holds as many authenticated connections as this role
    /// may use (defenders: the total less the staff reserve).
    #[error("authenticated connections at their limit")]
    Authenticated,
}

/// What to do with a new connection's first packet.
#[derive(Debug)]
pub(crate) enum Admission<C> {
    /// Let it in; it holds an unauthenticated place until set-up succeeds
    /// or it ends.
    Admitted(PreAuth<C>),
    /// Ask the peer to prove it receives at its address first (a QUIC
    /// retry), so that forged source addresses cannot fill another
    /// address's budget.
    ValidateFirst,
    /// Refuse it.
    Refused(Refusal),
}

/// The limits the budget enforces (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BudgetLimits {
    pub(crate) max_unauthenticated: usize,
    pub(crate) max_unauthenticated_per_address: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_device: usize,
    pub(crate) staff_reserved_connections: usize,
}

impl From<&Limits> for BudgetLimits {
    fn from(l: &Limits) -> Self {
        BudgetLimits {
            max_unauthenticated: l.max_unauthenticated,
            max_unauthenticated_per_address: l.max_unauthenticated_per_address,
            max_connections: l.max_connections,
            max_connections_per_device: l.max_connections_per_device,
            staff_reserved_connections: l.staff_reserved_connections,
        }
    }
}

#[derive(Debug)]
struct Held<C> {
    key: u64,
    staff: bool,
    conn: C,
}

#[derive(Debug)]
struct State<C> {
    unauthenticated: usize,
    by_address: HashMap<AddressBucket, usize>,
    staff: usize,
    defenders: usize,
    /// Each device's connections, oldest first.
    devices: HashMap<DeviceId, VecDeque<Held<C>>>,
    next_key: u64,
}

/// The connection budgets of one endpoint.
#[derive(Debug)]
pub(crate) struct Budget<C> {
    limits: BudgetLimits,
    state: Mutex<State<C>>,
}

impl<C> Budget<C> {
    pub(crate) fn new(limits: BudgetLimits) -> Self {
        Budget {
            limits,
            state: Mutex::new(State {
                unauthenticated: 0,
                by_address: HashMap::new(),
                staff: 0,
                defenders: 0,
                devices: HashMap::new(),
                next_key: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // Every operation leaves the counts consistent before it can
        // panic: keep serving after a poisoned lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on a new connection from `ip`. `validated` says whether the
    /// peer has already shown it receives at that address (a QUIC retry
    /// token). An unvalidated peer is asked to validate when its address
    /// already has an unauthenticated connection or when half the total
    /// is in use: a forged source address then holds at most one place.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, validated: bool) -> Admission<C> {
        let bucket = AddressBucket::of(ip);
        let mut s = self.lock();
        let at_address = s.by_address.get(&bucket).copied().unwrap_or(0);
        if at_address >= self.limits.max_unauthenticated_per_address {
            return if validated {
                Admission::Refused(Refusal::PerAddress)
            } else {
                Admission::ValidateFirst
            };
        }
        if s.unauthenticated >= self.limits.max_unauthenticated {
            return if validated {
                Admission::Refused(Refusal::Unauthenticated)
            } else {
                Admission::ValidateFirst
            };
        }
        if !validated
            && (at_address > 0 || s.unauthenticated * 2 >= self.limits.max_unauthenticated)
        {
            return Admission::ValidateFirst;
        }
        s.unauthenticated += 1;
        *s.by_address.entry(bucket).or_insert(0) += 1;
        Admission::Admitted(PreAuth {
            budget: Some(Arc::clone(self)),
            bucket,
        })
    }

    /// Releases one unauthenticated place of `bucket`, forgetting the
    /// address when it has none left.
    fn release_unauthenticated(&self, bucket: AddressBucket) {
        let mut s = self.lock();
        s.unauthenticated = s.unauthenticated.saturating_sub(1);
        if let Some(n) = s.by_address.get_mut(&bucket) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.by_address.remove(&bucket);
            }
        }
    }

    fn release_enrolled(&self, device: &DeviceId, key: u64) {
        let mut s = self.lock();
        let Some(held) = s.devices.get_mut(device) else {
            return;
        };
        let Some(i) = held.iter().position(|h| h.key == key) else {
            // Already closed as superseded; its place was given back then.
            return;
        };
        let gone = held.remove(i);
        if held.is_empty() {
            s.devices.remove(device);
        }
        if let Some(gone) = gone {
            s.uncount(gone.staff);
        }
    }

    /// Unauthenticated connections held now.
    #[cfg(test)]
    fn unauthenticated(&self) -> usize {
        self.lock().unauthenticated
    }

    /// Addresses remembered now (those with an unauthenticated connection).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.lock().by_address.len()
    }

    /// Authenticated connections held now: (staff, defenders).
    #[cfg(test)]
    fn enrolled(&self) -> (usize, usize) {
        let s = self.lock();
        (s.staff, s.defenders)
    }
}

impl<C> State<C> {
    fn uncount(&mut self, staff: bool) {
        if staff {
            self.staff = self.staff.saturating_sub(1);
        } else {
            self.defenders = self.defenders.saturating_sub(1);
        }
    }
}

/// An unauthenticated place, released when dropped or when set-up
/// succeeds.
#[derive(Debug)]
pub(crate) struct PreAuth<C> {
    budget: Option<Arc<Budget<C>>>,
    bucket: AddressBucket,
}

impl<C> PreAuth<C> {
    /// Set-up succeeded for `device` (`staff`: an officer, coordinator or
    /// admin): releases the unauthenticated place and takes an
    /// authenticated one for `conn`. If the device already holds its limit,
    /// its oldest connections are handed back, to be closed, and `conn`
    /// takes their place; otherwise `conn` needs a free place in the
    /// total (defenders: outside the staff reserve). `enrolled_now` (the
    /// device just used its invite on this connection) always gets a
    /// place, over the total if it must: turning it away would leave a
    /// device enrolled that does not know it. Each enrollment uses up an
    /// invite, so this cannot be repeated at will.
    pub(crate) fn authenticate(
        mut self,
        device: DeviceId,
        staff: bool,
        conn: C,
        enrolled_now: bool,
    ) -> Result<(Enrolled<C>, Vec<C>), Refusal> {
        let Some(budget) = self.budget.take() else {
            return Err(Refusal::Authenticated);
        };
        budget.release_unauthenticated(self.bucket);
        let limits = budget.limits;
        let mut s = budget.lock();
        let held_now = s.devices.get(&device).map_or(0, VecDeque::len);
        let at_limit = held_now >= limits.max_connections_per_device;
        // A device at its limit frees, by giving up its oldest, the place
        // it takes (the same role, the same share): it always gets in.
        let total = s.staff + s.defenders;
        let room = at_limit
            || enrolled_now
            || if staff {
                total < limits.max_connections
            } else {
                total < limits.max_connections
                    && s.defenders
                        < limits
                            .max_connections
                            .saturating_sub(limits.staff_reserved_connections)
            };
        if !room {
            return Err(Refusal::Authenticated);
        }
        let mut superseded = Vec::new();
        if at_limit {
            let excess = held_now + 1 - limits.max_connections_per_device;
            let mut gone = Vec::new();
            if let Some(held) = s.devices.get_mut(&device) {
                for _ in 0..excess {
                    if let Some(h) = held.pop_front() {
                        gone.push(h);
                    }
                }
            }
            for h in gone {
                s.uncount(h.staff);
                superseded.push(h.conn);
            }
        }
        let key = s.next_key;
        s.next_key += 1;
        if staff {
            s.staff += 1;
        } else {
            s.defenders += 1;
        }
        s.devices
            .entry(device)
            .or_default()
            .push_back(Held { key, staff, conn });
        drop(s);
        Ok((
            Enrolled {
                budget,
                device,
                key,
            },
            superseded,
        ))
    }
}

impl<C> Drop for PreAuth<C> {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.release_unauthenticated(self.bucket);
        }
    }
}

/// An authenticated place, released when dropped (unless the connection
/// was superseded, which released it already).
#[derive(Debug)]
pub(crate) struct Enrolled<C> {
    budget: Arc<Budget<C>>,
    device: DeviceId,
    key: u64,
}

impl<C> Drop for Enrolled<C> {
    fn drop(&mut self) {
        self.budget.release_enrolled(&self.device, self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limits() -> BudgetLimits {
        BudgetLimits {
            max_unauthenticated: 8,
            max_unauthenticated_per_address: 3,
            max_connections: 6,
            max_connections_per_device: 2,
            staff_reserved_connections: 2,
        }
    }

    fn budget() -> Arc<Budget<u32>> {
        Arc::new(Budget::new(limits()))
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn admitted(b: &Arc<Budget<u32>>, ip: IpAddr) -> PreAuth<u32> {
        match b.admit(ip, true) {
            Admission::Admitted(p) => p,
            other => panic!("expected admission, got {other:?}"),
        }
    }

    fn device(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 16])
    }

    #[test]
    fn one_address_gets_its_share_and_others_still_get_in() {
        let b = budget();
        let held: Vec<_> = (0..3).map(|_| admitted(&b, v4(1))).collect();
        assert!(matches!(
            b.admit(v4(1), true),
            Admission::Refused(Refusal::PerAddress)
        ));
        // Another address is not affected.
        let _other = admitted(&b, v4(2));
        drop(held);
        assert_eq!(b.unauthenticated(), 1);
        let _again = admitted(&b, v4(1));
    }

    #[test]
    fn the_total_of_unauthenticated_connections_is_capped() {
        let b = budget();
        let held: Vec<_> = (0..8u8).map(|i| admitted(&b, v4(i))).collect();
        assert!(matches!(
            b.admit(v4(100), true),
            Admission::Refused(Refusal::Unauthenticated)
        ));
        assert_eq!(held.len(), 8);
    }

    #[test]
    fn an_unvalidated_peer_is_asked_to_validate_once_its_address_is_in_use() {
        let b = budget();
        let first = match b.admit(v4(1), false) {
            Admission::Admitted(p) => p,
            other => panic!("the first unvalidated one is let in: {other:?}"),
        };
        assert!(matches!(b.admit(v4(1), false), Admission::ValidateFirst));
        // Once validated it counts as any other.
        let _second = admitted(&b, v4(1));
        // Half the total in use: every unvalidated peer validates first.
        let _more: Vec<_> = (10..12u8).map(|i| admitted(&b, v4(i))).collect();
        assert!(matches!(b.admit(v4(50), false), Admission::ValidateFirst));
        drop(first);
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64_prefix() {
        let b = budget();
        let host = |low: u64| {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_0000_0001u128 << 64) | u128::from(low),
            ))
        };
        let _held: Vec<_> = (1..=3).map(|i| admitted(&b, host(i))).collect();
        assert!(matches!(
            b.admit(host(999), true),
            Admission::Refused(Refusal::PerAddress)
        ));
        // Another /64 is another bucket.
        let other = IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0000_0002u128 << 64));
        let _ok = admitted(&b, other);
        // An IPv4-mapped address counts as the IPv4 address.
        assert_eq!(
            AddressBucket::of(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped())),
            AddressBucket::of(v4(1))
        );
    }

    #[test]
    fn an_address_is_forgotten_as_soon_as_its_count_is_zero() {
        let b = budget();
        let a = admitted(&b, v4(1));
        let c = admitted(&b, v4(1));
        assert_eq!(b.addresses(), 1);
        drop(a);
        assert_eq!(b.addresses(), 1);
        drop(c);
        assert_eq!(b.addresses(), 0, "no trace of the address is kept");
        // Authentication also releases it.
        let p = admitted(&b, v4(3));
        let (_e, _) = p.authenticate(device(1), false, 1, false).expect("room");
        assert_eq!(b.addresses(), 0);
        assert_eq!(b.unauthenticated(), 0);
    }

    #[test]
    fn the_unauthenticated_place_is_released_on_auth_on_close_and_on_timeout() {
        let b = budget();
        // On success: moved to the authenticated budget.
        let (enrolled, superseded) = admitted(&b, v4(1))
            .authenticate(device(1), true, 1, false)
            .expect("room");
        assert!(superseded.is_empty());
        assert_eq!(b.unauthenticated(), 0);
        assert_eq!(b.enrolled(), (1, 0));
        // On close or on a timed-out set-up the place is simply dropped.
        let p = admitted(&b, v4(1));
        assert_eq!(b.unauthenticated(), 1);
        drop(p);
        assert_eq!(b.unauthenticated(), 0);
        // Even when no authenticated place is left, the unauthenticated
        // one is given back.
        drop(enrolled);
        assert_eq!(b.enrolled(), (0, 0));
    }

    #[test]
    fn a_device_over_its_limit_loses_its_oldest_connection() {
        let b = budget();
        let mut kept = Vec::new();
        let mut closed = Vec::new();
        for conn in 1..=5u32 {
            let (e, gone) = admitted(&b, v4(1))
                .authenticate(device(1), false, conn, false)
                .expect("a device always gets in by giving up its oldest");
            kept.push(e);
            closed.extend(gone);
        }
        assert_eq!(closed, vec![1, 2, 3], "oldest first");
        assert_eq!(b.enrolled(), (0, 2), "never more than the limit");
        // Dropping a superseded connection's place changes nothing more.
        kept.remove(0);
        assert_eq!(b.enrolled(), (0, 2));
        // Dropping a live one frees its place.
        kept.pop();
        assert_eq!(b.enrolled(), (0, 1));
    }

    #[test]
    fn defenders_cannot_take_the_staff_reserve() {
        let b = budget();
        // 6 in total, 2 reserved: defenders get 4.
        let mut held = Vec::new();
        for d in 1..=4u8 {
            let (e, _) = admitted(&b, v4(d))
                .authenticate(device(d), false, u32::from(d), false)
                .expect("room");
            held.push(e);
        }
        assert_eq!(
            admitted(&b, v4(5))
                .authenticate(device(5), false, 5, false)
                .err(),
            Some(Refusal::Authenticated)
        );
        assert_eq!(b.unauthenticated(), 0, "refused, and its place released");
        for d in 10..=11u8 {
            let (e, _) = admitted(&b, v4(d))
                .authenticate(device(d), true, u32::from(d), false)
                .expect("staff use the reserve");
            held.push(e);
        }
        assert_eq!(
            admitted(&b, v4(12))
                .authenticate(device(12), true, 12, false)
                .err(),
            Some(Refusal::Authenticated),
            "the total holds for staff too"
        );
        // A defender device below its limit does not get a fifth place...
        assert_eq!(
            admitted(&b, v4(1))
                .authenticate(device(1), false, 100, false)
                .err(),
            Some(Refusal::Authenticated)
        );
        // ...but one at its limit gets in by giving up its oldest, even
        // with the defenders' share full.
        held.remove(0);
        let (e, _) = admitted(&b, v4(1))
            .authenticate(device(2), false, 200, false)
            .expect("room: device 1 left");
        held.push(e);
        let (_e, gone) = admitted(&b, v4(1))
            .authenticate(device(2), false, 201, false)
            .expect("replaces its oldest");
        assert_eq!(gone, vec![2]);
        assert_eq!(b.enrolled(), (2, 4), "no fifth defender place");
        // An enrollment always gets its place: its invite is used.
        let (_new, _) = admitted(&b, v4(9))
            .authenticate(device(30), false, 300, true)
            .expect("an enrollment is never turned away");
        assert_eq!(b.enrolled(), (2, 5));
    }
}
