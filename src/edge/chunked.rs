//! An incremental, strict validator of `Transfer-Encoding: chunked` bodies (RFC 9112 section 7.1).
//!
//! It is fed the body bytes as they arrive (in any split) and says where the message ends. What
//! proxies and origins have been known to read differently is refused: a size with a prefix, a
//! sign, leading or inner whitespace or junk after it; bare CR or LF anywhere in the framing
//! (CVE-2025-55315 class); control bytes in an extension; data longer than its size; an oversized
//! extension or trailer section; a size that overflows.

use super::head::{is_field_byte, is_tchar};
use super::Refusal;

/// Most hex digits of a chunk size (leading zeros included).
const MAX_SIZE_DIGITS: u8 = 15;
/// Longest extension part of one size line.
const MAX_EXTENSION: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a size line.
    SizeStart,
    /// Inside the hex digits.
    Size,
    /// Whitespace after the digits, before `;`.
    SizeSpace,
    /// Inside the extension (after `;`).
    Extension,
    /// Read the CR that ends a size line.
    SizeLf,
    /// Inside the data of a chunk.
    Data,
    /// After the data: expecting CR.
    DataCr,
    /// After the data's CR: expecting LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Read the CR that ends a trailer line.
    TrailerLf,
    /// Read the CR of the final empty line.
    EndLf,
    /// The message ended.
    Done,
}

/// The validator of one chunked body.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    extension: usize,
    remaining: u64,
    trailer_bytes: usize,
    trailer_line_start: bool,
    trailer_colon: bool,
    total: u64,
    max_body: u64,
    max_trailers: usize,
}

impl Chunked {
    /// A validator for a body of at most `max_body` data bytes (0: no limit) whose trailer
    /// section is at most `max_trailers` bytes.
    pub fn new(max_body: u64, max_trailers: usize) -> Self {
        Self {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            extension: 0,
            remaining: 0,
            trailer_bytes: 0,
            trailer_line_start: true,
            trailer_colon: false,
            total: 0,
            max_body,
            max_trailers,
        }
    }

    /// Data bytes seen so far (framing not counted).
    pub fn data_len(&self) -> u64 {
        self.total
    }

    /// Feeds the next bytes of the body. `Ok(Some(n))`: the message ends after `n` of them (the
    /// rest belongs to the next request); `Ok(None)`: all were consumed and more are needed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Refusal> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Done {
                return Ok(Some(i));
            }
            if self.state == State::Data {
                let available = (bytes.len() - i) as u64;
                let take = available.min(self.remaining);
                self.remaining -= take;
                i += take as usize;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = bytes.get(i).copied().unwrap_or_default();
            self.step(b)?;
            i += 1;
        }
        Ok((self.state == State::Done).then_some(i))
    }

    /// True once the final empty line was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&mut self, b: u8) -> Result<(), Refusal> {
        match self.state {
            State::SizeStart | State::Size => match hex(b) {
                Some(d) => {
                    self.digits += 1;
                    if self.digits > MAX_SIZE_DIGITS {
                        return Err(bad("chunk size too large"));
                    }
                    self.size = self.size * 16 + u64::from(d);
                    self.state = State::Size;
                }
                None if self.state == State::SizeStart => return Err(bad("invalid chunk size")),
                None => match b {
                    b'\r' => self.state = State::SizeLf,
                    b';' => self.state = State::Extension,
                    b' ' | b'\t' => self.state = State::SizeSpace,
                    _ => return Err(bad("invalid chunk size")),
                },
            },
            State::SizeSpace => match b {
                b' ' | b'\t' => {}
                b';' => self.state = State::Extension,
                _ => return Err(bad("invalid chunk size line")),
            },
            State::Extension => {
                self.extension += 1;
                if self.extension > MAX_EXTENSION {
                    return Err(bad("chunk extension too long"));
                }
                match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\t' => {}
                    _ if (0x20..=0x7e).contains(&b) || b >= 0x80 => {}
                    _ => return Err(bad("invalid byte in a chunk extension")),
                }
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in a chunk size line"));
                }
                self.end_size_line()?;
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(bad("chunk data longer than its size"));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(bad("chunk data not followed by CRLF"));
                }
                self.state = State::SizeStart;
            }
            State::TrailerStart | State::Trailer => self.trailer_byte(b)?,
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in a trailer"));
                }
                self.state = State::TrailerStart;
                self.trailer_line_start = true;
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(bad("bare CR after the last chunk"));
                }
                self.state = State::Done;
            }
            State::Data | State::Done => {}
        }
        Ok(())
    }

    fn end_size_line(&mut self) -> Result<(), Refusal> {
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        self.extension = 0;
        if size == 0 {
            self.state = State::TrailerStart;
            self.trailer_line_start = true;
            return Ok(());
        }
        self.total = self.total.saturating_add(size);
        if self.max_body > 0 && self.total > self.max_body {
            return Err(Refusal::new(413, "request body too large"));
        }
        self.remaining = size;
        self.state = State::Data;
        Ok(())
    }

    fn trailer_byte(&mut self, b: u8) -> Result<(), Refusal> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailers {
            return Err(Refusal::new(431, "trailer section too large"));
        }
        let at_start = self.trailer_line_start;
        self.trailer_line_start = false;
        match b {
            b'\r' if at_start => self.state = State::EndLf,
            b'\r' if !self.trailer_colon => return Err(bad("trailer field without a colon")),
            b'\r' => {
                self.state = State::TrailerLf;
                self.trailer_colon = false;
            }
            b':' if !self.trailer_colon && !at_start => self.trailer_colon = true,
            _ if !self.trailer_colon && is_tchar(b) => self.state = State::Trailer,
            _ if self.trailer_colon && is_field_byte(b) => {}
            _ => return Err(bad("invalid trailer field")),
        }
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn bad(reason: &'static str) -> Refusal {
    Refusal::new(400, reason)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(body: &[u8]) -> Result<Option<usize>, u16> {
        Chunked::new(1000, 1000).feed(body).map_err(|r| r.status)
    }

    #[test]
    fn valid_bodies_end_where_they_end() {
        let body = b"5\r\nhello\r\n0\r\n\r\nGET /next";
        assert_eq!(run(body), Ok(Some(body.len() - 9)));
        assert_eq!(run(b"5;a=b\r\nhello\r\n0\r\n\r\n"), Ok(Some(19)));
        assert_eq!(
            run(b"5 ;a=\"x y\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
            Ok(Some(32))
        );
        assert_eq!(run(b"A\r\n0123456789\r\n"), Ok(None));
        // any split gives the same answer
        let body = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::new(0, 100);
            let (a, b) = body.split_at(split);
            assert_eq!(c.feed(a).unwrap(), None, "split {split}");
            assert_eq!(c.feed(b).unwrap(), Some(b.len()), "split {split}");
        }
    }

    #[test]
    fn smuggling_classes_are_refused() {
        for (body, code) in [
            (&b"0x5\r\nhello\r\n0\r\n\r\n"[..], 400),
            (b" 5\r\nhello\r\n0\r\n\r\n", 400),
            (b"5zz\r\nhello\r\n0\r\n\r\n", 400),
            (b"-0\r\n\r\n", 400),
            (b"+5\r\nhello\r\n0\r\n\r\n", 400),
            (b"ffffffffffffffffff\r\n", 400),
            (b"5\nhello\r\n0\r\n\r\n", 400),
            (b"5\rhello\r\n0\r\n\r\n", 400),
            (b"5;a=b\nhello\r\n0\r\n\r\n", 400),
            (b"5;a\x00\r\nhello\r\n0\r\n\r\n", 400),
            (b"5\r\nhello world\r\n0\r\n\r\n", 400),
            (b"5\r\nhello\n0\r\n\r\n", 400),
            (b"0\r\n\n", 400),
            (b"0\r\nbad trailer\r\n\r\n", 400),
            (b"0\r\nX: v\n\r\n", 400),
            (b"400\r\n", 413),
        ] {
            assert_eq!(run(body), Err(code), "{:?}", String::from_utf8_lossy(body));
        }
    }
}
