//! `Content-Encoding: gzip` for the API files, as formulae.brew.sh serves
//! them, so clients' decoding path is exercised. The deflate stream uses
//! stored (uncompressed) blocks: valid gzip that any decoder reads, without
//! a compression dependency; it saves no bytes, which a local stand-in does
//! not need.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;

/// Largest payload of one stored deflate block.
const STORED_BLOCK_MAX: usize = 65_535;

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC32_TABLE: [u32; 256] = crc32_table();

/// CRC-32 (IEEE), as the gzip trailer needs.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        CRC32_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// `bytes` as a gzip member made of stored deflate blocks.
pub(crate) fn encode(bytes: &[u8]) -> Vec<u8> {
    let blocks = bytes.len().div_ceil(STORED_BLOCK_MAX).max(1);
    let mut out = Vec::with_capacity(bytes.len() + blocks * 5 + 18);
    // Magic, deflate, no flags, no mtime, no extra flags, unknown OS.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut chunks = bytes.chunks(STORED_BLOCK_MAX).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(bytes).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

/// Whether the request's `Accept-Encoding` allows gzip.
pub(crate) fn accepted(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates stored blocks only: enough to check the framing.
    fn decode_stored(gz: &[u8]) -> Vec<u8> {
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        let mut pos = 10;
        let mut out = Vec::new();
        loop {
            let last = gz[pos] & 1 == 1;
            assert_eq!(gz[pos] & 6, 0, "stored block");
            let len = u16::from_le_bytes([gz[pos + 1], gz[pos + 2]]) as usize;
            let nlen = u16::from_le_bytes([gz[pos + 3], gz[pos + 4]]);
            assert_eq!(nlen, !(len as u16));
            out.extend_from_slice(&gz[pos + 5..pos + 5 + len]);
            pos += 5 + len;
            if last {
                break;
            }
        }
        let crc = u32::from_le_bytes(gz[pos..pos + 4].try_into().unwrap());
        let size = u32::from_le_bytes(gz[pos + 4..pos + 8].try_into().unwrap());
        assert_eq!(crc, crc32(&out));
        assert_eq!(size as usize, out.len());
        assert_eq!(pos + 8, gz.len());
        out
    }

    #[test]
    fn crc_and_framing() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        for len in [0, 1, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(decode_stored(&encode(&data)), data);
        }
    }

    #[test]
    fn accept_encoding() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT_ENCODING, v.parse().unwrap());
            accepted(&h)
        };
        assert!(with("gzip"));
        assert!(with("br, gzip;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(!accepted(&HeaderMap::new()));
    }
}
