//! The recovery-policy language of hyperwatch and, with the policies issue,
//! the engine that evaluates it.
//!
//! Layout:
//! * [`LANGUAGE_VERSION`]: the version of the policy file format.

/// Version of the policy file format; files declare the version they target.
pub const LANGUAGE_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    #[test]
    fn language_version_starts_at_one() {
        assert_eq!(super::LANGUAGE_VERSION, 1);
    }
}
