//! tracefs: mounting it when missing, and reading tracepoint field offsets
//! from `events/CATEGORY/NAME/format`, since fields move between kernels.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

/// A tracepoint field as its format file describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// Errors finding or reading tracepoint formats.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error("tracefs is not mounted at {path} and mounting it failed: {source}")]
    Mount { path: PathBuf, source: nix::Error },
    #[error("reading tracepoint format {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint format {path} has no field `{field}`")]
    MissingField { path: PathBuf, field: String },
    #[error("tracepoint format {path}: field `{field}` is {size} bytes, expected {expected}")]
    FieldSize {
        path: PathBuf,
        field: String,
        size: u32,
        expected: u32,
    },
}

/// Makes sure tracefs is available at `root`, mounting it when it is not.
pub fn ensure_mounted(root: &Path) -> Result<(), TracefsError> {
    if root.join("events").is_dir() {
        return Ok(());
    }
    nix::mount::mount(
        Some("nodev"),
        root,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| TracefsError::Mount {
        path: root.to_owned(),
        source,
    })?;
    tracing::info!(path = %root.display(), "mounted tracefs");
    Ok(())
}

/// The fields of one tracepoint, read from its format file.
#[derive(Debug)]
pub struct Format {
    path: PathBuf,
    fields: HashMap<String, Field>,
}

impl Format {
    /// Reads `events/{category}/{name}/format` under the tracefs root.
    pub fn read(root: &Path, category: &str, name: &str) -> Result<Self, TracefsError> {
        let path = root.join("events").join(category).join(name).join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| TracefsError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            fields: parse_format(&text),
            path,
        })
    }

    /// The field called `name`, checked to be `size` bytes wide.
    pub fn field(&self, name: &str, size: u32) -> Result<Field, TracefsError> {
        let field = *self
            .fields
            .get(name)
            .ok_or_else(|| TracefsError::MissingField {
                path: self.path.clone(),
                field: name.to_owned(),
            })?;
        if field.size != size {
            return Err(TracefsError::FieldSize {
                path: self.path.clone(),
                field: name.to_owned(),
                size: field.size,
                expected: size,
            });
        }
        Ok(field)
    }

    /// The field called `name`, checked to be one of `sizes` bytes wide.
    pub fn field_in(&self, name: &str, sizes: &[u32]) -> Result<Field, TracefsError> {
        let field = self
            .field_any(name)
            .ok_or_else(|| TracefsError::MissingField {
                path: self.path.clone(),
                field: name.to_owned(),
            })?;
        if !sizes.contains(&field.size) {
            return Err(TracefsError::FieldSize {
                path: self.path.clone(),
                field: name.to_owned(),
                size: field.size,
                expected: sizes[0],
            });
        }
        Ok(field)
    }

    /// The field called `name`, whatever its width.
    pub fn field_any(&self, name: &str) -> Option<Field> {
        self.fields.get(name).copied()
    }
}

/// Parses the `field:TYPE NAME; offset:N; size:N; signed:N;` lines.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let Some(decl) = line.trim().strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';').map(str::trim);
        let Some(declaration) = parts.next() else {
            continue;
        };
        // The name is the last word, without an array suffix: `char comm[16]`.
        let name = declaration
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .split('[')
            .next()
            .unwrap_or("");
        let (mut offset, mut size, mut signed) = (None, None, false);
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("signed:") {
                signed = v == "1";
            }
        }
        if let (false, Some(offset), Some(size)) = (name.is_empty(), offset, size) {
            fields.insert(
                name.to_owned(),
                Field {
                    offset,
                    size,
                    signed,
                },
            );
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_root(kernel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tracefs")
            .join(kernel)
    }

    #[test]
    fn reads_sched_switch_of_kernel_6_18() {
        let f = Format::read(&fixture_root("6.18"), "sched", "sched_switch").unwrap();
        assert_eq!(
            f.field("next_pid", 4).unwrap(),
            Field {
                offset: 56,
                size: 4,
                signed: true
            }
        );
        assert_eq!(f.field("prev_state", 8).unwrap().offset, 32);
        assert_eq!(f.field_any("next_comm").unwrap().size, 16);
    }

    #[test]
    fn wrong_width_and_missing_fields_are_errors() {
        let f = Format::read(&fixture_root("6.18"), "sched", "sched_switch").unwrap();
        assert!(matches!(
            f.field("next_pid", 8),
            Err(TracefsError::FieldSize { size: 4, .. })
        ));
        assert!(matches!(
            f.field("nope", 4),
            Err(TracefsError::MissingField { .. })
        ));
    }

    #[test]
    fn missing_format_names_the_file() {
        let err = Format::read(Path::new("/nonexistent"), "sched", "x").unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/events/sched/x/format")
        );
    }
}
