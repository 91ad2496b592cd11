//! The head file: the newest signed checkpoint, kept outside the engine.
//!
//! sled treats a damaged message in its log as the torn end of a crash and
//! silently drops everything after it. A chain that simply ends earlier
//! looks valid, so the newest checkpoint is also written here, after the
//! engine has made it durable: at start-up a chain that ends before this
//! checkpoint, or differs from it, is reported as damaged.
//!
//! Two fixed slots are written alternately, each a stored checkpoint
//! ([`super::record::CHECKPOINT_LEN`] bytes); a torn write spoils at most
//! the slot being written, and the reader takes the valid slot with the
//! higher sequence number.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::fs::{Fs, Open};
use super::record::{CHECKPOINT_LEN, Checkpoint};

/// The size of a whole head file: two slots.
pub const HEAD_FILE_BYTES: u64 = 2 * CHECKPOINT_LEN as u64;

/// The head file.
#[derive(Debug)]
pub struct HeadFile {
    file: File,
    next_slot: u64,
    fs: Fs,
}

/// What the head file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// A new store: nothing recorded yet.
    Empty,
    /// The newest valid checkpoint.
    Checkpoint(Checkpoint),
    /// Bytes are there but no slot verifies.
    Damaged,
}

impl HeadFile {
    /// Opens (creating if `create`) the head file and reads it, keeping
    /// only slots whose signature verifies under `public_key`.
    pub fn open(
        path: &Path,
        create: bool,
        public_key: &[u8],
        store_id: &[u8; 16],
    ) -> std::io::Result<(Option<HeadFile>, Head)> {
        Self::open_with_fs(path, create, public_key, store_id, super::fs::real())
    }

    /// [`HeadFile::open`], opening for writing and writing through `fs`.
    pub fn open_with_fs(
        path: &Path,
        create: bool,
        public_key: &[u8],
        store_id: &[u8; 16],
        fs: Fs,
    ) -> std::io::Result<(Option<HeadFile>, Head)> {
        if !create && !path.exists() {
            return Ok((None, Head::Empty));
        }
        let mut file = if create {
            fs.open(path, Open::Create)?
        } else {
            File::open(path)?
        };
        let len = file.metadata()?.len();
        if len > HEAD_FILE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is {len} bytes, more than a head file holds ({HEAD_FILE_BYTES} bytes): \
                     the file is damaged and was not read",
                    path.display()
                ),
            ));
        }
        let mut bytes = Vec::new();
        (&mut file).take(HEAD_FILE_BYTES).read_to_end(&mut bytes)?;
        let slots: Vec<Option<Checkpoint>> = bytes
            .chunks(CHECKPOINT_LEN)
            .take(2)
            .map(|b| Checkpoint::from_bytes(b).filter(|cp| cp.verify(public_key, store_id)))
            .collect();
        let best = slots
            .iter()
            .enumerate()
            .filter_map(|(i, cp)| cp.map(|cp| (i, cp)))
            .max_by_key(|(_, cp)| cp.seq);
        let head = match best {
            Some((_, cp)) => Head::Checkpoint(cp),
            None if bytes.is_empty() => Head::Empty,
            None => Head::Damaged,
        };
        // Overwrite the other slot next.
        let next_slot = best.map_or(0, |(i, _)| 1 - i as u64);
        Ok((
            create.then_some(HeadFile {
                file,
                next_slot,
                fs,
            }),
            head,
        ))
    }

    /// Records `cp` durably.
    pub fn write(&mut self, cp: &Checkpoint) -> std::io::Result<()> {
        self.fs.write_at(
            &self.file,
            &cp.to_bytes(),
            self.next_slot * CHECKPOINT_LEN as u64,
        )?;
        self.fs.sync_data(&self.file)?;
        self.next_slot = 1 - self.next_slot;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_file_larger_than_two_slots_is_named_with_its_size_and_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chain.head");
        let f = File::create(&path).expect("create");
        f.set_len(200 << 30).expect("sparse");
        for create in [false, true] {
            let err = HeadFile::open(&path, create, &[0; 32], &[0; 16]).expect_err("too large");
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(&(200u64 << 30).to_string()), "{text}");
        }
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 200 << 30);
        // Two slots (or less) are read as before.
        f.set_len(HEAD_FILE_BYTES).expect("len");
        let (_, head) = HeadFile::open(&path, false, &[0; 32], &[0; 16]).expect("reads");
        assert_eq!(head, Head::Damaged);
    }
}
