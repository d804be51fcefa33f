//! The progress line on stderr: what phase the run is in and, while producing, the rate.

use super::*;

pub(super) fn progress_bar(_s: &Scenario) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// What the progress line shows: the phase, and during the produce phase how far it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    WarmUp,
    Producing,
    Draining,
    Verifying,
}

impl Phase {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Phase::WarmUp => "warm-up",
            Phase::Producing => "producing",
            Phase::Draining => "draining",
            Phase::Verifying => "verifying",
        }
    }
}

/// `1234` → `1234`, `1234567` → `1.23M`: counts short enough for one 80-column line.
pub(super) fn compact(n: u64) -> String {
    match n {
        0..=99_999 => n.to_string(),
        100_000..=999_999 => format!("{:.0}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// One progress line, at most 80 columns: the phase, a bar of the messages sent (or of the
/// time produced), and while producing the throughput and p99 so far; once producing has
/// ended, what the consumers have read instead (the throughput of a finished phase would be
/// a falling average, not a rate).
pub(super) fn progress_line(
    phase: Phase,
    done: u64,
    total: u64,
    by_time: bool,
    mib_s: f64,
    p99_ms: f64,
    consumed: u64,
) -> String {
    const WIDTH: usize = 20;
    let done = done.min(total);
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as f64 / total as f64) * WIDTH as f64) as usize
    };
    let bar = format!("{}{}", "=".repeat(filled), " ".repeat(WIDTH - filled));
    let amount = if by_time {
        format!("{:.0}/{:.0} s", done as f64 / 1000.0, total as f64 / 1000.0)
    } else {
        format!("{}/{} msgs", compact(done), compact(total))
    };
    let tail = match phase {
        Phase::WarmUp | Phase::Producing => {
            format!("{mib_s:.0} MiB/s p99 {p99_ms:.1} ms")
        }
        Phase::Draining | Phase::Verifying => format!("consumed {}", compact(consumed)),
    };
    let line = format!("{:<9} [{bar}] {amount} {tail}", phase.as_str());
    line.chars().take(80).collect()
}

pub(super) fn update_progress(
    bar: &ProgressBar,
    c: &Collector,
    s: &Scenario,
    phase: Phase,
    produce_s: f64,
) {
    if bar.is_hidden() {
        return;
    }
    let (sent, _acked, consumed) = c.progress();
    let p99 = c.produce_latency();
    let p99_ms = if p99.is_empty() {
        0.0
    } else {
        p99.value_at_quantile(0.99) as f64 / 1000.0
    };
    let bytes: u64 = c.producers.iter().map(|p| p.sent_totals().1).sum();
    let mib_s = if produce_s > 0.0 {
        bytes as f64 / MIB / produce_s
    } else {
        0.0
    };
    let (done, total, by_time) = match s.producers.stop() {
        StopAt::Messages(n) => (sent, n * u64::from(s.producers.count), false),
        StopAt::Duration(d) => (
            (produce_s * 1000.0) as u64,
            (d + s.producers.warmup.0).as_millis() as u64,
            true,
        ),
    };
    bar.set_message(progress_line(
        phase, done, total, by_time, mib_s, p99_ms, consumed,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_fits_80_columns_and_shows_no_rate_after_producing() {
        let producing = progress_line(
            Phase::Producing,
            12_345_678,
            1_048_576_000,
            false,
            12345.6,
            1234.5,
            9_999_999,
        );
        assert!(producing.chars().count() <= 80, "{producing}");
        assert!(
            producing.starts_with("producing [") && producing.contains("MiB/s"),
            "{producing}"
        );
        let draining = progress_line(Phase::Draining, 10_000, 10_000, false, 99.0, 1.0, 9_000);
        assert_eq!(
            draining,
            "draining  [====================] 10000/10000 msgs consumed 9000"
        );
        let timed = progress_line(Phase::WarmUp, 2_500, 10_000, true, 5.0, 0.5, 0);
        assert_eq!(
            timed,
            "warm-up   [=====               ] 2/10 s 5 MiB/s p99 0.5 ms"
        );
    }
}
