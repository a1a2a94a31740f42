//! Shell-style name patterns (`*` any run of characters, `?` one character)
//! for selecting targets and matching silence labels.

/// Whether `text` matches `pattern` as a whole; `*` and `?` are the only
/// special characters, so names with dots or slashes need no escaping.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much text it has swallowed so far:
    // the classic linear backtracking for globs with a single lookback.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_and_question_mark() {
        assert!(matches("*", ""));
        assert!(matches("prod-*", "prod-eu1"));
        assert!(!matches("prod-*", "staging"));
        assert!(matches("r?", "r1"));
        assert!(!matches("r?", "r10"));
        assert!(matches("*db*", "pgdb01"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("nginx", "nginx"));
        assert!(!matches("nginx", "nginx2"));
    }
}
