//! Trace and span ID text forms, following Tempo's `pkg/util/traceid.go`.
//!
//! * Query paths (`/api/traces/{id}`) parse with [`parse_trace_id`]
//!   (`util.HexStringToTraceID`).
//! * Search results print IDs with [`trace_id_to_search_hex`]
//!   (`util.TraceIDToHexString`: hex, leading zeros stripped).
//! * Trace-by-ID JSON carries IDs as base64 instead (see `trace_json`).

/// A 128-bit trace ID.
pub type TraceId = [u8; 16];

/// Why a trace ID string was rejected. `Display` is Tempo's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceIdError {
    /// The string was empty. (Tempo itself would pad `""` to all zeros, but an
    /// empty path segment never reaches its handler.)
    #[error("trace ID is empty")]
    Empty,
    /// A character other than `[0-9a-fA-F]`.
    ///
    /// `position` is **1-based** and counts characters, exactly as Tempo
    /// prints it (`pos+1` over `strings.Split(id, "")`).
    #[error(
        "trace IDs can only contain hex characters: invalid character '{character}' at position {position}"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// 1-based character position in the input.
        position: usize,
    },
    /// More than 16 bytes after decoding (more than 32 hex characters).
    #[error("trace IDs can't be larger than 128 bits")]
    TooLarge,
}

/// Parses a trace ID the way Tempo's query path does.
///
/// Upper- and lower-case hex are accepted; an odd-length string gets a
/// leading `0`; the decoded bytes are left-padded with zeros to 16 bytes.
/// Anything longer than 32 hex characters fails, even when the extra
/// characters are leading zeros.
pub fn parse_trace_id(s: &str) -> Result<TraceId, TraceIdError> {
    if s.is_empty() {
        return Err(TraceIdError::Empty);
    }
    let mut nibbles = Vec::with_capacity(s.len() + 1);
    for (index, character) in s.chars().enumerate() {
        match character.to_digit(16) {
            // `to_digit(16)` accepts exactly [0-9a-fA-F].
            Some(n) => nibbles.push(n as u8),
            None => {
                return Err(TraceIdError::InvalidCharacter {
                    character,
                    position: index + 1,
                });
            }
        }
    }
    if nibbles.len() % 2 == 1 {
        nibbles.insert(0, 0);
    }
    let byte_len = nibbles.len() / 2;
    if byte_len > 16 {
        return Err(TraceIdError::TooLarge);
    }
    let mut id = [0u8; 16];
    for (i, pair) in nibbles.chunks_exact(2).enumerate() {
        id[16 - byte_len + i] = (pair[0] << 4) | pair[1];
    }
    Ok(id)
}

/// 32 lowercase hex characters (the form used in query URLs).
pub fn trace_id_to_hex(id: &TraceId) -> String {
    hex::encode(id)
}

/// Hex with leading zeros stripped, as in Tempo search results
/// (`util.TraceIDToHexString`). The all-zero ID prints as `"0"`.
pub fn trace_id_to_search_hex(id: &TraceId) -> String {
    let full = hex::encode(id);
    let trimmed = full.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Lowercase hex of a span ID, without trimming (search `spanID` is the
/// zero-padded 16-character form for 8-byte IDs).
pub fn span_id_to_hex(id: &[u8]) -> String {
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn padded(tail: &[u8]) -> TraceId {
        let mut id = [0u8; 16];
        id[16 - tail.len()..].copy_from_slice(tail);
        id
    }

    #[test]
    fn single_zero_is_valid_and_all_zero() {
        assert_eq!(parse_trace_id("0").unwrap(), [0u8; 16]);
    }

    #[test]
    fn odd_length_gets_leading_zero_and_left_padding() {
        assert_eq!(parse_trace_id("abc").unwrap(), padded(&[0x0a, 0xbc]));
        // Tempo's own test case "234567890abcdef".
        assert_eq!(
            parse_trace_id("234567890abcdef").unwrap(),
            padded(&[0x02, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef])
        );
    }

    #[test]
    fn full_length_and_case_insensitive() {
        assert_eq!(parse_trace_id(&"f".repeat(32)).unwrap(), [0xff; 16]);
        let lower = parse_trace_id("5b8efff798038103d269b633813fc700").unwrap();
        let upper = parse_trace_id("5B8EFFF798038103D269B633813FC700").unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower[0], 0x5b);
        assert_eq!(lower[15], 0x00);
    }

    #[test]
    fn longer_than_128_bits_fails() {
        let err = parse_trace_id(&"f".repeat(33)).unwrap_err();
        assert_eq!(err, TraceIdError::TooLarge);
        assert_eq!(err.to_string(), "trace IDs can't be larger than 128 bits");
        // Leading zeros beyond 32 characters also fail.
        assert_eq!(
            parse_trace_id(&format!("00{}", "f".repeat(32))).unwrap_err(),
            TraceIdError::TooLarge
        );
        // Tempo's own test case.
        assert_eq!(
            parse_trace_id("121234567890abcdef1234567890abcdef").unwrap_err(),
            TraceIdError::TooLarge
        );
    }

    #[test]
    fn invalid_character_message_uses_one_based_position() {
        assert_eq!(
            parse_trace_id("xyz").unwrap_err().to_string(),
            "trace IDs can only contain hex characters: invalid character 'x' at position 1"
        );
        assert_eq!(
            parse_trace_id("12xz").unwrap_err().to_string(),
            "trace IDs can only contain hex characters: invalid character 'x' at position 3"
        );
        // Tempo's own test case: trailing space at position 17.
        assert_eq!(
            parse_trace_id("1234567890abcdef ").unwrap_err().to_string(),
            "trace IDs can only contain hex characters: invalid character ' ' at position 17"
        );
        // Positions count characters, not bytes; the first bad one wins even
        // when the string is also too long.
        assert_eq!(
            parse_trace_id(&format!("é{}", "f".repeat(40))).unwrap_err(),
            TraceIdError::InvalidCharacter {
                character: 'é',
                position: 1
            }
        );
        assert_eq!(
            parse_trace_id("aé-").unwrap_err(),
            TraceIdError::InvalidCharacter {
                character: 'é',
                position: 2
            }
        );
    }

    #[test]
    fn empty_is_an_error() {
        assert_eq!(
            parse_trace_id("").unwrap_err().to_string(),
            "trace ID is empty"
        );
    }

    #[test]
    fn hex_forms() {
        let id = padded(&[0x01, 0x2a]);
        assert_eq!(trace_id_to_hex(&id), "0000000000000000000000000000012a");
        assert_eq!(trace_id_to_search_hex(&id), "12a");
        assert_eq!(trace_id_to_search_hex(&[0u8; 16]), "0");
        assert_eq!(trace_id_to_search_hex(&[0xab; 16]), "ab".repeat(16));
        assert_eq!(
            span_id_to_hex(&[0, 0, 0, 0, 0, 0, 0x12, 0x34]),
            "0000000000001234"
        );
        // Round trip through the search form.
        assert_eq!(parse_trace_id(&trace_id_to_search_hex(&id)).unwrap(), id);
    }
}
