//! The segment file format: how the log's stored records and checkpoints
//! are framed in append-only files. Pure functions over bytes; the engine
//! that reads and writes the files is [`super::segments`].
//!
//! ```text
//! segment = header | frame*
//! header  = "HOTLSEG1" | version (u32 LE) = 1 | store id (16) | first seq (u64 LE)
//!           | checksum (16) = SHA-256(everything before it)[..16]
//! frame   = len (u32 LE, of payload) | kind (u8: 1 record, 2 checkpoint) | seq (u64 LE)
//!           | header checksum (8) = SHA-256("frame" | len | kind | seq)[..8]
//!           | checksum (16) = SHA-256(kind | seq | len | payload)[..16] | payload
//! ```
//!
//! The header checksum is what lets a torn write be told from damage: a
//! frame is *torn* (a write that never completed) only if its header is
//! whole and valid and the file ends before its payload does, or if fewer
//! bytes than a frame header are left, or if only zero bytes are left. A
//! header whose checksum fails (a flipped bit in `len`, say) is damage.
//!
//! The payload is the stored record (or checkpoint) exactly as the log
//! seals (or signs) it: framing adds nothing the chain depends on.

use std::io::{BufRead, BufReader, Read};
use std::ops::Range;

use ring::digest;

/// The first bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"HOTLSEG1";
/// The segment format version.
pub const VERSION: u32 = 1;
/// Bytes of a checksum (a truncated SHA-256).
pub const CHECKSUM_LEN: usize = 16;
/// Bytes of a segment header.
pub const HEADER_LEN: usize = 8 + 4 + 16 + 8 + CHECKSUM_LEN;
/// Bytes of a frame header's own checksum.
pub const HEADER_CHECKSUM_LEN: usize = 8;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 4 + 1 + 8 + HEADER_CHECKSUM_LEN + CHECKSUM_LEN;
/// Frame kind of a stored record.
pub const KIND_RECORD: u8 = 1;
/// Frame kind of a stored checkpoint.
pub const KIND_CHECKPOINT: u8 = 2;
/// The largest payload a frame may declare: a sealed record of
/// [`super::MAX_RECORD_LEN`] plaintext with its header and tag, with room
/// to spare. A longer declared length is damage, never a torn write.
pub const MAX_PAYLOAD: usize = super::MAX_RECORD_LEN + 4096;

/// A segment's file name: `seg-<first seq, 20 digits>.hlog`.
pub fn file_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.hlog")
}

/// The first sequence number a segment file name stands for.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".hlog")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn checksum(parts: &[&[u8]]) -> [u8; CHECKSUM_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&ctx.finish().as_ref()[..CHECKSUM_LEN]);
    out
}

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The store the segment belongs to.
    pub store_id: [u8; 16],
    /// The sequence number of its first record.
    pub first_seq: u64,
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.store_id);
        b.extend_from_slice(&self.first_seq.to_le_bytes());
        let sum = checksum(&[&b]);
        b.extend_from_slice(&sum);
        b
    }

    /// Reads a header from the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<SegmentHeader, &'static str> {
        let h = bytes
            .get(..HEADER_LEN)
            .ok_or("the segment is shorter than its header")?;
        if &h[..8] != MAGIC {
            return Err("the segment header does not start with HOTLSEG1");
        }
        let (body, sum) = h.split_at(HEADER_LEN - CHECKSUM_LEN);
        if checksum(&[body]) != sum {
            return Err("the segment header's checksum does not match");
        }
        let version = u32::from_le_bytes(body[8..12].try_into().map_err(|_| "short")?);
        if version != VERSION {
            return Err("the segment has an unknown format version");
        }
        let mut store_id = [0u8; 16];
        store_id.copy_from_slice(&body[12..28]);
        let first_seq = u64::from_le_bytes(body[28..36].try_into().map_err(|_| "short")?);
        Ok(SegmentHeader {
            store_id,
            first_seq,
        })
    }
}

fn header_checksum(len: &[u8; 4], kind: u8, seq: &[u8; 8]) -> [u8; HEADER_CHECKSUM_LEN] {
    let sum = checksum(&[b"frame", len, &[kind], seq]);
    let mut out = [0u8; HEADER_CHECKSUM_LEN];
    out.copy_from_slice(&sum[..HEADER_CHECKSUM_LEN]);
    out
}

/// Appends the frame of `payload` to `out`.
pub fn encode_frame(kind: u8, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let sum = checksum(&[&[kind], &seq.to_le_bytes(), &len.to_le_bytes(), payload]);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&header_checksum(
        &len.to_le_bytes(),
        kind,
        &seq.to_le_bytes(),
    ));
    out.extend_from_slice(&sum);
    out.extend_from_slice(payload);
}

/// One frame found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// [`KIND_RECORD`] or [`KIND_CHECKPOINT`].
    pub kind: u8,
    /// The record's (or checkpoint's) sequence number.
    pub seq: u64,
    /// Where the frame starts in the file.
    pub offset: u64,
    /// Where its payload lies in the file.
    pub payload: Range<usize>,
}

/// How the frames of a segment end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// At the end of the file, after a whole frame.
    Clean,
    /// In an incomplete frame (a whole, valid frame header, and the file
    /// ends before the frame's declared end; or fewer bytes than a frame
    /// header) or in zero bytes only, starting at `offset`: a write that
    /// never completed. Only acceptable at the end of the newest segment.
    Torn {
        /// Where the incomplete bytes start.
        offset: u64,
    },
    /// At a frame that is whole but wrong, at `offset`.
    Bad {
        /// Where the bad frame starts.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Reads the frames of a segment's `bytes` after its header, stopping at
/// the first that is incomplete or wrong.
pub fn parse_frames(bytes: &[u8]) -> (Vec<Frame>, End) {
    let start = HEADER_LEN.min(bytes.len());
    let mut reader = FrameReader::new(&bytes[start..], start as u64);
    let mut frames = Vec::new();
    loop {
        match reader.next_frame() {
            Ok(Ok(frame)) => frames.push(frame),
            Ok(Err(end)) => return (frames, end),
            // Reading a slice never fails.
            Err(_) => return (frames, End::Clean),
        }
    }
}

/// What [`salvage_frames`] finds in a damaged segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvage {
    /// The whole, valid frames, in order.
    pub frames: Vec<Frame>,
    /// Frames whose header checks out (so their length is known) but whose
    /// payload does not: their sequence number (as the checked header
    /// says) and where the frame starts.
    pub damaged: Vec<(u64, u64)>,
    /// How the frames end: at the end of the file, or where a frame's
    /// header is damaged or cut short (nothing after it can be split).
    pub end: End,
}

/// For saying what a recovery gives up: reads the frames of a segment's
/// `bytes` after its header like [`parse_frames`], but goes on past a
/// frame whose header checksum is valid and whose whole declared length
/// is in the file while its payload's checksum (or kind) is wrong: the
/// header gives its length, so the frames after it are still found.
/// Only a damaged or incomplete header stops it.
pub fn salvage_frames(bytes: &[u8]) -> Salvage {
    let mut pos = HEADER_LEN.min(bytes.len());
    let mut frames = Vec::new();
    let mut damaged = Vec::new();
    loop {
        let mut reader = FrameReader::new(&bytes[pos..], pos as u64);
        let end = match reader.next_frame() {
            Ok(Ok(frame)) => {
                pos = frame.payload.end;
                frames.push(frame);
                continue;
            }
            Ok(Err(end)) => end,
            // Reading a slice never fails.
            Err(_) => End::Clean,
        };
        if let End::Bad { offset, .. } = end
            && let Some((seq, next)) = skippable(bytes, offset as usize)
        {
            damaged.push((seq, offset));
            pos = next;
            continue;
        }
        return Salvage {
            frames,
            damaged,
            end,
        };
    }
}

/// If the frame at `offset` has a valid header checksum and a possible
/// length that the file holds whole: its sequence number and where the
/// next frame starts.
fn skippable(bytes: &[u8], offset: usize) -> Option<(u64, usize)> {
    let head = bytes.get(offset..offset.checked_add(FRAME_HEADER_LEN)?)?;
    let len_bytes: [u8; 4] = head[0..4].try_into().ok()?;
    let seq_bytes: [u8; 8] = head[5..13].try_into().ok()?;
    if header_checksum(&len_bytes, head[4], &seq_bytes) != head[13..13 + HEADER_CHECKSUM_LEN] {
        return None;
    }
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    let next = offset + FRAME_HEADER_LEN + len;
    (next <= bytes.len()).then_some((u64::from_le_bytes(seq_bytes), next))
}

/// Bytes a [`FrameReader`] reads at a time (its buffer, and the chunk a
/// payload is checksummed in): the memory a scan needs, however long the
/// segment or its frames.
pub const READ_BUFFER: usize = 64 * 1024;

/// Reads the frames of a segment one at a time from a stream, with a
/// buffer of [`READ_BUFFER`] bytes: payloads are checksummed as they pass
/// and never held. It tells a torn write from damage exactly as
/// [`parse_frames`] does (the rules are in the module documentation).
#[derive(Debug)]
pub struct FrameReader<R: Read> {
    inner: BufReader<R>,
    pos: u64,
    chunk: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// Reads frames from `inner`, whose first byte is at `pos` in the file
    /// (just after the segment header).
    pub fn new(inner: R, pos: u64) -> FrameReader<R> {
        FrameReader {
            inner: BufReader::with_capacity(READ_BUFFER, inner),
            pos,
            chunk: Vec::new(),
        }
    }

    /// Where the next frame would start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next whole, valid frame, or how the frames end; an error only
    /// if the stream cannot be read.
    pub fn next_frame(&mut self) -> std::io::Result<Result<Frame, End>> {
        let offset = self.pos;
        let mut head = [0u8; FRAME_HEADER_LEN];
        let got = self.fill(&mut head)?;
        if got == 0 {
            return Ok(Err(End::Clean));
        }
        let mut zeros = head[..got].iter().all(|b| *b == 0);
        let verdict = self.frame_after(offset, &head, got, &mut zeros)?;
        match verdict {
            Ok(frame) => Ok(Ok(frame)),
            // Zero bytes only from here to the end of the file: a file
            // extended whose data never reached the disk.
            Err(_) if zeros && self.rest_is_zero()? => Ok(Err(End::Torn { offset })),
            Err(end) => Ok(Err(end)),
        }
    }

    fn frame_after(
        &mut self,
        offset: u64,
        head: &[u8; FRAME_HEADER_LEN],
        got: usize,
        zeros: &mut bool,
    ) -> std::io::Result<Result<Frame, End>> {
        if got < FRAME_HEADER_LEN {
            return Ok(Err(End::Torn { offset }));
        }
        let len_bytes: [u8; 4] = [head[0], head[1], head[2], head[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let kind = head[4];
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&head[5..13]);
        let seq = u64::from_le_bytes(seq_bytes);
        let sums = &head[13..];
        let bad = |reason| Ok(Err(End::Bad { offset, reason }));
        if header_checksum(&len_bytes, kind, &seq_bytes) != sums[..HEADER_CHECKSUM_LEN] {
            return bad("a frame header's checksum does not match");
        }
        if len > MAX_PAYLOAD {
            return bad("a frame declares an impossible length");
        }
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&[kind]);
        ctx.update(&seq_bytes);
        ctx.update(&len_bytes);
        let mut left = len;
        self.chunk.resize(READ_BUFFER.min(len), 0);
        while left > 0 {
            let want = left.min(self.chunk.len());
            let mut chunk = std::mem::take(&mut self.chunk);
            let read = self.fill(&mut chunk[..want]);
            if let Ok(n) = read {
                ctx.update(&chunk[..n]);
                *zeros &= chunk[..n].iter().all(|b| *b == 0);
            }
            self.chunk = chunk;
            let n = read?;
            left -= n;
            if n < want {
                return Ok(Err(End::Torn { offset }));
            }
        }
        if ctx.finish().as_ref()[..CHECKSUM_LEN] != sums[HEADER_CHECKSUM_LEN..] {
            return bad("a frame's checksum does not match");
        }
        if kind != KIND_RECORD && kind != KIND_CHECKPOINT {
            return bad("a frame has an unknown kind");
        }
        let start = offset as usize + FRAME_HEADER_LEN;
        Ok(Ok(Frame {
            kind,
            seq,
            offset,
            payload: start..start + len,
        }))
    }

    /// Reads into `buf` until it is full or the stream ends; the count.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    /// Whether every byte left in the stream is zero (reads them).
    fn rest_is_zero(&mut self) -> std::io::Result<bool> {
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(true);
            }
            if buf.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            let n = buf.len();
            self.inner.consume(n);
            self.pos += n as u64;
        }
    }
}

/// Reads a segment file's header; returns it (or why it does not parse)
/// and the file's length now, up to which [`read_file_frames`] reads.
pub fn read_file_header(
    file: &std::fs::File,
) -> std::io::Result<(Result<SegmentHeader, &'static str>, u64)> {
    let len = file.metadata()?.len();
    let mut head = [0u8; HEADER_LEN];
    let got = FrameReader::new(file, 0).fill(&mut head[..len.min(HEADER_LEN as u64) as usize])?;
    Ok((SegmentHeader::parse(&head[..got]), len))
}

/// Reads a segment file's frames after its header with a [`FrameReader`],
/// up to `len` (bytes appended since are left for the next read), calling
/// `each` for every whole, valid frame; returns how the frames end.
/// `each` stops the read by returning an error, which is returned.
pub fn read_file_frames(
    file: &std::fs::File,
    len: u64,
    mut each: impl FnMut(&Frame) -> std::io::Result<()>,
) -> std::io::Result<End> {
    let mut stream = file;
    std::io::Seek::seek(&mut stream, std::io::SeekFrom::Start(HEADER_LEN as u64))?;
    let rest = len.saturating_sub(HEADER_LEN as u64);
    let mut reader = FrameReader::new(Read::take(stream, rest), HEADER_LEN as u64);
    loop {
        match reader.next_frame()? {
            Ok(frame) => each(&frame)?,
            Err(end) => return Ok(end),
        }
    }
}

/// How the frames of the segment file at `path` end, and its length, read
/// with a bounded buffer. A header that does not parse is treated as
/// [`parse_frames`] treats it: the frames are read from after it.
pub fn end_of_file(path: &std::path::Path) -> std::io::Result<(End, u64)> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len <= HEADER_LEN as u64 {
        return Ok((End::Clean, len));
    }
    let end = read_file_frames(&file, len, |_| Ok(()))?;
    Ok((end, len))
}

/// Whether the file holds fewer bytes than a segment header or zero
/// bytes only (read with a bounded buffer).
pub fn is_short_or_zero(file: &std::fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len < HEADER_LEN as u64 {
        return Ok(true);
    }
    let mut stream = file;
    std::io::Seek::seek(&mut stream, std::io::SeekFrom::Start(0))?;
    FrameReader::new(Read::take(stream, len), 0).rest_is_zero()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_goes_past_a_damaged_payload_and_stops_at_a_damaged_header() {
        let mut bytes = SegmentHeader {
            store_id: [1; 16],
            first_seq: 1,
        }
        .to_bytes();
        let mut starts = Vec::new();
        for seq in 1..=4u64 {
            starts.push(bytes.len());
            encode_frame(KIND_RECORD, seq, &[seq as u8; 40], &mut bytes);
        }
        // A flipped payload byte in record 2: 3 and 4 are still found.
        let mut flipped = bytes.clone();
        flipped[starts[1] + FRAME_HEADER_LEN + 5] ^= 1;
        assert!(matches!(parse_frames(&flipped).1, End::Bad { .. }));
        let s = salvage_frames(&flipped);
        assert_eq!(
            s.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        assert_eq!(s.damaged, vec![(2, starts[1] as u64)]);
        assert_eq!(s.end, End::Clean);
        // A flipped header byte in record 2: nothing after it splits.
        let mut header = bytes.clone();
        header[starts[1] + 1] ^= 1;
        let s = salvage_frames(&header);
        assert_eq!(s.frames.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1]);
        assert!(s.damaged.is_empty());
        assert!(matches!(s.end, End::Bad { offset, .. } if offset == starts[1] as u64));
    }

    fn segment(frames: &[(u8, u64, &[u8])]) -> Vec<u8> {
        let mut b = SegmentHeader {
            store_id: [7; 16],
            first_seq: 1,
        }
        .to_bytes();
        for (kind, seq, payload) in frames {
            encode_frame(*kind, *seq, payload, &mut b);
        }
        b
    }

    #[test]
    fn frames_read_back_as_written() {
        let b = segment(&[(KIND_RECORD, 1, b"one"), (KIND_CHECKPOINT, 1, b"cp")]);
        assert_eq!(
            SegmentHeader::parse(&b).expect("header"),
            SegmentHeader {
                store_id: [7; 16],
                first_seq: 1
            }
        );
        let (frames, end) = parse_frames(&b);
        assert_eq!(end, End::Clean);
        assert_eq!(frames.len(), 2);
        assert_eq!(&b[frames[0].payload.clone()], b"one");
        assert_eq!(frames[1].kind, KIND_CHECKPOINT);
        assert_eq!(file_name(42), "seg-00000000000000000042.hlog");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("seg-42.hlog"), None);
    }

    #[test]
    fn an_incomplete_or_zero_tail_is_torn_and_a_whole_bad_frame_is_damage() {
        let good = segment(&[(KIND_RECORD, 1, b"one"), (KIND_RECORD, 2, b"two")]);
        let second = parse_frames(&good).0[1].offset;
        // Cut anywhere inside the last frame: torn at its start.
        for cut in second as usize + 1..good.len() {
            let (frames, end) = parse_frames(&good[..cut]);
            assert_eq!(frames.len(), 1, "cut at {cut}");
            assert_eq!(end, End::Torn { offset: second });
        }
        // Zeros after the last frame (a file extended but never written).
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(
            parse_frames(&zeros).1,
            End::Torn {
                offset: good.len() as u64
            }
        );
        // Any flipped bit of a whole last frame is damage, never a torn
        // write: its length included (one that makes the frame reach past
        // the end of the file fails the header checksum).
        for at in second as usize..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                let (frames, end) = parse_frames(&bad);
                assert_eq!(frames.len(), 1, "flip at {at}");
                assert!(
                    matches!(end, End::Bad { offset, .. } if offset == second),
                    "flip of bit {bit} at {at}: {end:?}"
                );
            }
        }
        // A length raised past the end of the file, header checksum and all
        // (only a header that is valid and cut short is torn).
        let mut longer = good.clone();
        let at = second as usize;
        longer[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(
            parse_frames(&longer).1,
            End::Bad {
                reason: "a frame header's checksum does not match",
                ..
            }
        ));
        // The last frame's bytes zeroed from its start to the end of the
        // file look like a file extended whose data never reached the disk:
        // torn here; the checkpoint in chain.head is what tells them apart
        // (see the log's tests).
        let mut zeroed = good.clone();
        for b in &mut zeroed[at..] {
            *b = 0;
        }
        assert_eq!(parse_frames(&zeroed).1, End::Torn { offset: second });
        // Zeroed from inside its header on: damage.
        let mut zeroed = good.clone();
        for b in &mut zeroed[at + 6..] {
            *b = 0;
        }
        assert!(matches!(parse_frames(&zeroed).1, End::Bad { .. }));
        // A flipped byte in a header.
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert!(SegmentHeader::parse(&bad).is_err());
    }
    /// What reading the file at `path` with the bounded reader finds.
    fn from_file(path: &std::path::Path) -> (Vec<Frame>, End) {
        let file = std::fs::File::open(path).expect("open");
        let (header, len) = read_file_header(&file).expect("header");
        header.expect("valid header");
        let mut frames = Vec::new();
        let end = read_file_frames(&file, len, |f| {
            frames.push(f.clone());
            Ok(())
        })
        .expect("read");
        (frames, end)
    }

    #[test]
    fn a_file_is_read_with_a_bounded_buffer_and_judged_as_its_bytes_are() {
        // Payloads longer than the buffer (checksummed in chunks), and
        // tails that cross its boundaries.
        let big = vec![0x5a; READ_BUFFER + 4097];
        let good = segment(&[
            (KIND_RECORD, 1, &big[..]),
            (KIND_RECORD, 2, b"two"),
            (KIND_CHECKPOINT, 2, &big[..READ_BUFFER]),
            (KIND_RECORD, 3, &big[..]),
        ]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name(1));
        let last = parse_frames(&good).0[3].offset as usize;
        let mut cases: Vec<Vec<u8>> = vec![good.clone()];
        // Cut inside the last payload, at and around the buffer's size.
        for cut in [
            last + 3,
            last + FRAME_HEADER_LEN + READ_BUFFER,
            good.len() - 1,
        ] {
            cases.push(good[..cut].to_vec());
        }
        // Zeros after the last frame, longer than the buffer.
        let mut zeros = good.clone();
        zeros.extend_from_slice(&vec![0; READ_BUFFER * 3 + 5]);
        cases.push(zeros.clone());
        // ... with one byte that is not zero at the very end: damage.
        *zeros.last_mut().expect("byte") = 1;
        cases.push(zeros);
        // The last frame zeroed from its start on, and a flipped bit deep
        // in its payload.
        let mut zeroed = good.clone();
        zeroed[last..].fill(0);
        cases.push(zeroed);
        let mut flipped = good.clone();
        flipped[last + FRAME_HEADER_LEN + READ_BUFFER + 9] ^= 4;
        cases.push(flipped);
        for (i, bytes) in cases.iter().enumerate() {
            std::fs::write(&path, bytes).expect("write");
            let expected = parse_frames(bytes);
            assert_eq!(from_file(&path), expected, "case {i}");
            assert_eq!(
                end_of_file(&path).expect("end"),
                (expected.1.clone(), bytes.len() as u64),
                "case {i}"
            );
        }
        std::fs::write(&path, &good).expect("write");
        let (frames, end) = from_file(&path);
        assert_eq!(end, End::Clean);
        assert_eq!(frames.len(), 4);
        assert_eq!(&good[frames[0].payload.clone()], &big[..]);
        assert!(matches!(parse_frames(&cases[5]).1, End::Bad { .. }));
        assert!(matches!(parse_frames(&cases[4]).1, End::Torn { .. }));
        assert!(matches!(parse_frames(&cases[7]).1, End::Bad { .. }));
        // A file of zeros, or shorter than a header: nothing was written.
        std::fs::write(&path, vec![0; READ_BUFFER + 100]).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        assert!(read_file_header(&file).expect("read").0.is_err());
        assert!(is_short_or_zero(&file).expect("read"));
        std::fs::write(&path, [1, 2, 3]).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        assert!(is_short_or_zero(&file).expect("read"));
        let mut header_then_zeros = good[..HEADER_LEN].to_vec();
        header_then_zeros.extend_from_slice(&[0; 10]);
        std::fs::write(&path, header_then_zeros).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        assert!(!is_short_or_zero(&file).expect("read"));
    }
}
