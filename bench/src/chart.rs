//! SVG charts of benchmark results, rendered into a `String` that the caller writes where it wants: no
//! system fonts needed (the SVG backend emits `<text>` and leaves the font to the viewer).
//!
//! Bad input never panics: NaN/infinite values and points a log axis cannot show are skipped, non-positive
//! latencies are clamped, and when nothing is drawable the result is still a valid SVG with the title and a
//! "no data" note (not an `Err`), so one empty run never breaks a report page's layout.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

/// One system's throughput at each concurrency: (concurrency, median ops/s, min ops/s, max ops/s). The spread
/// is kept so a noisy system looks different from a stable one with the same median.
pub(crate) struct ThroughputSeries {
    /// Legend text (the system's name).
    pub label: String,
    /// (concurrency, median, min, max) per measured concurrency.
    pub points: Vec<(usize, f64, f64, f64)>,
}

/// One system's latency distribution: (percentile in 0..=100, latency in microseconds), ascending
/// percentiles — the shape a histogram's percentile iterator yields, so callers need no conversion.
pub(crate) struct CdfSeries {
    /// Legend text (the system's name).
    pub label: String,
    /// (percentile, latency µs) pairs.
    pub points: Vec<(f64, f64)>,
}

/// Chart size in pixels: wide enough for a report column, and fixed so the charts of one report line up.
const SIZE: (u32, u32) = (800, 480);

/// Most tick labels on the x axis; more would overlap at 800 px.
const MAX_TICKS: usize = 12;

/// Distinct, colour-blind-friendlier colours (Tableau 10) for the first series; the default palette's early
/// entries include a yellow that is unreadable on white.
const COLORS: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf,
];

/// The colour of the `i`th series, so lines and legend entries match and many systems still get distinct ones.
fn series_color(i: usize) -> RGBColor {
    let (r, g, b) = match COLORS.get(i) {
        Some(c) => ((c >> 16) as u8, (c >> 8) as u8, *c as u8),
        None => Palette99::pick(i).to_backend_color().rgb,
    };
    RGBColor(r, g, b)
}

/// Throughput vs concurrency, one line per series, min–max shown as a vertical whisker at each point; x axis
/// log2-spaced (a doubling sweep would otherwise bunch up on the left) with the measured concurrencies as tick
/// labels; y from 0 so ratios between systems are honest. Points with concurrency 0 or a non-finite median
/// are skipped, a whisker with a non-finite end is left out, negative rates are drawn at 0.
pub(crate) fn throughput_svg(title: &str, series: &[ThroughputSeries]) -> Result<String> {
    let plots: Vec<Plot> = series.iter().map(prepare_throughput).collect();
    let mut ticks: Vec<f64> = plots.iter().flat_map(|p| p.line.iter().map(|pt| pt.0)).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let (cmin, cmax) = min_max(ticks.iter().copied()).unwrap_or((1.0, 1.0));
    let tops = plots.iter().flat_map(|p| p.whiskers.iter().map(|w| w.2));
    let meds = plots.iter().flat_map(|p| p.line.iter().map(|pt| pt.1));
    let ymax = min_max(meds.chain(tops)).map_or(0.0, |(_, hi)| hi * 1.1);
    let frame = Frame {
        title,
        desc: ("concurrency (workers)", "ops/s"),
        x_range: (cmin / 2f64.powf(0.35), cmax * 2f64.powf(0.35)),
        x_ticks: thin(ticks),
        x_fmt: |v| format!("{}", v.round()),
        y_max: if ymax > 0.0 { ymax } else { 1.0 },
        legend: SeriesLabelPosition::UpperLeft,
    };
    render(&frame, &plots)
}

/// Latency CDF, one line per series: x = latency (µs, log10 scale, since tails span orders of magnitude),
/// y = percentile 0–100. Latencies ≤ 0 cannot sit on a log axis and are clamped to the smallest positive
/// latency present; pairs with a NaN or infinite value are skipped, percentiles are clamped to 0..=100.
pub(crate) fn cdf_svg(title: &str, series: &[CdfSeries]) -> Result<String> {
    let lats = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let floor = min_max(lats.filter(|v| v.is_finite() && *v > 0.0)).map_or(1.0, |(lo, _)| lo);
    let plots: Vec<Plot> = series.iter().map(|s| prepare_cdf(s, floor)).collect();
    let xs = plots.iter().flat_map(|p| p.line.iter().map(|pt| pt.0));
    let (mut lo, mut hi) = min_max(xs).unwrap_or((1.0, 1.0));
    // Widen to at least one decade so there are always readable ticks.
    if hi / lo < 10.0 {
        let mid = (lo * hi).sqrt();
        (lo, hi) = (mid / 10f64.sqrt(), mid * 10f64.sqrt());
    }
    let (lo, hi) = (lo / 1.2, hi * 1.2);
    let frame = Frame {
        title,
        desc: ("latency (µs)", "percentile"),
        x_range: (lo, hi),
        x_ticks: thin(log_ticks(lo, hi)),
        x_fmt: |v| si(*v),
        y_max: 100.0,
        legend: SeriesLabelPosition::LowerRight,
    };
    render(&frame, &plots)
}

/// A series reduced to what can be drawn (finite, in chart coordinates), so the renderer never meets NaN or a
/// value a log axis cannot map.
struct Plot {
    /// Legend text.
    name: String,
    /// The line's points, ordered along x.
    line: Vec<(f64, f64)>,
    /// (x, low, high) whiskers, low ≤ high.
    whiskers: Vec<(f64, f64, f64)>,
}

/// Cleans one throughput series; see [`throughput_svg`] for the rules.
fn prepare_throughput(s: &ThroughputSeries) -> Plot {
    let mut pts: Vec<_> = s.points.iter().filter(|p| p.0 > 0 && p.1.is_finite()).collect();
    pts.sort_by_key(|p| p.0);
    let line = pts.iter().map(|p| (p.0 as f64, p.1.max(0.0))).collect();
    let spread = pts.iter().filter(|p| p.2.is_finite() && p.3.is_finite());
    let whiskers = spread
        .map(|p| (p.0 as f64, p.2.min(p.3).max(0.0), p.2.max(p.3).max(0.0)))
        .collect();
    let name = s.label.clone();
    Plot { name, line, whiskers }
}

/// Cleans one CDF series (rules: [`cdf_svg`]), sorted by percentile so the line rises even if the caller's
/// order slips.
fn prepare_cdf(s: &CdfSeries, floor: f64) -> Plot {
    let finite = s.points.iter().filter(|(p, l)| p.is_finite() && l.is_finite());
    let mut line: Vec<_> = finite.map(|&(p, l)| (l.max(floor), p.clamp(0.0, 100.0))).collect();
    line.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)));
    let (name, whiskers) = (s.label.clone(), Vec::new());
    Plot { name, line, whiskers }
}

/// The smallest and largest of some values, `None` when there are none, so callers pick their own fallback.
fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| {
        Some(acc.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v))))
    })
}

/// Keeps at most [`MAX_TICKS`] evenly picked ticks, so long sweeps do not print overlapping labels.
fn thin(ticks: Vec<f64>) -> Vec<f64> {
    let step = ticks.len().div_ceil(MAX_TICKS).max(1);
    ticks.into_iter().step_by(step).collect()
}

/// Round values (1, 2, 5 × 10ⁿ, or finer) inside `lo..=hi`: plotters' own log ticks are powers of ten only,
/// leaving a narrow range unlabelled.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let sets: [&[f64]; 3] = [&[1.0], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mut ticks = Vec::new();
    for mults in sets {
        let all = (e0..=e1).flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)));
        ticks = all.filter(|v| (lo..=hi).contains(v)).collect();
        if ticks.len() >= 4 {
            break;
        }
    }
    ticks
}

/// Short axis numbers (1.5k, 2M) so large rates fit the label area.
fn si(v: f64) -> String {
    let (x, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{suffix}")
}

/// What differs between the two charts; the drawing code is shared so both look alike.
struct Frame<'t> {
    /// Caption.
    title: &'t str,
    /// X and y axis descriptions.
    desc: (&'static str, &'static str),
    /// X range (log scale), both ends positive.
    x_range: (f64, f64),
    /// Where the x tick labels go.
    x_ticks: Vec<f64>,
    /// How an x tick is printed.
    x_fmt: fn(&f64) -> String,
    /// Top of the y axis (the bottom is 0).
    y_max: f64,
    /// Corner for the legend, where lines of this kind of chart rarely go.
    legend: SeriesLabelPosition,
}

/// Draws `plots` in `frame` into a fresh SVG string, or the "no data" page when nothing is drawable. Errors
/// name the chart so a report failure says which one broke.
fn render(frame: &Frame<'_>, plots: &[Plot]) -> Result<String> {
    let err = |e: DrawError| Error::Other(format!("drawing chart {:?}: {e}", frame.title));
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    if plots.iter().all(|p| p.line.is_empty()) {
        let area = root.titled(frame.title, ("sans-serif", 22)).map_err(err)?;
        let style = TextStyle::from(("sans-serif", 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        let at = (area.dim_in_pixel().0 as i32 / 2, area.dim_in_pixel().1 as i32 / 2);
        area.draw(&Text::new("no data", at, style)).map_err(err)?;
    } else {
        draw_chart(&root, frame, plots).map_err(err)?;
    }
    root.present().map_err(err)?;
    drop(root); // releases `svg`
    Ok(svg)
}

/// The plotters error of the SVG backend.
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// Axes, mesh, series and legend. Whiskers are thin rectangles placed in pixel space, so each series is exactly
/// one `<polyline>` in the output (and tests can count them).
fn draw_chart(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    frame: &Frame<'_>,
    plots: &[Plot],
) -> std::result::Result<(), DrawError> {
    let (x0, x1) = frame.x_range;
    let x_axis = (x0..x1).log_scale().with_key_points(frame.x_ticks.clone());
    let mut chart = ChartBuilder::on(root)
        .caption(frame.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_axis, 0.0..frame.y_max)?;
    chart
        .configure_mesh()
        .x_desc(frame.desc.0)
        .y_desc(frame.desc.1)
        .x_label_formatter(&frame.x_fmt)
        .y_label_formatter(&|v| si(*v))
        .draw()?;
    for (i, plot) in plots.iter().enumerate() {
        let color = series_color(i);
        for &(x, lo, hi) in &plot.whiskers {
            let (px, top) = chart.backend_coord(&(x, hi));
            let (_, bottom) = chart.backend_coord(&(x, lo));
            for bar in [
                [(px - 1, top), (px + 1, bottom.max(top + 1))],
                [(px - 5, top - 1), (px + 5, top + 1)],
                [(px - 5, bottom - 1), (px + 5, bottom + 1)],
            ] {
                root.draw(&Rectangle::new(bar, color.mix(0.6).filled()))?;
            }
        }
        let line = plot.line.iter().copied();
        chart.draw_series(plot.line.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        let note = if plot.line.is_empty() { " (no data)" } else { "" };
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))?
            .label(format!("{}{note}", plot.name))
            .legend(move |(x, y)| Rectangle::new([(x, y - 3), (x + 18, y + 3)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(frame.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `#RRGGBB` the SVG backend writes for series `i`.
    fn hex(i: usize) -> String {
        let RGBColor(r, g, b) = series_color(i);
        format!("#{r:02X}{g:02X}{b:02X}")
    }

    /// Point counts of the `<polyline>`s stroked in series `i`'s colour (each point is one "x,y").
    fn lines_of(svg: &str, i: usize) -> Vec<usize> {
        let stroke = format!("stroke=\"{}\"", hex(i));
        let tags = svg.split("<polyline").skip(1).filter_map(|t| t.split('>').next());
        let ours = tags.filter(|t| t.contains(&stroke));
        ours.map(|t| t.matches(',').count()).collect()
    }

    /// Checks the document shape every chart must have, and that each `|`-separated text is a `<text>`.
    fn assert_svg(svg: &str, want: &str) {
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        let bodies = svg.split("</text>").filter_map(|t| t.rsplit_once('>'));
        let texts: Vec<&str> = bodies.map(|(_, t)| t.trim()).collect();
        for w in want.split('|') {
            assert!(texts.contains(&w), "missing {w:?} in {texts:?}");
        }
    }

    fn ts(label: &str, points: Vec<(usize, f64, f64, f64)>) -> ThroughputSeries {
        let label = label.into();
        ThroughputSeries { label, points }
    }

    fn cs(label: &str, points: Vec<(f64, f64)>) -> CdfSeries {
        let label = label.into();
        CdfSeries { label, points }
    }

    fn tput(label: &str, scale: f64) -> ThroughputSeries {
        let m = |c: usize| scale * (c as f64).sqrt();
        ts(label, [1, 8, 64, 256].map(|c| (c, m(c), m(c) * 0.9, m(c) * 1.1)).into())
    }

    fn cdf(label: &str, base: f64) -> CdfSeries {
        let ps = [0.0, 50.0, 90.0, 99.0, 99.9, 100.0].into_iter().enumerate();
        cs(label, ps.map(|(i, p)| (p, base * (1.0 + (i * i) as f64))).collect())
    }

    #[test]
    fn chart_throughput_has_labels_ticks_whiskers_and_one_line_per_series() {
        let svg = throughput_svg("Locks/s", &[tput("lockd", 5e4), tput("etcd", 1e4)]).expect("chart");
        assert_svg(&svg, "Locks/s|lockd|etcd|concurrency (workers)|ops/s|1|8|64|256");
        assert_eq!((lines_of(&svg, 0), lines_of(&svg, 1)), (vec![4], vec![4]));
        // 4 whiskers × (bar + 2 caps) + the legend swatch.
        let fill = format!("fill=\"{}\"", hex(0));
        let rects = svg.split("<rect").skip(1).filter_map(|r| r.split('>').next());
        assert_eq!(rects.filter(|r| r.contains(&fill)).count(), 13);
    }

    #[test]
    fn chart_cdf_has_labels_log_ticks_and_one_line_per_series() {
        let svg = cdf_svg("Latency", &[cdf("lockd", 50.0), cdf("redis", 80.0)]).expect("chart");
        assert_svg(&svg, "Latency|lockd|redis|latency (µs)|percentile|100|1k");
        assert_eq!((lines_of(&svg, 0), lines_of(&svg, 1)), (vec![6], vec![6]));
    }

    #[test]
    fn chart_without_data_still_renders_title_and_note() {
        for svg in [
            throughput_svg("T", &[]).expect("empty list"),
            throughput_svg("T", &[ts("x", vec![])]).expect("empty series"),
            cdf_svg("T", &[]).expect("empty list"),
            cdf_svg("T", &[cs("x", vec![(f64::NAN, 1.0)])]).expect("all NaN"),
        ] {
            assert_svg(&svg, "T|no data");
            assert!(lines_of(&svg, 0).is_empty(), "{svg}");
        }
    }

    #[test]
    fn chart_empty_series_next_to_real_one_is_marked_in_legend() {
        let svg = cdf_svg("L", &[cs("down", vec![]), cdf("up", 10.0)]).expect("chart");
        assert_svg(&svg, "L|down (no data)|up");
        assert!(lines_of(&svg, 0).iter().all(|&n| n == 0));
        assert_eq!(lines_of(&svg, 1), vec![6]);
    }

    #[test]
    fn chart_bad_values_are_skipped_or_clamped() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let (pct, lat) = ([0.0, 50.0, 90.0, nan, 99.0, 150.0], [0.0, -3.0, nan, 10.0, inf, 100.0]);
        let svg = cdf_svg("C", &[cs("odd", pct.into_iter().zip(lat).collect())]).expect("chart");
        assert_eq!(lines_of(&svg, 0), vec![3]);
        let (c, med) = ([0, 4, 2, 8], [5.0, nan, 3.0, -1.0]);
        let (lo, hi) = ([1.0, 1.0, nan, -2.0], [9.0, 2.0, 4.0, 5.0]);
        let pts = (0..4).map(|i| (c[i], med[i], lo[i], hi[i])).collect();
        let svg = throughput_svg("T", &[ts("odd", pts)]).expect("chart");
        assert_eq!(lines_of(&svg, 0), vec![2]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn chart_single_concurrency_point() {
        let svg = throughput_svg("T", &[ts("one", vec![(16, 100.0, 90.0, 110.0)])]).expect("chart");
        assert_svg(&svg, "T|one|16");
        assert_eq!(lines_of(&svg, 0), vec![1]);
        assert!(svg.contains("<circle"), "{svg}");
    }

    #[test]
    fn chart_labels_are_escaped_and_colours_distinct() {
        let svg = cdf_svg("a<b & c", &[cdf("x\"y", 1.0)]).expect("chart");
        assert!(svg.contains("a&lt;b &amp; c") && svg.contains("x&quot;y"), "{svg}");
        assert_eq!((0..30).map(hex).collect::<std::collections::HashSet<_>>().len(), 30);
    }

    #[test]
    fn chart_number_formatting() {
        assert_eq!([si(0.0), si(1500.0), si(2e6), si(0.03)], ["0", "1.5k", "2M", "0.03"]);
        let want = vec![50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];
        assert_eq!(log_ticks(41.0, 6000.0), want);
        assert_eq!(thin((0..30).map(f64::from).collect()).len(), 10);
    }
}
