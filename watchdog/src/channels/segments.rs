//! SMS length limits (3GPP TS 23.038 and 23.040): a text in the GSM 7-bit
//! alphabet fits 160 characters in one message, or 153 per segment when
//! concatenated (the user-data header takes the rest); any other character
//! makes the whole text UCS-2, 70 UTF-16 units alone or 67 per segment.
//! Characters of the GSM extension table take two septets.

/// Septets in a single GSM 7-bit message.
const GSM_SINGLE: usize = 160;
/// Septets per segment of a concatenated GSM 7-bit message.
const GSM_SEGMENT: usize = 153;
/// UTF-16 units in a single UCS-2 message.
const UCS2_SINGLE: usize = 70;
/// UTF-16 units per segment of a concatenated UCS-2 message.
const UCS2_SEGMENT: usize = 67;

/// The GSM 03.38 basic character set (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (escape + character: two septets each).
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// How a text is encoded on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 7-bit default alphabet.
    Gsm7,
    /// UCS-2 (UTF-16).
    Ucs2,
}

/// The encoding a text needs.
pub fn encoding(text: &str) -> Encoding {
    if text
        .chars()
        .all(|c| GSM_BASIC.contains(c) || GSM_EXTENSION.contains(c))
    {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Units (septets or UTF-16 units) one character takes; never split
/// across segments.
fn units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 if GSM_EXTENSION.contains(c) => 2,
        Encoding::Gsm7 => 1,
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// How many segments (billed messages) a text is sent as.
pub fn count(text: &str) -> usize {
    let enc = encoding(text);
    let (single, segment) = limits(enc);
    let total: usize = text.chars().map(|c| units(c, enc)).sum();
    if total <= single {
        return 1;
    }
    // Greedy packing: a character that does not fit starts a new segment.
    let mut segments = 1;
    let mut used = 0;
    for c in text.chars() {
        let u = units(c, enc);
        if used + u > segment {
            segments += 1;
            used = 0;
        }
        used += u;
    }
    segments
}

fn limits(encoding: Encoding) -> (usize, usize) {
    match encoding {
        Encoding::Gsm7 => (GSM_SINGLE, GSM_SEGMENT),
        Encoding::Ucs2 => (UCS2_SINGLE, UCS2_SEGMENT),
    }
}

/// The text cut to fit `max_segments`, ending with a mark that it was cut
/// ("..." in GSM texts, so the cut does not switch the text to UCS-2).
pub fn fit(text: &str, max_segments: usize) -> String {
    let max_segments = max_segments.max(1);
    if count(text) <= max_segments {
        return text.to_owned();
    }
    let mark = match encoding(text) {
        Encoding::Gsm7 => "...",
        Encoding::Ucs2 => "…",
    };
    // Start from what could fit at best, then drop characters one by one
    // (texts are a few hundred characters; this stays cheap).
    let (single, segment) = limits(encoding(text));
    let best = if max_segments == 1 {
        single
    } else {
        segment * max_segments
    };
    let mut cut: String = text.chars().take(best).collect();
    while !cut.is_empty() && count(&format!("{cut}{mark}")) > max_segments {
        cut.pop();
    }
    format!("{}{mark}", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_single_and_concatenated_limits() {
        assert_eq!(count(&"a".repeat(160)), 1);
        assert_eq!(count(&"a".repeat(161)), 2);
        assert_eq!(count(&"a".repeat(306)), 2);
        assert_eq!(count(&"a".repeat(307)), 3);
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(encoding("a{b}€"), Encoding::Gsm7);
        assert_eq!(count(&"{".repeat(80)), 1);
        assert_eq!(count(&"{".repeat(81)), 2);
    }

    #[test]
    fn any_other_character_makes_it_ucs2() {
        assert_eq!(encoding("héllo ✓"), Encoding::Ucs2);
        assert_eq!(count(&"✓".repeat(70)), 1);
        assert_eq!(count(&"✓".repeat(71)), 2);
        // An emoji is two UTF-16 units and is not split.
        assert_eq!(count(&"😀".repeat(35)), 1);
        assert_eq!(count(&"😀".repeat(36)), 2);
    }

    #[test]
    fn fit_cuts_with_a_mark_that_keeps_the_encoding() {
        let long = "host hv-12 down ".repeat(30);
        let one = fit(&long, 1);
        assert!(one.ends_with("..."), "{one}");
        assert_eq!(count(&one), 1);
        assert_eq!(one.len(), 160, "uses the whole message: {one}");
        assert_eq!(encoding(&one), Encoding::Gsm7);
        let two = fit(&long, 2);
        assert_eq!(count(&two), 2);
        assert_eq!(fit("short", 1), "short");
        let uni = fit(&"✓".repeat(100), 1);
        assert!(uni.ends_with('…'));
        assert_eq!(count(&uni), 1);
    }
}
