//! Reading a journal's lines within bounds: no line longer than [`MAX_LINE_BYTES`], no file
//! larger than [`MAX_FILE_BYTES`], so a damaged journal, or a path that names a device such
//! as `/dev/zero`, fails at once with an error naming the file and line instead of reading
//! without end.
//!
//! Lines are read with positioned reads from a given offset, so the same open file can be
//! read again from where the last read stopped while others append to it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::JournalError;

/// The longest line a journal may hold: 64 MiB. A backup of a group with 100,000 members
/// is about 20 MB.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The largest journal cfgroups reads: 1 GiB. Unchanged backups are not written again (see
/// [`super::Record::IntentRef`]), so a journal grows with what is deleted, not with time.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// One line of a journal.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// Where the line starts in the file.
    pub offset: u64,
    /// The line without its newline.
    pub bytes: Vec<u8>,
    /// Whether the line ends with a newline; the last line of a file may not (torn by a
    /// crash, or being written).
    pub complete: bool,
}

impl Line {
    /// The bytes the line takes in the file, newline included.
    pub fn len_in_file(&self) -> u64 {
        self.bytes.len() as u64 + u64::from(self.complete)
    }

    /// Whether the line holds nothing but whitespace (skipped, not a record).
    pub fn is_blank(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }
}

/// Refuses a file larger than [`MAX_FILE_BYTES`], with what to do about it.
pub fn check_size(file: &File, path: &Path) -> Result<(), JournalError> {
    let size = file
        .metadata()
        .map_err(|source| JournalError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(JournalError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    Ok(())
}

/// The lines of `file` from byte `offset` on, numbered from `number + 1`.
pub struct Lines<'a> {
    path: &'a Path,
    reader: BufReader<At<'a>>,
    offset: u64,
    number: usize,
}

impl<'a> Lines<'a> {
    pub fn new(file: &'a File, path: &'a Path, offset: u64, number: usize) -> Self {
        Self {
            path,
            reader: BufReader::with_capacity(1 << 16, At { file, offset }),
            offset,
            number,
        }
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<Line>, JournalError> {
        let mut bytes = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut bytes)
            .map_err(|source| JournalError::Io {
                path: self.path.to_owned(),
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let complete = bytes.last() == Some(&b'\n');
        if complete {
            bytes.pop();
        }
        if bytes.len() > MAX_LINE_BYTES {
            return Err(JournalError::LineTooLong {
                path: self.path.to_owned(),
                line: self.number,
            });
        }
        let line = Line {
            number: self.number,
            offset: self.offset,
            bytes,
            complete,
        };
        self.offset += line.len_in_file();
        Ok(Some(line))
    }
}

/// Reads `file` from an offset without moving its cursor (it is opened to append).
struct At<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read_at(buf, self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}

/// Reads the one line starting at `offset` (a record located by the index).
pub fn line_at(file: &File, path: &Path, offset: u64, number: usize) -> Result<Line, JournalError> {
    let mut lines = Lines::new(file, path, offset, number.saturating_sub(1));
    lines.next_line()?.ok_or_else(|| JournalError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("line {number} is no longer in the file"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn lines_carry_their_numbers_and_offsets_and_a_last_line_may_be_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"one\n\ntwo\nthr")
            .unwrap();
        let file = File::open(&path).unwrap();
        let mut lines = Lines::new(&file, &path, 0, 0);
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            seen.push((line.number, line.offset, line.bytes, line.complete));
        }
        assert_eq!(
            seen,
            vec![
                (1, 0, b"one".to_vec(), true),
                (2, 4, b"".to_vec(), true),
                (3, 5, b"two".to_vec(), true),
                (4, 9, b"thr".to_vec(), false),
            ]
        );
        let line = line_at(&file, &path, 5, 3).unwrap();
        assert_eq!((line.number, line.bytes), (3, b"two".to_vec()));
    }

    #[test]
    fn a_device_of_endless_zeros_fails_fast_naming_the_line() {
        let path = Path::new("/dev/zero");
        let file = File::open(path).unwrap();
        // Without the line limit this read never ends: the error is the proof.
        let error = Lines::new(&file, path, 0, 0).next_line().unwrap_err();
        assert!(
            matches!(error, JournalError::LineTooLong { line: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("/dev/zero"), "{error}");
    }
}
