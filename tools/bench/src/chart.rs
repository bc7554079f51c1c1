//! The report's chart: one panel per group and unit (checkout's throughput, its latency, the
//! consumers' rates and ratios to their ceilings, memory...), a horizontal bar per figure, the
//! baseline's bar under the run's, and a red mark where the issue sets a target.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::number;
use crate::results::{Figure, Results};

const WIDTH: u32 = 1200;
const LEGEND: u32 = 40;
const ROW: u32 = 34;
/// A panel's caption and x axis.
const PANEL_PADDING: u32 = 80;
const FONT: &str = "sans-serif";
const LABEL_SIZE: u32 = 16;
/// An estimate of a label character's width at `LABEL_SIZE` (plotters writes SVG text at 1/1.24
/// of the size asked for): the SVG holds text, not glyphs, so the label column is sized from the
/// longest label.
const CHAR_WIDTH: f64 = 7.0;
const CURRENT: RGBColor = RGBColor(31, 119, 180);
const BASELINE: RGBColor = RGBColor(160, 160, 160);

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing {path}: {message}")]
pub struct ChartError {
    path: String,
    message: String,
}

/// Writes the chart of `current` (next to `baseline` when given) to `path` as SVG.
pub fn render_svg(
    current: &Results,
    baseline: Option<&Results>,
    path: &Path,
) -> Result<(), ChartError> {
    let fail = |e: &dyn std::fmt::Display| ChartError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let panels = panels(current);
    let heights: Vec<u32> = panels
        .iter()
        .map(|(_, figures)| figures.len() as u32 * ROW + PANEL_PADDING)
        .collect();
    let total = LEGEND + heights.iter().sum::<u32>();
    let longest = current
        .figures
        .iter()
        .map(|f| f.label.chars().count())
        .max()
        .unwrap_or(0);
    // Capped so that a very long label cannot leave the bars no room.
    let label_area = ((longest as f64 * CHAR_WIDTH) as u32 + 20).min(WIDTH / 2);

    let root = SVGBackend::new(path, (WIDTH, total)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (legend, mut area) = root.split_vertically(LEGEND);
    draw_legend(&legend, current, baseline).map_err(|e| fail(&e))?;
    for ((title, figures), height) in panels.iter().zip(&heights) {
        let (panel, rest) = area.split_vertically(*height);
        area = rest;
        draw_panel(&panel, title, figures, label_area, current, baseline).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

/// Figures grouped by (group, unit), in the order they were measured.
fn panels(current: &Results) -> Vec<(String, Vec<&Figure>)> {
    let mut panels: Vec<(String, Vec<&Figure>)> = Vec::new();
    for f in &current.figures {
        let title = format!("{} ({})", f.group, f.unit);
        match panels.iter_mut().find(|(t, _)| *t == title) {
            Some((_, figures)) => figures.push(f),
            None => panels.push((title, vec![f])),
        }
    }
    panels
}

/// An axis tick without the float noise (`0.30000000000000004`).
fn axis_number(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    current: &Results,
    baseline: Option<&Results>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT, LABEL_SIZE).into_font());
    let mut x = 20;
    let mut key = |element: &dyn Fn(i32) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>,
                   text: String| {
        element(x)?;
        area.draw(&Text::new(
            text.clone(),
            (x + 22, 20),
            style.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += 22 + (text.chars().count() as f64 * CHAR_WIDTH) as i32 + 30;
        Ok(())
    };
    let swatch = |color: RGBColor| {
        move |x: i32| area.draw(&Rectangle::new([(x, 13), (x + 16, 27)], color.filled()))
    };
    key(
        &swatch(CURRENT),
        format!(
            "this run ({}, {})",
            short(&current.commit),
            current.started_at.format("%Y-%m-%d %H:%M UTC")
        ),
    )?;
    if let Some(b) = baseline {
        key(
            &swatch(BASELINE),
            format!(
                "baseline ({}, {})",
                short(&b.commit),
                b.started_at.format("%Y-%m-%d %H:%M UTC")
            ),
        )?;
    }
    if !current.targets.is_empty() {
        key(
            &|x| {
                area.draw(&PathElement::new(
                    vec![(x + 8, 10), (x + 8, 30)],
                    RED.stroke_width(3),
                ))
            },
            "target".to_string(),
        )?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    figures: &[&Figure],
    label_area: u32,
    current: &Results,
    baseline: Option<&Results>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let before = |f: &Figure| {
        baseline
            .and_then(|b| b.figure(&f.name))
            .map(|b| b.value)
            .filter(|v| v.is_finite())
    };
    let target = |f: &Figure| {
        current
            .targets
            .iter()
            .find(|t| t.name == f.name)
            .map(|t| t.required)
            .filter(|v| v.is_finite())
    };
    let values: Vec<f64> = figures
        .iter()
        .flat_map(|f| [Some(f.value), before(f), target(f)])
        .flatten()
        .filter(|v| v.is_finite())
        .collect();
    // Zero is always on the axis, so bars start from it; negative figures (memory growth) too.
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let min = values.iter().copied().fold(0.0_f64, f64::min);
    let span = (max - min).max(1e-9);
    let (x0, x1) = (
        if min < 0.0 { min - span * 0.05 } else { 0.0 },
        max + span * 0.12,
    );
    let rows = figures.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(label_area)
        .build_cartesian_2d(x0..x1, 0.0..rows)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .label_style((FONT, 14))
        .light_line_style(WHITE)
        .x_label_formatter(&|v| axis_number(*v))
        .draw()?;
    let label_style =
        TextStyle::from((FONT, LABEL_SIZE).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    let value_style =
        TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, f) in figures.iter().enumerate() {
        // Row i from the top spans y from rows - i - 1 to rows - i: the run's bar in its upper
        // half, the baseline's in its lower half.
        let top = rows - i as f64;
        let middle = top - 0.5;
        chart.plotting_area().draw(
            &(EmptyElement::at((x0, middle))
                + Text::new(f.label.clone(), (-10, 0), label_style.clone())),
        )?;
        let value = if f.value.is_finite() { f.value } else { 0.0 };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, top - 0.12), (value, middle)],
            CURRENT.filled(),
        )))?;
        let shown = if f.value.is_finite() {
            number(f.value)
        } else {
            "failed".to_string()
        };
        chart.plotting_area().draw(
            &(EmptyElement::at((value.max(0.0), top - 0.31))
                + Text::new(shown, (5, 0), value_style.clone())),
        )?;
        if let Some(b) = before(f) {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, middle), (b, top - 0.88)],
                BASELINE.filled(),
            )))?;
        }
        if let Some(t) = target(f) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(t, top - 0.04), (t, top - 0.96)],
                RED.stroke_width(3),
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use quick_xml::events::Event;

    use super::*;
    use crate::results::tests::sample;

    /// Panics unless `svg` is well-formed XML with one root element, and returns that root's name.
    fn well_formed_root(svg: &str) -> String {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut open: Vec<String> = Vec::new();
        let mut roots = Vec::new();
        loop {
            let name = |e: &quick_xml::events::BytesStart| {
                String::from_utf8(e.name().as_ref().to_vec()).unwrap()
            };
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) => {
                    if open.is_empty() {
                        roots.push(name(&e));
                    }
                    open.push(name(&e));
                }
                Event::Empty(e) if open.is_empty() => roots.push(name(&e)),
                Event::End(e) => {
                    let closed = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    assert_eq!(open.pop(), Some(closed));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert_eq!(roots.len(), 1, "{roots:?}");
        roots.remove(0)
    }

    fn render(current: &Results, baseline: Option<&Results>) -> String {
        let path = std::env::temp_dir().join(format!(
            "bench-chart-{}-{}.svg",
            std::process::id(),
            baseline.is_some()
        ));
        render_svg(current, baseline, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        svg
    }

    #[test]
    fn draws_every_figure_with_its_baseline_and_target() {
        let current = sample(1000.0, 120.0);
        let svg = render(&current, Some(&sample(900.0, 80.0)));
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert_eq!(well_formed_root(&svg), "svg");
        for f in &current.figures {
            assert!(
                svg.contains(&format!("\n{}\n", f.label)),
                "{} is labelled",
                f.label
            );
        }
        for caption in ["consumers (events/s)", "checkout (ms)", "memory (MiB)"] {
            assert!(svg.contains(caption), "panel {caption}");
        }
        assert!(
            svg.contains("\n120\n") && svg.contains("\n40.00\n"),
            "values are written on the bars"
        );
        assert!(
            svg.contains("baseline (0123456789"),
            "the legend names the baseline"
        );
        let fill = |c: RGBColor| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        assert_eq!(
            svg.matches(&fill(CURRENT)).count(),
            3 + 1,
            "3 bars and the legend's"
        );
        assert_eq!(svg.matches(&fill(BASELINE)).count(), 3 + 1);
        assert_eq!(
            svg.matches("stroke=\"#FF0000\"").count(),
            1 + 1,
            "the p99 target and the legend's"
        );
    }

    #[test]
    fn axis_ticks_are_short() {
        assert_eq!(axis_number(0.30000000000000004), "0.3");
        assert_eq!(axis_number(0.0), "0");
        assert_eq!(axis_number(150000.0), "150000");
        assert_eq!(axis_number(-2.5), "-2.5");
    }

    #[test]
    fn draws_a_run_alone_with_failed_and_negative_figures() {
        let mut current = sample(f64::NAN, 50.0);
        current.figures[2].value = -3.5;
        current.figures[0].label = "rate & <ratio>".into();
        let svg = render(&current, None);
        assert_eq!(well_formed_root(&svg), "svg");
        assert!(svg.contains("rate &amp; &lt;ratio&gt;"));
        assert!(svg.contains("\nfailed\n") && svg.contains("\n-3.50\n"));
        assert!(!svg.contains("baseline ("));
    }
}
