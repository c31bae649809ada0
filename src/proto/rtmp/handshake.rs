//! The RTMP handshake, server side: C0 C1 → S0 S1 S2, then C2.
//!
//! Two forms are in use:
//! - plain (RTMP spec 5.2): S1 is time, zero and random bytes; S2 echoes C1.
//! - digest, the "FP9" handshake Flash Player 9+ introduced and librtmp and ffmpeg still
//!   send: C1 carries an HMAC-SHA256 digest keyed with "Genuine Adobe Flash Player 001" at a
//!   position derived from four bytes of one of two 764-byte blocks (scheme 0: digest block
//!   at 772, scheme 1: digest block at 8). A valid one is answered with an S1 that carries a
//!   server digest (key "Genuine Adobe Flash Media Server 001") in the same scheme, and an S2
//!   whose last 32 bytes sign the rest with a key derived from the client's digest and the
//!   68-byte server key. Some clients (ffmpeg as a player) check both and drop the
//!   connection otherwise.
//!
//! If neither scheme validates, the plain form is used. C2 is not checked: clients send junk
//! there. Only version 3 is accepted; RTMPE (6, 8) is not supported.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::error::{ErrorKind, RtmpError};

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only version byte we accept in C0 and send in S0.
pub const RTMP_VERSION: u8 = 3;

const DIGEST_LEN: usize = 32;
/// Bytes of a 764-byte block over which the digest position wraps: 764 - 4 (offset) - 32.
const DIGEST_SPAN: usize = 728;

/// The 32 bytes both FP9 keys end with.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const PLAYER_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const SERVER_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// The version field of our digest S1. Any value with a second byte >= 3 tells ffmpeg to
/// check our digests; these are nginx-rtmp's.
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// Where the 764-byte digest block sits in C1/S1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// Scheme 0: key block at 8, digest block at 772 (the offset bytes are 772..776).
    Block772,
    /// Scheme 1: digest block at 8 (offset bytes 8..12), key block at 772.
    Block8,
}

impl DigestScheme {
    fn base(self) -> usize {
        match self {
            DigestScheme::Block772 => 772,
            DigestScheme::Block8 => 8,
        }
    }

    /// Position of the digest in a 1536-byte block: always `base + 4 .. base + 764 - 32`.
    pub fn digest_offset(self, block: &[u8; HANDSHAKE_SIZE]) -> usize {
        let base = self.base();
        let sum: usize = block[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        base + 4 + sum % DIGEST_SPAN
    }
}

/// Which form the client used, known once C1 has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    Plain,
    Digest(DigestScheme),
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest of a C1/S1 block: HMAC over everything but the 32 digest bytes.
fn block_digest(
    block: &[u8; HANDSHAKE_SIZE],
    offset: usize,
    key: &[u8],
) -> Option<[u8; DIGEST_LEN]> {
    let before = block.get(..offset)?;
    let after = block.get(offset + DIGEST_LEN..)?;
    Some(hmac_sha256(key, &[before, after]))
}

/// Finds a valid client digest in C1, trying scheme 0 then scheme 1 (as SRS does).
pub fn find_client_digest(c1: &[u8; HANDSHAKE_SIZE]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    for scheme in [DigestScheme::Block772, DigestScheme::Block8] {
        let offset = scheme.digest_offset(c1);
        let expected = block_digest(c1, offset, PLAYER_KEY_TEXT)?;
        let found = c1.get(offset..offset + DIGEST_LEN)?;
        if found == expected {
            return Some((scheme, expected));
        }
    }
    None
}

/// Deterministic filler for S1/S2: SHA-256 in counter mode over a per-session seed. The
/// bytes need to look random, not be secret, and a seed makes tests reproducible.
struct Filler {
    seed: [u8; 32],
    counter: u64,
}

impl Filler {
    fn fill(&mut self, out: &mut [u8]) {
        for piece in out.chunks_mut(DIGEST_LEN) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_le_bytes())
                .finalize();
            self.counter += 1;
            piece.copy_from_slice(&block[..piece.len()]);
        }
    }
}

enum State {
    /// Collecting C0 + C1 (1537 bytes).
    ExpectC0C1 {
        buf: Vec<u8>,
    },
    /// S0 S1 S2 written; skipping the C2 bytes still to come.
    ExpectC2 {
        left: usize,
    },
    Done,
}

/// The server handshake. Feed bytes with [`Handshake::receive`] until [`Handshake::is_done`];
/// the bytes it did not use are the start of the chunk stream.
pub struct Handshake {
    state: State,
    kind: Option<HandshakeKind>,
    filler: Filler,
}

impl Handshake {
    /// A handshake whose S1/S2 filler derives from `seed` (the session draws it from the OS).
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            state: State::ExpectC0C1 {
                buf: Vec::with_capacity(1 + HANDSHAKE_SIZE),
            },
            kind: None,
            filler: Filler { seed, counter: 0 },
        }
    }

    /// Whether C2 has been received in full.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The form the client used, once C1 has arrived.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Consumes handshake bytes from the front of `data`, appends S0 S1 S2 to `out` once C1 is
    /// complete, and returns how many bytes it used; the rest belong to the chunk stream.
    pub fn receive(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<usize, RtmpError> {
        let mut used = 0;
        loop {
            let rest = data.get(used..).unwrap_or_default();
            match &mut self.state {
                State::ExpectC0C1 { buf } => {
                    let want = 1 + HANDSHAKE_SIZE - buf.len();
                    let take = want.min(rest.len());
                    buf.extend_from_slice(&rest[..take]);
                    used += take;
                    if let Some(&version) = buf.first()
                        && version != RTMP_VERSION
                    {
                        return Err(ErrorKind::HandshakeVersion(version).into());
                    }
                    if buf.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(used);
                    }
                    let mut c1 = [0u8; HANDSHAKE_SIZE];
                    c1.copy_from_slice(&buf[1..]);
                    self.answer(&c1, out);
                    self.state = State::ExpectC2 {
                        left: HANDSHAKE_SIZE,
                    };
                }
                State::ExpectC2 { left } => {
                    let take = (*left).min(rest.len());
                    *left -= take;
                    used += take;
                    if *left > 0 {
                        return Ok(used);
                    }
                    self.state = State::Done;
                }
                State::Done => return Ok(used),
            }
        }
    }

    fn answer(&mut self, c1: &[u8; HANDSHAKE_SIZE], out: &mut Vec<u8>) {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        self.filler.fill(&mut s1[8..]);
        match find_client_digest(c1) {
            Some((scheme, client_digest)) => {
                self.kind = Some(HandshakeKind::Digest(scheme));
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                let offset = scheme.digest_offset(&s1);
                if let Some(digest) = block_digest(&s1, offset, SERVER_KEY_TEXT) {
                    s1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
                }
                out.extend_from_slice(&s1);

                let mut s2 = [0u8; HANDSHAKE_SIZE];
                self.filler.fill(&mut s2);
                let (body, signature) = s2.split_at_mut(HANDSHAKE_SIZE - DIGEST_LEN);
                signature.copy_from_slice(&s2_signature(&client_digest, body));
                out.extend_from_slice(&s2);
            }
            None => {
                self.kind = Some(HandshakeKind::Plain);
                out.extend_from_slice(&s1);
                out.extend_from_slice(c1);
            }
        }
    }
}

/// The full 68-byte server key: the text and the fixed tail.
fn server_key_full() -> [u8; 68] {
    let mut key = [0u8; 68];
    key[..36].copy_from_slice(SERVER_KEY_TEXT);
    key[36..].copy_from_slice(&KEY_TAIL);
    key
}

/// The full 62-byte player key (used by tests playing the client).
pub fn player_key_full() -> [u8; 62] {
    let mut key = [0u8; 62];
    key[..30].copy_from_slice(PLAYER_KEY_TEXT);
    key[30..].copy_from_slice(&KEY_TAIL);
    key
}

/// S2's last 32 bytes: HMAC(HMAC(server key, client digest), first 1504 bytes of S2).
pub fn s2_signature(client_digest: &[u8; DIGEST_LEN], s2_body: &[u8]) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(&server_key_full(), &[client_digest]);
    hmac_sha256(&key, &[s2_body])
}

/// Whether `s1` carries a valid server digest in `scheme` (what a checking client verifies).
pub fn server_digest_valid(s1: &[u8; HANDSHAKE_SIZE], scheme: DigestScheme) -> bool {
    let offset = scheme.digest_offset(s1);
    block_digest(s1, offset, SERVER_KEY_TEXT)
        .is_some_and(|d| s1.get(offset..offset + DIGEST_LEN) == Some(&d[..]))
}

/// Builds a digest C1 in `scheme` (a client's side; for tests and fuzzing seeds).
pub fn client_c1(scheme: DigestScheme, fill: u8) -> [u8; HANDSHAKE_SIZE] {
    let mut c1 = [fill; HANDSHAKE_SIZE];
    c1[..4].copy_from_slice(&[0, 0, 0, 0]);
    c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
    let offset = scheme.digest_offset(&c1);
    if let Some(digest) = block_digest(&c1, offset, PLAYER_KEY_TEXT) {
        c1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
    }
    c1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c0c1: &[u8], splits: &[usize]) -> (Handshake, Vec<u8>, usize) {
        let mut hs = Handshake::new([7; 32]);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut used_total = 0;
        for &len in splits {
            let end = (pos + len).min(c0c1.len());
            used_total += hs.receive(&c0c1[pos..end], &mut out).unwrap();
            pos = end;
        }
        used_total += hs.receive(&c0c1[pos..], &mut out).unwrap();
        (hs, out, used_total)
    }

    #[test]
    fn plain_c1_gets_s1_and_an_echo() {
        let mut input = vec![3u8];
        input.extend((0..HANDSHAKE_SIZE).map(|i| (i * 7) as u8));
        input[5..9].copy_from_slice(&[0, 0, 0, 0]);
        let (hs, out, used) = run(&input, &[1, 100]);
        assert_eq!(used, input.len());
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
        assert!(!hs.is_done());
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[0; 8], "plain S1: time 0, zero");
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &input[1..], "S2 echoes C1");
    }

    #[test]
    fn digest_c1_in_both_schemes_gets_signed_answers() {
        for scheme in [DigestScheme::Block772, DigestScheme::Block8] {
            let c1 = client_c1(scheme, 0x5A);
            assert_eq!(find_client_digest(&c1).map(|d| d.0), Some(scheme));
            let mut input = vec![3u8];
            input.extend_from_slice(&c1);
            let (hs, out, _) = run(&input, &[]);
            assert_eq!(hs.kind(), Some(HandshakeKind::Digest(scheme)));
            let s1: [u8; HANDSHAKE_SIZE] = out[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
            assert!(server_digest_valid(&s1, scheme));
            assert_eq!(&s1[4..8], &SERVER_VERSION);
            // The S2 signature is keyed by the client digest, as the client checks it.
            let offset = scheme.digest_offset(&c1);
            let client_digest: [u8; 32] = c1[offset..offset + 32].try_into().unwrap();
            let s2 = &out[1 + HANDSHAKE_SIZE..];
            assert_eq!(
                &s2[HANDSHAKE_SIZE - 32..],
                &s2_signature(&client_digest, &s2[..HANDSHAKE_SIZE - 32])
            );
            // A corrupted digest falls back to the plain form.
            let mut bad = input.clone();
            bad[1 + offset] ^= 1;
            let (hs, out, _) = run(&bad, &[]);
            assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
            assert_eq!(&out[1 + HANDSHAKE_SIZE..], &bad[1..]);
        }
    }

    #[test]
    fn known_answer_hmac() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e],
            "HMAC-SHA256 known answer"
        );
    }

    #[test]
    fn version_is_checked_on_the_first_byte() {
        for version in [0u8, 6, 8, 0x16, 0x47] {
            let mut hs = Handshake::new([0; 32]);
            let err = hs.receive(&[version], &mut Vec::new()).unwrap_err();
            assert_eq!(err.reason(), "handshake_version");
        }
    }

    #[test]
    fn c2_is_skipped_and_the_rest_is_left() {
        let mut input = vec![3u8; 1 + 2 * HANDSHAKE_SIZE + 5];
        input[5..9].copy_from_slice(&[0; 4]);
        for split in [1usize, 2, 7, 1000, input.len()] {
            let mut hs = Handshake::new([1; 32]);
            let mut out = Vec::new();
            let mut used = 0;
            for piece in input.chunks(split) {
                let n = hs.receive(piece, &mut out).unwrap();
                used += n;
                if hs.is_done() {
                    assert!(n <= piece.len());
                    break;
                }
                assert_eq!(n, piece.len());
            }
            assert!(hs.is_done());
            assert_eq!(used, 1 + 2 * HANDSHAKE_SIZE, "split {split}");
            assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        }
    }
}
