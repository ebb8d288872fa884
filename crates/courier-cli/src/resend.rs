//! `courier produce --failed-out FILE` and `--uncertain-out FILE`: the records that did
//! not make it, written back in the input's own format so that the same command, with
//! the file as its input, sends them again.
//!
//! **Format.** Each record is written as the raw bytes it was read as (key, key
//! delimiter, value: exactly what the input held between two record delimiters), then
//! the record delimiter. Reading that back with the same flags gives the same key and
//! value: a record without a key delimiter is written without one (its key, if any, was
//! `-k`'s, which the same flags give again); an empty key or value that `-Z` sent as null
//! is written empty, which `-Z` turns into null again; headers (`-H`) and the partition
//! (`-p`) are the same for every record, so the same flags add them again. Neither a key
//! nor a record can contain the record delimiter (the input was split on it), and a key
//! cannot contain the key delimiter (it was split at the first one), so nothing needs
//! escaping. One exception: the last record of an input without a final delimiter can
//! end with the start of a multi-byte delimiter that overlaps itself (`a;` before `;;`);
//! written with the delimiter after it, it would read back as a different record. Such
//! a record is still written, and reported with a warning.
//!
//! **Which file.** A failed record whose error says it is not in the log
//! ([`Persistence::NotPersisted`]) goes to the failed file; one that may be
//! ([`Persistence::PossiblyPersisted`]: `UNRESOLVED`, `UNRESOLVED_AFTER_EPOCH_BUMP`, a
//! fatal error, ...) to the uncertain file; delivered records to neither, and no record
//! to both. A dead-lettered record goes by the persistence of the error behind it.
//!
//! **Order and memory.** Records are written in input order, so resending a file keeps
//! the order of each key. Reports arrive out of input order (partitions complete
//! independently), so [`Reorder`] keeps one byte per record from the oldest record
//! without a report to the newest read, plus the bytes of the failed records waiting for
//! an earlier report. Until its report, a record's bytes are held by its delivery
//! callback (shared with the producer's copy, not duplicated: `buffer.memory` bounds
//! them); a delivered record's bytes are dropped when its report arrives. So memory is
//! bounded by the records in flight plus the failed records themselves, and one byte for
//! each record delivered while an earlier one still waits (a partition that stays
//! unreachable holds the head for at most `delivery.timeout.ms` plus
//! `delivery.resolution.timeout.ms`).

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

use bytes::Bytes;
use courier::{Persistence, ProducerError};

/// Which file a failed record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// `--failed-out`: certainly not in the log; sending it again cannot duplicate it.
    Failed,
    /// `--uncertain-out`: possibly in the log; sending it again may duplicate it.
    Uncertain,
}

impl Dest {
    /// The file for a record whose report is `e`; `None` for one in the log (a failed
    /// report is never [`Persistence::Persisted`], but such a record must not be resent).
    pub fn of(e: &ProducerError) -> Option<Dest> {
        match e.persistence() {
            Persistence::NotPersisted => Some(Dest::Failed),
            Persistence::PossiblyPersisted => Some(Dest::Uncertain),
            Persistence::Persisted => None,
        }
    }
}

/// One output file: where it is, what went into it, and its first write error.
pub struct Sink<W: Write> {
    /// The flag that named it (`--failed-out`), for messages.
    pub flag: &'static str,
    /// Its path as given, for messages.
    pub path: String,
    out: W,
    /// Records written.
    pub written: u64,
    /// Records that could not be written (after a write error, nothing more is tried).
    pub lost: u64,
    /// The first write error.
    pub error: Option<String>,
}

impl<W: Write> Sink<W> {
    /// A sink for `flag`'s file at `path`, writing to `out`.
    pub fn new(flag: &'static str, path: String, out: W) -> Self {
        Sink {
            flag,
            path,
            out,
            written: 0,
            lost: 0,
            error: None,
        }
    }

    fn write(&mut self, raw: &[u8], delim: &[u8]) {
        if self.error.is_some() {
            self.lost += 1;
            return;
        }
        match self
            .out
            .write_all(raw)
            .and_then(|()| self.out.write_all(delim))
        {
            Ok(()) => self.written += 1,
            Err(e) => {
                self.error = Some(e.to_string());
                self.lost += 1;
            }
        }
    }

    /// Flushes what is buffered; `finish` runs after it (e.g. `File::sync_all`, so that
    /// an error the disk reports late is seen too).
    fn close(&mut self, finish: impl FnOnce(&mut W) -> std::io::Result<()>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.out.flush().and_then(|()| finish(&mut self.out)) {
            self.error = Some(e.to_string());
            // Records written into a buffer that could not be flushed may be lost too: say
            // so by not counting any as safely written.
            self.lost += self.written;
            self.written = 0;
        }
    }

    /// The underlying writer.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Puts reports (which arrive in any order) back into input order and writes each
/// failed record to its sink once every record read before it has its report.
pub struct Reorder<W: Write> {
    delim: Vec<u8>,
    /// Input number of `reported[0]`.
    base: u64,
    /// Whether each record from `base` on has its report.
    reported: VecDeque<bool>,
    /// Failed records with a report, waiting for an earlier record's.
    waiting: BTreeMap<u64, (Dest, Bytes)>,
    /// `--failed-out`, if given.
    pub failed: Option<Sink<W>>,
    /// `--uncertain-out`, if given.
    pub uncertain: Option<Sink<W>>,
    /// Records written that will not read back as the same record (see the module).
    pub warnings: Vec<String>,
}

/// At most this many warnings are kept (only the last record of each input can cause one).
const MAX_WARNINGS: usize = 16;

impl<W: Write> Reorder<W> {
    /// Writes records followed by `delim` to the sinks given.
    pub fn new(delim: Vec<u8>, failed: Option<Sink<W>>, uncertain: Option<Sink<W>>) -> Self {
        Reorder {
            delim,
            base: 0,
            reported: VecDeque::new(),
            waiting: BTreeMap::new(),
            failed,
            uncertain,
            warnings: Vec::new(),
        }
    }

    /// The report of record `seq` (0 for the first record read): `None` when it was
    /// delivered (or is in the log), else its file and raw bytes. Each record is reported
    /// once.
    pub fn report(&mut self, seq: u64, out: Option<(Dest, Bytes)>) {
        let Some(i) = seq.checked_sub(self.base) else {
            debug_assert!(false, "record {seq} reported twice");
            return;
        };
        let i = i as usize;
        if i >= self.reported.len() {
            self.reported.resize(i + 1, false);
        }
        self.reported[i] = true;
        if let Some(out) = out {
            self.waiting.insert(seq, out);
        }
        while self.reported.front() == Some(&true) {
            self.reported.pop_front();
            if self
                .waiting
                .first_key_value()
                .is_some_and(|(k, _)| *k == self.base)
            {
                let (_, (dest, raw)) = self.waiting.pop_first().expect("just seen");
                self.write(self.base, dest, &raw);
            }
            self.base += 1;
        }
    }

    fn write(&mut self, seq: u64, dest: Dest, raw: &[u8]) {
        let sink = match dest {
            Dest::Failed => self.failed.as_mut(),
            Dest::Uncertain => self.uncertain.as_mut(),
        };
        let Some(sink) = sink else { return };
        sink.write(raw, &self.delim);
        if !reads_back(raw, &self.delim) && self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(format!(
                "record {} (the last of its input) ends with the start of the delimiter: \
                 written to {} ({}), but it reads back as a different record",
                seq + 1,
                sink.path,
                sink.flag
            ));
        }
    }

    /// Writes the failed records still waiting (behind a record that never got a
    /// report, which only a bug in courier can cause), in input order, and closes the
    /// sinks with `finish` (see [`Sink`]).
    pub fn finish(&mut self, mut finish: impl FnMut(&mut W) -> std::io::Result<()>) {
        for (seq, (dest, raw)) in std::mem::take(&mut self.waiting) {
            self.write(seq, dest, &raw);
        }
        self.reported.clear();
        for sink in [self.failed.as_mut(), self.uncertain.as_mut()]
            .into_iter()
            .flatten()
        {
            sink.close(&mut finish);
        }
    }
}

/// Whether `raw` followed by `delim` reads back as `raw`: the first `delim` in it is the
/// one written after `raw`. Always true for a record that was followed by a delimiter
/// in the input; only a self-overlapping multi-byte delimiter can make it false.
pub fn reads_back(raw: &[u8], delim: &[u8]) -> bool {
    let keep = delim.len() - 1;
    let tail = &raw[raw.len().saturating_sub(keep)..];
    let mut joined = tail.to_vec();
    joined.extend_from_slice(delim);
    joined
        .windows(delim.len())
        .position(|w| w == delim)
        .is_some_and(|at| at == tail.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sink(flag: &'static str) -> Sink<Vec<u8>> {
        Sink::new(flag, format!("{flag}.txt"), Vec::new())
    }

    fn not_persisted() -> ProducerError {
        ProducerError::UnknownTopic { topic: "t".into() }
    }

    fn possibly_persisted() -> ProducerError {
        ProducerError::DeliveryTimeout {
            topic: "t".into(),
            partition: 0,
            timeout: Duration::from_secs(1),
            last_error: None,
            last_cause: None,
            persistence: Persistence::PossiblyPersisted,
        }
    }

    #[test]
    fn the_file_follows_the_persistence_of_the_error() {
        assert_eq!(Dest::of(&not_persisted()), Some(Dest::Failed));
        assert_eq!(Dest::of(&possibly_persisted()), Some(Dest::Uncertain));
        assert_eq!(
            Dest::of(&ProducerError::Fatal {
                code: None,
                reason: "x".into()
            }),
            Some(Dest::Uncertain)
        );
    }

    #[test]
    fn each_failed_record_goes_to_exactly_one_file_in_input_order() {
        let mut r = Reorder::new(
            b"\n".to_vec(),
            Some(sink("--failed-out")),
            Some(sink("--uncertain-out")),
        );
        let rec = |i: u64| Bytes::from(format!("k{i}:v{i}"));
        // Records 0..8: 1, 4 and 6 not persisted, 2 and 7 possibly, the rest delivered;
        // reports arrive out of order.
        let outcome = |i: u64| match i {
            1 | 4 | 6 => Dest::of(&not_persisted()).map(|d| (d, rec(i))),
            2 | 7 => Dest::of(&possibly_persisted()).map(|d| (d, rec(i))),
            _ => None,
        };
        for i in [3, 1, 2, 6, 7] {
            r.report(i, outcome(i));
        }
        // Nothing is written while record 0 has no report.
        assert_eq!(r.failed.as_ref().unwrap().written, 0);
        r.report(0, outcome(0));
        // 0..=3 are done; 4 has no report yet, so 6 and 7 wait.
        assert_eq!(r.failed.as_ref().unwrap().written, 1);
        assert_eq!(r.uncertain.as_ref().unwrap().written, 1);
        r.report(5, outcome(5));
        r.report(4, outcome(4));
        r.finish(|_| Ok(()));
        assert!(r.waiting.is_empty() && r.reported.is_empty());
        let failed = r.failed.take().unwrap();
        let uncertain = r.uncertain.take().unwrap();
        assert_eq!((failed.written, uncertain.written), (3, 2));
        assert_eq!(failed.into_inner(), b"k1:v1\nk4:v4\nk6:v6\n");
        assert_eq!(uncertain.into_inner(), b"k2:v2\nk7:v7\n");
    }

    #[test]
    fn without_a_sink_for_its_kind_a_record_is_not_written_anywhere() {
        let mut r = Reorder::new(b"\n".to_vec(), Some(sink("--failed-out")), None);
        r.report(0, Some((Dest::Uncertain, Bytes::from("maybe"))));
        r.report(1, Some((Dest::Failed, Bytes::from("no"))));
        r.finish(|_| Ok(()));
        assert_eq!(r.failed.take().unwrap().into_inner(), b"no\n");
    }

    #[test]
    fn a_record_without_a_report_does_not_hold_back_the_end() {
        let mut r = Reorder::new(b"\n".to_vec(), Some(sink("--failed-out")), None);
        r.report(1, Some((Dest::Failed, Bytes::from("b"))));
        r.report(3, Some((Dest::Failed, Bytes::from("d"))));
        assert_eq!(r.failed.as_ref().unwrap().written, 0);
        r.finish(|_| Ok(()));
        assert_eq!(r.failed.take().unwrap().into_inner(), b"b\nd\n");
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_is_kept_and_every_record_after_it_counted_lost() {
        let mut r = Reorder::new(
            b"\n".to_vec(),
            Some(Sink::new("--failed-out", "f".into(), Broken)),
            None,
        );
        r.report(0, Some((Dest::Failed, Bytes::from("a"))));
        r.report(1, Some((Dest::Failed, Bytes::from("b"))));
        r.finish(|_| Ok(()));
        let s = r.failed.as_ref().unwrap();
        assert_eq!((s.written, s.lost), (0, 2));
        assert_eq!(s.error.as_deref(), Some("disk full"));
    }

    #[test]
    fn a_late_error_at_close_counts_the_buffered_records_lost() {
        let mut r = Reorder::new(b"\n".to_vec(), Some(sink("--failed-out")), None);
        r.report(0, Some((Dest::Failed, Bytes::from("a"))));
        r.finish(|_| Err(std::io::Error::other("EIO at fsync")));
        let s = r.failed.as_ref().unwrap();
        assert_eq!((s.written, s.lost), (0, 1));
        assert_eq!(s.error.as_deref(), Some("EIO at fsync"));
    }

    #[test]
    fn records_read_back_unless_they_end_with_an_overlapping_delimiter_start() {
        assert!(reads_back(b"abc", b"\n"));
        assert!(reads_back(b"", b"\n"));
        assert!(reads_back(b"x;y", b";;"));
        assert!(reads_back(b"xa", b"ab"));
        assert!(!reads_back(b"x;", b";;"));
        assert!(!reads_back(b"xab", b"aba"));
        let mut r = Reorder::new(b";;".to_vec(), Some(sink("--failed-out")), None);
        r.report(0, Some((Dest::Failed, Bytes::from("x;"))));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("record 1"), "{:?}", r.warnings);
    }
}
