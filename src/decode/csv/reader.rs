//! CSV records one at a time through csv_core, within `format.limits`: one reusable buffer holds
//! the record being read (its fields unquoted, one after another) and one its field ends, so
//! memory is one record whatever the file's width or length.
//!
//! A record's first read takes all its fields at once. A record that a read leaves unfinished
//! (at the end of a buffer, or when the record buffer must grow) is read on one field per call,
//! so that where each field starts stays known for errors without keeping the input.

use crate::config::{CsvConfig, LimitsConfig};
use crate::decode::{DecodeError, Lead, Limit, Position};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use std::io::{BufRead, ErrorKind};

/// How far a record or a line may run past its limit while a kept field is still being read,
/// so that a field too long is refused as such rather than as its record or line.
const SLACK: u64 = 4 << 20;
/// The record buffer's first size; it doubles as records need, up to `max_record` and SLACK.
const FIRST_BUFFER: usize = 64 << 10;
/// The field ends' first number for a header; they double up to `max_columns` and one.
const FIRST_ENDS: usize = 64;

/// What a record may hold and which of its fields are kept (UTF-8 is checked in all).
#[derive(Debug, Clone, Copy)]
pub(super) enum Width<'a> {
    /// The header: up to `max_columns` fields, all kept.
    Header,
    /// A row under a header of `kept.len()` names; `kept[i]`: field `i` is read or captured.
    Row(&'a [bool]),
}

impl Width<'_> {
    /// The most fields the record may have.
    fn most(self, max_columns: usize) -> usize {
        match self {
            Width::Header => max_columns,
            Width::Row(kept) => kept.len(),
        }
    }

    fn keeps(self, field: usize) -> bool {
        match self {
            Width::Header => true,
            Width::Row(kept) => kept.get(field).copied().unwrap_or(false),
        }
    }
}

/// One record, as read: its fields unquoted, and where it is.
pub(super) struct Fields<'a> {
    out: &'a [u8],
    ends: &'a [usize],
    position: Position,
}

impl Fields<'_> {
    /// How many fields the record has.
    pub(super) fn count(&self) -> usize {
        self.ends.len()
    }

    /// Field `i` unquoted (valid UTF-8), `None` past the record's last field.
    pub(super) fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        self.out.get(start..end)
    }

    /// The record's number (rows only, 1-based), line and first byte.
    pub(super) fn position(&self) -> Position {
        self.position
    }
}

/// A CSV stream read record by record.
pub(super) struct CsvReader<R> {
    input: R,
    state: State,
}

impl<R: BufRead> CsvReader<R> {
    /// Reads `input` in `csv`'s dialect within `limits`; `start` is the file offset (and the
    /// newlines before it) of the input's first byte, for positions in errors.
    pub(super) fn new(input: R, csv: &CsvConfig, limits: &LimitsConfig, start: Lead) -> CsvReader<R> {
        CsvReader { input, state: State::new(csv, limits, start) }
    }

    /// The next record, `None` at the end of the input.
    pub(super) fn next_record(&mut self, width: Width<'_>) -> Result<Option<Fields<'_>>, DecodeError> {
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(DecodeError::reading("cannot read or decompress", e)),
            };
            let (used, step) = self.state.step(chunk, width)?;
            self.input.consume(used);
            match step {
                Step::More => {}
                Step::End => return Ok(None),
                Step::Record => return Ok(Some(self.state.fields())),
            }
        }
    }

    /// Bytes reserved for the record buffer and the field ends.
    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize) {
        (self.state.out.capacity(), self.state.ends.capacity() * std::mem::size_of::<usize>())
    }
}

/// What one [`State::step`] came to.
enum Step {
    /// The input given was used up within a record (or between records).
    More,
    /// A record is complete, in the buffers.
    Record,
    /// No record is left.
    End,
}

/// The record being read, or the last one read.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    /// File offset of its first byte, and its line.
    byte: u64,
    line: u64,
    /// Its number, for a row (the header is not one).
    row: Option<u64>,
    /// Unquoted bytes in `State::out`, and field ends in `State::ends`, so far.
    outlen: usize,
    endlen: usize,
    /// Read one field per call: its first read did not finish it.
    slow: bool,
    /// Once `slow`: the file offset where the field being read starts.
    field_at: u64,
}

/// The reader's state, apart from the input it borrows buffers from.
struct State {
    parser: Reader,
    /// The dialect, to build a parser that reads a record's bytes again and finds where one of
    /// its fields starts. (csv_core's `Reader::clone` keeps only part of its automaton, so a
    /// parser is never cloned.)
    dialect: ReaderBuilder,
    out: Vec<u8>,
    ends: Vec<usize>,
    limits: LimitsConfig,
    max_line: u64,
    max_record: u64,
    max_field: usize,
    /// The record buffer's largest size: a record past it is past `max_record` and the slack.
    most_out: usize,
    /// File offset of the next byte, and newlines before it.
    at: u64,
    newlines: u64,
    /// Where the current physical line starts.
    line_start: u64,
    /// The first line longer than `max_line` met and not yet refused: its start and number.
    long_line: Option<(u64, u64)>,
    rows: u64,
    record: Pending,
    /// A record is being read (else `record` is the last one read).
    reading: bool,
    done: bool,
}

impl State {
    fn new(csv: &CsvConfig, limits: &LimitsConfig, start: Lead) -> State {
        // Dialect characters are ASCII (the config checks), as csv_core wants bytes.
        let mut dialect = ReaderBuilder::new();
        dialect.delimiter(csv.delimiter as u8).quote(csv.quote as u8);
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        // A record must fit one Arrow string column; the config allows no more than this.
        let max_record = limits.max_record.0.min(LimitsConfig::LARGEST_RECORD);
        State {
            parser: primed(&dialect),
            dialect,
            out: Vec::new(),
            ends: Vec::new(),
            limits: *limits,
            max_line: limits.max_line.0,
            max_record,
            max_field: size(limits.max_field.0),
            most_out: size(max_record.saturating_add(SLACK + 1)),
            at: start.bytes,
            newlines: start.newlines,
            line_start: start.bytes,
            long_line: None,
            rows: 0,
            record: Pending::default(),
            reading: false,
            done: false,
        }
    }

    /// Reads from `chunk`, the input's next bytes (empty at its end), until a record is
    /// complete or `chunk` is used up; says how many bytes were used.
    fn step(&mut self, chunk: &[u8], width: Width<'_>) -> Result<(usize, Step), DecodeError> {
        if self.done {
            return Ok((0, Step::End));
        }
        let mut used = 0;
        if !self.reading {
            if chunk.is_empty() {
                self.done = true;
                return Ok((0, Step::End));
            }
            // Line breaks between records are passed here (csv_core passes them too), so that
            // a record starts at its first byte.
            used = chunk.iter().position(|&b| b != b'\n' && b != b'\r').unwrap_or(chunk.len());
            self.pass(&chunk[..used]);
            if used == chunk.len() {
                return Ok((used, Step::More));
            }
            let row = matches!(width, Width::Row(_)).then(|| {
                self.rows += 1;
                self.rows
            });
            self.record = Pending { byte: self.at, line: self.newlines + 1, row, field_at: self.at, ..Pending::default() };
            self.reading = true;
        }
        let most = width.most(self.limits.max_columns);
        loop {
            let mut rec = self.record;
            self.make_room(&rec, width)?;
            let input = &chunk[used..];
            let ends = if rec.slow { &mut self.ends[rec.endlen..rec.endlen + 1] } else { &mut self.ends[rec.endlen..] };
            let (result, nin, nout, nend) = self.parser.read_record(input, &mut self.out[rec.outlen..], ends);
            let read = &input[..nin];
            self.pass(read);
            used += nin;
            let from = rec.endlen;
            rec.outlen += nout;
            rec.endlen += nend;
            if result == ReadRecordResult::End {
                // Only between records, which a pending record is not; nothing is left.
                self.reading = false;
                self.done = true;
                return Ok((used, Step::End));
            }
            let complete = result == ReadRecordResult::Record;
            if rec.endlen > most {
                return Err(self.too_wide(&rec, width, complete));
            }
            // Where field `f`, ended by this read, starts: a first read started at the
            // record's first byte, a later one ends only the field it started in.
            let dialect = &self.dialect;
            let starts_at = |f: usize| if rec.slow { rec.field_at } else { rec.byte + field_offset(dialect, read, f) as u64 };
            self.check_ended(&rec, from, width, &starts_at)?;
            if !complete {
                if !rec.slow {
                    rec.field_at = starts_at(rec.endlen);
                    rec.slow = true;
                } else if nend > 0 {
                    // A call ends at most one field, with the delimiter just read.
                    rec.field_at = self.at;
                }
                let partial = rec.outlen - self.field_start(rec.endlen);
                if width.keeps(rec.endlen) && partial > self.max_field {
                    return Err(self.limit(Limit::MaxField, &rec, rec.field_at, rec.line));
                }
            }
            // As written: quotes and quoted line breaks count, the record's own break does not.
            let written = (self.at - rec.byte).saturating_sub(u64::from(complete && !input.is_empty()));
            let reading_kept = !complete && width.keeps(rec.endlen);
            let room = if reading_kept { self.max_record.saturating_add(SLACK) } else { self.max_record };
            if written > room {
                return Err(self.limit(Limit::MaxRecord, &rec, rec.byte, rec.line));
            }
            if let Some((start, line)) = self.long_line
                && (!reading_kept || self.at - start > self.max_line.saturating_add(SLACK))
            {
                return Err(self.limit(Limit::MaxLine, &rec, start, line));
            }
            self.record = rec;
            match result {
                ReadRecordResult::Record => {
                    self.reading = false;
                    return Ok((used, Step::Record));
                }
                ReadRecordResult::InputEmpty => return Ok((used, Step::More)),
                // Room is made at the top of the loop.
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull | ReadRecordResult::End => {}
            }
        }
    }

    /// The last record read.
    fn fields(&self) -> Fields<'_> {
        let rec = &self.record;
        Fields {
            out: self.out.get(..rec.outlen).unwrap_or_default(),
            ends: self.ends.get(..rec.endlen).unwrap_or_default(),
            position: Position { record: rec.row, line: Some(rec.line), byte: Some(rec.byte) },
        }
    }

    /// Grows the record buffer when it is full (up to `most_out`) and the ends when they are
    /// (a row's at once to its header's width and one, a header's by doubling).
    fn make_room(&mut self, rec: &Pending, width: Width<'_>) -> Result<(), DecodeError> {
        if rec.outlen >= self.out.len() {
            let doubled = (self.out.len() * 2).max(FIRST_BUFFER);
            let grown = doubled.min(self.most_out);
            if grown <= self.out.len() {
                return Err(self.limit(Limit::MaxRecord, rec, rec.byte, rec.line));
            }
            self.out.reserve_exact(grown - self.out.len());
            self.out.resize(grown, 0);
        }
        if rec.endlen >= self.ends.len() {
            let most = width.most(self.limits.max_columns).saturating_add(1);
            let grown = match width {
                Width::Header => {
                    let doubled = (self.ends.len() * 2).max(FIRST_ENDS);
                    doubled.min(most)
                }
                Width::Row(_) => most,
            };
            if grown <= self.ends.len() {
                return Err(self.too_wide(rec, width, false));
            }
            self.ends.reserve_exact(grown - self.ends.len());
            self.ends.resize(grown, 0);
        }
        Ok(())
    }

    /// Counts the line breaks in `bytes`, the input's next, and notes the first line longer
    /// than `max_line`. A line ends at `\n` or `\r` (CSV's record breaks); lines are numbered
    /// by `\n`.
    fn pass(&mut self, bytes: &[u8]) {
        for i in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            let at = self.at + i as u64;
            self.note_line(at);
            self.newlines += u64::from(bytes[i] == b'\n');
            self.line_start = at + 1;
        }
        self.at += bytes.len() as u64;
        self.note_line(self.at);
    }

    fn note_line(&mut self, end: u64) {
        if self.long_line.is_none() && end.saturating_sub(self.line_start) > self.max_line {
            self.long_line = Some((self.line_start, self.newlines + 1));
        }
    }

    /// Where field `f` of the record starts in `out`.
    fn field_start(&self, f: usize) -> usize {
        match f.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        }
    }

    /// Checks fields `from..` of `rec`, just ended: every one must be UTF-8, a kept one no
    /// longer than `max_field`.
    fn check_ended(&self, rec: &Pending, from: usize, width: Width<'_>, starts_at: &dyn Fn(usize) -> u64) -> Result<(), DecodeError> {
        let Some(ends) = self.ends.get(..rec.endlen) else { return Ok(()) };
        let Some(&last) = ends.last() else { return Ok(()) };
        if from >= ends.len() {
            return Ok(());
        }
        let low = self.field_start(from);
        let text = self.out.get(low..last).unwrap_or_default();
        // One check for all the fields, then their ends must fall between characters.
        let bad = match std::str::from_utf8(text) {
            Ok(text) => (from + 1..ends.len()).find(|&f| !text.is_char_boundary(ends[f - 1] - low)).map(|f| f - 1),
            Err(e) => {
                // A field may end inside a character that the next field completes: the first
                // such field is the bad one, else the one holding the first bad byte.
                let valid = std::str::from_utf8(text.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default();
                let split =
                    (from + 1..ends.len()).find(|&f| ends[f - 1] - low <= valid.len() && !valid.is_char_boundary(ends[f - 1] - low));
                Some(split.map_or_else(|| from + ends[from..].partition_point(|&end| end <= low + e.valid_up_to()), |f| f - 1))
            }
        };
        if let Some(f) = bad {
            let what = if rec.row.is_some() { "row" } else { "header" };
            let at = Position { record: rec.row, line: Some(rec.line), byte: Some(starts_at(f)) };
            return Err(DecodeError::malformed(format!("invalid CSV: field {} of the {what} is not UTF-8", f + 1), Some(at)));
        }
        for (f, &end) in ends.iter().enumerate().skip(from) {
            if width.keeps(f) && end - self.field_start(f) > self.max_field {
                return Err(self.limit(Limit::MaxField, rec, starts_at(f), rec.line));
            }
        }
        Ok(())
    }

    /// More fields than a header may have (`max_columns`), or a row than its header.
    fn too_wide(&self, rec: &Pending, width: Width<'_>, complete: bool) -> DecodeError {
        match width {
            Width::Header => self.limit(Limit::MaxColumns, rec, rec.byte, rec.line),
            Width::Row(kept) => {
                let got = if complete { rec.endlen.to_string() } else { format!("more than {}", kept.len()) };
                let at = Position { record: rec.row, line: Some(rec.line), byte: Some(rec.byte) };
                DecodeError::malformed(format!("invalid CSV: incorrect number of fields, expected {} got {got}", kept.len()), Some(at))
            }
        }
    }

    /// Past `limit`, at file offset `byte` on line `line` of the record `rec`.
    fn limit(&self, limit: Limit, rec: &Pending, byte: u64, line: u64) -> DecodeError {
        let at = Position { record: rec.row, line: Some(line), byte: Some(byte) };
        DecodeError::limit(limit, limit.configured(&self.limits), at)
    }
}

/// A parser of `dialect` at a record's start. Sniffing has passed the file's byte order mark:
/// csv_core would drop one more at the start as a BOM, where it is data. A line break read
/// first leaves it at a record's start with that check done.
fn primed(dialect: &ReaderBuilder) -> Reader {
    let mut parser = dialect.build();
    let _ = parser.read_record(b"\n", &mut [0; 1], &mut [0; 1]);
    parser
}

/// Where field `field` starts in `record`, the bytes read of a record from its first: they are
/// read again by a new parser of `dialect`, one field at a time.
fn field_offset(dialect: &ReaderBuilder, record: &[u8], field: usize) -> usize {
    let mut parser = primed(dialect);
    let (mut scratch, mut end) = ([0u8; 1024], [0usize; 1]);
    let (mut at, mut passed) = (0, 0);
    while passed < field && at < record.len() {
        let (result, nin, _, nend) = parser.read_record(&record[at..], &mut scratch, &mut end);
        at += nin;
        passed += nend;
        if result == ReadRecordResult::Record || nin == 0 {
            break;
        }
    }
    at
}
