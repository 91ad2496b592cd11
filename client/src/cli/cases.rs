//! `hotline case …` and `hotline relocation …` (staff): cases read from
//! this device's replica, synced first when the server can be reached;
//! writes are sealed, saved in the case outbox and sent (or, offline,
//! queued for the next command).

use anyhow::{Context as _, bail};
use hotline_client::StateDir;
use hotline_client::cases::fields::{
    self, DOCUMENTS, PROGRAMMES, RELATIONSHIPS, RISKS, Value, case_field, entity, person_field,
    relocation_field,
};
use hotline_client::cases::model::{CaseView, EventId, Register};
use hotline_client::cases::outbox::{self, Fate, new_id};
use hotline_client::cases::replica::{CaseFile, Replica, SummaryRow};
use hotline_client::cases::{keys, open_replica, sync};
use hotline_client::messenger::Device;
use hotline_client::{ClientError, Session};
use hotline_proto::DeviceId;
use hotline_proto::case::content::{
    CaseEventContent, CaseOpening, FieldChange, FieldValue, FieldValueKind, IdList,
};
use hotline_proto::case::relocation::{self, Stage};
use hotline_proto::case::seal::CaseKey;
use hotline_proto::case::{CaseControl, CaseId, CaseState};
use hotline_proto::e2e::roster::Roster;
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::identity::hex;

use super::Queued;
use super::case_view::{
    WORDS_NOT_HERE, list_lines, person_line, relocation_lines, short, show_field, view_lines,
};
use super::unlock::{after_unlock, open_device};

/// The longest content (`C`) a case event holds: the largest padding
/// bucket less its 4-byte length prefix (docs/protocol.md, section 9.1).
const MAX_EVENT_CONTENT_LEN: usize = 65_532;

/// The shortest id prefix accepted.
const MIN_PREFIX: usize = 4;

/// An unlocked staff device with its replica, online or not.
pub(super) struct Ctx {
    pub(super) device: Device,
    pub(super) replica: Replica,
    pub(super) session: Option<Session>,
    pub(super) roster: Option<Roster>,
    /// Whether this command said already that case changes wait because
    /// this device is not on the roster the server holds (said once).
    told_not_on_roster: bool,
    /// The cases this command's sync changed.
    synced: std::collections::BTreeSet<CaseId>,
    /// Answers of this device to a request that lost a race (case, and
    /// whether it was a decline), said once the sync has brought the
    /// answer that won.
    lost: Vec<(CaseId, bool)>,
    /// This command fetched the inbox (where case keys come) and synced
    /// the cases: a key of the newest epoch not held by now is not on its
    /// way, and this device opens the next epoch itself to write
    /// (docs/protocol.md, section 9.2, "A key that never came").
    keys_fetched_and_synced: bool,
    /// The cases this device's replica showed as requests waiting for
    /// an answer before this command's sync: one taken on by a colleague
    /// since is not closed unawares.
    requested_before: std::collections::BTreeSet<CaseId>,
    /// What the person allowed explicitly for this command.
    pub(super) allow: Allow,
}

/// What a case command was told explicitly to go ahead with.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Allow {
    /// `--drop-requester`: a change of "defender devices" may drop the
    /// device that made the request.
    pub(super) drop_requester: bool,
    /// `--without-words`: a request whose words this device does not
    /// hold may be taken on (the case then says its words were not
    /// copied).
    pub(super) without_words: bool,
}

/// What a person whose answer to a request (a decline, or a taking on)
/// lost a race is told, from what the other answer was: `other` is the
/// state the winning event set (open: taken on; closed: declined), its
/// author as shown, and its server time; `None` if this device does not
/// hold it yet.
fn answer_lost(case: &CaseId, decline: bool, other: Option<(CaseState, String, u64)>) -> String {
    let s = short(case.as_bytes());
    let when = |at: u64| super::date::date_time(at);
    match (decline, other) {
        (true, Some((CaseState::Closed, who, at))) => format!(
            "NOT SAVED: your decline of request {s}: it was already declined by {who} on {}; it stays declined, and nothing more is needed",
            when(at)
        ),
        (true, Some((_, who, at))) => format!(
            "NOT SAVED: your decline of request {s}: {who} took it on at the same time ({}); the case is open — close it if you still mean to (hotline case close {s} --reason …)",
            when(at)
        ),
        (true, None) => format!(
            "NOT SAVED: your decline of request {s}: another staff member answered it at the same time (hotline case show {s} says how)"
        ),
        (false, Some((CaseState::Closed, who, at))) => format!(
            "NOTE: you did not take on request {s}: it was declined by {who} at the same time ({}); your change was kept in the declined request — to take it on after all: hotline case reopen {s}",
            when(at)
        ),
        (false, Some((_, who, at))) => format!(
            "NOTE: request {s} was taken on by {who} at the same time ({}); the case is open and your change is in it",
            when(at)
        ),
        (false, None) => format!(
            "NOTE: another staff member answered request {s} at the same time as you (hotline case show {s} says how)"
        ),
    }
}

fn offline(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unreachable { .. } | ClientError::ConnectionLost(_)
    )
}

impl Ctx {
    /// Unlocks the device; online, sends the case events waiting and
    /// syncs; offline, says so and works from the replica.
    pub(super) async fn start(state: &StateDir) -> anyhow::Result<Ctx> {
        let device = open_device(state)?;
        if !device.profile().role()?.is_staff() {
            bail!("cases are kept by staff devices; this device is a defender's");
        }
        let replica = open_replica(&device)?;
        let requested_before = replica
            .summaries()
            .iter()
            .filter(|s| s.state() == Some(CaseState::Requested))
            .filter_map(SummaryRow::id)
            .collect();
        let mut ctx = Ctx {
            device,
            replica,
            session: None,
            roster: None,
            told_not_on_roster: false,
            synced: Default::default(),
            lost: Vec::new(),
            keys_fetched_and_synced: false,
            requested_before,
            allow: Allow::default(),
        };
        match ctx.device.connect().await {
            Ok(session) => {
                after_unlock(state, &session).await;
                match ctx.device.roster(&session).await {
                    Ok(r) => ctx.roster = Some(r),
                    Err(e) => eprintln!("WARNING: cases were not synced: {e}"),
                }
                // A decline written offline goes before its notice to the
                // defender: if it lost a race, the notice is not sent.
                ctx.session = Some(session);
                if ctx.replica.outbox().iter().any(outbox::is_decline)
                    && let Err(e) = ctx.flush(None).await
                {
                    eprintln!("WARNING: the case changes waiting here were not sent: {e}");
                }
                let Some(session) = &ctx.session else {
                    bail!("the connection was lost")
                };
                // Every roster version, once: who was staff when decides
                // which case keys and events count (docs/protocol.md 9.2,
                // 9.5), also those of a staff member revoked since.
                if let (Some(roster), Some(root)) = (&ctx.roster, ctx.device.org_root()) {
                    let newest = roster.version;
                    if let Err(e) =
                        sync::fill_rosters(session, &mut ctx.replica, &root, newest).await
                    {
                        eprintln!("WARNING: earlier staff rosters could not be fetched: {e}");
                    }
                }
                // The inbox first: the words of defenders' requests and
                // their replies are envelopes to this device.
                let fetched = match super::messages::fetch_new(&mut ctx.device, session).await {
                    Ok(_) => true,
                    Err(e) => {
                        eprintln!("WARNING: new messages could not be fetched: {e}");
                        false
                    }
                };
                // Case keys received were kept through the inbox's own
                // handle on the replica: read it again, or the sync would
                // save this handle's older summaries over the refolded ones.
                ctx.replica = open_replica(&ctx.device)?;
                // Neither failure stops the command: it works from what
                // the replica holds, and says so.
                if let Err(e) = ctx.flush(None).await {
                    eprintln!("WARNING: the case changes waiting here were not sent: {e}");
                }
                match ctx.sync().await {
                    Ok(()) => ctx.keys_fetched_and_synced = fetched && ctx.roster.is_some(),
                    Err(e) => eprintln!(
                        "WARNING: cases were not synced ({e}): showing what this device holds"
                    ),
                }
                ctx.tell_lost();
                // What waits in the device's outbox (a share's envelopes
                // written offline) goes too, as with any command: after the
                // sync, which drops what concerns a case erased since
                // (its shares and keys, docs/protocol.md section 9.7).
                if !ctx.device.pending().is_empty()
                    && let Some(session) = &ctx.session
                {
                    super::messages::send_over(&mut ctx.device, session, None).await;
                }
                if let Err(e) = ctx.exchange_keys().await {
                    eprintln!(
                        "WARNING: case keys were not exchanged with other staff devices: {e}"
                    );
                }
                // Summaries left stale by the keys received (here, or by
                // an earlier run) read now what the keys open.
                if let Err(e) = ctx.replica.refold_unreadable() {
                    eprintln!("WARNING: the case list could not be refreshed: {e}");
                }
                ctx.tell_unreadable();
                if let Err(e) = ctx.record_replies().await {
                    eprintln!("WARNING: a defender's reply could not be recorded in its case: {e}");
                }
            }
            Err(e) if offline(&e) => {
                eprintln!(
                    "offline: {e}\nworking from what this device holds; changes wait in its case outbox"
                );
            }
            Err(e) => return Err(e.into()),
        }
        Ok(ctx)
    }

    /// Case keys with the other staff devices (docs/cases.md, "Keys"):
    /// sends every key of the cases requested or open (and the ledger's)
    /// to the staff devices a newer roster added, sends what waits in the
    /// message outbox, takes the keys waiting in the inbox, and sends the
    /// case events that waited for one.
    async fn exchange_keys(&mut self) -> anyhow::Result<()> {
        let me = self.me();
        if let Some(roster) = &self.roster {
            let change = keys::roster_seen(&mut self.replica, roster, me)?;
            if !change.added.is_empty() {
                let all = keys::keys_to_share(&self.replica)?;
                // One sender in the common case: the first staff device to
                // handle the roster sends the keys, sealed to the new
                // device and copied to the other staff devices; a device
                // that received such a copy sends only what it did not
                // carry (docs/cases.md, "Keys and rotation").
                let mut cases = std::collections::BTreeSet::new();
                let mut served = 0usize;
                for d in &change.added {
                    let missing = keys::not_sent_yet(&self.replica, &all, d);
                    served += usize::from(missing.len() < all.len());
                    if !missing.is_empty() {
                        cases.extend(missing.iter().map(|(c, _, _)| *c));
                        queue_keys(&mut self.device, &missing, Some(*d))?;
                    }
                }
                self.replica.forget_keys_sent(&change.added)?;
                if !cases.is_empty() {
                    println!(
                        "the staff roster adds {} device(s): the keys of {} case(s) go to them, so that they read their history",
                        change.added.len(),
                        cases.len()
                    );
                }
                if served > 0 && cases.is_empty() && !all.is_empty() {
                    println!(
                        "the staff roster adds {} device(s): another staff device sent them the case keys already; none go again from here",
                        change.added.len()
                    );
                }
            }
            if !change.removed.is_empty() {
                println!(
                    "the staff roster drops {} device(s): the next change this device writes to each case opens a new case key they do not hold",
                    change.removed.len()
                );
            }
        }
        self.send_messages().await;
        let Some(session) = &self.session else {
            return Ok(());
        };
        super::messages::fetch_new(&mut self.device, session).await?;
        // Keys received were written to the replica's files: read it again.
        self.replica = open_replica(&self.device)?;
        if !self.replica.outbox().is_empty() {
            self.flush(None).await?;
        }
        Ok(())
    }

    /// Records in its case each defender's reply this device received and
    /// no event of the case records yet (docs/protocol.md 9.4, "reply"),
    /// so that staff who join later read it. Only cases this device reads
    /// and that were opened.
    async fn record_replies(&mut self) -> anyhow::Result<()> {
        let history = self.device.history()?;
        let mut cases = std::collections::BTreeSet::new();
        for e in history.entries() {
            if let hotline_proto::e2e::content::Kind::CaseReply { case_id } = &e.message.kind
                && !e.sent
                && e.digest.is_some()
            {
                cases.insert(*case_id);
            }
        }
        for case in cases {
            if !self
                .replica
                .summaries()
                .iter()
                .any(|s| s.case_id == case.as_bytes())
            {
                continue;
            }
            let view = self.replica.view(&case)?;
            if view.opened.is_none()
                || !matches!(view.state, Some(CaseState::Open | CaseState::Closed))
            {
                continue;
            }
            for content in super::case_links::unrecorded_replies(&history, &view) {
                // Words too long for one case event (a reply over the
                // limit of section 9.6, from another client): never
                // recorded, and never in the way of the replies after it.
                if prost::Message::encoded_len(&content) > MAX_EVENT_CONTENT_LEN {
                    eprintln!(
                        "WARNING: a reply of the defender about case {} is too long to record in the case ({} bytes of words): staff who join later will not read it there; this device shows it with its words among messages and in the case",
                        short(case.as_bytes()),
                        content.reply.as_ref().map_or(0, |r| r.text.len())
                    );
                    continue;
                }
                let file = self.replica.load(&case)?;
                if file.newest_key().is_none() {
                    break;
                }
                let done = format!(
                    "recorded in case {}: a reply of its defender, so that staff who join later read it",
                    short(case.as_bytes())
                );
                match self
                    .write(&file, CaseControl::default(), content, &done)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is::<Queued>() => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Sends what waits in the message outbox (case keys, and any message
    /// queued before), saying what could not be sent.
    pub(super) async fn send_messages(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        if self.device.pending().is_empty() {
            return;
        }
        let flushed = self.device.flush_report(session).await;
        for (_, sent) in &flushed.settled {
            if let hotline_client::messenger::Sent::Dropped { what, reason, .. } = sent {
                eprintln!(
                    "WARNING: {} could not be sent and was removed from the outbox: {reason}",
                    super::messages::describe(what)
                );
            }
        }
        if let Some(e) = flushed.stopped {
            eprintln!(
                "WARNING: {} item(s) wait in the message outbox (case keys among them, if any): {e}",
                self.device.pending().len()
            );
        }
        for w in self.device.take_warnings() {
            eprintln!("WARNING: {w}");
        }
    }

    /// After this device's events were accepted: one that opened a new
    /// key epoch (a rotation) sends its key to the staff on the roster.
    async fn after_accepted(
        &mut self,
        accepted: &[(CaseId, EventId)],
        opened: &[(CaseId, u32)],
    ) -> anyhow::Result<()> {
        let mut queued = false;
        let mut sent: std::collections::BTreeSet<(CaseId, u32)> = Default::default();
        for (case, epoch) in opened {
            let file = self.replica.load(case)?;
            if let Some(key) = file.keys.get(epoch)
                && sent.insert((*case, *epoch))
            {
                queue_keys(&mut self.device, &[(*case, *epoch, key.clone())], None)?;
                queued = true;
            }
            self.replica.rotated(case)?;
        }
        for (case, id) in accepted {
            let file = self.replica.load(case)?;
            let Some(e) = file.events.iter().find(|e| {
                e.event.author == self.me()
                    && e.event.header_unverified().is_ok_and(|h| h.event_id == *id)
            }) else {
                continue;
            };
            let Ok((h, content)) = e
                .event
                .open(&e.author_key, |_, ep| file.keys.get(&ep).cloned())
            else {
                continue;
            };
            // The ledger's opener sends its epoch 1 key only now: another
            // device may have opened it first (docs/protocol.md, 9.2).
            if h.epoch == 1 && h.control.ledger {
                if let Some(key) = file.keys.get(&1)
                    && sent.insert((*case, 1))
                {
                    queue_keys(&mut self.device, &[(*case, 1, key.clone())], None)?;
                    queued = true;
                }
                continue;
            }
            // An event that opened its epoch (the first of it the case
            // holds) under a key this device drew: a rotation, or an
            // epoch opened because the newest key never came here.
            let first_of_epoch = file
                .events
                .iter()
                .find(|x| {
                    x.event
                        .header_unverified()
                        .is_ok_and(|xh| xh.epoch == h.epoch)
                })
                .is_some_and(|x| std::ptr::eq(x, e));
            if h.epoch > 1 && (!content.rotated_out.is_empty() || first_of_epoch) {
                if let Some(key) = file.keys.get(&h.epoch)
                    && sent.insert((*case, h.epoch))
                {
                    queue_keys(&mut self.device, &[(*case, h.epoch, key.clone())], None)?;
                    queued = true;
                }
                self.replica.rotated(case)?;
            }
        }
        if queued {
            self.send_messages().await;
        }
        Ok(())
    }

    /// Before this device writes to `file`'s case: if a staff device left
    /// the roster since the case's newest key epoch began, opens the next
    /// epoch (a fresh key, an event naming the devices that left, sealed
    /// under it); its key goes to the roster's staff once the server has
    /// the event.
    async fn rotate_if_needed(&mut self, file: &mut CaseFile) -> anyhow::Result<()> {
        // The epoch written under: never one of a key received for an
        // epoch no event commits to yet (docs/protocol.md, section 9.2).
        let newest = file.write_epoch(self.replica.outbox());
        // A device that wrote under the newest key and is no longer staff
        // on the roster held it, even if this device never held a roster
        // listing it.
        let gone = self.authors_gone(file, newest);
        let rot = match self.replica.rotation(&file.case_id).cloned() {
            Some(mut r) => {
                for d in gone {
                    if !r.removed.contains(&d) {
                        r.removed.push(d);
                    }
                }
                r
            }
            None if !gone.is_empty() => hotline_client::cases::replica::RotationRow {
                case_id: file.case_id.as_bytes().to_vec(),
                epoch: newest,
                removed: gone,
            },
            None => return Ok(()),
        };
        if newest > rot.epoch {
            // Another staff device (or this one) rotated it already.
            return Ok(self.replica.rotated(&file.case_id)?);
        }
        if file.events.is_empty()
            || (!file.keys.contains_key(&newest) && !self.keys_fetched_and_synced)
        {
            // Nothing to rotate yet, or the newest key is not held here
            // and may still come: the write waits for it as any other
            // does. Synced, this device rotates without it.
            return Ok(());
        }
        let Some(epoch) = outbox::next_epoch(newest) else {
            bail!("NOT SAVED: {}", outbox::EPOCHS_EXHAUSTED);
        };
        // A key received for that epoch (another device's rotation in
        // flight) stays a candidate.
        file.take_own_key(epoch, CaseKey::generate(&mut SystemRandomness));
        let mut content = self.content("");
        content.rotated_out = rot.removed.iter().map(|d| d.clone().into()).collect();
        let version = self.roster_version();
        outbox::write_opening(
            &mut self.replica,
            self.device.identity(),
            version,
            file,
            epoch,
            CaseControl::default(),
            &content,
        )?;
        println!(
            "case {}: a new case key (epoch {epoch}) is opened first, which the {} device(s) that left the roster do not hold",
            short(file.case_id.as_bytes()),
            rot.removed.len()
        );
        Ok(())
    }

    /// The epoch this device must open to write to `file`'s case, if any:
    /// it does not hold the key of the epoch it writes under, it holds a
    /// key of the case (it reads the case: a device that holds none waits
    /// for them), and this command fetched its inbox and synced the cases
    /// (the key is not on its way). `None`: it writes as usual.
    fn epoch_to_open(&self, file: &CaseFile) -> anyhow::Result<Option<u32>> {
        let waiting = self.replica.outbox();
        if !self.keys_fetched_and_synced
            || file.keys.is_empty()
            || file.write_key(waiting).is_some()
        {
            return Ok(None);
        }
        match outbox::next_epoch(file.write_epoch(waiting)) {
            Some(epoch) => Ok(Some(epoch)),
            None => bail!("NOT SAVED: {}", outbox::EPOCHS_EXHAUSTED),
        }
    }

    /// The authors of `file`'s events of `epoch` that the roster this
    /// device holds no longer lists as staff (none without a roster).
    fn authors_gone(&self, file: &CaseFile, epoch: u32) -> Vec<Vec<u8>> {
        let Some(roster) = &self.roster else {
            return Vec::new();
        };
        let mut gone: Vec<Vec<u8>> = Vec::new();
        for e in &file.events {
            let a = e.event.author;
            if e.event.header_unverified().is_ok_and(|h| h.epoch == epoch)
                && !roster
                    .entries
                    .iter()
                    .any(|r| r.device_id == a && r.role.is_staff())
                && !gone.iter().any(|g| g == a.as_bytes())
            {
                gone.push(a.as_bytes().to_vec());
            }
        }
        gone
    }

    async fn sync(&mut self) -> anyhow::Result<()> {
        let (Some(session), Some(roster)) = (&self.session, &self.roster) else {
            return Ok(());
        };
        let history = self.device.history()?;
        let request_text =
            |d: &[u8; 32], who: &DeviceId| super::case_links::request_text(&history, d, who);
        let root = self.device.org_root();
        let report = sync::sync_cases_pinned(
            session,
            &mut self.replica,
            roster,
            root.as_ref(),
            &request_text,
        )
        .await?;
        for w in &report.warnings {
            eprintln!("WARNING: {w}");
        }
        self.synced.clone_from(&report.changed);
        for c in &report.erased {
            self.forget_texts(c, &report.erased_requests);
            println!(
                "case {} was erased: its events and keys are gone from this device",
                short(c.as_bytes())
            );
        }
        for c in &report.requested {
            // Only a request still waiting is news: one accepted or
            // declined long ago (a first sync) is not. The state is what
            // the events' signed control parts say, also those this
            // device cannot read yet (its keys not arrived): a case open
            // is never announced as a request. Nor while events wait for
            // a roster: what they say is not known yet.
            if report.waiting_for_rosters.is_empty()
                && self.replica.view(c)?.state == Some(CaseState::Requested)
            {
                println!("new request from a defender: case {}", short(c.as_bytes()));
            }
        }
        for c in &report.erasure_requested {
            self.replica.set_erasure_requested(c, true)?;
            println!(
                "erasure of case {} was asked for: a second coordinator or admin must confirm it",
                short(c.as_bytes())
            );
        }
        Ok(())
    }

    /// Says once, after the sync and the keys received, how many of the
    /// cases this sync brought this device cannot read yet (their keys
    /// come from another staff device), rather than a line for each.
    fn tell_unreadable(&self) {
        let (mut waiting, mut closed) = (0usize, 0usize);
        for s in self.replica.summaries() {
            let synced = s.id().is_some_and(|c| self.synced.contains(&c));
            if !synced || s.ledger || s.unreadable == 0 {
                continue;
            }
            if s.state() == Some(CaseState::Closed) {
                closed += 1;
            } else {
                waiting += 1;
            }
        }
        if waiting > 0 {
            println!(
                "{waiting} case(s) waiting for their keys from another staff device: `hotline case list` shows them; they read in full once the keys arrive (sent by the next staff device that connects)"
            );
        }
        if closed > 0 {
            println!(
                "{closed} closed case(s) this device cannot read: a closed case's keys come only when a staff member reopens it"
            );
        }
    }

    /// Removes an erased case's words from the message history: its
    /// replies and shared items, and the requests among `requests` (their
    /// envelope digests). A failure is a warning: the case itself is gone
    /// already.
    pub(super) fn forget_texts(&mut self, case: &CaseId, requests: &[[u8; 32]]) {
        if let Err(e) = self.device.remove_case_texts(case, requests) {
            eprintln!(
                "WARNING: the messages of erased case {} could not be removed from this device's history: {e}",
                short(case.as_bytes())
            );
        }
        // What still waited to go out about it goes too: its shared items
        // and its keys.
        match self.device.drop_case_items(case) {
            Ok(0) => {}
            Ok(n) => println!(
                "{n} message(s) about erased case {} that waited to be sent (shared items, case keys) were dropped",
                short(case.as_bytes())
            ),
            Err(e) => eprintln!(
                "WARNING: the messages about erased case {} waiting to be sent could not be dropped: {e}",
                short(case.as_bytes())
            ),
        }
    }

    /// Sends the case events waiting; says what became of each (of those
    /// refused for good; the caller says what became of its own).
    async fn flush(&mut self, mine: Option<EventId>) -> anyhow::Result<outbox::Flushed> {
        let Some(session) = &self.session else {
            return Ok(outbox::Flushed {
                waiting: self.replica.outbox().len(),
                ..Default::default()
            });
        };
        let version = self.roster_version();
        // The roster versions that do not list this device as staff (or
        // that it does not hold): an event naming one, written before an
        // admin listed the device, is sealed again naming the newest.
        let me = self.me();
        let my_key = self.device.identity().public_key();
        let now = hotline_client::unix_now();
        let listed: Vec<u64> = self
            .replica
            .rosters()
            .versions()
            .into_iter()
            .filter(|v| self.replica.rosters().lists_staff(*v, &me, &my_key, now))
            .collect();
        let on_fetched = self.roster.as_ref().is_some_and(|r| {
            r.entries
                .iter()
                .any(|e| e.device_id == me && e.role.is_staff())
        });
        let fetched = self.roster.as_ref().map(|r| r.version);
        let unlisted = |v: u64| {
            if Some(v) == fetched {
                return !on_fetched;
            }
            !listed.contains(&v)
        };
        let out = outbox::flush(
            session,
            &mut self.replica,
            self.device.identity(),
            version,
            &unlisted,
            self.keys_fetched_and_synced,
        )
        .await?;
        // The notices of declines that lost go before anything else is
        // sent (case keys below send the device's outbox).
        let declines_lost: Vec<CaseId> = out
            .settled
            .iter()
            .filter(|(_, _, f)| *f == Fate::DeclineLost)
            .map(|(c, _, _)| *c)
            .collect();
        self.drop_notices(&declines_lost);
        let accepted: Vec<(CaseId, EventId)> = out
            .settled
            .iter()
            .filter(|(_, _, f)| matches!(f, Fate::Accepted { .. }))
            .map(|(c, e, _)| (*c, *e))
            .collect();
        // A key epoch this flush opened (another key held the one its
        // event was sealed under) goes to the roster's staff once the
        // event opening it is accepted, as a rotation's key does.
        let opened: Vec<(CaseId, u32)> = out
            .opened
            .iter()
            .filter(|(c, _, e)| accepted.contains(&(*c, *e)))
            .map(|(c, epoch, _)| (*c, *epoch))
            .collect();
        for (case, epoch, id) in &out.opened {
            if out.never_came.contains(&(*case, *epoch, *id)) {
                println!(
                    "case {}: the key of epoch {} never reached this device: it opened a new case key (epoch {epoch}) for its waiting change, which goes to the staff devices on the roster",
                    short(case.as_bytes()),
                    epoch - 1
                );
                continue;
            }
            println!(
                "case {}: another staff device's key holds the epoch this device's change was sealed under: it opened a new case key (epoch {epoch}) and sent the change again under it",
                short(case.as_bytes())
            );
        }
        // Keys sent while this device was not on the roster staff devices
        // held were ignored by them: each goes again once an event under it
        // is accepted.
        let mut again_keys: Vec<(CaseId, u32, CaseKey)> = Vec::new();
        for (case, epoch, id) in &out.relisted {
            if accepted.contains(&(*case, *id))
                && !again_keys.iter().any(|(c, e, _)| c == case && e == epoch)
                && let Some(key) = self.replica.load(case)?.keys.get(epoch)
            {
                again_keys.push((*case, *epoch, key.clone()));
            }
        }
        if !again_keys.is_empty() {
            queue_keys(&mut self.device, &again_keys, None)?;
        }
        if !accepted.is_empty() {
            // Boxed: this and flush call each other through send_messages.
            Box::pin(self.after_accepted(&accepted, &opened)).await?;
        }
        if !again_keys.is_empty() {
            Box::pin(self.send_messages()).await;
        }
        let again = out
            .settled
            .iter()
            .filter(|(_, _, f)| {
                matches!(
                    f,
                    Fate::Accepted {
                        duplicate: true,
                        ..
                    }
                )
            })
            .count();
        if again > 0 {
            // A resend after an answer that never came back: the server
            // kept the first, so nothing is doubled.
            println!(
                "{again} case change(s) were already on the server (sent before); each counts once"
            );
        }
        for (case, id, fate) in &out.settled {
            if let Fate::Refused { what, why } = fate
                && Some(*id) != mine
            {
                eprintln!(
                    "NOT SAVED: {what} in case {}: {why} (refused by the server and removed from this device's case outbox; the changes after it went on)",
                    short(case.as_bytes())
                );
            }
            if *fate == Fate::DeclineLost && Some(*id) != mine {
                self.lost.push((*case, true));
            }
        }
        for (case, _) in &out.take_ons_lost {
            self.lost.push((*case, false));
        }
        if let Some(why) = &out.stopped
            && mine.is_none()
        {
            if why == outbox::NOT_ON_ROSTER {
                self.tell_not_on_roster(out.waiting);
            } else {
                eprintln!("{} case change(s) wait in the outbox: {why}", out.waiting);
            }
        }
        Ok(out)
    }

    /// The answer that won a race to a request this device answered too:
    /// the first event of another device that set the case's state.
    pub(super) fn winning_answer(&self, case: &CaseId) -> Option<(CaseState, String, u64)> {
        let me = self.me();
        let file = self.replica.load(case).ok()?;
        file.events.iter().find_map(|e| {
            let h = e.event.header_unverified().ok()?;
            if h.author == me {
                return None;
            }
            h.control
                .state
                .map(|s| (s, self.shown(h.author.as_bytes()), e.at))
        })
    }

    /// Removes from the device's outbox the notices of this device's
    /// declines of `lost` that lost a race (the envelopes of a share to the
    /// defender, queued with the decline): the defender is not told a
    /// request was closed that is open, nor told twice.
    fn drop_notices(&mut self, lost: &[CaseId]) {
        if lost.is_empty() {
            return;
        }
        let pending = self.device.pending();
        for (i, w) in pending.iter().enumerate().rev() {
            if let hotline_client::outbox::Outgoing::CaseShare { case_id, .. } = w.what
                && lost.contains(&case_id)
                && let Err(e) = self.device.drop_pending(i)
            {
                eprintln!("WARNING: a notice of a decline not sent stays in the outbox: {e}");
            }
        }
    }

    /// What is said of `text` when no case held here matches it, if it
    /// names an erased case (by at least 4 hex digits of its id): erased,
    /// when and by whom (as this device learnt it), and that only its
    /// statistics remain.
    fn erased_case(&self, text: &str) -> Option<anyhow::Error> {
        let t = text.trim();
        let hexed = t.to_ascii_lowercase();
        let by_id = hexed.len() >= MIN_PREFIX && hexed.chars().all(|c| c.is_ascii_hexdigit());
        // By its id, or by the reference this device's record kept.
        let (case, row) = self.replica.erased_cases().into_iter().find(|(c, r)| {
            (by_id && hex(c.as_bytes()).starts_with(&hexed))
                || r.as_ref()
                    .is_some_and(|r| !r.reference.is_empty() && r.reference.eq_ignore_ascii_case(t))
        })?;
        let row = row.unwrap_or_default();
        let s = match row.reference.as_str() {
            "" => short(case.as_bytes()),
            r => format!("{r} ({})", short(case.as_bytes())),
        };
        let when = if row.at == 0 {
            String::new()
        } else {
            format!(" on {}", super::date::date_time(row.at))
        };
        let by = match (row.requested_by.is_empty(), row.confirmed_by.is_empty()) {
            (false, false) => format!(
                " (asked for by {}, confirmed by {})",
                self.shown(&row.requested_by),
                self.shown(&row.confirmed_by)
            ),
            (false, true) => format!(" (asked for by {})", self.shown(&row.requested_by)),
            (true, false) => format!(" (confirmed by {})", self.shown(&row.confirmed_by)),
            (true, true) => String::new(),
        };
        Some(anyhow::anyhow!(
            "case {s} was erased{when}{by}: nothing of it is kept but its statistics, without names or places (`hotline case stats`)"
        ))
    }

    /// Says what became of this device's answers to requests that lost a
    /// race (each once).
    fn tell_lost(&mut self) {
        for (case, decline) in std::mem::take(&mut self.lost) {
            eprintln!(
                "{}",
                answer_lost(&case, decline, self.winning_answer(&case))
            );
        }
    }

    /// Says, once per command, that `waiting` case changes wait because
    /// the server's roster does not list this device.
    fn tell_not_on_roster(&mut self, waiting: usize) {
        if !self.told_not_on_roster {
            eprintln!("{waiting} case change(s) wait: {}", outbox::NOT_ON_ROSTER);
            self.told_not_on_roster = true;
        }
    }

    fn roster_version(&self) -> u64 {
        self.roster
            .as_ref()
            .map(|r| r.version)
            .or(self.device.profile().roster_version)
            .unwrap_or(0)
    }

    pub(super) fn me(&self) -> DeviceId {
        self.device.identity().device_id()
    }

    /// Writes one event to `file`'s case and sends it (with anything
    /// waiting before it), opening a new key epoch first if a staff device
    /// left the roster. Returns the case as it now reads.
    pub(super) async fn write(
        &mut self,
        file: &CaseFile,
        control: CaseControl,
        content: CaseEventContent,
        done: &str,
    ) -> anyhow::Result<CaseView> {
        let mut file = file.clone();
        self.rotate_if_needed(&mut file).await?;
        let file = &file;
        let version = self.roster_version();
        let opening = file.events.is_empty()
            && file.request.is_none()
            && control.state == Some(CaseState::Open);
        let reopening = !opening && control.state == Some(CaseState::Open);
        let (id, view) = match self.epoch_to_open(file)? {
            Some(epoch) => {
                // The newest epoch's key never came (its opener kept it
                // to itself, or lost it): this change opens the next epoch
                // under a fresh key, sent to the roster's staff devices
                // once the server has it (docs/protocol.md, 9.2).
                let mut file = file.clone();
                file.take_own_key(epoch, CaseKey::generate(&mut SystemRandomness));
                println!(
                    "case {}: this device never received the newest case key (epoch {}): this change opens a new one (epoch {epoch}), which goes to the staff devices on the roster",
                    short(file.case_id.as_bytes()),
                    epoch - 1
                );
                outbox::write_opening(
                    &mut self.replica,
                    self.device.identity(),
                    version,
                    &file,
                    epoch,
                    control,
                    &content,
                )?
            }
            None => outbox::write(
                &mut self.replica,
                self.device.identity(),
                version,
                file,
                control,
                &content,
            )?,
        };
        // The keys this write queued (a case opened or reopened) go out
        // before its event, so that readers can open it when they see it.
        self.send_messages().await;
        let out = self.flush(Some(id)).await?;
        self.tell_lost();
        match out
            .settled
            .iter()
            .find(|(_, e, _)| *e == id)
            .map(|(_, _, f)| f)
        {
            Some(Fate::Accepted { .. }) => {
                // The server dropped any erasure request on the reopening
                // (section 9.7): so does this device.
                if reopening && self.replica.erasure_requested(&file.case_id) {
                    self.replica.set_erasure_requested(&file.case_id, false)?;
                }
                println!("{done}");
                Ok(view)
            }
            Some(Fate::Refused { why, .. }) => {
                if opening {
                    // A case whose opening the server refused does not
                    // exist: its key goes too.
                    self.replica.forget(&file.case_id)?;
                }
                bail!("NOT SAVED: the server refused this change ({why}); nothing was written")
            }
            Some(Fate::DeclineLost) => bail!(
                "{}",
                answer_lost(&file.case_id, true, self.winning_answer(&file.case_id))
            ),
            None if out.stopped.as_deref() == Some(outbox::NOT_ON_ROSTER) => {
                println!("{done} (on this device only)");
                self.tell_not_on_roster(out.waiting.max(1));
                Err(Queued.into())
            }
            None => {
                println!("{done} (on this device only)");
                let why = out
                    .stopped
                    .as_deref()
                    .map_or_else(|| "offline".to_owned(), str::to_owned);
                eprintln!(
                    "not sent yet ({why}): {} change(s) wait in this device's case outbox, this one included, and go out with the next command that reaches the server",
                    out.waiting.max(1)
                );
                Err(Queued.into())
            }
        }
    }

    /// Whether this device's replica showed `case` as a request waiting
    /// for an answer before this command's sync.
    pub(super) fn was_requested_before(&self, case: &CaseId) -> bool {
        self.requested_before.contains(case)
    }

    /// The case named by `text`: a hex prefix of its id (at least 4
    /// digits) or its reference.
    pub(super) fn case(&self, text: &str) -> anyhow::Result<CaseFile> {
        let id = resolve_case(self.replica.summaries(), text)
            .map_err(|e| self.erased_case(text).unwrap_or(e))?;
        Ok(self.replica.load(&id)?)
    }

    pub(super) fn content(&self, note: &str) -> CaseEventContent {
        CaseEventContent {
            timestamp: hotline_client::unix_now(),
            note: note.to_owned(),
            language: if note.is_empty() {
                String::new()
            } else {
                hotline_client::language()
            },
            ..Default::default()
        }
    }

    fn shown(&self, id: &[u8]) -> String {
        match <[u8; 16]>::try_from(id) {
            // This device's own events: "you", as others see its name.
            Ok(b) if DeviceId::from_bytes(b) == self.me() => {
                let own = self.device.shown(&self.me());
                let short: String = hex(id).chars().take(8).collect();
                if own == short {
                    format!("you ({short})")
                } else {
                    format!("you, {own}")
                }
            }
            Ok(b) => self.device.shown(&DeviceId::from_bytes(b)),
            Err(_) => "an id this version does not read".into(),
        }
    }

    pub(super) async fn close(self) {
        if let Some(s) = self.session {
            s.close().await;
        }
    }
}

/// The case named by `text` among `summaries`.
fn resolve_case(summaries: &[SummaryRow], text: &str) -> anyhow::Result<CaseId> {
    let t = text.trim();
    let by_ref: Vec<&SummaryRow> = summaries
        .iter()
        .filter(|s| !s.reference.is_empty() && s.reference.eq_ignore_ascii_case(t))
        .collect();
    match by_ref.as_slice() {
        [one] => return one.id().context("the case replica is damaged"),
        [] => {}
        many => bail!(
            "ambiguous: {} cases have the reference {t:?}: {}; give the case by at least {MIN_PREFIX} hex digits of its id",
            many.len(),
            many.iter()
                .map(|s| short(&s.case_id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    let hexed = t.to_ascii_lowercase();
    if hexed.len() < MIN_PREFIX || !hexed.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "no case here has the reference {t:?}; give a case's reference or at least {MIN_PREFIX} hex digits of its id, as `hotline case list` shows them"
        );
    }
    let found: Vec<&SummaryRow> = summaries
        .iter()
        .filter(|s| hex(&s.case_id).starts_with(&hexed))
        .collect();
    match found.as_slice() {
        [one] => one.id().context("the case replica is damaged"),
        [] => bail!(
            "no case known on this device starts with {hexed} (`hotline case list` shows them)"
        ),
        many => bail!(
            "{hexed} matches {} cases: give more digits of the id",
            many.len()
        ),
    }
}

/// An entity of a case (a person or a relocation) named by a hex prefix
/// of its id, or (people) by name.
fn resolve_entity(
    view: &CaseView,
    ids: &[Vec<u8>],
    what: &str,
    text: &str,
) -> anyhow::Result<Vec<u8>> {
    let t = text.trim();
    let hexed = t.to_ascii_lowercase();
    let is_prefix = hexed.len() >= MIN_PREFIX && hexed.chars().all(|c| c.is_ascii_hexdigit());
    if what == "person" {
        let name_of = |p: &Vec<u8>| {
            view.field(entity::PERSON, p, person_field::NAME)
                .and_then(Register::value)
                .and_then(Value::text)
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let listed = |ps: &[&Vec<u8>]| {
            ps.iter()
                .map(|p| format!("{} ({})", name_of(p), short(p)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let named: Vec<&Vec<u8>> = ids
            .iter()
            .filter(|p| name_of(p).eq_ignore_ascii_case(t))
            .collect();
        match named.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            many => bail!(
                "ambiguous: {} people of this case are named {t:?}: {}; give one by its id",
                many.len(),
                listed(many)
            ),
        }
        if !is_prefix {
            let lower = t.to_lowercase();
            let like: Vec<&Vec<u8>> = ids
                .iter()
                .filter(|p| !lower.is_empty() && name_of(p).to_lowercase().contains(&lower))
                .collect();
            if like.is_empty() {
                bail!(
                    "no person of this case is named {t:?} (`hotline case person list` shows them)"
                );
            }
            bail!(
                "no person of this case is named exactly {t:?}; give the full name or the id of: {}",
                listed(&like)
            );
        }
    }
    if !is_prefix {
        bail!(
            "give a {what} by at least {MIN_PREFIX} hex digits of its id{}",
            if what == "person" { " or by name" } else { "" }
        );
    }
    let found: Vec<&Vec<u8>> = ids.iter().filter(|i| hex(i).starts_with(&hexed)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no {what} of this case starts with {hexed}"),
        many => bail!(
            "{hexed} matches {} {what}s of this case: give more digits",
            many.len()
        ),
    }
}

fn text_value(t: &str) -> Option<FieldValue> {
    Some(FieldValue {
        kind: Some(FieldValueKind::Text(t.to_owned())),
    })
}

fn number_value(n: u64) -> Option<FieldValue> {
    Some(FieldValue {
        kind: Some(FieldValueKind::Number(n)),
    })
}

fn ids_value(ids: Vec<Vec<u8>>) -> Option<FieldValue> {
    Some(FieldValue {
        kind: Some(FieldValueKind::Ids(IdList {
            ids: ids.into_iter().map(Into::into).collect(),
        })),
    })
}

/// A change of `field` of (entity, id) to `value`, naming every head it
/// replaces (so it resolves a conflict).
fn change(
    view: &CaseView,
    ent: i32,
    id: &[u8],
    field: u32,
    value: Option<FieldValue>,
) -> FieldChange {
    FieldChange {
        entity: ent,
        entity_id: id.to_vec().into(),
        field,
        value,
        based_on: view
            .field(ent, id, field)
            .map(|r| {
                r.head_ids()
                    .into_iter()
                    .map(|h| h.to_vec().into())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn country(text: &str) -> anyhow::Result<String> {
    let c = text.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
        bail!("a country is its two-letter ISO 3166-1 code, such as UA or CO");
    }
    if !super::countries::is_country(&c) {
        bail!(
            "{c} is not an ISO 3166-1 country code; a country is its two-letter code, such as UA or CO"
        );
    }
    Ok(c)
}

/// A year of birth: from 1900 to this year.
fn born(text: &str) -> anyhow::Result<u64> {
    let this_year: u64 = hotline_proto::time::date(hotline_client::unix_now())
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(9999);
    text.trim()
        .parse()
        .ok()
        .filter(|y| (1900..=this_year).contains(y))
        .with_context(|| {
            format!(
                "a year of birth is a year from 1900 to {this_year}, such as 1987 (not {:?})",
                text.trim()
            )
        })
}

fn day(text: &str) -> anyhow::Result<String> {
    let t = text.trim();
    let ok = t.len() == 10
        && t.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
        && t[5..7].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && t[8..10].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d));
    if !ok {
        bail!("a date is written YYYY-MM-DD, such as 2026-05-12");
    }
    // A day the calendar has: 2026-02-30, 2026-02-29 (not a leap year)
    // and 2026-04-31 are typing slips that would go into the case as is.
    let (year, month, d) = (
        t[..4].parse::<u32>().unwrap_or(0),
        t[5..7].parse::<u32>().unwrap_or(0),
        t[8..10].parse::<u32>().unwrap_or(0),
    );
    let last = days_in_month(year, month);
    if d > last {
        bail!("{t} is not a day of the calendar: that month has {last} days");
    }
    Ok(t.to_owned())
}

/// How many days `month` (1 to 12) of `year` has, in the Gregorian calendar.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

fn word(names: &[&str], text: &str, what: &str) -> anyhow::Result<u64> {
    fields::number_of(names, text)
        .ok_or_else(|| anyhow::anyhow!("not a {what}; the {what}s are: {}", names.join(", ")))
}

/// The value a person typed for `field` of `ent`, as stored.
async fn parse_value(
    ctx: &Ctx,
    ent: i32,
    field: u32,
    text: &str,
) -> anyhow::Result<Option<FieldValue>> {
    Ok(match (ent, field) {
        (entity::CASE, case_field::COUNTRY)
        | (entity::RELOCATION, relocation_field::HOST_COUNTRY) => text_value(&country(text)?),
        (entity::CASE, case_field::RISK) => number_value(word(&RISKS, text, "risk level")?),
        (entity::CASE, case_field::PROGRAMME) => {
            number_value(word(&PROGRAMMES, text, "programme")?)
        }
        (entity::CASE, case_field::COORDINATORS) => ids_value(devices(ctx, text, false).await?),
        (entity::CASE, case_field::DEFENDERS) => ids_value(devices(ctx, text, true).await?),
        (entity::CASE, case_field::ALERTS) => {
            let mut ids = Vec::new();
            for a in text.split(',').filter(|a| !a.trim().is_empty()) {
                let n = super::names::parse_alert_id(a).map_err(anyhow::Error::msg)?;
                ids.push(n.to_be_bytes().to_vec());
            }
            ids_value(ids)
        }
        (entity::PERSON, person_field::RELATIONSHIP) => {
            number_value(word(&RELATIONSHIPS, text, "relationship")?)
        }
        (entity::PERSON, person_field::DOCUMENT) => {
            number_value(word(&DOCUMENTS, text, "travel document state")?)
        }
        (entity::PERSON, person_field::BORN) => number_value(born(text)?),
        (entity::PERSON, person_field::REMOVED) => number_value(1),
        (entity::RELOCATION, relocation_field::STAGE) => {
            bail!("a stage is changed with `hotline relocation advance`, which checks the move")
        }
        (entity::RELOCATION, relocation_field::PEOPLE) => {
            bail!("the people of a relocation are set when it starts")
        }
        (entity::RELOCATION, 5..=8 | relocation_field::HOSTED_UNTIL) => text_value(&day(text)?),
        _ => {
            if text.trim().is_empty() {
                bail!("give a value");
            }
            text_value(text.trim())
        }
    })
}

/// Devices named in a comma-separated list (`me`: this device): staff
/// devices on the roster (coordinators), or, with `defenders`, devices
/// that are not (a case's defender devices, found among the devices known
/// here and the defenders of the alerts the server lists). Each name must
/// resolve to exactly one device.
async fn devices(ctx: &Ctx, text: &str, defenders: bool) -> anyhow::Result<Vec<Vec<u8>>> {
    let roster: Vec<(DeviceId, String)> = ctx
        .roster
        .as_ref()
        .map(|r| {
            r.entries
                .iter()
                .map(|e| (e.device_id, e.role.to_string()))
                .collect()
        })
        .unwrap_or_default();
    // Staff devices are candidates either way, so that one named as a
    // defender device is refused for what it is.
    let mut candidates: Vec<DeviceId> = roster.iter().map(|(d, _)| *d).collect();
    candidates.extend(ctx.device.known_device_ids());
    if defenders && let Some(session) = &ctx.session {
        for a in session.alerts(false).await.unwrap_or_default() {
            if !candidates.contains(&a.defender) {
                candidates.push(a.defender);
            }
        }
    }
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let id = if name.eq_ignore_ascii_case("me") {
            ctx.me()
        } else {
            super::names::device_arg(&ctx.device, name, &candidates)?
        };
        let staff = roster.iter().find(|(d, _)| *d == id);
        match (defenders, staff) {
            (true, Some((_, role))) => bail!(
                "{name:?} is a staff device on the roster ({role} {}): a case's defender devices are the defenders' own; nothing was written",
                ctx.device.shown(&id)
            ),
            (false, None) if ctx.roster.is_some() => bail!(
                "{name:?} ({}) is not a staff device on the roster: coordinators are staff devices; nothing was written",
                ctx.device.shown(&id)
            ),
            _ => {}
        }
        if !out.contains(&id.as_bytes().to_vec()) {
            out.push(id.as_bytes().to_vec());
        }
    }
    Ok(out)
}

/// Sends the case key of `epoch` to every other staff device on the
/// roster (this person's other devices included), through the message
/// outbox: sent with this command's other messages, or, offline, by the
/// next command that reaches the server.
pub(super) fn send_case_key_to_staff(
    ctx: &mut Ctx,
    case: &CaseId,
    epoch: u32,
    key: &CaseKey,
) -> anyhow::Result<()> {
    if has_other_staff(ctx) == Some(false) {
        // Nobody else to send it to; staff added to a later roster get it
        // from this device then.
        return Ok(());
    }
    queue_keys(&mut ctx.device, &[(*case, epoch, key.clone())], None)?;
    Ok(())
}

/// Queues `keys` in the device's message outbox for `to` (or, `None`,
/// every other staff device on the roster), 500 an envelope.
fn queue_keys(
    device: &mut Device,
    keys: &[(CaseId, u32, CaseKey)],
    to: Option<DeviceId>,
) -> anyhow::Result<()> {
    for chunk in keys.chunks(hotline_proto::e2e::content::MAX_CASE_KEYS) {
        device.queue_case_keys(chunk, to)?;
    }
    Ok(())
}

/// Whether the roster lists a staff device other than this one (`None`:
/// no roster at hand, offline).
fn has_other_staff(ctx: &Ctx) -> Option<bool> {
    let me = ctx.me();
    ctx.roster.as_ref().map(|r| {
        r.entries
            .iter()
            .any(|e| e.device_id != me && e.role.is_staff())
    })
}

/// `hotline case open`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn open(
    state: &StateDir,
    from_alert: Option<(u64, bool)>,
    summary: &str,
    country_code: Option<&str>,
    risk: Option<&str>,
    programme: Option<&str>,
    reference: Option<&str>,
) -> anyhow::Result<()> {
    if summary.trim().is_empty() {
        bail!("give the case a summary (--summary \"…\")");
    }
    let country_code = country_code.map(country).transpose()?;
    let risk = risk.map(|r| word(&RISKS, r, "risk level")).transpose()?;
    let programme = programme
        .map(|p| word(&PROGRAMMES, p, "programme"))
        .transpose()?;
    let mut ctx = Ctx::start(state).await?;
    if let Some(r) = reference
        && ctx
            .replica
            .summaries()
            .iter()
            .any(|s| s.reference.eq_ignore_ascii_case(r.trim()))
    {
        bail!("a case with the reference {r:?} exists already; nothing was written");
    }
    let alert = match from_alert {
        Some((a, again)) => Some(alert_to_open(&ctx, a, again).await?),
        None => None,
    };
    let alert_defender = alert.as_ref().map(|a| a.defender);
    let from_alert = from_alert.map(|(a, _)| a);
    // The alert's SOS texts this device reads go into the case, so that
    // staff who cannot open the alert's envelope (added to the roster
    // after the defender's device sealed it) read them there.
    let alert_texts = match &alert {
        Some(a) => copied_alert_texts(&mut ctx, a)?,
        None => Vec::new(),
    };
    let case_id = CaseId::from_bytes(new_id()?);
    let key = CaseKey::generate(&mut SystemRandomness);
    let mut file = CaseFile::new(case_id);
    file.keys.insert(1, key.clone());
    ctx.replica.save(&file)?;
    let view = CaseView::new(case_id);
    let mut content = ctx.content("");
    let mut changes = vec![change(
        &view,
        entity::CASE,
        &[],
        case_field::SUMMARY,
        text_value(summary.trim()),
    )];
    if let Some(r) = reference {
        changes.push(change(
            &view,
            entity::CASE,
            &[],
            case_field::REFERENCE,
            text_value(r.trim()),
        ));
    }
    if let Some(c) = country_code {
        changes.push(change(
            &view,
            entity::CASE,
            &[],
            case_field::COUNTRY,
            text_value(&c),
        ));
    }
    if let Some(r) = risk {
        changes.push(change(
            &view,
            entity::CASE,
            &[],
            case_field::RISK,
            number_value(r),
        ));
    }
    if let Some(p) = programme {
        changes.push(change(
            &view,
            entity::CASE,
            &[],
            case_field::PROGRAMME,
            number_value(p),
        ));
    }
    changes.push(change(
        &view,
        entity::CASE,
        &[],
        case_field::COORDINATORS,
        ids_value(vec![ctx.me().as_bytes().to_vec()]),
    ));
    if let Some(a) = from_alert {
        changes.push(change(
            &view,
            entity::CASE,
            &[],
            case_field::ALERTS,
            ids_value(vec![a.to_be_bytes().to_vec()]),
        ));
        if let Some(defender) = alert_defender {
            changes.push(change(
                &view,
                entity::CASE,
                &[],
                case_field::DEFENDERS,
                ids_value(vec![defender.as_bytes().to_vec()]),
            ));
        }
    }
    content.changes = changes;
    content.opening = Some(CaseOpening {
        from_alert: from_alert.unwrap_or(0),
        alert_texts,
        ..Default::default()
    });
    send_case_key_to_staff(&mut ctx, &case_id, 1, &key)?;
    let done = format!("case {} opened", short(case_id.as_bytes()));
    let control = CaseControl {
        state: Some(CaseState::Open),
        ..CaseControl::default()
    };
    let r = ctx.write(&file, control, content, &done).await;
    ctx.close().await;
    r.map(|_| ())
}

/// The defender device of alert `a`, which a new case is opened from:
/// the alert must exist (asked of the server: offline, refused), and no
/// case on this device may link it already, unless `again`.
async fn alert_to_open(
    ctx: &Ctx,
    a: u64,
    again: bool,
) -> anyhow::Result<hotline_proto::alert::AlertInfo> {
    let Some(session) = &ctx.session else {
        bail!(
            "--from-alert needs the server, to check that alert {a} exists and find its defender; this device is offline. Nothing was written: try again once online"
        );
    };
    let alerts = session
        .alerts(false)
        .await
        .with_context(|| format!("alert {a} could not be checked; nothing was written"))?;
    let Some(alert) = alerts.iter().find(|x| x.id == a) else {
        bail!(
            "no alert {a} visible to this device (`hotline alerts --all` lists them); nothing was written"
        );
    };
    if !again {
        let linked = a.to_be_bytes();
        for s in ctx.replica.summaries() {
            let Some(id) = s.id() else { continue };
            let Ok(view) = ctx.replica.view(&id) else {
                continue;
            };
            let links = view
                .field(entity::CASE, &[], case_field::ALERTS)
                .is_some_and(|r| {
                    r.heads().iter().any(|v| {
                        v.value
                            .ids()
                            .unwrap_or_default()
                            .iter()
                            .any(|i| i.as_slice() == linked)
                    })
                });
            if links {
                bail!(
                    "case {} already links alert {a} (`hotline case show {}`); nothing was written. To open another case for it all the same: add --again",
                    short(&s.case_id),
                    short(&s.case_id)
                );
            }
        }
    }
    Ok(alert.clone())
}

/// The SOS texts of alert `a` this device reads, to copy into the case
/// opened from it ([`super::alert_copy::texts`]), saying how many, or
/// that this device reads none (a colleague who does can open the case).
fn copied_alert_texts(
    ctx: &mut Ctx,
    a: &hotline_proto::alert::AlertInfo,
) -> anyhow::Result<Vec<hotline_proto::case::content::AlertText>> {
    ctx.device.link_alert(a)?;
    let history = ctx.device.history()?;
    let (texts, short) = super::alert_copy::texts(&history, a);
    match texts.len() {
        0 if a.origin == hotline_proto::alert::AlertOrigin::Sos => eprintln!(
            "note: this device cannot read the SOS text of alert {}, so the case does not hold it; a colleague who reads it can open the case from the alert instead (or note its words: hotline case note …)",
            a.id
        ),
        0 => {}
        n => println!(
            "the case holds the {} of alert {} (`hotline case show`), for staff who cannot read the alert itself",
            if n == 1 {
                "SOS text".to_owned()
            } else {
                format!("{n} SOS texts")
            },
            a.id
        ),
    }
    if short > 0 {
        eprintln!(
            "note: {short} SOS text(s) of alert {} were too long to copy whole; every text stays in `hotline messages --alert {}` on this device",
            a.id, a.id
        );
    }
    Ok(texts)
}

/// Filters of `hotline case list`.
#[derive(Debug, Default)]
pub(super) struct ListFilter {
    pub(super) state: Option<String>,
    pub(super) stage: Option<String>,
    pub(super) coordinator: Option<String>,
    pub(super) country: Option<String>,
    pub(super) erasable: bool,
}

/// `hotline case list`: from the replica only.
pub(super) fn list(state: &StateDir, filter: &ListFilter) -> anyhow::Result<()> {
    let device = open_device(state)?;
    if !device.profile().role()?.is_staff() {
        bail!("cases are kept by staff devices; this device is a defender's");
    }
    let replica = open_replica(&device)?;
    let wanted_state = match filter
        .state
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("requested") => Some(CaseState::Requested),
        Some("open") => Some(CaseState::Open),
        Some("closed") => Some(CaseState::Closed),
        Some(_) => bail!("a case state is requested, open or closed"),
    };
    let stage = filter
        .stage
        .as_deref()
        .map(str::parse::<Stage>)
        .transpose()?;
    let coordinator = match filter.coordinator.as_deref() {
        None => None,
        Some(c) if c.eq_ignore_ascii_case("me") => Some(device.identity().device_id()),
        Some(c) => Some(super::names::device_arg(
            &device,
            c,
            &device.known_device_ids(),
        )?),
    };
    let country_code = filter.country.as_deref().map(country).transpose()?;
    let now = hotline_client::unix_now();
    let retention = match replica.retention_secs() {
        Some(r) => r,
        None if filter.erasable => bail!(
            "this device has not synced cases yet, so it does not know the server's retention period: run any other case command while online first"
        ),
        None => 0,
    };
    let rows: Vec<&SummaryRow> = replica
        .summaries()
        .iter()
        // The statistics ledger is not a case anyone works on: `case
        // stats` is its view.
        .filter(|s| !s.ledger)
        .filter(|s| wanted_state.is_none_or(|w| s.state() == Some(w)))
        .filter(|s| stage.is_none_or(|st| s.stages.contains(&st.number())))
        .filter(|s| coordinator.is_none_or(|c| s.coordinators.iter().any(|x| x == c.as_bytes())))
        .filter(|s| {
            country_code
                .as_ref()
                .is_none_or(|c| s.country.split(" | ").any(|x| x == c))
        })
        .filter(|s| {
            !filter.erasable
                || (s.state() == Some(CaseState::Closed)
                    && !s.legal_hold
                    && !s.ledger
                    // Its erasure is asked for by a device that reads it
                    // (the statistics tombstone is made of its content).
                    && s.unreadable == 0
                    && s.closed_at.saturating_add(retention) <= now)
                || s.id().is_some_and(|c| replica.erasure_requested(&c))
        })
        .collect();
    print!("{}", list_lines(&rows, now));
    if filter.erasable {
        for s in &rows {
            if s.id().is_some_and(|c| replica.erasure_requested(&c)) {
                let id = short(&s.case_id);
                println!(
                    "case {id}: its erasure was asked for and waits for a second coordinator or admin (`hotline case erase {id} --confirm`)"
                );
            }
        }
    }
    Ok(())
}

/// `hotline case show`.
pub(super) async fn show(state: &StateDir, case: &str) -> anyhow::Result<()> {
    let mut ctx = Ctx::start(state).await?;
    let file = ctx.case(case)?;
    // The list reads the summary: a stale one is refolded now.
    if let Err(e) = ctx.replica.refold_if_stale(&file.case_id) {
        eprintln!("WARNING: the case list could not be refreshed: {e}");
    }
    let mut view = ctx.replica.view(&file.case_id)?;
    super::case_links::add_defender_side(&ctx.device, &mut view)?;
    let who = |i: &[u8]| ctx.shown(i);
    let waiting = ctx.replica.waiting(&view.case_id).len();
    let mut lines = view_lines(&who, &view, waiting).into_iter();
    if let Some(heading) = lines.next() {
        println!("{heading}");
    }
    // The alert's SOS texts copied into the case when it was opened from
    // it: what staff who cannot read the alert itself read of it.
    if let Some(o) = view.opening.as_ref().filter(|o| !o.alert_texts.is_empty()) {
        println!(
            "  opened from alert #{}, whose SOS text(s) it holds:",
            o.from_alert
        );
        for l in super::alert_copy::lines(o.from_alert, &o.alert_texts) {
            println!("{l}");
        }
    }
    for l in lines {
        println!("{l}");
    }
    // The duress rule, said where staff look before they share: the open
    // alerts its defender must never hear about (asked of the server).
    let defenders = super::case_links::linked_defenders(&view);
    if !defenders.is_empty()
        && let Some(session) = &ctx.session
    {
        match super::coerced::open_hidden_alerts(session, &defenders).await {
            Ok(open) => {
                for a in &open {
                    println!(
                        "  WARNING: {}. Nothing of this case is shared with them until it is resolved",
                        super::coerced::alert_words(&ctx.device, a)
                    );
                }
            }
            Err(e) => eprintln!("WARNING: the open alerts could not be checked: {e}"),
        }
    }
    ctx.close().await;
    Ok(())
}

/// The case commands that write one event.
#[derive(Debug)]
pub(super) enum Write {
    Note(String),
    Assign(Vec<String>),
    Close(String),
    Reopen,
    Set {
        field: String,
        value: String,
    },
    PersonAdd {
        name: String,
        relationship: String,
        born: Option<String>,
        document: Option<String>,
        needs: Option<String>,
    },
    PersonEdit {
        person: String,
        field: String,
        value: String,
    },
    RelocationStart {
        people: String,
        origin: String,
        to: String,
        city: String,
        depart: Option<String>,
        arrive: Option<String>,
        accommodation: Option<String>,
    },
    Advance {
        relocation: String,
        stage: String,
        note: Option<String>,
    },
}

/// `hotline case note|assign|close|reopen|set|person add|person edit`,
/// `hotline relocation start|advance`.
pub(super) async fn write(state: &StateDir, case: &str, what: Write) -> anyhow::Result<()> {
    write_allowing(state, case, what, Allow::default()).await
}

/// [`write`], with what the person allowed explicitly.
pub(super) async fn write_allowing(
    state: &StateDir,
    case: &str,
    what: Write,
    allow: Allow,
) -> anyhow::Result<()> {
    // What can be checked before unlocking is checked first.
    if let Write::Advance { stage, .. } = &what {
        stage.parse::<Stage>()?;
    }
    let mut ctx = Ctx::start(state).await?;
    ctx.allow = allow;
    let r = write_in(&mut ctx, case, what).await;
    ctx.close().await;
    r?.1
}

/// [`write`] with `ctx` started: the case declined if this write declined
/// a defender's request (its first staff event closes it), and what became
/// of the write (`Err`: refused, or `Queued`).
pub(super) async fn write_in(
    ctx: &mut Ctx,
    case: &str,
    what: Write,
) -> anyhow::Result<(Option<CaseId>, anyhow::Result<()>)> {
    let mut file = ctx.case(case)?;
    let view = ctx.replica.view(&file.case_id)?;
    if view.ledger {
        // The server refuses closing it, and a change would only wait in
        // the outbox: the ledger holds tombstones and nothing else.
        bail!(
            "the statistics ledger is never closed or changed: it holds only what stays of erased cases (`hotline case stats` shows it); nothing was written"
        );
    }
    let mut control = CaseControl::default();
    // The case as the person named it: its reference (what they typed,
    // most often) with the start of its id.
    let short_id = match view.case_text(case_field::REFERENCE) {
        r if r.is_empty() => short(file.case_id.as_bytes()),
        r => format!("{r} ({})", short(file.case_id.as_bytes())),
    };
    let (mut content, mut done) = match what {
        Write::Note(text) => {
            if text.trim().is_empty() {
                bail!("the note is empty; nothing was written");
            }
            (ctx.content(&text), format!("note added to case {short_id}"))
        }
        Write::Assign(names) => {
            let ids = devices(ctx, &names.join(","), false).await?;
            let mut c = ctx.content("");
            c.changes.push(change(
                &view,
                entity::CASE,
                &[],
                case_field::COORDINATORS,
                ids_value(ids),
            ));
            (c, format!("coordinators of case {short_id} set"))
        }
        Write::Close(reason) => {
            if reason.trim().is_empty() {
                bail!("give the reason for closing (--reason \"…\")");
            }
            if view.state == Some(CaseState::Closed) {
                bail!("case {short_id} is closed already");
            }
            control.state = Some(CaseState::Closed);
            (ctx.content(&reason), format!("case {short_id} closed"))
        }
        Write::Reopen => {
            if view.state != Some(CaseState::Closed) {
                bail!("case {short_id} is not closed");
            }
            control.state = Some(CaseState::Open);
            // Staff who joined while it was closed were not sent its keys.
            let all: Vec<_> = file
                .keys
                .iter()
                .map(|(e, k)| (file.case_id, *e, k.clone()))
                .collect();
            if !all.is_empty() && has_other_staff(ctx) != Some(false) {
                queue_keys(&mut ctx.device, &all, None)?;
            }
            (ctx.content(""), format!("case {short_id} reopened"))
        }
        Write::Set { field, value } => {
            let (n, spec) = fields::field_by_name(entity::CASE, &field).ok_or_else(|| {
                anyhow::anyhow!(
                    "a case has no field {field:?}; its fields are: {}",
                    (1..=8)
                        .filter_map(|n| fields::field_spec(entity::CASE, n))
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let v = parse_value(ctx, entity::CASE, n, &value).await?;
            if n == case_field::DEFENDERS && !ctx.allow.drop_requester {
                refuse_dropping_requester(ctx, &view, &short_id, v.as_ref())?;
            }
            let mut c = ctx.content("");
            c.changes.push(change(&view, entity::CASE, &[], n, v));
            (c, format!("{} of case {short_id} set", spec.name))
        }
        Write::PersonAdd {
            name,
            relationship,
            born,
            document,
            needs,
        } => {
            if name.trim().is_empty() {
                bail!("give the person's name (--name)");
            }
            let p = new_id()?.to_vec();
            let mut c = ctx.content("");
            c.changes.push(change(
                &view,
                entity::PERSON,
                &p,
                person_field::NAME,
                text_value(name.trim()),
            ));
            c.changes.push(change(
                &view,
                entity::PERSON,
                &p,
                person_field::RELATIONSHIP,
                parse_value(
                    ctx,
                    entity::PERSON,
                    person_field::RELATIONSHIP,
                    &relationship,
                )
                .await?,
            ));
            for (field, given) in [
                (person_field::BORN, born),
                (person_field::DOCUMENT, document),
                (person_field::NEEDS, needs),
            ] {
                if let Some(g) = given {
                    c.changes.push(change(
                        &view,
                        entity::PERSON,
                        &p,
                        field,
                        parse_value(ctx, entity::PERSON, field, &g).await?,
                    ));
                }
            }
            (c, format!("person {} added to case {short_id}", short(&p)))
        }
        Write::PersonEdit {
            person,
            field,
            value,
        } => {
            let p = resolve_entity(&view, &view.people, "person", &person)?;
            let (n, spec) = fields::field_by_name(entity::PERSON, &field).ok_or_else(|| {
                anyhow::anyhow!("a person has no field {field:?}; the fields are: name, relationship, born, document, needs, removed")
            })?;
            let v = parse_value(ctx, entity::PERSON, n, &value).await?;
            let mut c = ctx.content("");
            c.changes.push(change(&view, entity::PERSON, &p, n, v));
            (c, format!("{} of person {} set", spec.name, short(&p)))
        }
        Write::RelocationStart {
            people,
            origin,
            to,
            city,
            depart,
            arrive,
            accommodation,
        } => {
            let mut covered = Vec::new();
            for p in people.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                covered.push(resolve_entity(&view, &view.people, "person", p)?);
            }
            if covered.is_empty() {
                bail!(
                    "give the people the relocation covers (--people P1,P2: `hotline case person list` shows them)"
                );
            }
            let r = new_id()?.to_vec();
            let mut c = ctx.content("");
            c.changes.push(change(
                &view,
                entity::RELOCATION,
                &r,
                relocation_field::PEOPLE,
                ids_value(covered),
            ));
            c.changes.push(change(
                &view,
                entity::RELOCATION,
                &r,
                relocation_field::ORIGIN,
                text_value(origin.trim()),
            ));
            c.changes.push(change(
                &view,
                entity::RELOCATION,
                &r,
                relocation_field::HOST_COUNTRY,
                text_value(&country(&to)?),
            ));
            c.changes.push(change(
                &view,
                entity::RELOCATION,
                &r,
                relocation_field::HOST_CITY,
                text_value(city.trim()),
            ));
            let depart = depart.as_deref().map(day).transpose()?;
            let arrive = arrive.as_deref().map(day).transpose()?;
            if let (Some(d), Some(a)) = (&depart, &arrive)
                && a < d
            {
                bail!(
                    "the planned arrival ({a}) is before the planned departure ({d}); nothing was written"
                );
            }
            for (field, given) in [
                (relocation_field::PLANNED_DEPARTURE, depart),
                (relocation_field::PLANNED_ARRIVAL, arrive),
            ] {
                if let Some(g) = given {
                    c.changes.push(change(
                        &view,
                        entity::RELOCATION,
                        &r,
                        field,
                        text_value(&day(&g)?),
                    ));
                }
            }
            if let Some(a) = accommodation {
                c.changes.push(change(
                    &view,
                    entity::RELOCATION,
                    &r,
                    relocation_field::ACCOMMODATION,
                    text_value(a.trim()),
                ));
            }
            c.changes.push(change(
                &view,
                entity::RELOCATION,
                &r,
                relocation_field::STAGE,
                number_value(u64::from(Stage::Requested.number())),
            ));
            (
                c,
                format!(
                    "relocation {} started in case {short_id} (requested)",
                    short(&r)
                ),
            )
        }
        Write::Advance {
            relocation: rel,
            stage,
            note,
        } => {
            let to: Stage = stage.parse()?;
            let r = resolve_entity(&view, &view.relocations, "relocation", &rel)?;
            let mut c = ctx.content(note.as_deref().unwrap_or(""));
            // Naming every head of the stage (as `change` does), this move
            // also settles a conflict of stages (protocol.md 9.5).
            c.changes.push(change(
                &view,
                entity::RELOCATION,
                &r,
                relocation_field::STAGE,
                number_value(u64::from(to.number())),
            ));
            let done = match view.stage(&r) {
                Some(from) => {
                    relocation::transition(from, to)?;
                    format!("relocation {} moved from {from} to {to}", short(&r))
                }
                None => {
                    let heads: Vec<Stage> = view
                        .field(entity::RELOCATION, &r, relocation_field::STAGE)
                        .map(|reg| {
                            reg.heads()
                                .into_iter()
                                .filter_map(|v| v.value.number())
                                .filter_map(|n| u8::try_from(n).ok())
                                .filter_map(Stage::from_number)
                                .collect()
                        })
                        .unwrap_or_default();
                    let shown = show_field(
                        &|i| ctx.shown(i),
                        &view,
                        entity::RELOCATION,
                        &r,
                        relocation_field::STAGE,
                    )
                    .unwrap_or_default();
                    if heads.len() < 2 {
                        bail!(
                            "relocation {} has no stage this version can move from ({shown}); nothing was written",
                            short(&r)
                        );
                    }
                    let how = if heads.contains(&to) {
                        format!("{to} chosen")
                    } else if let Some(from) = heads
                        .iter()
                        .find(|f| relocation::transition(**f, to).is_ok())
                    {
                        format!("moved on from {from} to {to}")
                    } else {
                        bail!(
                            "relocation {}'s stage is in conflict ({shown}): {to} is neither one of those stages nor a move allowed from one of them; nothing was written. Settle it by advancing to one of them, or to a stage that follows one",
                            short(&r)
                        );
                    };
                    format!(
                        "relocation {}'s stage conflict ({shown}) settled: {how}",
                        short(&r)
                    )
                }
            };
            (c, done)
        }
    };
    let mut declined = false;
    if view.state == Some(CaseState::Requested) && file.events.is_empty() {
        super::case_links::complete_request(&ctx.device, &view, &mut file, &mut content)?;
        let taking_on = control.state != Some(CaseState::Closed);
        let c = short(file.case_id.as_bytes());
        if taking_on && file.request.as_ref().is_some_and(|r| r.text.is_none()) {
            if !ctx.allow.without_words {
                bail!(
                    "this device does not hold the words of request {short_id}: {WORDS_NOT_HERE}. A colleague who reads them should take it on; nothing was written. To take it on without them: hotline case note {c} \"…\" --without-words (or case set … --without-words)"
                );
            }
            let said = "taken on without the request's words: this device did not hold them, so they were not copied into the case";
            content.note = if content.note.is_empty() {
                said.to_owned()
            } else {
                format!("{}\n({said})", content.note)
            };
            content.language = hotline_client::language();
        }
        answer_request(ctx, &mut file, &mut control, &mut content)?;
        declined = control.state == Some(CaseState::Closed);
        done = if declined {
            format!("request {short_id} declined: {done}")
        } else {
            format!("request {short_id} accepted: the case is open; {done}")
        };
    }
    let r = ctx.write(&file, control, content, &done).await;
    Ok((declined.then_some(file.case_id), r.map(|_| ())))
}

/// A change of "defender devices" to `new` that drops the device that
/// made the case's request is refused: the requester's shares would go
/// to someone else. Names who would be dropped and who added.
fn refuse_dropping_requester(
    ctx: &Ctx,
    view: &CaseView,
    short_id: &str,
    new: Option<&FieldValue>,
) -> anyhow::Result<()> {
    let Some(requester) = view.request.as_ref().map(|r| r.defender) else {
        return Ok(());
    };
    let new: Vec<Vec<u8>> = match new.and_then(|v| v.kind.as_ref()) {
        Some(FieldValueKind::Ids(l)) => l.ids.iter().map(|d| d.to_vec()).collect(),
        _ => Vec::new(),
    };
    if new.iter().any(|d| d.as_slice() == requester.as_bytes()) {
        return Ok(());
    }
    let linked = super::case_links::linked_defenders(view);
    let added: Vec<String> = new
        .iter()
        .filter(|d| !linked.iter().any(|l| l.as_bytes() == d.as_slice()))
        .map(|d| ctx.shown(d))
        .collect();
    let added = if added.is_empty() {
        String::new()
    } else {
        format!(" and add {}", added.join(", "))
    };
    let who = ctx.shown(requester.as_bytes());
    let c = short(view.case_id.as_bytes());
    bail!(
        "this would drop {who}, the device that made the request of case {short_id}{added}: what is shared would no longer go to {who}. Nothing was written. If that is meant: hotline case set {c} \"defender devices\" … --drop-requester"
    )
}

/// The first staff event of a case a defender requested opens it (or,
/// closing it, declines the request): this device draws the case key of
/// epoch 1, and the event copies the request so that staff who join later
/// read it.
fn answer_request(
    ctx: &mut Ctx,
    file: &mut CaseFile,
    control: &mut CaseControl,
    content: &mut CaseEventContent,
) -> anyhow::Result<()> {
    if file.keys.is_empty() {
        let key = CaseKey::generate(&mut SystemRandomness);
        send_case_key_to_staff(ctx, &file.case_id, 1, &key)?;
        file.keys.insert(1, key);
    }
    if control.state.is_none() {
        control.state = Some(CaseState::Open);
    }
    if let Some(r) = &file.request {
        content.opening = Some(CaseOpening {
            request_digest: r.envelope_digest.to_vec().into(),
            // Only a request this device holds from that device
            // (`complete_request` kept its words): the server's word
            // alone is not copied into a signed event.
            requested_by: if r.text.is_some() {
                r.defender.as_bytes().to_vec().into()
            } else {
                Default::default()
            },
            requested_at: r.at,
            request_text: r.text.clone().unwrap_or_default(),
            requested_programme: content
                .opening
                .as_ref()
                .map_or(0, |o| o.requested_programme),
            ..Default::default()
        });
    }
    Ok(())
}

/// `hotline case person list`.
pub(super) async fn people(state: &StateDir, case: &str) -> anyhow::Result<()> {
    let ctx = Ctx::start(state).await?;
    let file = ctx.case(case)?;
    let view = ctx.replica.view(&file.case_id)?;
    if view.people.is_empty() {
        println!("no people in this case yet (`hotline case person add`)");
    }
    for p in &view.people {
        println!("{}", person_line(&|i| ctx.shown(i), &view, p));
    }
    ctx.close().await;
    Ok(())
}

/// `hotline relocation show`: one relocation, or every relocation of the
/// case when none is named (a tired person types the case alone).
pub(super) async fn relocation_show(
    state: &StateDir,
    case: &str,
    rel: Option<&str>,
) -> anyhow::Result<()> {
    let ctx = Ctx::start(state).await?;
    let file = ctx.case(case)?;
    let view = ctx.replica.view(&file.case_id)?;
    let shown: Vec<_> = match rel {
        Some(rel) => vec![resolve_entity(&view, &view.relocations, "relocation", rel)?],
        None => view.relocations.to_vec(),
    };
    if shown.is_empty() {
        println!(
            "case {case} has no relocation yet (`hotline relocation start {case} --people … --origin … --to … --city …`)"
        );
    }
    for (i, r) in shown.iter().enumerate() {
        if i > 0 {
            println!();
        }
        for l in relocation_lines(&|i| ctx.shown(i), &view, r) {
            println!("{}", l.trim_start());
        }
        if let Some(s) = view.stage(r) {
            let next = relocation::allowed_next(s);
            if !next.is_empty() {
                println!(
                    "next: {}",
                    next.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    for w in view.warnings.iter() {
        println!("WARNING: {}", w.text);
    }
    ctx.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a walk-through: 2026-02-30, 2026-02-29 and 2026-04-31
    /// started relocations and showed as planned dates.
    #[test]
    fn a_date_must_be_a_day_of_the_calendar() {
        for ok in [
            "2026-05-12",
            "2028-02-29",
            "2000-02-29",
            "2026-04-30",
            "2026-12-31",
        ] {
            assert_eq!(day(ok).expect(ok), ok);
        }
        for bad in [
            "2026-02-30",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-06-31",
        ] {
            let e = day(bad).expect_err(bad).to_string();
            assert!(e.contains("is not a day of the calendar"), "{bad}: {e}");
        }
        assert!(day("2026-13-01").is_err());
    }

    fn row(id: u8, reference: &str) -> SummaryRow {
        SummaryRow {
            case_id: [id; 16].to_vec(),
            reference: reference.into(),
            ..Default::default()
        }
    }

    #[test]
    fn cases_are_named_by_a_unique_prefix_of_four_digits_or_more_or_their_reference() {
        let rows = vec![row(0xab, "C-2026-0042"), row(0xac, ""), row(0xa1, "")];
        assert_eq!(
            resolve_case(&rows, "abab").ok(),
            Some(CaseId::from_bytes([0xab; 16]))
        );
        assert_eq!(
            resolve_case(&rows, "c-2026-0042").ok(),
            Some(CaseId::from_bytes([0xab; 16]))
        );
        let short = resolve_case(&rows, "aba")
            .expect_err("too short")
            .to_string();
        assert!(short.contains("at least 4 hex digits"), "{short}");
        let none = resolve_case(&rows, "ffff")
            .expect_err("unknown")
            .to_string();
        assert!(
            none.contains("no case known on this device starts with ffff"),
            "{none}"
        );
        let rows = vec![row(0xab, ""), {
            let mut r = row(0xab, "");
            r.case_id[15] = 0;
            r
        }];
        let many = resolve_case(&rows, "abab")
            .expect_err("ambiguous")
            .to_string();
        assert!(many.contains("matches 2 cases"), "{many}");
        // Two cases sharing a reference: named by it, both are listed.
        let rows = vec![row(0xab, "C-7"), row(0xcd, "c-7")];
        let both = resolve_case(&rows, "C-7")
            .expect_err("ambiguous")
            .to_string();
        assert!(
            both.contains("ambiguous: 2 cases have the reference \"C-7\"")
                && both.contains("abababab")
                && both.contains("cdcdcdcd"),
            "{both}"
        );
    }

    /// Issue 12, second review, Y point 5: the event recording a reply of
    /// the longest words a client sends (MAX_CASE_TEXT_LEN), with every
    /// other field at its largest, fits one case event (and seals); the
    /// check that skips a reply too long to record measures the same.
    #[test]
    fn a_reply_of_the_longest_words_fits_the_event_that_records_it() {
        use hotline_proto::e2e::envelope::MAX_CASE_TEXT_LEN;
        let record = |len: usize| CaseEventContent {
            timestamp: u64::MAX,
            reply: Some(hotline_proto::case::content::DefenderReply {
                defender: vec![0xff; 16].into(),
                envelope_digest: vec![0xff; 32].into(),
                sent_at: u64::MAX,
                text: "x".repeat(len),
                language: "abcdefgh-abcdefgh-abcdefgh-abcdefg".into(),
            }),
            ..Default::default()
        };
        let longest = prost::Message::encoded_len(&record(MAX_CASE_TEXT_LEN));
        assert!(longest <= MAX_EVENT_CONTENT_LEN, "{longest}");
        let key = CaseKey::from_bytes([1; 32]);
        let author = hotline_proto::IdentityKeyPair::from_seed(&[2; 32]);
        hotline_proto::case::seal::seal(
            &author,
            &key,
            &hotline_proto::case::seal::EventDraft {
                case_id: CaseId::from_bytes([3; 16]),
                event_id: [4; 16],
                roster_version: u64::MAX,
                epoch: u32::MAX,
                control: CaseControl::default(),
            },
            &record(MAX_CASE_TEXT_LEN),
            &mut SystemRandomness,
        )
        .expect("sealed");
        // Past what fits, the check that skips it says so.
        let over = MAX_EVENT_CONTENT_LEN - (longest - MAX_CASE_TEXT_LEN) + 1;
        assert!(prost::Message::encoded_len(&record(over)) > MAX_EVENT_CONTENT_LEN);
    }
}
