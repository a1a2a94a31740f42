//! The demo's one readable stream: lines from every source (the simulated
//! hosts' own timelines, the watchdog's decisions and plans, host states,
//! the console, the batch script, the mail sink, the demo's own actions),
//! each stamped with its time since the demo began, held back a moment so
//! that lines that reach the demo late (the API is polled) still print in
//! the order things happened.

use std::{
    io::Write,
    time::{Duration, Instant, SystemTime},
};

/// How long a line is held for later lines that happened before it: the
/// API is polled every half second and answers within a few hundred ms.
const HOLD: Duration = Duration::from_millis(1200);

/// One line of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Seconds since the demo began.
    pub at: f64,
    /// Who says it: a host, "watchdog", "planner", "console", "email", ...
    pub source: String,
    pub text: String,
}

/// The stream: where it started, and the lines not yet printed.
pub struct Timeline {
    started: Instant,
    started_wall: SystemTime,
    held: Vec<Line>,
    last_output: Instant,
}

impl Default for Timeline {
    /// A stream starting now.
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            held: Vec::new(),
            last_output: Instant::now(),
        }
    }
}

impl Timeline {
    /// When the demo began (wall clock), for readers of its output.
    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    /// Seconds since the demo began.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A wall-clock time as seconds since the demo began.
    pub fn since_start(&self, t: SystemTime) -> f64 {
        match t.duration_since(self.started_wall) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }

    /// Adds a line that happened at `at`.
    pub fn push(&mut self, at: f64, source: &str, text: impl Into<String>) {
        self.held.push(Line {
            at,
            source: source.to_owned(),
            text: text.into(),
        });
    }

    /// Adds a line happening now.
    pub fn say(&mut self, source: &str, text: impl Into<String>) {
        let at = self.now();
        self.push(at, source, text);
    }

    /// Prints the held lines that are old enough, oldest first.
    pub fn flush_due(&mut self) {
        let cutoff = self.now() - HOLD.as_secs_f64();
        self.flush(|l| l.at <= cutoff);
    }

    /// Prints every held line.
    pub fn flush_all(&mut self) {
        self.flush(|_| true);
    }

    /// Prints `text` as it is (after every held line).
    pub fn banner(&mut self, text: &str) {
        self.flush_all();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        self.last_output = Instant::now();
    }

    /// How long nothing was printed, or zero while lines wait to be
    /// (a progress line just said is held too: not quiet).
    pub fn quiet_for(&self) -> Duration {
        if self.held.is_empty() {
            self.last_output.elapsed()
        } else {
            Duration::ZERO
        }
    }

    fn flush(&mut self, due: impl Fn(&Line) -> bool) {
        let (mut now, later): (Vec<Line>, Vec<Line>) =
            std::mem::take(&mut self.held).into_iter().partition(due);
        self.held = later;
        if now.is_empty() {
            return;
        }
        now.sort_by(|a, b| a.at.total_cmp(&b.at));
        let mut out = std::io::stdout().lock();
        for l in &now {
            let _ = writeln!(out, "{}", format_line(l));
        }
        let _ = out.flush();
        self.last_output = Instant::now();
    }
}

/// `  +12.3s  hv-1      text`: time, source in a column, text.
pub fn format_line(l: &Line) -> String {
    format!(
        "{:>8}  {:<9} {}",
        format!("+{:.1}s", l.at),
        l.source,
        l.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_align_in_columns() {
        let l = Line {
            at: 12.345,
            source: "hv-1".into(),
            text: "nginx crashes".into(),
        };
        assert_eq!(format_line(&l), "  +12.3s  hv-1      nginx crashes");
    }

    #[test]
    fn late_lines_are_held_and_printed_in_order() {
        let mut t = Timeline::default();
        t.push(0.5, "b", "second");
        t.push(0.1, "a", "first");
        assert_eq!(t.held.len(), 2);
        assert_eq!(t.quiet_for(), Duration::ZERO, "lines waiting: not quiet");
        t.flush_due();
        assert_eq!(t.held.len(), 2, "both younger than the hold");
        t.push(-10.0, "c", "long ago");
        t.flush_due();
        assert_eq!(t.held.len(), 2, "the old one went out alone");
        t.flush_all();
        assert!(t.held.is_empty());
    }
}
