//! A run compared with the baseline, and the report: the figures per group, the targets met or
//! not, and the regressions first — in markdown (`bench/report.md`) and on the terminal.

use std::fmt::Write;

use crate::results::{Better, Figure, Machine, Results};

/// One figure of this run against the baseline's.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub group: String,
    pub label: String,
    pub unit: String,
    /// `None` when the figure is new in this run.
    pub baseline: Option<f64>,
    /// `None` when the figure was not measured in this run (gone).
    pub current: Option<f64>,
    /// The change in per cent, positive when the figure got better; `None` when there is nothing
    /// to divide by (new, gone, a zero or failed value).
    pub improvement_pct: Option<f64>,
    /// Worse than the baseline by more than the threshold.
    pub regression: bool,
    /// Set, on every comparison, when the baseline ran on another kind of machine: the figures
    /// then differ by the machine too, and the report says so.
    pub machine_warning: Option<String>,
}

impl Comparison {
    /// `+3.2%`, `-15.0%`, `new`, `gone` or `-`.
    pub fn change(&self) -> String {
        match (self.baseline, self.current, self.improvement_pct) {
            (_, None, _) => "gone".into(),
            (None, _, _) => "new".into(),
            (_, _, Some(p)) => format!("{p:+.1}%"),
            _ => "-".into(),
        }
    }
}

/// Every figure of either run, this run's first; `threshold` is the share (0.10 for 10%) beyond
/// which a worse figure is a regression.
pub fn compare(current: &Results, baseline: &Results, threshold: f64) -> Vec<Comparison> {
    let machine_warning = machine_warning(&current.machine, &baseline.machine);
    let row = |f: &Figure, before: Option<f64>, now: Option<f64>| {
        let improvement = before.zip(now).and_then(|(b, n)| {
            let change = (n - b) / b.abs();
            change.is_finite().then_some(match f.better {
                Better::Higher => change,
                Better::Lower => -change,
            })
        });
        Comparison {
            name: f.name.clone(),
            group: f.group.clone(),
            label: f.label.clone(),
            unit: f.unit.clone(),
            baseline: before,
            current: now,
            improvement_pct: improvement.map(|i| i * 100.0),
            regression: !is_drift(f) && improvement.is_some_and(|i| i < -threshold),
            machine_warning: machine_warning.clone(),
        }
    };
    let mut out: Vec<Comparison> = current
        .figures
        .iter()
        .map(|f| row(f, baseline.figure(&f.name).map(|b| b.value), Some(f.value)))
        .collect();
    out.extend(
        baseline
            .figures
            .iter()
            .filter(|b| current.figure(&b.name).is_none())
            .map(|b| row(b, Some(b.value), None)),
    );
    out
}

/// The warning that the baseline ran on another kind of machine, if it did.
fn machine_warning_of(comparisons: Option<&[Comparison]>) -> Option<&String> {
    comparisons
        .unwrap_or_default()
        .iter()
        .find_map(|c| c.machine_warning.as_ref())
}

/// A figure that sits near zero and changes sign from run to run (memory growth over a drain):
/// a percentage of it means nothing, so it is shown and compared but never a regression.
fn is_drift(f: &Figure) -> bool {
    f.name.ends_with(".growth_mib")
}

fn machine_warning(current: &Machine, baseline: &Machine) -> Option<String> {
    (!current.same_kind(baseline)).then(|| {
        format!(
            "the baseline ran on another machine ({}, {} logical cores) than this run ({}, {} \
             logical cores): the changes are partly the machine's",
            baseline.cpu_model, baseline.logical_cores, current.cpu_model, current.logical_cores
        )
    })
}

/// A value as the report and the chart show it: whole numbers from 100 up, two decimals below.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn with_unit(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{} {unit}", number(v)))
}

/// The groups in the order their first figure was measured.
fn groups(figures: &[Figure]) -> Vec<&str> {
    let mut groups: Vec<&str> = Vec::new();
    for f in figures {
        if !groups.contains(&f.group.as_str()) {
            groups.push(&f.group);
        }
    }
    groups
}

fn regressions(comparisons: Option<&[Comparison]>) -> Vec<&Comparison> {
    comparisons
        .unwrap_or_default()
        .iter()
        .filter(|c| c.regression)
        .collect()
}

fn machine_line(r: &Results) -> String {
    let m = &r.machine;
    format!(
        "{} ({} logical cores, {} MiB), {}, {}, {}, host {}",
        m.cpu_model, m.logical_cores, m.memory_mib, m.os, m.kernel, m.rustc, m.hostname
    )
}

fn dirty(r: &Results) -> &'static str {
    if r.dirty {
        " with uncommitted changes"
    } else {
        ""
    }
}

/// The report in markdown, with the chart file embedded.
pub fn markdown(current: &Results, comparisons: Option<&[Comparison]>, chart_file: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark report\n");
    let _ = writeln!(
        md,
        "Commit `{}`{}, {} (took {:.0} s), on {}.\n",
        current.commit,
        dirty(current),
        current.started_at.format("%Y-%m-%d %H:%M UTC"),
        current.duration_s,
        machine_line(current)
    );
    if let Some(w) = machine_warning_of(comparisons) {
        let _ = writeln!(md, "> **Warning:** {w}.\n");
    }
    let regressions = regressions(comparisons);
    match comparisons {
        None => md.push_str(
            "No baseline to compare with (`scripts/bench.sh --save-baseline` keeps one).\n\n",
        ),
        Some(_) if regressions.is_empty() => {
            md.push_str("No regression against the baseline.\n\n");
        }
        Some(_) => {
            let _ = writeln!(
                md,
                "## Regressions against the baseline ({})\n\n| figure | baseline | now | change |\n|---|---|---|---|",
                regressions.len()
            );
            for c in &regressions {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | **{}** |",
                    c.label,
                    with_unit(c.baseline, &c.unit),
                    with_unit(c.current, &c.unit),
                    c.change()
                );
            }
            md.push('\n');
        }
    }
    let met = current.targets.iter().filter(|t| t.met).count();
    let _ = writeln!(
        md,
        "## Targets\n\n{met} of {} met.\n\n| target | measured | required | met |\n|---|---|---|---|",
        current.targets.len()
    );
    for t in &current.targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {} |",
            t.description,
            number(t.measured),
            t.comparison.symbol(),
            number(t.required),
            if t.met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(md, "\n## Figures\n\n![chart]({chart_file})\n");
    for group in groups(&current.figures) {
        let _ = writeln!(md, "### {group}\n");
        if comparisons.is_some() {
            md.push_str("| figure | value | baseline | change |\n|---|---|---|---|\n");
        } else {
            md.push_str("| figure | value |\n|---|---|\n");
        }
        for f in current.figures.iter().filter(|f| f.group == group) {
            let value = with_unit(Some(f.value), &f.unit);
            match comparisons.and_then(|cs| cs.iter().find(|c| c.name == f.name)) {
                Some(c) => {
                    let change = if c.regression {
                        format!("**{} regression**", c.change())
                    } else {
                        c.change()
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {value} | {} | {change} |",
                        f.label,
                        with_unit(c.baseline, &c.unit),
                    );
                }
                None if comparisons.is_some() => {
                    let _ = writeln!(md, "| {} | {value} | - | - |", f.label);
                }
                None => {
                    let _ = writeln!(md, "| {} | {value} |", f.label);
                }
            }
        }
        md.push('\n');
    }
    let gone: Vec<&Comparison> = comparisons
        .unwrap_or_default()
        .iter()
        .filter(|c| c.current.is_none())
        .collect();
    if !gone.is_empty() {
        md.push_str(
            "### In the baseline, not measured in this run\n\n| figure | baseline |\n|---|---|\n",
        );
        for c in gone {
            let _ = writeln!(md, "| {} | {} |", c.label, with_unit(c.baseline, &c.unit));
        }
        md.push('\n');
    }
    if !current.profiles.is_empty() {
        let _ = writeln!(
            md,
            "## Where the CPU went\n\nCores each program used while a figure was measured (the \
             machine has {}).\n\n| stretch | seconds | busiest programs (cores) |\n|---|---|---|",
            current.machine.logical_cores
        );
        for p in &current.profiles {
            let busiest: Vec<String> = p
                .cpu
                .iter()
                .take(6)
                .map(|u| format!("{} {:.2}", u.program, u.cores))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} |",
                p.stretch,
                p.seconds,
                busiest.join(", ")
            );
        }
        md.push('\n');
    }
    if !current.notes.is_empty() {
        md.push_str("## Notes\n\n");
        for n in &current.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// The report for the terminal: the figures per group, the targets, then the machine warning
/// and the regressions last, where they are seen when the run ends.
pub fn summary(current: &Results, comparisons: Option<&[Comparison]>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "commit {}{}\nmachine {}\n",
        current.commit,
        dirty(current),
        machine_line(current)
    );
    let width = current
        .figures
        .iter()
        .map(|f| f.label.chars().count())
        .max()
        .unwrap_or(0);
    let unit_width = current
        .figures
        .iter()
        .map(|f| f.unit.chars().count())
        .max()
        .unwrap_or(0);
    for group in groups(&current.figures) {
        let _ = writeln!(s, "{group}");
        for f in current.figures.iter().filter(|f| f.group == group) {
            let vs = match comparisons.and_then(|cs| cs.iter().find(|c| c.name == f.name)) {
                Some(c) if c.regression => format!("  {}  REGRESSION", c.change()),
                Some(c) => format!("  {}", c.change()),
                None => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:<width$}  {:>9} {:<unit_width$}{vs}",
                f.label,
                number(f.value),
                f.unit
            );
        }
    }
    let gone: Vec<&Comparison> = comparisons
        .unwrap_or_default()
        .iter()
        .filter(|c| c.current.is_none())
        .collect();
    if !gone.is_empty() {
        let _ = writeln!(s, "not measured this time (in the baseline)");
        for c in gone {
            let _ = writeln!(s, "  {}", c.label);
        }
    }
    let met = current.targets.iter().filter(|t| t.met).count();
    let _ = writeln!(s, "\ntargets: {met} of {} met", current.targets.len());
    for t in &current.targets {
        let _ = writeln!(
            s,
            "  [{}] {} (measured {}, required {} {})",
            if t.met { "met" } else { "NOT MET" },
            t.description,
            number(t.measured),
            t.comparison.symbol(),
            number(t.required)
        );
    }
    if let Some(w) = machine_warning_of(comparisons) {
        let _ = writeln!(s, "\nWARNING: {w}");
    }
    let regressions = regressions(comparisons);
    if !regressions.is_empty() {
        let _ = writeln!(
            s,
            "\nREGRESSIONS against the baseline: {}",
            regressions.len()
        );
        for c in &regressions {
            let _ = writeln!(
                s,
                "  REGRESSION {}: {} -> {} ({})",
                c.label,
                with_unit(c.baseline, &c.unit),
                with_unit(c.current, &c.unit),
                c.change()
            );
        }
    } else if comparisons.is_some() {
        s.push_str("\nno regression against the baseline\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::sample;

    fn by_name<'a>(cs: &'a [Comparison], name: &str) -> &'a Comparison {
        cs.iter().find(|c| c.name == name).unwrap()
    }

    const THROUGHPUT: &str = "consumers.accounting.events_per_s";
    const LATENCY: &str = "checkout.c10000.rate1000.p99_ms";

    #[test]
    fn a_drop_or_rise_over_the_threshold_is_a_regression_and_a_small_one_is_not() {
        let baseline = sample(1000.0, 50.0);
        let slower = compare(&sample(850.0, 57.5), &baseline, 0.10);
        let t = by_name(&slower, THROUGHPUT);
        assert!(t.regression, "15% less throughput: {t:?}");
        assert!((t.improvement_pct.unwrap() + 15.0).abs() < 1e-9);
        let l = by_name(&slower, LATENCY);
        assert!(l.regression, "15% more latency: {l:?}");
        assert!((l.improvement_pct.unwrap() + 15.0).abs() < 1e-9);
        assert!(
            !by_name(&slower, "memory.accounting.drain.peak_mib").regression,
            "unchanged"
        );

        for close in [sample(920.0, 54.0), sample(1080.0, 46.0)] {
            let cs = compare(&close, &baseline, 0.10);
            assert!(
                cs.iter().all(|c| !c.regression),
                "8% is within the threshold: {cs:?}"
            );
        }
        let better = compare(&sample(1500.0, 20.0), &baseline, 0.10);
        assert!(
            better.iter().all(|c| !c.regression),
            "improvements are not regressions"
        );
        assert!((by_name(&better, LATENCY).improvement_pct.unwrap() - 60.0).abs() < 1e-9);
        assert_eq!(by_name(&better, THROUGHPUT).change(), "+50.0%");
    }

    #[test]
    fn figures_new_or_gone_are_listed() {
        let baseline = sample(1000.0, 50.0);
        let mut current = sample(1000.0, 50.0);
        current.figures[0].name = "consumers.new.events_per_s".into();
        current.figures[0].label = "a new figure".into();
        let cs = compare(&current, &baseline, 0.10);
        assert_eq!(cs.len(), 4);
        let new = by_name(&cs, "consumers.new.events_per_s");
        assert_eq!((new.change().as_str(), new.regression), ("new", false));
        let gone = by_name(&cs, THROUGHPUT);
        assert_eq!((gone.change().as_str(), gone.regression), ("gone", false));

        let md = markdown(&current, Some(&cs), "report.svg");
        assert!(
            md.contains("| a new figure | 1000 events/s | - | new |"),
            "{md}"
        );
        assert!(
            md.contains("not measured in this run\n\n| figure | baseline |\n|---|---|\n| consumers.accounting.events_per_s label | 1000 events/s |"),
            "{md}"
        );
    }

    #[test]
    fn a_failed_or_zero_value_is_no_regression_and_no_number() {
        let baseline = sample(0.0, 50.0);
        let cs = compare(&sample(f64::NAN, 50.0), &baseline, 0.10);
        let t = by_name(&cs, THROUGHPUT);
        assert_eq!((t.improvement_pct, t.regression), (None, false));
        assert_eq!(t.change(), "-");
        let text = summary(&sample(f64::NAN, 50.0), Some(&cs));
        assert!(text.contains("n/a events/s"), "{text}");
    }

    #[test]
    fn another_machine_is_warned_about_and_still_compared() {
        let baseline = sample(1000.0, 50.0);
        let mut current = sample(850.0, 50.0);
        assert!(compare(&current, &baseline, 0.1)
            .iter()
            .all(|c| c.machine_warning.is_none()));
        current.machine.logical_cores += 6;
        let cs = compare(&current, &baseline, 0.1);
        assert!(by_name(&cs, THROUGHPUT).regression);
        let md = markdown(&current, Some(&cs), "report.svg");
        assert_eq!(
            md.matches("> **Warning:** the baseline ran on another machine")
                .count(),
            1,
            "{md}"
        );
        assert!(
            summary(&current, Some(&cs)).contains("WARNING: the baseline ran on another machine")
        );
    }

    #[test]
    fn the_report_shows_regressions_first_unmet_targets_and_the_chart() {
        let baseline = sample(1000.0, 50.0);
        let current = sample(800.0, 150.0);
        let cs = compare(&current, &baseline, 0.10);
        let md = markdown(&current, Some(&cs), "report.svg");
        let regressions = md
            .find("## Regressions against the baseline (2)")
            .expect(&md);
        assert!(
            regressions < md.find("## Targets").unwrap(),
            "regressions first"
        );
        assert!(
            md.contains("| consumers.accounting.events_per_s label | 1000 events/s | 800 events/s | **-20.0%** |"),
            "{md}"
        );
        assert!(md.contains("0 of 1 met."), "{md}");
        assert!(
            md.contains("| checkout p99 under 100 ms | 150 | < 100 | **no** |"),
            "{md}"
        );
        assert!(md.contains("![chart](report.svg)"));
        assert!(
            md.contains("| checkout.c10000.rate1000.p99_ms label | 150 ms | 50.00 ms | **-200.0% regression** |"),
            "{md}"
        );
        assert!(
            md.contains("| accounting drain | 10.0 | postgres 1.20 |"),
            "{md}"
        );
        assert_eq!(md.matches("### memory").count(), 1);

        let text = summary(&current, Some(&cs));
        assert!(
            text.contains("  REGRESSION consumers.accounting.events_per_s label: 1000 events/s -> 800 events/s (-20.0%)"),
            "{text}"
        );
        assert!(
            text.contains("[NOT MET] checkout p99 under 100 ms (measured 150, required < 100)"),
            "{text}"
        );
        assert!(
            text.find("REGRESSIONS").unwrap() > text.find("targets:").unwrap(),
            "{text}"
        );

        let alone = markdown(&current, None, "r.svg");
        assert!(alone.contains("No baseline"));
        assert!(
            alone.contains("| checkout.c10000.rate1000.p99_ms label | 150 ms |\n"),
            "{alone}"
        );
        assert!(!summary(&current, None).contains("REGRESSION"));
    }

    #[test]
    fn groups_are_listed_once_in_the_order_first_measured() {
        let mut r = sample(1000.0, 50.0);
        let mut extra = r.figures[0].clone();
        extra.name = "consumers.other".into();
        r.figures.push(extra);
        assert_eq!(groups(&r.figures), ["consumers", "checkout", "memory"]);
        let md = markdown(&r, None, "r.svg");
        assert_eq!(md.matches("### consumers").count(), 1);
    }

    #[test]
    fn memory_growth_is_compared_but_never_a_regression() {
        let mut baseline = sample(1000.0, 50.0);
        baseline.figures[2].name = "memory.accounting.drain.growth_mib".into();
        baseline.figures[2].value = -5.7;
        let mut current = baseline.clone();
        current.figures[2].value = -4.6;
        let c = compare(&current, &baseline, 0.10)
            .into_iter()
            .find(|c| c.name == "memory.accounting.drain.growth_mib")
            .unwrap();
        assert!(c.improvement_pct.unwrap() < -10.0, "{c:?}");
        assert!(!c.regression);
    }
}
