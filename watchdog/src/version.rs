//! What this build of the watchdog is and which policy language it speaks.

/// The watchdog's version and the policy language version it accepts.
pub fn describe() -> String {
    format!(
        "hyperwatch {} (policy language v{})",
        env!("CARGO_PKG_VERSION"),
        hyperwatch_policies::LANGUAGE_VERSION
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_itself_and_the_policy_language() {
        let d = super::describe();
        assert!(d.starts_with("hyperwatch 0."), "{d}");
        assert!(d.contains("policy language v1"), "{d}");
    }
}
