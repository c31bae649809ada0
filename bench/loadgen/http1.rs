//! One HTTP/1.1 response at a time on a keep-alive connection, for the load generator's HLS
//! clients (the live readers, which make one request per connection, parse their head in
//! `main.rs`).
//!
//! Sans-IO: [`ResponseReader::next_event`] takes received bytes and returns how many it used
//! and at most one [`ResponseEvent`]: the head, a slice of body (borrowed from the input,
//! after de-chunking), or the end of the response. The head is taken byte by byte up to its
//! blank line, so no body byte is ever copied; the body is delimited by Content-Length,
//! chunked transfer coding, or (without either) the connection's close, which the caller
//! reports with [`ResponseReader::on_eof`]. 204, 304 and 1xx-less responses to the requests
//! this tool makes (GET only) need nothing else.

use crate::chunked::{ChunkedDecoder, ChunkedError, ChunkedLimits};

/// Limits the reader enforces; every one is a named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Largest response head (status line, fields, blank line).
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub chunked: ChunkedLimits,
}

/// Every way a response can be wrong; all the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The head does not parse, is larger than [`ResponseLimits::max_head_bytes`], or is a 1xx.
    BadHead,
    /// A Content-Length that is not a number, or a transfer coding other than chunked.
    BadFraming,
    Chunked(ChunkedError),
    /// The connection ended inside a response whose end it was not meant to mark.
    EarlyEof,
}

/// What the head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The server will close after this response (`Connection: close`, or HTTP/1.0 without
    /// keep-alive, or a body delimited by the close).
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEvent<'a> {
    Head(ResponseHead),
    Body(&'a [u8]),
    End,
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Body(Framing),
    Done,
}

/// Reader of one response; see the module docs. Make a new one per request.
#[derive(Debug)]
pub struct ResponseReader {
    limits: ResponseLimits,
    state: State,
}

impl ResponseReader {
    pub fn new(limits: ResponseLimits) -> Self {
        Self {
            limits,
            state: State::Head(Vec::new()),
        }
    }

    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Consumes bytes from `input`, stopping after at most one event. Returns the bytes used
    /// and the event. `None` means every byte was used and more are needed. After
    /// [`ResponseEvent::End`] nothing more is used: what is left belongs to no response.
    pub fn next_event<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<ResponseEvent<'a>>), HttpError> {
        match &mut self.state {
            State::Done => Ok((0, None)),
            State::Head(head) => {
                for (i, &b) in input.iter().enumerate() {
                    head.push(b);
                    if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
                        let parsed = parse_head(head, &self.limits)?;
                        self.state = State::Body(parsed.1);
                        return Ok((i + 1, Some(ResponseEvent::Head(parsed.0))));
                    }
                    if head.len() >= self.limits.max_head_bytes {
                        return Err(HttpError::BadHead);
                    }
                }
                Ok((input.len(), None))
            }
            State::Body(Framing::Length(0)) => {
                self.state = State::Done;
                Ok((0, Some(ResponseEvent::End)))
            }
            State::Body(Framing::Length(remaining)) => {
                if input.is_empty() {
                    return Ok((0, None));
                }
                let n = (*remaining).min(input.len() as u64) as usize;
                *remaining -= n as u64;
                Ok((n, Some(ResponseEvent::Body(&input[..n]))))
            }
            State::Body(Framing::Chunked(decoder)) => {
                if decoder.is_done() {
                    self.state = State::Done;
                    return Ok((0, Some(ResponseEvent::End)));
                }
                let mut used = 0;
                while used < input.len() {
                    let (n, payload) =
                        decoder.decode(&input[used..]).map_err(HttpError::Chunked)?;
                    used += n;
                    if !payload.is_empty() {
                        return Ok((used, Some(ResponseEvent::Body(payload))));
                    }
                    if decoder.is_done() {
                        self.state = State::Done;
                        return Ok((used, Some(ResponseEvent::End)));
                    }
                }
                Ok((used, None))
            }
            State::Body(Framing::UntilClose) => {
                if input.is_empty() {
                    return Ok((0, None));
                }
                Ok((input.len(), Some(ResponseEvent::Body(input))))
            }
        }
    }

    /// The connection ended: the end of a close-delimited body, an error otherwise.
    pub fn on_eof(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::Body(Framing::UntilClose) | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(HttpError::EarlyEof),
        }
    }
}

fn parse_head(head: &[u8], limits: &ResponseLimits) -> Result<(ResponseHead, Framing), HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        _ => return Err(HttpError::BadHead),
    }
    let status = response.code.ok_or(HttpError::BadHead)?;
    if status < 200 {
        return Err(HttpError::BadHead);
    }
    let http10 = response.version == Some(0);
    let mut close = http10;
    let mut length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HttpError::BadFraming)?;
        if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.trim().to_ascii_lowercase().ends_with("chunked") {
                return Err(HttpError::BadFraming);
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.trim().parse().map_err(|_| HttpError::BadFraming)?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::BadFraming);
            }
            length = Some(n);
        }
    }
    // RFC 9112 §6.3: no body for 204 and 304; chunked wins over a length.
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(ChunkedDecoder::new(limits.chunked))
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok((ResponseHead { status, close }, framing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ResponseLimits {
        ResponseLimits {
            max_head_bytes: 1024,
            max_headers: 16,
            chunked: ChunkedLimits::default(),
        }
    }

    /// Feeds `wire` in pieces of `step`; returns (head, body, ended, bytes left over).
    fn read_all(
        wire: &[u8],
        step: usize,
    ) -> Result<(Option<ResponseHead>, Vec<u8>, bool, usize), HttpError> {
        let mut r = ResponseReader::new(limits());
        let (mut head, mut body, mut ended) = (None, Vec::new(), false);
        let mut left = 0;
        for piece in wire.chunks(step) {
            let mut data = piece;
            loop {
                let (n, ev) = r.next_event(data)?;
                data = &data[n..];
                match ev {
                    Some(ResponseEvent::Head(h)) => head = Some(h),
                    Some(ResponseEvent::Body(b)) => body.extend_from_slice(b),
                    Some(ResponseEvent::End) => {
                        ended = true;
                        left += data.len();
                        break;
                    }
                    None => break,
                }
            }
        }
        Ok((head, body, ended, left))
    }

    #[test]
    fn content_length_body_then_end_at_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: x\r\n\r\nhello";
        for step in [1, 2, 7, wire.len()] {
            let (head, body, ended, left) = read_all(wire, step).unwrap();
            assert_eq!(
                head,
                Some(ResponseHead {
                    status: 200,
                    close: false
                })
            );
            assert_eq!((body.as_slice(), ended, left), (&b"hello"[..], true, 0));
        }
        // Bytes after the end are left to the caller.
        let mut extra = wire.to_vec();
        extra.extend_from_slice(b"XY");
        assert_eq!(read_all(&extra, 100).unwrap().3, 2);
    }

    #[test]
    fn chunked_and_empty_bodies() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        for step in [1, 3, wire.len()] {
            let (_, body, ended, _) = read_all(wire, step).unwrap();
            assert_eq!((body.as_slice(), ended), (&b"abcde"[..], true));
        }
        for wire in [
            &b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (head, body, ended, _) = read_all(wire, 4).unwrap();
            assert!(head.is_some() && body.is_empty() && ended);
        }
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let mut r = ResponseReader::new(limits());
        let wire = b"HTTP/1.0 200 OK\r\n\r\nbody";
        let (n, ev) = r.next_event(wire).unwrap();
        assert_eq!(
            ev,
            Some(ResponseEvent::Head(ResponseHead {
                status: 200,
                close: true
            }))
        );
        assert_eq!(
            r.next_event(&wire[n..]).unwrap(),
            (4, Some(ResponseEvent::Body(b"body")))
        );
        assert_eq!(r.on_eof(), Ok(()));
        assert!(r.is_done());
        // A sized body cut short is an error.
        let mut r = ResponseReader::new(limits());
        let wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n\r\nab";
        let (n, ev) = r.next_event(wire).unwrap();
        assert!(matches!(ev, Some(ResponseEvent::Head(h)) if h.close));
        r.next_event(&wire[n..]).unwrap();
        assert_eq!(r.on_eof(), Err(HttpError::EarlyEof));
    }

    #[test]
    fn bad_heads_and_framing() {
        assert_eq!(
            read_all(b"HTTX/1.1 200 OK\r\n\r\n", 100),
            Err(HttpError::BadHead)
        );
        assert_eq!(
            read_all(b"HTTP/1.1 100 Continue\r\n\r\n", 100),
            Err(HttpError::BadHead)
        );
        assert_eq!(
            read_all(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 100),
            Err(HttpError::BadFraming)
        );
        assert_eq!(
            read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 100),
            Err(HttpError::BadFraming)
        );
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(2000, b'a');
        assert_eq!(read_all(&big, 100), Err(HttpError::BadHead));
    }
}
