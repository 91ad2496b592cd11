//! What others wrote, made safe to put on a terminal. A message, an SOS
//! or a name comes from another device, which may be hostile: a control
//! character could clear the screen, move the cursor over a page that
//! just arrived, colour a forged "all clear", or (bidirectional overrides)
//! show text in another order than it was written. Each such character is
//! shown as its escape (`\u{1b}`) instead; line breaks and tabs stay.

/// `bytes` (UTF-8, or not) as text safe to print.
pub(super) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || c == '\t' || !(c.is_control() || is_format(c)) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out
}

/// Invisible characters that change how text around them is shown:
/// directional marks, embeddings, overrides and isolates.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_and_direction_characters_are_shown_not_obeyed() {
        assert_eq!(
            printable("hello\x1b[2J\x1b[Hall clear\r!".as_bytes()),
            "hello\\u{1b}[2J\\u{1b}[Hall clear\\u{d}!"
        );
        assert_eq!(printable("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(
            printable("línea 1\n\tlínea 2".as_bytes()),
            "línea 1\n\tlínea 2"
        );
        assert_eq!(printable(&[0x66, 0xff, 0x0a]), "f\u{fffd}\n");
    }
}
