//! Holds the limits table of `docs/protocol.md` §4.8 to the numbers in
//! code, as the role-table test does for §4.2: an independent client is
//! written from that table.

use std::collections::BTreeMap;

use hotline_proto::e2e::content::MAX_LANGUAGE_LEN;
use hotline_proto::e2e::envelope::{BUCKETS, MAX_BODY_LEN, MAX_RECIPIENTS};
use hotline_proto::error::MAX_DETAIL_LEN;
use hotline_proto::frame::{MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN};
use hotline_proto::invite::MAX_LABEL_BYTES;
use hotline_proto::message::{
    MAX_IDS_PER_REQUEST, MAX_INBOX_BATCH, MAX_INVITE_TTL_SECS, MAX_PREKEYS_PER_REQUEST,
};

use super::checkins::{GUESS_DELAY, GUESS_WINDOW_SECS, MAX_INTERVAL_SECS, WRONG_CODES_ALLOWED};
use super::messaging::MAX_ENVELOPE_BYTES;
use crate::config::Limits;
use crate::domain::alerts::{MAX_ALERT_ID, REPAGE_SECS};

/// The rows of §4.8: limit → (every number in its value cell, its key).
fn documented() -> BTreeMap<String, (Vec<u64>, String)> {
    let doc = include_str!("../../../docs/protocol.md");
    let section = doc
        .split("### 4.8 Limits")
        .nth(1)
        .expect("protocol.md has the limits table");
    let mut rows = BTreeMap::new();
    for line in section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, limit, value, key, _] = cells[..] else {
            panic!("a row of three cells: {line}");
        };
        let numbers = without_section_refs(value)
            .replace(',', "")
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().expect("a number"))
            .collect();
        let previous = rows.insert(
            limit.to_owned(),
            (numbers, key.trim_matches('`').to_owned()),
        );
        assert!(previous.is_none(), "the row {limit} twice");
    }
    rows
}

/// `cell` without its "(section 7.5)" references, whose numbers are no
/// limit.
fn without_section_refs(cell: &str) -> String {
    let mut out = String::new();
    let mut rest = cell;
    while let Some(at) = rest.find("(section ") {
        out.push_str(&rest[..at]);
        rest = rest[at..].split_once(')').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

fn n(x: usize) -> u64 {
    u64::try_from(x).expect("fits")
}

#[test]
fn the_documented_limits_are_the_limits_in_code() {
    let d = Limits::default();
    // Numbers this module cannot see (the endpoint's) are `None`: the row
    // must exist, its value is not checked here.
    let expected: Vec<(&str, Option<Vec<u64>>, &str)> = vec![
        (
            "set-up and challenge frame payload",
            Some(vec![n(MAX_SETUP_FRAME_LEN)]),
            "—",
        ),
        (
            "request, response and push frame payload",
            Some(vec![n(MAX_FRAME_LEN)]),
            "—",
        ),
        (
            "bidirectional streams open at once per connection",
            Some(vec![d.max_streams_per_connection.into()]),
            "max_streams_per_connection",
        ),
        ("unidirectional streams a client may open", None, "—"),
        (
            "authenticated connections at once, staff and defenders",
            Some(vec![n(d.max_connections)]),
            "max_connections",
        ),
        (
            "of those, places only staff devices may hold",
            Some(vec![n(d.staff_reserved_connections)]),
            "staff_reserved_connections",
        ),
        (
            "authenticated connections of one device (one more closes its oldest with `SUPERSEDED`)",
            Some(vec![n(d.max_connections_per_device)]),
            "max_connections_per_device",
        ),
        (
            "unauthenticated connections at once (from the first packet to `welcome`)",
            Some(vec![n(d.max_unauthenticated)]),
            "max_unauthenticated",
        ),
        (
            "unauthenticated connections of one IPv4 address or IPv6 /64",
            Some(vec![n(d.max_unauthenticated_per_address)]),
            "max_unauthenticated_per_address",
        ),
        (
            "idle timeout",
            Some(vec![d.idle_timeout_secs, 5, 600]),
            "idle_timeout_secs",
        ),
        (
            "set-up, from the first packet (the handshake included) to `welcome`",
            Some(vec![d.auth_timeout_secs]),
            "auth_timeout_secs",
        ),
        (
            "one request, from stream accepted to frame and finish received; again, the writing of its answer",
            Some(vec![d.request_timeout_secs]),
            "request_timeout_secs",
        ),
        (
            "request burst per connection",
            Some(vec![d.request_burst.into()]),
            "request_burst",
        ),
        (
            "requests per second per connection, sustained",
            Some(vec![d.requests_per_second.into()]),
            "requests_per_second",
        ),
        (
            "one-time prekeys of one target per requester per hour",
            Some(vec![d.one_time_prekeys_per_hour.into()]),
            "one_time_prekeys_per_hour",
        ),
        ("answer and refusal grace before a close", None, "—"),
        (
            "`create_invite.ttl_seconds`",
            Some(vec![1, MAX_INVITE_TTL_SECS]),
            "—",
        ),
        (
            "`publish_prekeys.prekeys`",
            Some(vec![0, n(MAX_PREKEYS_PER_REQUEST)]),
            "—",
        ),
        (
            "`fetch_prekeys.device_ids`",
            Some(vec![1, n(MAX_RECIPIENTS)]),
            "—",
        ),
        ("envelope recipients", Some(vec![1, n(MAX_RECIPIENTS)]), "—"),
        (
            "`SignedEnvelope.body` (`send_envelope`, `raise_alert`)",
            Some(vec![n(MAX_ENVELOPE_BYTES - 128)]),
            "—",
        ),
        (
            "`fetch_inbox.limit`",
            Some(vec![1, MAX_INBOX_BATCH.into()]),
            "—",
        ),
        (
            "bytes of stored envelopes in one `Inbox` answer (at least one item; the client fetches again)",
            Some(vec![n(super::messaging::INBOX_ANSWER_BUDGET)]),
            "—",
        ),
        (
            "alerts in one `list_alerts` answer (every open one, then the most recently raised closed ones)",
            Some(vec![n(super::alerts::MAX_LISTED_ALERTS)]),
            "—",
        ),
        (
            "`mark_read.ids`, `delivery.ids`",
            Some(vec![0, n(MAX_IDS_PER_REQUEST)]),
            "—",
        ),
        (
            "`set_checkin.interval_secs`",
            Some(vec![1, MAX_INTERVAL_SECS, 0]),
            "—",
        ),
        (
            "`set_checkin.grace_secs`",
            Some(vec![0, MAX_INTERVAL_SECS]),
            "—",
        ),
        (
            "wrong check-in codes before staff are alerted and answers slowed",
            Some(vec![WRONG_CODES_ALLOWED.into()]),
            "—",
        ),
        (
            "delay of a check-in answer while slowed",
            Some(vec![GUESS_DELAY.as_secs()]),
            "—",
        ),
        (
            "`Error.detail` kept by a client",
            Some(vec![n(MAX_DETAIL_LEN)]),
            "—",
        ),
        ("alert ids", Some(vec![1, MAX_ALERT_ID]), "—"),
        (
            "padded sealed content (end to end, checked by receivers)",
            Some(BUCKETS.iter().map(|b| n(*b)).collect()),
            "—",
        ),
        (
            "`SealedContent.text` that always fits (longer: a client cuts an SOS, refuses a message)",
            Some(vec![n(MAX_BODY_LEN)]),
            "—",
        ),
        (
            "`SealedContent.language`",
            Some(vec![0, n(MAX_LANGUAGE_LEN), 47]),
            "—",
        ),
        (
            "`SealedContent.sender_label`",
            Some(vec![0, n(MAX_LABEL_BYTES)]),
            "—",
        ),
        (
            "open SOS alerts per defender device (an SOS beyond joins the newest)",
            Some(vec![d.open_alerts_per_device.into(), 0]),
            "open_alerts_per_device",
        ),
        (
            "pages of an alert's staff when its defender raises again",
            Some(vec![1, REPAGE_SECS]),
            "—",
        ),
        (
            "`SignedCaseEvent.body` (`append_case_event`)",
            Some(vec![1, n(hotline_proto::case::MAX_EVENT_BODY_LEN)]),
            "—",
        ),
        (
            "bytes of updates in one `CaseSync` frame (at least one update; the rest in the next frame)",
            Some(vec![n(super::cases::SYNC_FRAME_BUDGET)]),
            "—",
        ),
        (
            "`CaseSync` frames in one `sync_cases` answer (the last says `more`; the client asks again after its `cursor`)",
            Some(vec![n(super::cases::MAX_SYNC_FRAMES)]),
            "—",
        ),
        (
            "cases in state requested per defender device",
            Some(vec![
                crate::domain::cases::MAX_REQUESTED_PER_DEFENDER.into(),
            ]),
            "—",
        ),
        (
            "days a closed case is kept before it may be erased",
            Some(vec![crate::config::DEFAULT_CASE_RETENTION_DAYS, 0]),
            "[cases] retention_days",
        ),
    ];
    assert_eq!(GUESS_WINDOW_SECS, 3600, "the table says \"in an hour\"");
    let documented = documented();
    assert_eq!(
        documented.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut names: Vec<&str> = expected.iter().map(|(name, _, _)| *name).collect();
            names.sort_unstable();
            names
        },
        "one row per limit this test knows, no more"
    );
    for (name, numbers, key) in expected {
        let (doc_numbers, doc_key) = &documented[name];
        assert_eq!(doc_key, key, "the configuration key of {name}");
        if let Some(numbers) = numbers {
            assert_eq!(doc_numbers, &numbers, "the value of {name}");
        }
    }
}
