//! A progress bar for long comparison runs, on stderr only when it is a
//! terminal; otherwise (CI logs, pipes) each message is a plain line.

use indicatif::{ProgressBar, ProgressStyle};

/// Progress over a known number of runs.
pub(crate) struct Progress(ProgressBar);

/// A bar over `runs` runs.
pub(crate) fn bar(runs: u64) -> Progress {
    let bar = ProgressBar::new(runs);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left") {
        bar.set_style(style);
    }
    Progress(bar)
}

impl Progress {
    /// Prints `line` above the bar (or as a plain line when there is no bar).
    pub(crate) fn println(&self, line: impl AsRef<str>) {
        if self.0.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            self.0.println(line);
        }
    }

    /// One more run done.
    pub(crate) fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Removes the bar.
    pub(crate) fn finish_and_clear(&self) {
        self.0.finish_and_clear();
    }
}
