//! Values quoted in messages, conditions, Events and logs are cut to a
//! bound: a request, a manifest or a server can make a value as large as it
//! likes, and a message that quotes it whole becomes a megabyte denial, a
//! megabyte log line, an Event the API server refuses.

/// Characters kept of a value quoted inside a sentence.
pub const QUOTED: usize = 64;

/// Characters kept of a whole message built from such sentences.
pub const MESSAGE: usize = 1024;

/// `text`, cut to `max_chars` characters; an ellipsis says it was cut.
pub fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `text`, cut to at most `max_bytes` bytes of UTF-8 (plus the ellipsis's
/// three) at a character boundary, for limits counted in bytes.
pub fn cut_bytes(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_with_an_ellipsis_and_short_ones_kept() {
        assert_eq!(cut("short", 64), "short");
        let long = "é".repeat(1 << 20);
        let shown = cut(&long, QUOTED);
        assert_eq!(shown.chars().count(), QUOTED + 1);
        assert!(shown.ends_with('…'));
        let bytes = cut_bytes(&long, 101);
        assert!(bytes.len() <= 101 + '…'.len_utf8(), "{}", bytes.len());
        assert!(bytes.ends_with('…'));
        assert_eq!(cut_bytes("abc", 3), "abc");
    }
}
