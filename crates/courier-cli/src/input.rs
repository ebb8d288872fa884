//! Input for `courier produce`: kcat's delimiter syntax and a streaming splitter that
//! holds one record at a time, so memory stays bounded on huge inputs.

use std::io::{BufRead, ErrorKind};

/// Parses a kcat delimiter: literal text with the escapes `\n`, `\r`, `\t`, `\0`,
/// `\\` and `\xNN`.
pub fn parse_delimiter(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = s.get(i + 2..i + 4).ok_or_else(|| {
                    format!("delimiter {s:?}: \\x needs two hex digits, as in \\x1e")
                })?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| {
                    format!("delimiter {s:?}: \\x{hex} is not hex; write \\x1e for byte 0x1e")
                })?);
                i += 2;
            }
            other => {
                return Err(format!(
                    "delimiter {s:?}: unknown escape \\{}; use \\n, \\r, \\t, \\0, \\\\ or \\xNN",
                    other as char
                ))
            }
        }
        i += 2;
    }
    if out.is_empty() {
        return Err("a delimiter cannot be empty".into());
    }
    Ok(out)
}

/// Reads the next record up to `delim` (which is removed) into `buf`. Returns false
/// at end of input with nothing read. Handles multi-byte delimiters.
pub fn read_record(
    r: &mut (impl BufRead + ?Sized),
    delim: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let last = *delim.last().expect("delimiters are not empty");
    loop {
        let n = match r.read_until(last, buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(!buf.is_empty());
        }
        if buf.ends_with(delim) {
            buf.truncate(buf.len() - delim.len());
            return Ok(true);
        }
        if buf.last() != Some(&last) {
            // End of input without a final delimiter.
            return Ok(true);
        }
    }
}

/// Splits a record into key and value at the first `key_delim`, as kcat does; `None`
/// when the delimiter is absent (the whole record is the value).
pub fn split_key<'a>(record: &'a [u8], key_delim: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = match key_delim {
        // The common case (`-K:`), a byte search instead of a slice compare per offset.
        [one] => record.iter().position(|b| b == one),
        _ => record.windows(key_delim.len()).position(|w| w == key_delim),
    }?;
    Some((&record[..at], &record[at + key_delim.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], delim: &str) -> Vec<String> {
        let d = parse_delimiter(delim).unwrap();
        let mut r = std::io::BufReader::with_capacity(3, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while read_record(&mut r, &d, &mut buf).unwrap() {
            out.push(String::from_utf8(buf.clone()).unwrap());
        }
        out
    }

    #[test]
    fn splits_on_newlines_with_or_without_a_final_one() {
        assert_eq!(all(b"a\nbb\n\nc", "\\n"), ["a", "bb", "", "c"]);
        assert_eq!(all(b"a\nbb\n", "\\n"), ["a", "bb"]);
        assert!(all(b"", "\\n").is_empty());
    }

    #[test]
    fn splits_on_multi_byte_delimiters_across_buffer_refills() {
        assert_eq!(
            all(b"one;;two;three;;;;four", ";;"),
            ["one", "two;three", "", "four"]
        );
        assert_eq!(all(b"x\x1ey\x1e", "\\x1e"), ["x", "y"]);
    }

    #[test]
    fn delimiter_escapes_and_errors() {
        assert_eq!(parse_delimiter("\\t").unwrap(), b"\t");
        assert_eq!(parse_delimiter("::").unwrap(), b"::");
        assert_eq!(parse_delimiter("\\x1f").unwrap(), [0x1f]);
        assert!(parse_delimiter("").is_err());
        assert!(parse_delimiter("\\q").unwrap_err().contains("\\n"));
        assert!(parse_delimiter("\\xZZ").is_err());
    }

    #[test]
    fn key_is_split_at_the_first_delimiter_only() {
        assert_eq!(split_key(b"k:v:w", b":"), Some((&b"k"[..], &b"v:w"[..])));
        assert_eq!(split_key(b"no-key", b":"), None);
        assert_eq!(split_key(b":v", b":"), Some((&b""[..], &b"v"[..])));
    }
}
